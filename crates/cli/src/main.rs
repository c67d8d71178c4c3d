//! `cabildo`: ingest official documents, search them, evaluate retrieval.

mod commands;
mod output;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cabildo_core::{AccessLevel, Filters, NormKind};
use cabildo_engine::eval::{evaluate, EvalSet, Method};
use cabildo_engine::{Engine, IngestDefaults, QueryOptions};
use clap::{Parser, Subcommand, ValueEnum};

/// Cabildo answers questions about laws and regulations with citations to the exact articles.
#[derive(Parser)]
#[command(name = "cabildo", version, about)]
struct Cli {
    /// Data folder holding the index and the registry.
    #[arg(long, global = true, env = "CABILDO_DATA", default_value = "data")]
    data: PathBuf,
    /// Folder with the model files (installed by scripts/setup-models.sh).
    #[arg(long, global = true, env = "CABILDO_MODELS", default_value = "models")]
    models: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest files and folders (recursively) into the index.
    Ingest {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Country (ISO 3166-1 alpha-2) for files whose source and path do not tell.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Access level of the ingested norms.
        #[arg(long, default_value = "public")]
        access: AccessLevel,
        /// Owning tenant (agency) of the ingested norms.
        #[arg(long)]
        tenant: Option<String>,
        /// Print a machine-readable summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Search the index.
    Search {
        /// The question or keywords.
        query: String,
        /// Number of passages to return.
        #[arg(long, short, default_value_t = 10)]
        k: usize,
        /// Only these countries (ISO 3166-1 alpha-2); repeatable.
        #[arg(long)]
        jurisdiction: Vec<String>,
        /// Only these kinds of norm; repeatable.
        #[arg(long)]
        kind: Vec<NormKind>,
        /// Only norms in force on this date (YYYY-MM-DD).
        #[arg(long)]
        in_force_on: Option<chrono::NaiveDate>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what the data folder holds: norms and passages in the registry and the index.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Installed model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Measure speed: embedding throughput.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Score retrieval on BEIR-style sets (corpus.jsonl, queries.jsonl, qrels.tsv).
    Eval {
        /// Set folders, e.g. ../shared/eval/lgpd-pt.
        #[arg(required = true)]
        sets: Vec<PathBuf>,
        /// Retrieval method.
        #[arg(long, value_enum, default_value_t = EvalMethod::Lexical)]
        method: EvalMethod,
        /// Weight of heading matches (norm title, breadcrumb) relative to text matches.
        #[arg(long, default_value_t = QueryOptions::default().head_boost)]
        head_boost: f32,
        /// Weight of matching two consecutive query words in order.
        #[arg(long, default_value_t = QueryOptions::default().phrase_boost)]
        phrase_boost: f32,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the model files config/models.lock expects and whether they are installed.
    List {
        /// Also check each file's sha256.
        #[arg(long)]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Embedding throughput of e5-small on the passages of a BEIR-style set.
    Embed {
        /// Set folder (its corpus.jsonl is embedded).
        set: PathBuf,
        /// At most this many passages.
        #[arg(long, default_value_t = 2000)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Generation speed on a RAG-style prompt built from a set's passages.
    Generate {
        /// Set folder (its corpus.jsonl and queries.jsonl make the prompt).
        set: PathBuf,
        /// Model folder under --models (model.gguf, optional tokenizer.json).
        #[arg(long, default_value = "qwen2.5-0.5b")]
        model: String,
        /// Approximate prompt length in tokens.
        #[arg(long, default_value_t = 1500)]
        prompt_tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// Write the rendered prompt here (to run a baseline on the very same text).
        #[arg(long)]
        save_prompt: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum EvalMethod {
    /// BM25 over the legal analysers with heading and phrase boosts.
    Lexical,
    /// Baseline: plain tokenizer, lower-case, Snowball stemmer, text only.
    Bm25Plain,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Ingest {
            paths,
            jurisdiction,
            access,
            tenant,
            json,
        } => {
            if let Some(j) = &jurisdiction {
                if j.len() != 2 || !j.chars().all(|c| c.is_ascii_alphabetic()) {
                    bail!("--jurisdiction must be an ISO 3166-1 alpha-2 code such as CL or BR, got {j:?}");
                }
            }
            let engine = open(&cli.data).await?;
            let defaults = IngestDefaults {
                jurisdiction,
                access,
                tenant,
            };
            let mut progress =
                output::IngestProgress::new(!json && std::io::stderr().is_terminal());
            let report = engine.ingest(&paths, &defaults, &mut progress).await?;
            progress.finish();
            output::ingest_report(&report, json)?;
        }
        Command::Search {
            query,
            k,
            jurisdiction,
            kind,
            in_force_on,
            json,
        } => {
            if query.trim().is_empty() {
                bail!("the query is empty");
            }
            let engine = open(&cli.data).await?;
            if engine.index().is_empty() {
                bail!(
                    "the index in {} is empty: run `cabildo ingest PATH --data {}` first",
                    cli.data.display(),
                    cli.data.display()
                );
            }
            let filters = Filters {
                jurisdictions: jurisdiction,
                kinds: kind,
                in_force_on,
                ..Filters::operator()
            };
            let hits = engine.search(&query, &filters, k)?;
            output::search_hits(&hits, json)?;
        }
        Command::Models {
            command: ModelsCommand::List { verify, json },
        } => commands::models_list(&cli.models, verify, json)?,
        Command::Bench {
            command: BenchCommand::Embed { set, limit, json },
        } => commands::bench_embed(&cli.models, &set, limit, json)?,
        Command::Bench {
            command:
                BenchCommand::Generate {
                    set,
                    model,
                    prompt_tokens,
                    max_tokens,
                    save_prompt,
                    json,
                },
        } => commands::bench_generate(
            &cli.models.join(model),
            &set,
            prompt_tokens,
            max_tokens,
            save_prompt.as_deref(),
            json,
        )?,
        Command::Status { json } => {
            let engine = open(&cli.data).await?;
            let status = serde_json::json!({
                "data": cli.data.display().to_string(),
                "norms": engine.registry().norm_count().await?,
                "passages_registered": engine.registry().passage_count().await?,
                "passages_indexed": engine.index().len(),
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{}: {} norms, {} passages registered, {} passages indexed",
                    cli.data.display(),
                    status["norms"],
                    status["passages_registered"],
                    status["passages_indexed"]
                );
            }
        }
        Command::Eval {
            sets,
            method,
            head_boost,
            phrase_boost,
            json,
        } => {
            let options = QueryOptions {
                head_boost,
                phrase_boost,
                ..Default::default()
            };
            let method = match method {
                EvalMethod::Lexical => Method::Lexical,
                EvalMethod::Bm25Plain => Method::Bm25Plain,
            };
            let mut reports = Vec::new();
            for dir in &sets {
                let set =
                    EvalSet::load(dir).with_context(|| format!("loading {}", dir.display()))?;
                reports.push(evaluate(&set, method, &options)?);
            }
            output::eval_reports(&reports, json)?;
        }
    }
    Ok(())
}

async fn open(data: &std::path::Path) -> Result<Engine> {
    Engine::open(data)
        .await
        .with_context(|| format!("opening data folder {}", data.display()))
}
