//! What the CLI prints: progress, reports and hits, as text for people or JSON for programs.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use cabildo_core::SearchHit;
use cabildo_engine::eval::answers::AnswerReport;
use cabildo_engine::eval::EvalReport;
use cabildo_engine::ingest::{FileOutcome, IngestReport, Progress};
use cabildo_engine::retrieve::Fusion;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal; one log line per file otherwise.
pub struct IngestProgress {
    bar: Option<ProgressBar>,
    embedded: usize,
}

impl IngestProgress {
    pub fn new(terminal: bool) -> Self {
        IngestProgress {
            bar: terminal.then(ProgressBar::hidden),
            embedded: 0,
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for IngestProgress {
    fn start(&mut self, files: usize, bytes: u64) {
        if let Some(bar) = &mut self.bar {
            *bar = ProgressBar::new(bytes).with_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        } else {
            tracing::info!(files, bytes, "ingest started");
        }
    }

    fn file_done(&mut self, path: &Path, bytes: u64, outcome: &FileOutcome) {
        match &self.bar {
            Some(bar) => {
                bar.inc(bytes);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                if self.embedded > 0 {
                    bar.set_message(format!("{name} · {} passages embedded", self.embedded));
                } else {
                    bar.set_message(name);
                }
                if let FileOutcome::Failed { reason } = outcome {
                    bar.println(format!("failed: {}: {reason}", path.display()));
                }
            }
            None => match outcome {
                FileOutcome::Indexed { norm_id, passages } => {
                    tracing::info!(path = %path.display(), %norm_id, passages, "indexed")
                }
                FileOutcome::Unchanged => tracing::info!(path = %path.display(), "unchanged"),
                FileOutcome::Relabelled { norm_id, passages } => {
                    tracing::info!(path = %path.display(), %norm_id, passages, "same content, access relabelled")
                }
                FileOutcome::Failed { .. } => {} // logged by the engine
            },
        }
    }

    fn embedded(&mut self, passages: usize) {
        self.embedded += passages;
        if self.bar.is_none() && self.embedded % 1024 < passages {
            tracing::info!(passages = self.embedded, "embedded");
        }
    }
}

/// A progress bar for the long steps of an evaluation (embedding, questions).
pub struct StepProgress {
    bar: Option<ProgressBar>,
    step: String,
}

impl StepProgress {
    pub fn new(terminal: bool) -> Self {
        StepProgress {
            bar: terminal.then(ProgressBar::hidden),
            step: String::new(),
        }
    }

    /// The callback the engine reports to: (step, done, total).
    pub fn callback(&mut self) -> impl FnMut(&str, usize, usize) + '_ {
        move |step, done, total| {
            let Some(bar) = &mut self.bar else {
                if done == total {
                    tracing::info!(step, total, "done");
                }
                return;
            };
            if step != self.step {
                bar.finish_and_clear();
                *bar = ProgressBar::new(total as u64).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(step.to_string());
                self.step = step.to_string();
            }
            bar.set_position(done as u64);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.step.clear();
    }
}

pub fn ingest_report(r: &IngestReport, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, r)?;
        writeln!(out)?;
        return Ok(());
    }
    let s = &r.summary;
    let mb = r.bytes as f64 / 1e6;
    writeln!(
        out,
        "{} files ({} unchanged, {} failed, {} metadata files skipped): {} norms, {} passages in {:.1} s ({:.2} MB/s, {:.0} passages/s)",
        s.files,
        s.unchanged,
        s.failures,
        r.skipped,
        s.norms,
        s.passages,
        s.seconds,
        mb / s.seconds.max(1e-9),
        s.passages as f64 / s.seconds.max(1e-9)
    )?;
    if let Some(model) = &r.embedder {
        writeln!(
            out,
            "embedded {} passages with {model} in {:.1} s ({:.1} passages/s)",
            r.embedded,
            r.embed_seconds,
            r.embedded as f64 / r.embed_seconds.max(1e-9)
        )?;
    }
    for f in &r.failed {
        writeln!(out, "failed: {}: {}", f.path, f.reason)?;
    }
    Ok(())
}

/// The snippet with matches in bold (terminal) or between `**` (plain text).
fn highlighted(hit: &SearchHit, terminal: bool) -> String {
    let (open, close) = if terminal {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut s = String::new();
    let mut last = 0;
    for &(a, b) in &hit.highlights {
        if a < last
            || b > hit.snippet.len()
            || !hit.snippet.is_char_boundary(a)
            || !hit.snippet.is_char_boundary(b)
        {
            continue;
        }
        s.push_str(&hit.snippet[last..a]);
        s.push_str(open);
        s.push_str(&hit.snippet[a..b]);
        s.push_str(close);
        last = b;
    }
    s.push_str(&hit.snippet[last..]);
    s.replace('\n', " ")
}

pub fn search_hits(hits: &[SearchHit], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, hits)?;
        writeln!(out)?;
        return Ok(());
    }
    if hits.is_empty() {
        writeln!(out, "No passages match.")?;
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    for h in hits {
        let p = &h.passage;
        writeln!(
            out,
            "{}. {}  [{} · {} · {:.2}]",
            h.rank, p.label, p.jurisdiction, p.kind, h.score
        )?;
        writeln!(out, "   {}", p.breadcrumb.join(" › "))?;
        let mut where_ = Vec::new();
        if let Some(u) = &p.url {
            where_.push(u.clone());
        }
        if let Some(page) = p.page {
            where_.push(format!("page {page}"));
        }
        where_.extend(validity(p.valid_from, p.valid_to));
        if !where_.is_empty() {
            writeln!(out, "   {}", where_.join(" · "))?;
        }
        writeln!(out, "   {}\n", highlighted(h, terminal))?;
    }
    Ok(())
}

/// A method's name with its fusion settings
/// (`hybrid (score, w=0.8/0.45, feedback 3, terms 5×0.2, depth 100)`: dense weight for
/// short/long questions; words drawn by term feedback and their weight).
fn method_label(r: &EvalReport) -> String {
    let Some(p) = &r.params else {
        return r.method.name().to_string();
    };
    let fusion = match p.fusion {
        Fusion::Rrf => format!("rrf k={}", p.rrf_k),
        Fusion::Score => "score".to_string(),
    };
    let terms = if p.feedback > 0 && p.term_feedback > 0 {
        format!(", terms {}×{}", p.term_feedback, p.term_feedback_weight)
    } else {
        String::new()
    };
    format!(
        "{} ({fusion}, w={}/{}, feedback {}{terms}, depth {})",
        r.method.name(),
        p.short_dense_weight,
        p.dense_weight,
        p.feedback,
        p.lexical_depth
    )
}

/// The sweep's best settings by mean nDCG@10 over the sets (each inner list is one set's
/// scores over the same grid).
pub fn sweep_report(sweeps: &[Vec<EvalReport>], json: bool) -> Result<()> {
    let Some(first) = sweeps.first() else {
        return Ok(());
    };
    let mut rows: Vec<(f64, usize)> = (0..first.len())
        .map(|i| {
            let mean = sweeps.iter().map(|s| s[i].ndcg_10).sum::<f64>() / sweeps.len() as f64;
            (mean, i)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = std::io::stdout().lock();
    if json {
        for (mean, i) in rows.iter().take(10) {
            let per_set: Vec<_> = sweeps
                .iter()
                .map(|s| serde_json::json!({"set": s[*i].set, "ndcg_10": s[*i].ndcg_10}))
                .collect();
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({"sweep": first[*i].params, "mean_ndcg_10": mean, "sets": per_set}),
            )?;
            writeln!(out)?;
        }
        return Ok(());
    }
    let names: Vec<&str> = sweeps.iter().map(|s| s[0].set.as_str()).collect();
    writeln!(
        out,
        "\nsweep: {} settings; best by mean nDCG@10 over {}",
        first.len(),
        names.join(", ")
    )?;
    writeln!(out, "| fusion | mean nDCG@10 | {} |", names.join(" | "))?;
    writeln!(out, "|---|---|{}", "---|".repeat(names.len()))?;
    for (mean, i) in rows.iter().take(10) {
        let per_set: Vec<String> = sweeps
            .iter()
            .map(|s| format!("{:.3}", s[*i].ndcg_10))
            .collect();
        writeln!(
            out,
            "| {} | {:.3} | {} |",
            method_label(&first[*i]),
            mean,
            per_set.join(" | ")
        )?;
    }
    Ok(())
}

pub fn eval_reports(reports: &[EvalReport], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in reports {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "| set | method | queries | passages | R@5 | R@10 | R@100 | MRR@10 | nDCG@10 | ms/query | p50 ms | p99 ms |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in reports {
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} |",
            r.set,
            method_label(r),
            r.queries,
            r.passages,
            r.recall_5,
            r.recall_10,
            r.recall_100,
            r.mrr_10,
            r.ndcg_10,
            r.ms_per_query,
            r.p50_ms,
            r.p99_ms
        )?;
    }
    Ok(())
}

