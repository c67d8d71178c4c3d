//! `cabildo bench soak`: mixed traffic on a running server at a fixed arrival rate for a
//! steady phase, then at a multiple of it for a burst; per route, statuses and latency
//! percentiles; over time, the server's RSS and open file descriptors (Linux `/proc`).
//!
//! Arrivals are open-loop: requests are due on a fixed schedule whether or not earlier ones
//! have answered, and latency counts from when a request was due, so a server that slows
//! down is not hidden by a client that waits for it (coordinated omission).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cabildo_engine::eval::percentile;
use serde_json::{json, Value};

use crate::bench_http::questions;
use crate::commands::rss_kb;

/// Options of `cabildo bench soak`.
#[derive(clap::Args)]
pub struct SoakBench {
    /// The server, e.g. http://127.0.0.1:8080.
    url: String,
    /// Set folder whose queries.jsonl supplies the questions.
    set: PathBuf,
    /// Requests per second in the steady phase.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Length of the steady phase, in seconds.
    #[arg(long, default_value_t = 600)]
    steady_s: u64,
    /// Length of the burst that follows, in seconds.
    #[arg(long, default_value_t = 120)]
    burst_s: u64,
    /// The burst's rate as a multiple of --rate.
    #[arg(long, default_value_t = 2.0)]
    burst_factor: f64,
    /// An admin API key: uploads are part of the mix only with it.
    #[arg(long, env = "CABILDO_SOAK_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The server's process id: its RSS and open descriptors are sampled (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds between samples of the server's RSS and descriptors.
    #[arg(long, default_value_t = 10)]
    sample_s: u64,
    /// A request without an answer after this many seconds counts as hung.
    #[arg(long, default_value_t = 60)]
    request_timeout_s: u64,
    /// Client threads (requests in flight at most; more wait in the client, and count).
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Send only this kind of request instead of the mix (to find what a trend comes from).
    #[arg(long, value_enum)]
    only: Option<Route>,
    /// Write the full report (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What a request in the mix is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Route {
    SearchLexical,
    SearchDense,
    SearchHybrid,
    Ask,
    ChatStream,
    NormList,
    Upload,
    BadJson,
    BadField,
    TooLarge,
    BadKey,
    Unrouted,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::SearchLexical => "POST /v1/search lexical",
            Route::SearchDense => "POST /v1/search dense",
            Route::SearchHybrid => "POST /v1/search hybrid",
            Route::Ask => "POST /v1/ask (extractive)",
            Route::ChatStream => "POST /v1/chat/completions stream",
            Route::NormList => "GET /v1/norms",
            Route::Upload => "POST /v1/documents",
            Route::BadJson => "bad: malformed JSON",
            Route::BadField => "bad: unknown field",
            Route::TooLarge => "bad: body over the limit",
            Route::BadKey => "bad: wrong API key",
            Route::Unrouted => "bad: no such route",
        }
    }

    /// The mix, in parts of 100.
    const MIX: [(Route, u32); 12] = [
        (Route::SearchLexical, 18),
        (Route::SearchDense, 14),
        (Route::SearchHybrid, 20),
        (Route::Ask, 14),
        (Route::ChatStream, 10),
        (Route::NormList, 6),
        (Route::Upload, 3),
        (Route::BadJson, 3),
        (Route::BadField, 3),
        (Route::TooLarge, 3),
        (Route::BadKey, 3),
        (Route::Unrouted, 3),
    ];

    /// The `n`th request of the schedule (a fixed, repeatable order).
    fn nth(n: u64, uploads: bool) -> Route {
        // A multiplicative hash spreads consecutive requests over the mix.
        let mut slot = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
        for (route, parts) in Route::MIX {
            if slot < u64::from(parts) {
                return if route == Route::Upload && !uploads {
                    Route::SearchHybrid
                } else {
                    route
                };
            }
            slot -= u64::from(parts);
        }
        Route::SearchHybrid
    }
}

/// One request's outcome: an HTTP status, or the client's error ("timeout", "connection").
struct Outcome {
    route: Route,
    phase: usize,
    answer: String,
    ms: f64,
}

/// One sample of the server process.
#[derive(serde::Serialize)]
struct ProcessSample {
    at_s: f64,
    rss_mb: Option<f64>,
    open_fds: Option<usize>,
    due: usize,
    answered: usize,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    questions: Vec<String>,
    admin_key: Option<String>,
    model: String,
}

