//! Hostile input against a real server on loopback: mutated and malformed bodies on every
//! JSON route, invalid UTF-8, deeply nested JSON, oversize bodies, a client that trickles its
//! body, and a burst of small uploads. Each must get a clear 4xx (or its normal answer)
//! within the limits, never a 5xx, and the server must go on answering everyone else.
//! Runs over the excerpts of the Constitution and the LGPD; skips when `../shared/corpus`
//! is absent.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::Writer;
use cabildo_engine::Engine;
use cabildo_server::{Config, Limits};
use common::{add_key, agent, excerpt_engine, get, on_own_runtime, read, start};
use serde_json::{json, Value};

struct Server {
    base: String,
    admin: String,
    _engine: Arc<Engine>,
}

fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            on_own_runtime(|dir| async move {
                let engine = excerpt_engine(&dir).await?;
                let config = Config {
                    // Every request reaches its handler: the point is what the handlers do
                    // with bad input, not the rate limits.
                    limits: Limits {
                        per_ip_per_minute: 100_000,
                        per_principal_per_minute: 100_000,
                        partner_daily_quota: None,
                    },
                    request_timeout: Duration::from_secs(3),
                    body_limit: 16 * 1024,
                    ..Config::default()
                };
                let base = start(engine.clone(), Writer::Extractive, config).await;
                let admin = add_key(
                    &engine,
                    "ops",
                    AccessRole::Admin,
                    None,
                    AccessLevel::Restricted,
                    None,
                )
                .await;
                Some(Server {
                    base,
                    admin,
                    _engine: engine,
                })
            })
        })
        .as_ref()
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A JSON value of a random shape, for replacing a field.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from_bits(rng.next() & 0x7fef_ffff_ffff_ffff)),
        4 => json!("x".repeat(rng.below(3000))),
        5 => json!("\u{0}\u{202e}<script>¿ñ?\u{1F600}"),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for i in 0..rng.below(4) {
                m.insert(format!("k{i}"), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// `valid`, mutated: a field replaced, dropped or added, or its bytes cut, flipped or salted
/// with invalid UTF-8.
fn mutate(rng: &mut Rng, valid: &Value) -> Vec<u8> {
    let mut v = valid.clone();
    let keys: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    match rng.below(6) {
        0 if !keys.is_empty() => {
            let k = &keys[rng.below(keys.len())];
            v[k] = random_value(rng, 0);
        }
        1 if !keys.is_empty() => {
            let k = keys[rng.below(keys.len())].clone();
            v.as_object_mut().map(|m| m.remove(&k));
        }
        2 => {
            v[format!("extra{}", rng.below(9))] = random_value(rng, 0);
        }
        _ => {}
    }
    let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
    match rng.below(5) {
        0 if !bytes.is_empty() => bytes.truncate(rng.below(bytes.len())),
        1 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        2 => {
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, [0xff, 0xfe, 0xc3]);
        }
        _ => {}
    }
    bytes
}

fn post_bytes(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(body).expect("request");
    let (status, _, body) = read(&mut r);
    (status, body)
}

#[test]
fn mutated_bodies_on_every_json_route_get_a_4xx_or_their_answer_never_a_5xx() {
    let Some(s) = server() else {
        eprintln!("skipped: ../shared/corpus not found");
        return;
    };
    let routes = [
        (
            "/v1/search",
            json!({"query": "derecho a sufragio", "k": 3, "filters": {"jurisdiction": ["CL"]}, "method": "lexical"}),
        ),
        (
            "/v1/ask",
            json!({"question": "¿A qué edad se puede votar?", "register": "tu", "history": [{"role": "user", "content": "hola"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "cabildo", "messages": [{"role": "user", "content": "¿A qué edad se puede votar?"}], "max_tokens": 64}),
        ),
        (
            "/v1/feedback",
            json!({"answer_id": "ans_0", "rating": "useful", "comment": "bien"}),
        ),
    ];
    let mut rng = Rng(0x5eed_cab1_1d0f_u64);
    let mut seen = std::collections::BTreeMap::new();
    for (route, valid) in &routes {
        let url = format!("{}{route}", s.base);
        for i in 0..150 {
            let body = mutate(&mut rng, valid);
            let (status, answer) = post_bytes(&url, &body, &[]);
            assert!(
                status < 500,
                "{route} answered {status} to mutation {i}: {}\n{answer}",
                String::from_utf8_lossy(&body)
            );
            *seen.entry((route.to_string(), status)).or_insert(0) += 1;
        }
    }
    eprintln!("statuses: {seen:?}");
    assert_eq!(get(&format!("{}/healthz", s.base)).0, 200);
}

#[test]
fn malformed_bodies_get_clear_4xx_within_the_limits() {
    let Some(s) = server() else {
        return;
    };
    let search = format!("{}/v1/search", s.base);
    // Invalid UTF-8 inside a string.
    let (status, body) = post_bytes(&search, b"{\"query\": \"vot\xff\xfear\"}", &[]);
    assert_eq!(status, 400, "{body}");
    // JSON nested ten thousand deep: refused by the parser's depth limit, quickly.
    let deep = format!(
        "{{\"query\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let started = Instant::now();
    let (status, _) = post_bytes(&search, deep.as_bytes(), &[]);
    assert!(status == 400 || status == 413, "{status}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Over the body limit.
    let huge = format!("{{\"query\": \"{}\"}}", "a".repeat(64 * 1024));
    let r = agent()
        .post(&search)
        .header("Content-Type", "application/json")
        .send(huge.as_bytes())
        .expect("request");
    assert_eq!(r.status().as_u16(), 413);
    // The unread rest of the body ends the connection, and the client is told.
    assert_eq!(
        r.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    // Not JSON at all, and the wrong media type.
    assert_eq!(post_bytes(&search, b"query=votar", &[]).0, 400);
    let mut r = agent()
        .post(&search)
        .header("Content-Type", "text/plain")
        .send("{\"query\": \"votar\"}")
        .expect("request");
    assert_eq!(read(&mut r).0, 415);
    // A multipart upload that is not one.
    let mut r = agent()
        .post(format!("{}/v1/documents", s.base))
        .header("Authorization", format!("Bearer {}", s.admin))
        .header("Content-Type", "multipart/form-data; boundary=x")
        .send(
            "--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno file name\r\n--x--\r\n",
        )
        .expect("request");
    assert_eq!(read(&mut r).0, 400);
    assert_eq!(get(&format!("{}/healthz", s.base)).0, 200);
}

#[test]
fn a_client_that_trickles_its_body_is_cut_off_and_holds_no_one_else() {
    let Some(s) = server() else {
        return;
    };
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        slow,
        "POST /v1/search HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"query\""
    )
    .expect("head");
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        // One byte every 200 ms: the 200-byte body would take 40 s.
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(200));
            if slow.write_all(b" ").is_err() {
                break;
            }
        }
        let mut answer = String::new();
        let _ = slow.read_to_string(&mut answer);
        answer
    });
    // Meanwhile everyone else is served at once.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(&format!("{}/healthz", s.base)).0, 200);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    let answer = trickle.join().expect("trickler");
    assert!(
        answer.starts_with("HTTP/1.1 504") || answer.starts_with("HTTP/1.1 408"),
        "the trickling client got: {answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off by the request timeout (3 s here), not left to finish"
    );
}

#[test]
fn a_burst_of_small_uploads_is_accepted_or_refused_cleanly_and_all_jobs_finish() {
    let Some(s) = server() else {
        return;
    };
    let boundary = "cabildo-burst";
    let mut jobs = Vec::new();
    for i in 0..60 {
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"aviso-{i}.md\"\r\n\r\n# Aviso {i}\n\nArtículo 1.- Aviso de prueba número {i}.\r\n--{boundary}--\r\n"
        );
        let mut r = agent()
            .post(format!("{}/v1/documents", s.base))
            .header("Authorization", format!("Bearer {}", s.admin))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body.as_bytes())
            .expect("request");
        let (status, _, body) = read(&mut r);
        assert!(
            status == 202 || status == 429 || status == 503,
            "{status}: {body}"
        );
        if status == 202 {
            jobs.push(common::json_of(&body)["job_id"].clone());
        }
    }
    assert!(!jobs.is_empty());
    let started = Instant::now();
    for job in &jobs {
        loop {
            let mut r = agent()
                .get(format!("{}/v1/jobs/{job}", s.base))
                .header("Authorization", format!("Bearer {}", s.admin))
                .call()
                .expect("request");
            let j = common::json_of(&read(&mut r).2);
            if j["status"] == "done" {
                break;
            }
            assert_ne!(j["status"], "failed", "{j}");
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "jobs never finished: {j}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(get(&format!("{}/healthz", s.base)).0, 200);
}
