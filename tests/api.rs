//! The HTTP API end to end: the real server on loopback over excerpts of real corpus files
//! (the Chilean Constitution, articles 1–18; the LGPD, articles 1–7), with real e5-small
//! embeddings in the embedded Qdrant store, called with a plain HTTP client. One server
//! answers extractively (fast, deterministic); a second runs the default local model
//! (Qwen2.5 0.5B, installed by `scripts/setup-models.sh`) with a one-slot, no-wait queue.
//! Skips when `../shared/corpus` is absent.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::{AskOptions, Writer};
use cabildo_engine::Engine;
use cabildo_models::{Generator, OpenAiGenerator};
use cabildo_server::{AppState, Config};
use common::{
    add_key, agent, events, excerpt_engine, get, json_of, on_own_runtime, post, qwen, read, root,
    start,
};
use serde_json::{json, Value};

/// The model server has one slot and no queue: tests that use it take turns.
static MODEL_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Servers {
    /// An admin's API key.
    admin: String,
    extractive: String,
    model: String,
    engine: Arc<Engine>,
    runtime: tokio::runtime::Handle,
}

fn servers() -> Option<&'static Servers> {
    static SERVERS: OnceLock<Option<Servers>> = OnceLock::new();
    SERVERS
        .get_or_init(|| {
            on_own_runtime(|dir| async move {
                let engine = excerpt_engine(&dir).await?;
                let generator = qwen();
                let extractive = start(engine.clone(), Writer::Extractive, Config::default()).await;
                let model = start(
                    engine.clone(),
                    Writer::Model(Arc::new(generator)),
                    Config {
                        generation_workers: 1,
                        queue_capacity: 0,
                        retry_after: 7,
                        ask: short_answers(),
                        ..Config::default()
                    },
                )
                .await;
                let admin = add_key(
                    &engine,
                    "ops",
                    AccessRole::Admin,
                    None,
                    AccessLevel::Restricted,
                    None,
                )
                .await;
                Some(Servers {
                    admin,
                    extractive,
                    model,
                    engine,
                    runtime: tokio::runtime::Handle::current(),
                })
            })
        })
        .as_ref()
}