impl Client {
    fn send(&self, route: Route, n: u64) -> String {
        let q = &self.questions[(n as usize) % self.questions.len()];
        let url = |path: &str| format!("{}{path}", self.base);
        let search = |method: &str| {
            self.agent
                .post(url("/v1/search"))
                .send_json(json!({ "query": q, "method": method, "k": 10 }))
        };
        let result = match route {
            Route::SearchLexical => search("lexical"),
            Route::SearchDense => search("dense"),
            Route::SearchHybrid => search("hybrid"),
            Route::Ask => self
                .agent
                .post(url("/v1/ask"))
                .send_json(json!({ "question": q })),
            Route::ChatStream => self
                .agent
                .post(url("/v1/chat/completions"))
                .send_json(json!({ "model": self.model, "stream": true,
                        "messages": [{ "role": "user", "content": q }] })),
            Route::NormList => self.agent.get(url("/v1/norms?limit=20")).call(),
            Route::Upload => {
                // Twenty names in turn, each with new text: a re-upload replaces its norm,
                // so the index churns without growing.
                let boundary = "cabildo-soak";
                let body = format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"soak-{}.md\"\r\n\r\n# Aviso de prueba {}\n\nArtículo 1.- Aviso de carga número {n}.\n\nArtículo 2.- {q}\r\n--{boundary}--\r\n",
                    n % 20,
                    n % 20
                );
                self.agent
                    .post(url("/v1/documents"))
                    .header(
                        "Authorization",
                        format!("Bearer {}", self.admin_key.as_deref().unwrap_or("")),
                    )
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .send(body)
            }
            Route::BadJson => self
                .agent
                .post(url("/v1/search"))
                .header("Content-Type", "application/json")
                .send("{\"query\": \"voto\", "),
            Route::BadField => self
                .agent
                .post(url("/v1/ask"))
                .send_json(json!({ "question": q, "colour": "red" })),
            Route::TooLarge => self
                .agent
                .post(url("/v1/search"))
                .send_json(json!({ "query": "x".repeat(200_000) })),
            Route::BadKey => self
                .agent
                .post(url("/v1/search"))
                .header("Authorization", "Bearer cab_not-a-key")
                .send_json(json!({ "query": q })),
            Route::Unrouted => self.agent.get(url("/v1/nothing-here")).call(),
        };
        match result {
            Ok(mut r) => {
                // The whole body (a stream to its end) is part of the request.
                let mut sink = Vec::new();
                let read = r.body_mut().as_reader().read_to_end(&mut sink);
                match read {
                    Ok(_) => r.status().as_u16().to_string(),
                    Err(e) => format!("{} then body error: {e}", r.status().as_u16()),
                }
            }
            Err(ureq::Error::Timeout(_)) => "timeout".to_string(),
            Err(ureq::Error::Io(e)) => format!("io: {}", e.kind()),
            Err(e) => format!("client error: {e}"),
        }
    }
}

/// The server's resident memory and open descriptors.
fn sample_process(pid: u32) -> (Option<f64>, Option<usize>) {
    let rss = rss_kb(&pid.to_string()).map(|kb| kb as f64 / 1024.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count());
    (rss, fds)
}

