//! Commands over the model files: listing them and measuring them.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cabildo_core::{ChatMessage, GenerationRequest, Generator, Role};
use cabildo_models::catalog;
use cabildo_models::{Embedder, LocalGenerator, TextEmbedder};

/// `cabildo models list`.
pub fn models_list(models: &Path, verify: bool, json: bool) -> Result<()> {
    let lock = Path::new("config/models.lock");
    let entries = catalog::read_lock(lock)
        .with_context(|| format!("reading {} (run from the project folder)", lock.display()))?;
    let states = catalog::inspect(&entries, models, verify);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &states)?;
        writeln!(out)?;
    } else {
        writeln!(out, "models folder: {}", models.display())?;
        for s in &states {
            let size = s
                .bytes
                .map_or_else(|| "-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
            writeln!(
                out,
                "{:<8} {:<18} {:>9}  {:<40} {} [{}]",
                s.status, s.entry.model, size, s.entry.file, s.entry.role, s.entry.package
            )?;
        }
        if states.iter().any(|s| s.status != "ok") {
            writeln!(out, "install or repair with: scripts/setup-models.sh")?;
        }
    }
    Ok(())
}

/// Peak resident memory of a process (`self` or a pid), from Linux's /proc.
pub fn peak_rss_kb(process: &str) -> Option<u64> {
    status_kb(process, "VmHWM:")
}

/// Resident memory of a process now (`self` or a pid), from Linux's /proc.
pub fn rss_kb(process: &str) -> Option<u64> {
    status_kb(process, "VmRSS:")
}