/// Asks `question` as JSON and returns the answer, which must come with 200.
fn ask(base: &str, question: &str) -> Value {
    let (status, ct, body) = post(
        &format!("{base}/v1/ask"),
        &json!({ "question": question }),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    json_of(&body)
}

/// Short prompts and answers: prefill runs ~35 tokens/s on two cores.
fn short_answers() -> AskOptions {
    AskOptions {
        sources: 2,
        source_chars: 300,
        max_tokens: 40,
        ..AskOptions::default()
    }
}

#[test]
fn spanish_question_cites_constitution_article_13() {
    let Some(s) = servers() else { return };
    let a = ask(&s.extractive, "¿Desde qué edad se puede votar en Chile?");
    assert_eq!(a["abstained"], false, "{a}");
    assert_eq!(a["language"], "es");
    let cited = a["citations"].as_array().expect("citations");
    let first = cited
        .iter()
        .find(|c| c["label"].as_str().unwrap_or("").ends_with("Artículo 13"))
        .unwrap_or_else(|| panic!("article 13 cited: {a:#}"));
    assert!(first["quote"]
        .as_str()
        .unwrap_or("")
        .contains("dieciocho años"));
    assert!(
        first["url"].as_str().unwrap_or("").contains("bcn.cl"),
        "{first}"
    );
    assert!(a["answer"].as_str().unwrap_or("").contains("[1]"));
}

#[test]
fn portuguese_question_cites_lgpd_article_5_item_vi() {
    let Some(s) = servers() else { return };
    let a = ask(&s.extractive, "O que é o controlador segundo a LGPD?");
    assert_eq!(a["language"], "pt");
    let first = &a["citations"][0];
    let label = first["label"].as_str().unwrap_or("");
    assert!(
        label.contains("Art. 5º") && label.ends_with("Inciso VI"),
        "{a:#}"
    );
    assert!(first["quote"]
        .as_str()
        .unwrap_or("")
        .contains("controlador: pessoa natural ou jurídica"));
}

#[test]
fn a_question_naming_a_country_or_a_norm_is_answered_within_it_or_says_it_is_missing() {
    let Some(s) = servers() else { return };
    // No Peruvian document here: the answer says so instead of quoting Chile's article 13.
    let a = ask(&s.extractive, "¿Desde qué edad se puede votar en el Perú?");
    assert_eq!(a["abstained"], true, "{a:#}");
    let text = a["answer"].as_str().unwrap_or("");
    assert!(
        text.starts_with("No tengo documentos de Perú entre las fuentes disponibles."),
        "{a:#}"
    );
    // A law named by its number is searched within it when it is here...
    let a = ask(
        &s.extractive,
        "O que é o controlador segundo a Lei nº 13.709/2018?",
    );
    assert_eq!(a["abstained"], false, "{a:#}");
    let cited = a["citations"].as_array().expect("citations");
    assert!(!cited.is_empty());
    for c in cited {
        assert!(
            c["norm_id"].as_str().unwrap_or("").contains("13709"),
            "{a:#}"
        );
    }
    // ...and named as missing when it is not.
    let a = ask(
        &s.extractive,
        "O que é o controlador segundo a Lei nº 12.965/2014?",
    );
    assert_eq!(a["abstained"], true, "{a:#}");
    let text = a["answer"].as_str().unwrap_or("");
    assert!(
        text.starts_with("Não tenho a Lei nº 12.965 entre as fontes disponíveis."),
        "{a:#}"
    );
}

#[test]
fn absent_topics_abstain_in_the_askers_language() {
    let Some(s) = servers() else { return };
    for (q, opening) in [
        ("¿Cuál es la receta del pisco sour?", "No encontré"),
        ("Qual é a receita do pão de queijo?", "Não encontrei"),
    ] {
        let a = ask(&s.extractive, q);
        assert_eq!(a["abstained"], true, "{q}: {a:#}");
        assert!(
            a["answer"].as_str().unwrap_or("").starts_with(opening),
            "{a:#}"
        );
        assert!(
            !a["citations"].as_array().expect("citations").is_empty(),
            "closest passages listed"
        );
    }
}

#[test]
fn model_answer_streams_checked_tokens_then_citations_then_done() {
    let Some(s) = servers() else { return };
    let _turn = MODEL_TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (status, ct, body) = post(
        &format!("{}/v1/ask", s.model),
        &json!({"question": "¿Desde qué edad se puede votar en Chile?", "register": "tu"}),
        &[("Accept", "text/event-stream")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let ev = events(&body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    let first_other = names
        .iter()
        .position(|n| *n != "token")
        .expect("more than tokens");
    assert!(first_other > 0, "tokens come first: {names:?}");
    assert_eq!(&names[first_other..], ["citations", "done"], "{names:?}");
    let streamed: String = ev[..first_other]
        .iter()
        .map(|(_, d)| json_of(d)["text"].as_str().unwrap_or("").to_string())
        .collect();
    let cited = json_of(&ev[first_other].1);
    // What was streamed is exactly the checked answer: nothing unchecked reached the client.
    assert_eq!(
        streamed,
        cited["answer"].as_str().unwrap_or(""),
        "{cited:#}"
    );
    let labels: Vec<&str> = cited["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .filter_map(|c| c["label"].as_str())
        .collect();
    assert!(
        labels.iter().any(|l| l.ends_with("Artículo 13")),
        "{cited:#}"
    );
    let done = json_of(&ev[first_other + 1].1);
    assert!(
        done["model"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("qwen"),
        "{done}"
    );
    assert!(
        done["timings"]["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "{done}"
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let Some(s) = servers() else { return };
    let _turn = MODEL_TURN.lock().unwrap_or_else(|p| p.into_inner());
    let url = format!("{}/v1/ask", s.model);
    let busy = std::thread::spawn({
        let url = url.clone();
        move || {
            post(
                &url,
                &json!({"question": "¿Quiénes son ciudadanos en Chile?"}),
                &[],
            )
        }
    });
    // The first answer takes seconds on the CPU; give it time to take the only slot.
    let mut refused = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let mut r = agent()
            .post(&url)
            .header("Accept-Language", "en")
            .send_json(json!({"question": "¿Qué es la nacionalidad chilena?"}))
            .expect("request");
        if r.status().as_u16() == 503 {
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            refused = Some((retry, read(&mut r)));
            break;
        }
    }
    let (retry, (_, ct, body)) = refused.expect("a second answer while the first runs is refused");
    assert_eq!(retry.as_deref(), Some("7"));
    assert_eq!(ct, "application/problem+json");
    assert!(
        json_of(&body)["title"]
            .as_str()
            .unwrap_or("")
            .contains("busy"),
        "{body}"
    );
    assert_eq!(busy.join().expect("first answer").0, 200);
}

#[test]
fn shutdown_finishes_the_answers_in_flight() {
    let Some(s) = servers() else { return };
    let _turn = MODEL_TURN.lock().unwrap_or_else(|p| p.into_inner());
    let generator = qwen();
    let config = Config {
        ask: short_answers(),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (url, served) = s.runtime.block_on(async {
        let state = Arc::new(
            AppState::new(s.engine.clone(), Writer::Model(Arc::new(generator)), config)
                .await
                .expect("state"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let served = tokio::spawn(cabildo_server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        (url, served)
    });
    let in_flight = std::thread::spawn({
        let url = url.clone();
        move || {
            post(
                &format!("{url}/v1/ask"),
                &json!({"question": "¿Desde qué edad se puede votar en Chile?"}),
                &[("Accept", "text/event-stream")],
            )
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.send(()).expect("server running");
    let (status, _, body) = in_flight.join().expect("the answer in flight");
    assert_eq!(status, 200);
    let names: Vec<String> = events(&body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    s.runtime
        .block_on(served)
        .expect("server task")
        .expect("server stopped cleanly");
    assert!(
        agent().get(format!("{url}/healthz")).call().is_err(),
        "no new connections after shutdown"
    );
}

#[test]
fn a_request_over_the_time_limit_gets_504_problem_json() {
    let Some(s) = servers() else { return };
    let _turn = MODEL_TURN.lock().unwrap_or_else(|p| p.into_inner());
    let config = Config {
        request_timeout: Duration::from_secs(1),
        ask: short_answers(),
        ..Config::default()
    };
    let url = s.runtime.block_on(start(
        s.engine.clone(),
        Writer::Model(Arc::new(qwen())),
        config,
    ));
    let started = std::time::Instant::now();
    let (status, ct, body) = post(
        &format!("{url}/v1/ask"),
        &json!({"question": "¿Desde qué edad se puede votar en Chile?"}),
        &[("Accept-Language", "pt")],
    );
    assert_eq!(
        (status, ct.as_str()),
        (504, "application/problem+json"),
        "{body}"
    );
    assert_eq!(json_of(&body)["title"], "A requisição demorou demais");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_client_that_leaves_stops_its_generation() {
    let Some(s) = servers() else { return };
    let _turn = MODEL_TURN.lock().unwrap_or_else(|p| p.into_inner());
    let cancelled = || {
        let (_, _, m) = get(&format!("{}/metrics", s.model));
        m.lines()
            .find(|l| l.starts_with("cabildo_generation_cancelled_total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = cancelled();
    // Leave one second in, during the prompt's prefill.
    let impatient: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(1)))
        .build()
        .into();
    let _ = impatient
        .post(format!("{}/v1/ask", s.model))
        .header("Accept", "text/event-stream")
        .send_json(json!({"question": "¿Quiénes son ciudadanos chilenos?"}))
        .and_then(|mut r| r.body_mut().read_to_string());
    for _ in 0..240 {
        if cancelled() > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the generation of a client that left was not stopped");
}

#[test]
fn openai_style_client_gets_an_answer_with_citations() {
    let Some(s) = servers() else { return };
    let url = format!("{}/v1/chat/completions", s.extractive);
    let request = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "¿Desde qué edad se puede votar en Chile?"}
        ],
        "temperature": 0.2, "n": 1, "user": "portal-session-1"
    });
    // An OpenAI SDK sends its api_key as a bearer token: here a Cabildo API key.
    let bearer = format!("Bearer {}", s.admin);
    let (status, _, body) = post(&url, &request, &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    let c = json_of(&body);
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["role"], "assistant");
    assert!(c["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .contains("Artículo 13"));
    assert!(c["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .any(|c| c["label"].as_str().unwrap_or("").ends_with("Artículo 13")));

    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    let (status, ct, body) = post(&url, &streaming, &[]);
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/event-stream"));
    let chunks: Vec<String> = events(&body).into_iter().map(|(_, d)| d).collect();
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
    let parsed: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|d| json_of(d))
        .collect();
    assert!(parsed
        .iter()
        .all(|p| p["object"] == "chat.completion.chunk"));
    let text: String = parsed
        .iter()
        .filter_map(|p| p["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.contains("Artículo 13"), "{text}");
    let last = parsed.last().expect("a final chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(!last["citations"]
        .as_array()
        .expect("citations in the final chunk")
        .is_empty());
}

#[test]
fn openai_generator_reads_an_openai_compatible_stream() {
    let Some(s) = servers() else { return };
    // Cabildo's own endpoint is an OpenAI-compatible server: the remote generator must
    // stream from it exactly as from vLLM or llama.cpp.
    let g = OpenAiGenerator::new(
        &format!("{}/v1", s.extractive),
        Some(s.admin.clone()),
        "cabildo",
        8192,
        Duration::from_secs(60),
    );
    let request = cabildo_core::GenerationRequest::greedy(
        vec![cabildo_core::ChatMessage::new(
            cabildo_core::Role::User,
            "¿Desde qué edad se puede votar en Chile?",
        )],
        64,
    );
    let (out, pieces) = common::streamed(&g, &request);
    let out = out.expect("generation");
    assert!(!pieces.is_empty());
    assert_eq!(pieces.concat(), out.text);
    assert!(out.text.contains("Artículo 13"), "{}", out.text);

    let bad = OpenAiGenerator::new(
        "http://127.0.0.1:9/v1",
        None,
        "m",
        8192,
        Duration::from_secs(5),
    );
    let err = bad
        .generate(&request, &mut |_| true)
        .expect_err("nothing listens there");
    assert!(
        matches!(err, cabildo_core::ModelError::Unavailable { .. }),
        "{err}"
    );

    // A flapping server: it accepts connections and drops them. Each request tries three
    // times (two retries); after three failed requests the breaker opens and the next is
    // refused without a connection.
    let flapping = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = flapping.local_addr().expect("addr");
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = attempts.clone();
    std::thread::spawn(move || {
        for stream in flapping.incoming() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let g = OpenAiGenerator::new(
        &format!("http://{addr}/v1"),
        None,
        "m",
        8192,
        Duration::from_secs(5),
    );
    for _ in 0..cabildo_models::remote::TRIP_AFTER {
        let err = g.generate(&request, &mut |_| true).expect_err("dropped");
        assert!(
            matches!(err, cabildo_core::ModelError::Unavailable { .. }),
            "{err}"
        );
    }
    let tried = attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        tried,
        3 * cabildo_models::remote::TRIP_AFTER as usize,
        "three tries per request"
    );
    let err = g
        .generate(&request, &mut |_| true)
        .expect_err("breaker open");
    match err {
        cabildo_core::ModelError::Unavailable { retry_after_s, .. } => {
            assert!((1..=31).contains(&retry_after_s), "{retry_after_s}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        attempts.load(std::sync::atomic::Ordering::SeqCst),
        tried,
        "no connection while open"
    );

    // Behind the API, an unreachable model server still gets the citizen a cited answer:
    // the quotes (checks.fallback), not an error, and without waiting on the server.
    let unreachable = OpenAiGenerator::new(
        "http://127.0.0.1:9/v1",
        None,
        "m",
        8192,
        Duration::from_secs(5),
    );
    let base = s.runtime.block_on(start(
        s.engine.clone(),
        Writer::Model(Arc::new(unreachable)),
        Config::default(),
    ));
    let (status, _, body) = post(
        &format!("{base}/v1/ask"),
        &json!({"question": "¿Desde qué edad se puede votar en Chile?"}),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["checks"]["fallback"], true, "{body}");
    assert!(
        answer["answer"]
            .as_str()
            .is_some_and(|a| a.contains("Artículo 13")),
        "{body}"
    );
}

#[test]
fn bad_requests_get_problem_json_in_the_callers_language() {
    let Some(s) = servers() else { return };
    let ask = format!("{}/v1/ask", s.extractive);
    let raw = |body: &str, headers: &[(&str, &str)]| {
        let mut req = agent()
            .post(&ask)
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.send(body).expect("request");
        read(&mut r)
    };
    let (status, ct, body) = raw("{\"question\": ", &[]);
    assert_eq!(
        (status, ct.as_str()),
        (400, "application/problem+json"),
        "{body}"
    );
    let p = json_of(&body);
    assert_eq!(p["type"], "/problems/bad-request");
    assert_eq!(p["title"], "La solicitud no es válida");
    assert_eq!(p["status"], 400);

    let (_, _, body) = raw("{\"question\": ", &[("Accept-Language", "pt-BR,pt;q=0.9")]);
    assert_eq!(json_of(&body)["title"], "A requisição não é válida");

    let big = json!({"question": "x".repeat(100 * 1024)}).to_string();
    let (status, ct, _) = raw(&big, &[]);
    assert_eq!((status, ct.as_str()), (413, "application/problem+json"));

    let (status, _, body) = raw(
        r#"{"question": "¿votar?", "filters": {"colour": "red"}}"#,
        &[],
    );
    assert_eq!(status, 400);
    assert!(
        json_of(&body)["detail"]
            .as_str()
            .unwrap_or("")
            .contains("colour"),
        "{body}"
    );

    let (status, _, body) = raw(
        r#"{"question": "¿votar?", "filters": {"kind": ["novela"]}}"#,
        &[],
    );
    assert_eq!(status, 400);
    assert!(body.contains("novela"), "{body}");

    // Clearance comes from identity, never from the request.
    let (status, _, _) = raw(
        r#"{"question": "¿votar?", "filters": {"max_access": "restricted"}}"#,
        &[],
    );
    assert_eq!(status, 400);

    let (status, _, _) = raw(r#"{"question": "   "}"#, &[]);
    assert_eq!(status, 400);

    let (status, ct, _) = get(&format!("{}/v1/nothing-here", s.extractive));
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"));
    let (status, ct, _) = get(&ask);
    assert_eq!((status, ct.as_str()), (405, "application/problem+json"));

    // A problem names its request, as the X-Request-Id header does, so that a citizen's
    // error report can be matched with the logs; a caller's own id is kept.
    let mut r = common::agent()
        .get(&format!("{}/v1/nothing-here", s.extractive))
        .header("x-request-id", "portal-7f3a")
        .call()
        .expect("request");
    let header = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (_, _, body) = common::read(&mut r);
    assert_eq!(header.as_deref(), Some("portal-7f3a"));
    assert_eq!(json_of(&body)["request_id"], "portal-7f3a", "{body}");
    let (_, _, body) = raw(r#"{"question": "   "}"#, &[]);
    let id = json_of(&body)["request_id"].as_str().map(str::len);
    assert_eq!(id, Some(36), "a generated request id (a UUID) in {body}");
}

#[test]
fn search_returns_passages_with_labels_urls_and_snippets() {
    let Some(s) = servers() else { return };
    let (status, _, body) = post(
        &format!("{}/v1/search", s.extractive),
        &json!({"query": "derecho a sufragio", "k": 3, "filters": {"jurisdiction": ["CL"]}}),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let r = json_of(&body);
    assert_eq!(r["method"], "hybrid");
    let hits = r["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 3);
    for h in hits {
        assert!(h["label"]
            .as_str()
            .unwrap_or("")
            .starts_with("Constitución Política"));
        assert!(h["url"].as_str().is_some());
        assert!(!h["snippet"].as_str().unwrap_or("").is_empty());
    }
    let (status, _, body) = post(
        &format!("{}/v1/search", s.extractive),
        &json!({"query": "datos", "filters": {"jurisdiction": ["BR"]}, "k": 5}),
        &[],
    );
    assert_eq!(status, 200);
    assert!(
        json_of(&body)["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["norm_id"].as_str().unwrap_or("").contains(":br:")),
        "{body}"
    );
}

#[test]
fn health_readiness_metrics_and_openapi() {
    let Some(s) = servers() else { return };
    assert_eq!(get(&format!("{}/healthz", s.extractive)).0, 200);
    let (status, _, body) = get(&format!("{}/readyz", s.extractive));
    assert_eq!(status, 200);
    let r = json_of(&body);
    assert_eq!(r["status"], "ready");
    assert!(
        r.get("passages").is_none(),
        "readyz tells outsiders how much text it holds: {r}"
    );
    assert_eq!(r["embedder"], "e5-small");
    post(
        &format!("{}/v1/search", s.extractive),
        &json!({"query": "nacionalidad"}),
        &[],
    );
    let (status, ct, metrics) = get(&format!("{}/metrics", s.extractive));
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"));
    assert!(
        metrics.contains(
            r#"cabildo_http_requests_total{route="/v1/search",method="POST",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("cabildo_retrieval_duration_seconds_count"));
    assert!(metrics.contains("cabildo_generation_queue_depth"));
    let (status, _, doc) = get(&format!("{}/openapi.json", s.extractive));
    assert_eq!(status, 200);
    let doc = json_of(&doc);
    for path in [
        "/v1/search",
        "/v1/ask",
        "/v1/chat/completions",
        "/v1/documents",
        "/v1/norms/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let (status, ct, page) = get(&format!("{}/docs", s.extractive));
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/html") && page.contains("/openapi.json"));
}

#[test]
fn documents_upload_becomes_a_job_then_a_norm_that_can_be_deleted() {
    let Some(s) = servers() else { return };
    let upload_as = |token: Option<&str>, access: &str| {
        let boundary = "cabildo-test-boundary";
        let file = "# Reglamento de prueba del Cabildo\n\nArtículo 1.- Las bibliotecas municipales abrirán los domingos de diez a catorce horas.\n";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jurisdiction\"\r\n\r\nCL\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"access\"\r\n\r\n{access}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../reglamento-bibliotecas.md\"\r\nContent-Type: text/markdown\r\n\r\n{file}\r\n\
             --{boundary}--\r\n"
        );
        let mut req = agent()
            .post(format!("{}/v1/documents", s.extractive))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            );
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.send(body.as_bytes()).expect("request");
        read(&mut r)
    };
    let upload = |token: Option<&str>| upload_as(token, "public");
    // An internal document with no owning agency would be every agency's: refused.
    let (status, _, body) = upload_as(Some(&s.admin), "internal");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("tenant"), "{body}");
    assert_eq!(upload(None).0, 401);
    assert_eq!(upload(Some("wrong")).0, 401);
    let (status, _, body) = upload(Some(&s.admin));
    assert_eq!(status, 202, "{body}");
    let accepted = json_of(&body);
    assert_eq!(
        accepted["files"],
        json!(["reglamento-bibliotecas.md"]),
        "path parts stripped"
    );
    let job_url = format!("{}/v1/jobs/{}", s.extractive, accepted["job_id"]);
    let mut job = Value::Null;
    for _ in 0..240 {
        let mut r = agent()
            .get(&job_url)
            .header("Authorization", format!("Bearer {}", s.admin))
            .call()
            .expect("request");
        job = json_of(&read(&mut r).2);
        if job["status"] != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(job["status"], "done", "{job:#}");
    assert_eq!(job["norms"], 1);

    // The list comes a page at a time.
    let first = json_of(&get(&format!("{}/v1/norms?limit=1", s.extractive)).2);
    assert_eq!(first["norms"].as_array().map(Vec::len), Some(1), "{first}");
    assert!(first["total"].as_u64().is_some_and(|t| t >= 2), "{first}");
    assert_eq!(first["next_offset"], 1);
    let second = json_of(&get(&format!("{}/v1/norms?limit=1&offset=1", s.extractive)).2);
    assert_ne!(second["norms"][0]["id"], first["norms"][0]["id"]);
    assert_eq!(get(&format!("{}/v1/norms?limit=0", s.extractive)).0, 400);
    assert_eq!(get(&format!("{}/v1/norms?limit=1001", s.extractive)).0, 400);
    let all = json_of(&get(&format!("{}/v1/norms?limit=1000", s.extractive)).2);
    assert!(all["next_offset"].is_null(), "{all}");

    let (_, _, list) = get(&format!(
        "{}/v1/norms?jurisdiction=CL&limit=1000",
        s.extractive
    ));
    let list = json_of(&list);
    let norm = list["norms"]
        .as_array()
        .expect("norms")
        .iter()
        .find(|n| {
            n["id"]
                .as_str()
                .unwrap_or("")
                .ends_with("reglamento-bibliotecas")
        })
        .unwrap_or_else(|| panic!("uploaded norm listed: {list:#}"))
        .clone();
    let id = norm["id"].as_str().expect("id").to_string();
    assert!(
        list.to_string().find("source_path").is_none(),
        "no server paths leak"
    );
    let norm_url = format!("{}/v1/norms/{}", s.extractive, id);
    let (status, _, detail) = get(&norm_url);
    assert_eq!(status, 200, "{detail}");
    assert!(json_of(&detail)["passages"][0]["text"]
        .as_str()
        .unwrap_or("")
        .contains("domingos"));

    let delete = |token: &str| {
        let r = agent()
            .delete(&norm_url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("request");
        r.status().as_u16()
    };
    assert_eq!(delete("wrong"), 401);
    assert_eq!(delete(&s.admin), 204);
    assert_eq!(get(&norm_url).0, 404);
    assert_eq!(delete(&s.admin), 404);
    let (_, _, body) = post(
        &format!("{}/v1/search", s.extractive),
        &json!({"query": "bibliotecas municipales domingos", "method": "lexical"}),
        &[],
    );
    assert!(!body.contains(&id), "deleted norm still found: {body}");
}

#[test]
fn checked_in_openapi_document_is_current() {
    let path = root().join("docs/openapi.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = cabildo_server::openapi::json();
    if checked_in.trim() != generated.trim() {
        panic!(
            "{} is stale: regenerate it with `cabildo openapi > docs/openapi.json`",
            path.display()
        );
    }
}
