//! `cabildo bench http`: load on a running server. Search: throughput and latency
//! percentiles under 1..n concurrent clients. Ask: time to the first streamed text and the
//! generation rate, read from the server-sent events. Questions come from an eval set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cabildo_engine::eval::percentile;
use serde_json::{json, Value};

use crate::commands::peak_rss_kb;

/// Options of `cabildo bench http`.
#[derive(clap::Args)]
pub struct HttpBench {
    /// The server, e.g. http://127.0.0.1:8080.
    url: String,
    /// Set folder whose queries.jsonl supplies the questions.
    set: PathBuf,
    /// search or ask.
    #[arg(long, default_value = "search")]
    endpoint: String,
    /// Concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    clients: Vec<usize>,
    /// Search method (lexical, dense, hybrid); the server's default when absent.
    #[arg(long)]
    method: Option<String>,
    /// Requests per run (spread over the clients).
    #[arg(long, default_value_t = 400)]
    requests: usize,
    /// The server's process id, to report its peak RSS (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// One request's outcome.
struct Sample {
    ok: bool,
    total_ms: f64,
    first_text_ms: Option<f64>,
    /// The model's own time to its first token (prefill), from the answer's timings.
    first_token_ms: Option<f64>,
    /// Generated tokens per second after the first (decode).
    tokens_per_s: Option<f64>,
    /// Whether the generated sentences failed the check and quotes were returned.
    fallback: bool,
}

/// The questions of a set (its queries.jsonl).
pub(crate) fn questions(set: &Path) -> Result<Vec<String>> {
    let path = set.join("queries.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let qs: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(String::from))
        .collect();
    if qs.is_empty() {
        bail!("{} has no questions", path.display());
    }
    Ok(qs)
}

fn request(
    agent: &ureq::Agent,
    base: &str,
    endpoint: &str,
    method: Option<&str>,
    question: &str,
) -> Sample {
    let started = Instant::now();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let failed = |started| Sample {
        ok: false,
        total_ms: ms(started),
        first_text_ms: None,
        first_token_ms: None,
        tokens_per_s: None,
        fallback: false,
    };
    if endpoint == "search" {
        let Ok(mut r) = agent
            .post(format!("{base}/v1/search"))
            .send_json(match method {
                Some(m) => json!({ "query": question, "method": m }),
                None => json!({ "query": question }),
            })
        else {
            return failed(started);
        };
        let ok = r.status().is_success() && r.body_mut().read_to_string().is_ok();
        return Sample {
            ok,
            total_ms: ms(started),
            first_text_ms: None,
            first_token_ms: None,
            tokens_per_s: None,
            fallback: false,
        };
    }
    let Ok(mut r) = agent
        .post(format!("{base}/v1/ask"))
        .header("Accept", "text/event-stream")
        .send_json(json!({ "question": question }))
    else {
        return failed(started);
    };
    if !r.status().is_success() {
        return failed(started);
    }
    let mut first = None;
    let mut rate = None;
    let mut first_token = None;
    let mut fallback = false;
    let mut event = String::new();
    for line in BufReader::new(r.body_mut().as_reader()).lines() {
        let Ok(line) = line else {
            return failed(started);
        };
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            if event == "token" && first.is_none() {
                first = Some(ms(started));
            }
            if event == "citations" {
                let c: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                fallback = c["checks"]["fallback"].as_bool().unwrap_or(false);
            }
            if event == "done" {
                let d: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                let t = &d["timings"];
                let tokens = t["completion_tokens"].as_f64().unwrap_or(0.0);
                let decode = t["decode_ms"].as_f64().unwrap_or(0.0) / 1000.0;
                rate = (tokens > 1.0 && decode > 0.0).then(|| (tokens - 1.0) / decode);
                first_token = t["prompt_ms"]
                    .as_f64()
                    .filter(|&ms| ms > 0.0)
                    .map(|ms| ms + t["retrieval_ms"].as_f64().unwrap_or(0.0));
            }
        }
    }
    Sample {
        ok: true,
        total_ms: ms(started),
        first_text_ms: first,
        first_token_ms: first_token,
        tokens_per_s: rate,
        fallback,
    }
}

/// Runs the benchmark.
pub fn bench_http(args: &HttpBench) -> Result<()> {
    if !matches!(args.endpoint.as_str(), "search" | "ask") {
        bail!("--endpoint must be search or ask");
    }
    if args.clients.contains(&0) || args.requests == 0 {
        bail!("--clients and --requests must be positive");
    }
    let qs = questions(&args.set)?;
    let base = args.url.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .max_idle_connections_per_host(128)
        .build()
        .into();
    for &n in &args.clients {
        let per_client = args.requests.div_ceil(n);
        let started = Instant::now();
        let samples: Vec<Sample> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|c| {
                    let (agent, qs) = (&agent, &qs);
                    let endpoint = args.endpoint.as_str();
                    let method = args.method.as_deref();
                    scope.spawn(move || {
                        (0..per_client)
                            .map(|i| {
                                request(agent, base, endpoint, method, &qs[(c * 31 + i) % qs.len()])
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let wall = started.elapsed().as_secs_f64();
        let mut ok: Vec<f64> = samples
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.total_ms)
            .collect();
        ok.sort_by(f64::total_cmp);
        let mut first: Vec<f64> = samples.iter().filter_map(|s| s.first_text_ms).collect();
        first.sort_by(f64::total_cmp);
        let rates: Vec<f64> = samples.iter().filter_map(|s| s.tokens_per_s).collect();
        let mut first_token: Vec<f64> = samples.iter().filter_map(|s| s.first_token_ms).collect();
        first_token.sort_by(f64::total_cmp);
        let report = json!({
            "endpoint": args.endpoint,
            "method": args.method,
            "clients": n,
            "requests": samples.len(),
            "errors": samples.len() - ok.len(),
            "rps": ok.len() as f64 / wall,
            "p50_ms": percentile(&ok, 0.5),
            "p99_ms": percentile(&ok, 0.99),
            "first_text_p50_ms": (!first.is_empty()).then(|| percentile(&first, 0.5)),
            "first_token_p50_ms": (!first_token.is_empty()).then(|| percentile(&first_token, 0.5)),
            "fallbacks": samples.iter().filter(|s| s.fallback).count(),
            "decode_tokens_per_s_mean": (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64),
            "server_peak_rss_mb": args
                .server_pid
                .and_then(|pid| peak_rss_kb(&pid.to_string()))
                .map(|kb| kb as f64 / 1024.0),
        });
        if args.json {
            println!("{report}");
        } else {
            println!(
                "{} with {n} client(s): {} requests, {} errors, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms{}{}",
                args.endpoint,
                samples.len(),
                report["errors"],
                report["rps"].as_f64().unwrap_or(0.0),
                report["p50_ms"].as_f64().unwrap_or(0.0),
                report["p99_ms"].as_f64().unwrap_or(0.0),
                report["first_text_p50_ms"]
                    .as_f64()
                    .map_or(String::new(), |v| format!(", first text p50 {v:.0} ms")),
                report["server_peak_rss_mb"]
                    .as_f64()
                    .map_or(String::new(), |v| format!(", server peak RSS {v:.0} MB")),
            );
        }
    }
    Ok(())
}