/// The model id chat completions should name.
fn model_id(agent: &ureq::Agent, base: &str) -> Result<String> {
    let mut r = agent
        .get(format!("{base}/v1/models"))
        .call()
        .with_context(|| format!("reaching {base}"))?;
    if !r.status().is_success() {
        bail!("{base}/v1/models answered {}", r.status());
    }
    let models: Value = r.body_mut().read_json()?;
    models["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .context("the server lists no model")
}

/// Runs the soak.
pub fn bench_soak(args: &SoakBench) -> Result<()> {
    if !(args.rate > 0.0 && args.burst_factor > 0.0) || args.threads == 0 {
        bail!("--rate, --burst-factor and --threads must be positive");
    }
    let base = args.url.trim_end_matches('/').to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(args.request_timeout_s)))
        .max_idle_connections_per_host(args.threads)
        .build()
        .into();
    let model = model_id(&agent, &base)?;
    let client = Arc::new(Client {
        agent,
        base,
        questions: questions(&args.set)?,
        admin_key: args.admin_key.clone(),
        model,
    });
    let phases = [
        ("steady", args.rate, args.steady_s),
        ("burst", args.rate * args.burst_factor, args.burst_s),
    ];
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let due = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(u64, Route, usize, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (rx, client, outcomes, answered) = (
                rx.clone(),
                client.clone(),
                outcomes.clone(),
                answered.clone(),
            );
            std::thread::spawn(move || loop {
                let next = rx.lock().map(|rx| rx.recv());
                let Ok(Ok((n, route, phase, due_at))) = next else {
                    break;
                };
                let answer = client.send(route, n);
                let ms = due_at.elapsed().as_secs_f64() * 1000.0;
                answered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut o) = outcomes.lock() {
                    o.push(Outcome {
                        route,
                        phase,
                        answer,
                        ms,
                    });
                }
            })
        })
        .collect();

    let started = Instant::now();
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pid, every) = (args.server_pid, Duration::from_secs(args.sample_s.max(1)));
        let (due, answered, stop) = (due.clone(), answered.clone(), stop_sampling.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    let (rss_mb, open_fds) = pid.map_or((None, None), sample_process);
                    samples.push(ProcessSample {
                        at_s: started.elapsed().as_secs_f64(),
                        rss_mb,
                        open_fds,
                        due: due.load(Ordering::Relaxed),
                        answered: answered.load(Ordering::Relaxed),
                    });
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };

    let uploads = args.admin_key.is_some();
    let mut n = 0u64;
    let mut phase_start = started;
    for (phase, &(name, rate, seconds)) in phases.iter().enumerate() {
        let count = (rate * seconds as f64).round() as u64;
        eprintln!("{name}: {count} requests at {rate:.1}/s over {seconds} s");
        let gap = Duration::from_secs_f64(1.0 / rate);
        for i in 0..count {
            let due_at = phase_start + gap.mul_f64(i as f64);
            if let Some(wait) = due_at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            due.fetch_add(1, Ordering::Relaxed);
            let route = args.only.unwrap_or_else(|| Route::nth(n, uploads));
            if tx.send((n, route, phase, due_at)).is_err() {
                bail!("the client threads stopped");
            }
            n += 1;
        }
        phase_start += Duration::from_secs(seconds);
    }
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
    stop_sampling.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let wall = started.elapsed().as_secs_f64();
    let outcomes = std::mem::take(&mut *outcomes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    report(args, &phases, &outcomes, &samples, wall)
}

fn report(
    args: &SoakBench,
    phases: &[(&str, f64, u64)],
    outcomes: &[Outcome],
    samples: &[ProcessSample],
    wall: f64,
) -> Result<()> {
    let mut tables = Vec::new();
    for (phase, &(name, rate, seconds)) in phases.iter().enumerate() {
        if seconds == 0 {
            continue;
        }
        let mut routes: BTreeMap<Route, (BTreeMap<&str, usize>, Vec<f64>)> = BTreeMap::new();
        for o in outcomes.iter().filter(|o| o.phase == phase) {
            let entry = routes.entry(o.route).or_default();
            *entry.0.entry(o.answer.as_str()).or_default() += 1;
            entry.1.push(o.ms);
        }
        println!("\n{name}: {rate:.1} requests/s for {seconds} s\n");
        println!("| route | requests | answers | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        let mut rows = Vec::new();
        for (route, (answers, mut ms)) in routes {
            ms.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
            let shown: Vec<String> = answers.iter().map(|(a, c)| format!("{a}: {c}")).collect();
            println!(
                "| {} | {} | {} | {p50:.1} | {p99:.1} |",
                route.label(),
                ms.len(),
                shown.join(", ")
            );
            rows.push(json!({ "route": route.label(), "requests": ms.len(),
                              "answers": answers, "p50_ms": p50, "p99_ms": p99 }));
        }
        tables.push(json!({ "phase": name, "rate": rate, "seconds": seconds, "routes": rows }));
    }
    let count = |kind: fn(&str) -> bool| outcomes.iter().filter(|o| kind(&o.answer)).count();
    let server_errors = count(|a| a.starts_with('5'));
    let no_answer = count(|a| !a.starts_with(|c: char| c.is_ascii_digit()));
    println!(
        "\n{} requests in {wall:.0} s; 5xx: {server_errors}; no HTTP answer: {no_answer}",
        outcomes.len()
    );
    if samples.iter().any(|s| s.rss_mb.is_some()) {
        println!("\n| at s | RSS MB | open fds | due | answered |");
        println!("|---|---|---|---|---|");
        for s in samples {
            println!(
                "| {:.0} | {} | {} | {} | {} |",
                s.at_s,
                s.rss_mb.map_or("-".into(), |v| format!("{v:.0}")),
                s.open_fds.map_or("-".into(), |v| v.to_string()),
                s.due,
                s.answered
            );
        }
    }
    if let Some(out) = &args.out {
        let full = json!({ "phases": tables, "process": samples, "wall_s": wall,
                           "server_errors": server_errors, "no_answer": no_answer });
        std::fs::write(out, serde_json::to_string_pretty(&full)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