/// A kB figure of a process's /proc status, by its field name ("VmRSS:").
fn status_kb(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `cabildo bench embed`: passages/s, tokens/s and peak RSS for e5-small.
pub fn bench_embed(models: &Path, set: &Path, limit: usize, json: bool) -> Result<()> {
    let corpus = std::fs::read_to_string(set.join("corpus.jsonl"))
        .with_context(|| format!("reading {}/corpus.jsonl", set.display()))?;
    let texts: Vec<String> = corpus
        .lines()
        .take(limit)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().unwrap_or_default().to_string())
        })
        .collect::<Result<_>>()?;
    if texts.is_empty() {
        bail!("no passages in {}", set.display());
    }
    let load = Instant::now();
    let e = TextEmbedder::e5_small(&models.join("e5-small"))?;
    let load_s = load.elapsed().as_secs_f64();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs
        .iter()
        .map(|t| e.token_count(t, false))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|n| n + 2)
        .sum();
    let t0 = Instant::now();
    let vectors = e.embed_passages(&refs)?;
    let secs = t0.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "model": e.name(),
        "passages": vectors.len(),
        "tokens": tokens,
        "seconds": secs,
        "passages_per_s": vectors.len() as f64 / secs,
        "tokens_per_s": tokens as f64 / secs,
        "load_seconds": load_s,
        "peak_rss_mb": peak_rss_kb("self").map(|k| k as f64 / 1024.0),
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "{}: {} passages, {} tokens in {:.2} s: {:.1} passages/s, {:.0} tokens/s; load {:.2} s; peak RSS {:.0} MB",
            e.name(),
            vectors.len(),
            tokens,
            secs,
            vectors.len() as f64 / secs,
            tokens as f64 / secs,
            load_s,
            report["peak_rss_mb"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// `cabildo bench generate`: prefill and decode speed on a RAG-style prompt.
pub fn bench_generate(
    model_dir: &Path,
    set: &Path,
    prompt_tokens: usize,
    (min_tokens, max_tokens): (usize, usize),
    save_prompt: Option<&Path>,
    json: bool,
) -> Result<()> {
    let tokenizer = model_dir.join("tokenizer.json");
    let g = LocalGenerator::from_gguf(
        &model_dir.join("model.gguf"),
        tokenizer.is_file().then_some(tokenizer.as_path()),
    )?;
    let corpus = std::fs::read_to_string(set.join("corpus.jsonl"))
        .with_context(|| format!("reading {}/corpus.jsonl", set.display()))?;
    let queries = std::fs::read_to_string(set.join("queries.jsonl"))
        .with_context(|| format!("reading {}/queries.jsonl", set.display()))?;
    let question: serde_json::Value = serde_json::from_str(queries.lines().next().unwrap_or("{}"))?;
    let question = question["text"].as_str().unwrap_or("¿Qué dice la ley?");
    let mut sources = String::new();
    let mut request = GenerationRequest::greedy(Vec::new(), max_tokens);
    request.min_tokens = min_tokens;
    for (n, line) in corpus.lines().enumerate() {
        let p: serde_json::Value = serde_json::from_str(line)?;
        sources.push_str(&format!(
            "[{}] {}: {}\n",
            n + 1,
            p["title"].as_str().unwrap_or(""),
            p["text"].as_str().unwrap_or("")
        ));
        request.messages = vec![
            ChatMessage::new(
                Role::System,
                "Responde solo con las fuentes numeradas y cita cada afirmación como [n].",
            ),
            ChatMessage::new(
                Role::User,
                format!("Fuentes:\n{sources}\nPregunta: {question}"),
            ),
        ];
        let rendered = g.render(&request)?;
        let n_tokens = g
            .tokenizer()
            .encode(rendered.as_str(), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len();
        if n_tokens >= prompt_tokens {
            if let Some(path) = save_prompt {
                std::fs::write(path, &rendered)?;
            }
            break;
        }
    }
    let out = g.generate(&request, &mut |_| true)?;
    let decode_tokens = out.completion_tokens.saturating_sub(1).max(1);
    let report = serde_json::json!({
        "model": g.name(),
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "time_to_first_token_s": out.prompt_seconds,
        "prefill_tokens_per_s": out.prompt_tokens as f64 / out.prompt_seconds.max(1e-9),
        "decode_tokens_per_s": decode_tokens as f64 / out.decode_seconds.max(1e-9),
        "peak_rss_mb": peak_rss_kb("self").map(|k| k as f64 / 1024.0),
        "answer": out.text,
    });
    if json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// A copy of a passage vector, nudged so copies are distinct neighbours rather than
/// exact duplicates (deterministic per copy and dimension), renormalised.
fn nudged(v: &[f32], copy: usize) -> Vec<f32> {
    if copy == 0 {
        return v.to_vec();
    }
    let mut out: Vec<f32> = v
        .iter()
        .enumerate()
        .map(|(d, x)| {
            let h = (copy as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(d as u64)
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let noise = ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            x + 0.02 * noise
        })
        .collect();
    cabildo_engine::context::normalise(&mut out);
    out
}

/// Options of `cabildo bench search`.
#[derive(clap::Args)]
pub struct SearchBench {
    /// Set folder (its corpus is repeated with perturbed ids; its questions are asked).
    set: std::path::PathBuf,
    /// Corpus sizes in passages, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    passages: Vec<usize>,
    /// Concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// Questions each client asks (the set's first ones).
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Use only the passages whose vectors an earlier (possibly interrupted) eval cached,
    /// instead of embedding the rest of the set first.
    #[arg(long)]
    cached_only: bool,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// `cabildo bench search`: hybrid query latency (question embedding included) with 1..n
/// concurrent clients over a set's corpus repeated to each size, and the vector index's
/// recall@10 against exact search on the same vectors.
pub async fn bench_search(settings: &cabildo_core::Settings, args: &SearchBench) -> Result<()> {
    let SearchBench {
        set: set_dir,
        passages: sizes,
        clients,
        queries,
        cached_only,
        json,
    } = args;
    let (queries, cached_only, json) = (*queries, *cached_only, *json);
    if sizes.contains(&0) || clients.contains(&0) || queries == 0 {
        bail!("--passages, --clients and --queries must be positive");
    }
    use cabildo_core::{Filters, Passage};
    use cabildo_engine::assemble::{load_embedder, query_options, ScratchStore};
    use cabildo_engine::eval::{default_cache_dir, passage_vectors, EvalDense, EvalSet};
    use cabildo_engine::retrieve::{Method, Pipeline};
    use cabildo_engine::{Dense, SearchOptions};

    let set = EvalSet::load(set_dir).with_context(|| format!("loading {}", set_dir.display()))?;
    let embedder = load_embedder(&settings.data.models, &settings.vectors.embedder)?;
    let eval_dense = EvalDense {
        embedder: embedder.clone(),
        cache_dir: default_cache_dir(),
        settings: settings.clone(),
    };
    let mut progress = crate::output::StepProgress::new(std::io::stderr().is_terminal());
    let base_vectors = passage_vectors(&set, &eval_dense, !cached_only, &mut progress.callback())?;
    progress.finish();
    if base_vectors.is_empty() {
        bail!(
            "no cached vectors for {}: run without --cached-only",
            set.name
        );
    }
    // With --cached-only the base corpus is the passages that have vectors (a prefix).
    let base = &set.passage_list()[..base_vectors.len()];
    let questions: Vec<&str> = set
        .questions()
        .iter()
        .take(queries)
        .map(|(_, q)| q.as_str())
        .collect();
    let filters = Filters::operator();
    let params = settings.retrieval.clone();
    if !json {
        println!(
            "base corpus: {} passages of {} ({} questions)",
            base.len(),
            set.name,
            questions.len()
        );
    }
    for &size in sizes.iter() {
        let t0 = Instant::now();
        let index = cabildo_engine::LexicalIndex::in_memory(cabildo_engine::Analysis::Legal)?;
        // The backend `[vectors]` names: the embedded engine, or a scratch Qdrant collection.
        let scratch = ScratchStore::open(
            settings,
            embedder.dimension(),
            &format!("{}-{size}", set.name),
        )
        .await?;
        let store = scratch.store.clone();
        let mut batch = index.batch()?;
        let mut chunk: Vec<Passage> = Vec::new();
        let mut chunk_vectors = Vec::new();
        for i in 0..size {
            let copy = i / base.len();
            let mut p = base[i % base.len()].clone();
            if copy > 0 {
                p.id = format!("{}#{copy}", p.id);
                p.norm_id = format!("{}#{copy}", p.norm_id);
            }
            batch.add(&p)?;
            chunk_vectors.push(nudged(&base_vectors[i % base.len()], copy));
            chunk.push(p);
            if chunk.len() == 1_000 || i + 1 == size {
                let refs: Vec<&Passage> = chunk.iter().collect();
                store.upsert(&refs, &chunk_vectors).await?;
                chunk.clear();
                chunk_vectors.clear();
                if (i + 1) % 100_000 == 0 && !json {
                    eprintln!("  {} of {size} passages written", i + 1);
                }
            }
        }
        batch.commit()?;
        let written_seconds = t0.elapsed().as_secs_f64();
        scratch.settle().await?;
        let build_seconds = t0.elapsed().as_secs_f64();
        if !json {
            println!(
                "{size} passages written in {written_seconds:.1} s; vector index ready {:.1} s later",
                build_seconds - written_seconds
            );
        }

        // The index's recall@10 against exact search, at several HNSW breadths.
        let ids = |hits: Vec<cabildo_engine::VectorHit>| {
            hits.into_iter()
                .map(|h| h.passage_id)
                .collect::<std::collections::HashSet<_>>()
        };
        let mut query_vectors = Vec::with_capacity(questions.len());
        let mut exact = Vec::with_capacity(questions.len());
        for q in &questions {
            let v = embedder.embed_query(q)?;
            let all = SearchOptions {
                exact: true,
                ..SearchOptions::default()
            };
            exact.push(ids(store.search(&v, &filters, 10, all).await?));
            query_vectors.push(v);
        }
        let mut recalls = Vec::new();
        for ef in [None, Some(64), Some(128), Some(256)] {
            let options = SearchOptions {
                hnsw_ef: ef,
                ..SearchOptions::default()
            };
            let (mut overlap, mut total) = (0usize, 0usize);
            for (v, truth) in query_vectors.iter().zip(&exact) {
                let found = ids(store.search(v, &filters, 10, options).await?);
                overlap += truth.intersection(&found).count();
                total += truth.len();
            }
            let ef = ef.unwrap_or(cabildo_engine::DEFAULT_HNSW_EF);
            recalls.push((ef, overlap as f64 / total.max(1) as f64));
        }
        let recall = recalls[0].1;
        let dense = Dense {
            embedder: embedder.clone(),
            store,
        };
        let pipeline = Pipeline::new(index, Some(dense), None, query_options(settings));
        // The vector search alone, as hybrid's first search runs it: hybrid runs two of these.
        let mut search_times = Vec::with_capacity(query_vectors.len());
        for v in &query_vectors {
            let t = Instant::now();
            pipeline.nearest(v, &filters, &params).await?;
            search_times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        search_times.sort_by(|a, b| a.total_cmp(b));
        let search_p50 = cabildo_engine::eval::percentile(&search_times, 0.5);
        let search_p99 = cabildo_engine::eval::percentile(&search_times, 0.99);

        let mut runs = Vec::new();
        // Dense and lexical alone, one client, show where hybrid's time goes; lexical is the
        // baseline beside it.
        let plan = clients
            .iter()
            .map(|&n| (Method::Hybrid, n))
            .chain([(Method::Dense, 1), (Method::Lexical, 1)]);
        for (method, n) in plan {
            let started = Instant::now();
            let per_client: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .map(|c| {
                        let pipeline = &pipeline;
                        let questions = &questions;
                        let filters = &filters;
                        let params = &params;
                        scope.spawn(move || -> Result<Vec<f64>> {
                            let rt = tokio::runtime::Builder::new_current_thread().build()?;
                            let mut times = Vec::with_capacity(questions.len());
                            for i in 0..questions.len() {
                                let q = questions[(i + c * 7) % questions.len()];
                                let t = Instant::now();
                                rt.block_on(
                                    pipeline.retrieve(q, filters, 10, method, params, true),
                                )?;
                                times.push(t.elapsed().as_secs_f64() * 1000.0);
                            }
                            Ok(times)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| bail!("a client thread panicked"))
                    })
                    .collect()
            });
            let wall = started.elapsed().as_secs_f64();
            let mut times: Vec<f64> = Vec::new();
            for t in per_client {
                times.extend(t?);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| cabildo_engine::eval::percentile(&times, p);
            runs.push(serde_json::json!({
                "method": method.name(),
                "clients": n,
                "queries": times.len(),
                "qps": times.len() as f64 / wall,
                "p50_ms": pct(0.5),
                "p99_ms": pct(0.99),
            }));
        }
        if json {
            let r = serde_json::json!({
                "passages": size,
                "build_seconds": build_seconds,
                "recall_at_10_vs_exact": recall,
                "recall_by_hnsw_ef": recalls,
                "vector_search": { "p50_ms": search_p50, "p99_ms": search_p99 },
                "runs": runs,
            });
            println!("{r}");
        } else {
            println!(
                "{size} passages (built in {build_seconds:.1} s): HNSW recall@10 vs exact {recall:.3}"
            );
            for (ef, r) in &recalls {
                println!("  recall@10 with hnsw_ef {ef}: {r:.3}");
            }
            println!(
                "  vector search alone (top {}): p50 {search_p50:.1} ms, p99 {search_p99:.1} ms",
                params.dense_depth
            );
            for run in &runs {
                println!(
                    "  {}, {} client(s): {} searches, {:.1} q/s, p50 {:.1} ms, p99 {:.1} ms",
                    run["method"].as_str().unwrap_or(""),
                    run["clients"],
                    run["queries"],
                    run["qps"].as_f64().unwrap_or(0.0),
                    run["p50_ms"].as_f64().unwrap_or(0.0),
                    run["p99_ms"].as_f64().unwrap_or(0.0)
                );
            }
        }
        drop(pipeline);
        scratch.close().await?;
    }
    println!(
        "peak RSS {:.0} MB",
        peak_rss_kb("self").map_or(0.0, |k| k as f64 / 1024.0)
    );
    Ok(())
}
