//! `cabildo history`: a norm's versions over time, and what changed in its provisions
//! between two days, word by word.

use anyhow::{bail, Result};
use cabildo_engine::versions::{ProvisionDiff, VersionInfo};
use cabildo_engine::Engine;
use chrono::NaiveDate;

/// What `cabildo history` was asked.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The norm's id, as search results and `GET /v1/norms` give it (cl-leychile-242302).
    pub norm: String,
    /// Only this article ("15": the article and its parts) or provision label.
    #[arg(long)]
    pub article: Option<String>,
    /// Show what changed between the text in force on this day (YYYY-MM-DD)...
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// ...and on this one (default today).
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cabildo history`.
pub async fn history(engine: &Engine, args: &HistoryArgs) -> Result<()> {
    let Some((norm, _)) = engine.registry().norm(&args.norm).await? else {
        bail!(
            "no norm {} in {}: search results and `cabildo status` show the ids held",
            args.norm,
            engine.data_dir().display()
        );
    };
    let article = args.article.as_deref();
    match args.from {
        Some(from) => {
            let to = args.to.unwrap_or_else(cabildo_core::today);
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let changes = engine.diff(&norm.id, from, to, article).await?;
            if args.json {
                let out = serde_json::json!({
                    "norm_id": norm.id, "from": from, "to": to, "changes": changes,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{} ({}): {from} → {to}", norm.title, norm.id);
                print_changes(&changes);
            }
        }
        None => {
            let versions = engine.versions(&norm.id, article).await?;
            if args.json {
                let out = serde_json::json!({ "norm_id": norm.id, "versions": versions });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_versions(&norm.title, &norm.id, article, &versions);
            }
        }
    }
    Ok(())
}

fn print_versions(title: &str, id: &str, article: Option<&str>, versions: &[VersionInfo]) {
    if versions.is_empty() {
        println!("{title} ({id}): one undated text, no versions");
        return;
    }
    println!("{title} ({id}): {} versions", versions.len());
    for v in versions {
        let until = v.valid_to.map_or("in force".to_string(), |d| d.to_string());
        let changed = match &v.changed {
            None => format!("first version, {} passages", v.provisions),
            Some(c) if !c.is_empty() => format!("changed {}", c.join("; ")),
            // With --article, versions that left it alone are not listed.
            Some(_) if article.is_some() => continue,
            Some(_) => "no change to the text".to_string(),
        };
        println!("  {} – {until:<10}  {changed}", v.valid_from);
    }
}

fn print_changes(changes: &[ProvisionDiff]) {
    if changes.is_empty() {
        println!("  no provision differs");
        return;
    }
    for c in changes {
        let on = c.changed_on.map_or(String::new(), |d| format!(" on {d}"));
        println!("\n{} — {}{on}", c.provision, c.status);
        // git's word-diff notation: [-deleted-]{+inserted+}.
        let mut line = String::new();
        for w in &c.words {
            match w.op {
                "deleted" => line.push_str(&format!("[-{}-]", w.text)),
                "inserted" => line.push_str(&format!("{{+{}+}}", w.text)),
                _ => line.push_str(&w.text),
            }
        }
        println!("{line}");
    }
}
