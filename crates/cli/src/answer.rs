//! `cabildo serve` and `cabildo ask`: the server assembled from the settings, and one answer
//! streamed to the terminal.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cabildo_core::{Filters, Language, Settings};
use cabildo_engine::answer::{compose, AskOptions, Question, Register, Writer};
use cabildo_engine::Engine;
use cabildo_server::AppState;
use clap::Args;

use crate::flags::{AnswerFlags, ServeFlags};

/// Options of `cabildo serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub flags: ServeFlags,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(settings: &Settings) -> Result<()> {
    let addr = settings.server.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let state = AppState::from_settings(settings)
        .await
        .with_context(|| format!("starting the server on {}", settings.data.dir.display()))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        model = %state.writer().name(),
        passages = state.engine().index().len(),
        "serving"
    );
    // The address on stdout, for scripts and tests that bind port 0.
    println!("listening on http://{local}");
    std::io::stdout().flush()?;
    cabildo_server::serve(listener, Arc::new(state), cabildo_server::shutdown_signal()).await?;
    Ok(())
}

/// Options of `cabildo ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Answer language (es, pt, en); guessed from the question when absent.
    #[arg(long)]
    pub language: Option<Language>,
    /// usted, tu or vos.
    #[arg(long, default_value = "usted")]
    pub register: Register,
    /// Only these countries (ISO 3166-1 alpha-2); repeatable.
    #[arg(long)]
    pub jurisdiction: Vec<String>,
    /// Only norms in force on this date (YYYY-MM-DD).
    #[arg(long)]
    pub in_force_on: Option<chrono::NaiveDate>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub answer: AnswerFlags,
}

/// Answers one question, streaming checked text to stdout, then the sources.
pub async fn ask(engine: &Engine, settings: &Settings, args: &AskArgs) -> Result<()> {
    if args.question.trim().is_empty() {
        bail!("the question is empty");
    }
    if engine.index().is_empty() {
        bail!(
            "the index in {} is empty: run `cabildo ingest PATH` first",
            engine.data_dir().display()
        );
    }
    let writer = Writer::from_settings(settings)?;
    let options = AskOptions::from_settings(settings);
    let question = Question {
        text: args.question.clone(),
        filters: Filters {
            jurisdictions: args.jurisdiction.iter().map(|j| j.to_uppercase()).collect(),
            in_force_on: args.in_force_on,
            ..Filters::operator()
        },
        language: args.language,
        register: args.register,
        history: Vec::new(),
    };
    let sources = engine.gather(&question, &options).await?;
    let json = args.json;
    let answer = tokio::task::spawn_blocking(move || {
        let mut out = std::io::stdout();
        compose(
            &sources,
            &writer,
            &options,
            &mut |text| {
                if !json {
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                }
                true
            },
            &|| true,
        )
    })
    .await??;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    println!("\n");
    for c in &answer.citations {
        println!("[{}] {}", c.n, c.label);
        if let Some(url) = &c.url {
            println!("    {url}");
        }
        if let Some(v) = crate::output::validity(c.in_force_from, c.in_force_until) {
            println!("    {v}");
        }
        println!("    «{}»", c.quote);
    }
    eprintln!(
        "({}; retrieval {:.0} ms, writing {:.0} ms; {} sentences kept ({} with a citation the check added), {} dropped{})",
        answer.model,
        answer.timings.retrieval_ms,
        answer.timings.generation_ms,
        answer.checks.kept,
        answer.checks.repaired,
        answer.checks.dropped,
        if answer.checks.fallback {
            ", answered from quotes"
        } else {
            ""
        }
    );
    Ok(())
}
