//! Commands over the model files: listing them and measuring them.

use std::io::Write;
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

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
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
        "peak_rss_mb": peak_rss_kb().map(|k| k as f64 / 1024.0),
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
    max_tokens: usize,
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
        "peak_rss_mb": peak_rss_kb().map(|k| k as f64 / 1024.0),
        "answer": out.text,
    });
    if json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
