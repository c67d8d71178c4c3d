//! What the CLI prints: progress, reports and hits, as text for people or JSON for programs.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use cabildo_core::SearchHit;
use cabildo_engine::eval::EvalReport;
use cabildo_engine::ingest::{FileOutcome, IngestReport, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal; one log line per file otherwise.
pub struct IngestProgress {
    bar: Option<ProgressBar>,
}

impl IngestProgress {
    pub fn new(terminal: bool) -> Self {
        IngestProgress {
            bar: terminal.then(ProgressBar::hidden),
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
                bar.set_message(name);
                if let FileOutcome::Failed { reason } = outcome {
                    bar.println(format!("failed: {}: {reason}", path.display()));
                }
            }
            None => match outcome {
                FileOutcome::Indexed { norm_id, passages } => {
                    tracing::info!(path = %path.display(), %norm_id, passages, "indexed")
                }
                FileOutcome::Unchanged => tracing::info!(path = %path.display(), "unchanged"),
                FileOutcome::Failed { .. } => {} // logged by the engine
            },
        }
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
        if !where_.is_empty() {
            writeln!(out, "   {}", where_.join(" · "))?;
        }
        writeln!(out, "   {}\n", highlighted(h, terminal))?;
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
            r.method.name(),
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