/// "in force from 2009-04-04 until 2023-01-04" (either end may be open), or nothing for an
/// undated text.
pub fn validity(
    from: Option<chrono::NaiveDate>,
    until: Option<chrono::NaiveDate>,
) -> Option<String> {
    match (from, until) {
        (None, None) => None,
        (Some(f), None) => Some(format!("in force from {f}")),
        (None, Some(u)) => Some(format!("in force until {u}")),
        (Some(f), Some(u)) => Some(format!("in force from {f} until {u}")),
    }
}

/// `cabildo eval --answers`: answer quality per set and writer, as a Markdown table (or JSON
/// lines).
pub fn answer_reports(reports: &[AnswerReport], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in reports {
            let mut v = serde_json::to_value(r)?;
            v["supported_share"] = serde_json::json!(r.supported_share());
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    if reports.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nanswers (every question asked as /v1/ask does)")?;
    writeln!(
        out,
        "| set | writer | questions | answered | citation precision | citation recall | \
         sentences kept | fell back to quotes | reference F1 | answered without its norms | \
         first text p50/p99 ms | answer p50/p99 ms |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in reports {
        let kept = match r.supported_share() {
            Some(share) => format!(
                "{:.3} ({}/{})",
                share,
                r.sentences_kept,
                r.sentences_kept + r.sentences_dropped
            ),
            None => "quotes only".into(),
        };
        let f1 = r
            .reference_f1
            .map_or_else(|| "—".into(), |f| format!("{f:.3}"));
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} ({:.3}) | {:.0} / {:.0} | {:.0} / {:.0} |",
            r.set,
            r.writer,
            r.questions,
            r.answered,
            r.citation_precision,
            r.citation_recall,
            kept,
            r.fallbacks,
            f1,
            r.without_gold_answered,
            r.without_gold_answered as f64 / r.questions.max(1) as f64,
            r.first_text_p50_ms,
            r.first_text_p99_ms,
            r.answer_p50_ms,
            r.answer_p99_ms,
        )?;
    }
    Ok(())
}
