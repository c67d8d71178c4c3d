//! `cabildo`: ingest official documents, search them, evaluate retrieval.

mod answer;
mod bench_http;
mod bench_soak;
mod commands;
mod flags;
mod history;
mod output;
mod security;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cabildo_core::settings::VectorBackend;
use cabildo_core::{AccessLevel, Filters, Jurisdiction, NormKind};
use cabildo_engine::answer::{AskOptions, Writer};
use cabildo_engine::assemble::{has_vectors, load_embedder, load_reranker, query_options};
use cabildo_engine::eval::{EvalDense, EvalMethod, EvalSet, PreparedSet};
use cabildo_engine::retrieve::Method;
use cabildo_engine::worker::WorkerOptions;
use cabildo_engine::{DenseMode, Engine, IngestDefaults, QueryOptions};
use clap::{Parser, Subcommand};
use flags::{AnswerFlags, FusionFlags, GlobalFlags, Overrides};

/// Cabildo answers questions about laws and regulations with citations to the exact articles.
///
/// Settings come from config/cabildo.toml (or --config), a profile, CABILDO__SECTION__KEY
/// environment variables, then flags: `cabildo config show` prints what is in force.
#[derive(Parser)]
#[command(name = "cabildo", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
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
        /// Owning tenant (agency) of the ingested norms; required for internal and restricted
        /// ones ("*": shared with every agency cleared for them).
        #[arg(long)]
        tenant: Option<String>,
        /// Replace national ids, e-mails and phone numbers in the documents' text with
        /// placeholders ([RUT], [CPF]…) before indexing.
        #[arg(long)]
        redact_pii: bool,
        /// Index for lexical search only, without embedding passages (only for a data folder
        /// that has no vectors yet).
        #[arg(long)]
        no_dense: bool,
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
        /// lexical, dense, hybrid or rerank [default: hybrid when the data folder has
        /// vectors, else lexical].
        #[arg(long)]
        method: Option<Method>,
        #[command(flatten)]
        fusion: FusionFlags,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API (search, cited answers, OpenAI-compatible chat, documents).
    Serve(Box<answer::ServeArgs>),
    /// Run the ingest jobs API replicas queue in a shared (PostgreSQL) registry
    /// (`[server] queue_uploads`); stops between jobs on SIGINT or SIGTERM.
    Worker {
        /// Seconds a claimed job is held without renewal: how soon another worker takes
        /// over the job of one that died.
        #[arg(long, default_value_t = 60)]
        lease: u64,
        /// Seconds between looks at the queue when it is empty.
        #[arg(long, default_value_t = 1.0)]
        poll: f64,
        /// Exit once no job is waiting, instead of waiting for more.
        #[arg(long)]
        until_idle: bool,
    },
    /// Answer a question with citations, from the command line.
    Ask(answer::AskArgs),
    /// API keys of partner systems (and admins, caseworkers without a token).
    Clients {
        #[command(subcommand)]
        command: security::ClientsCommand,
    },
    /// The hash-chained audit log: verify it, export it.
    Audit {
        #[command(subcommand)]
        command: security::AuditCommand,
    },
    /// Feedback on answers (`POST /v1/feedback`): export it for review.
    Feedback {
        #[command(subcommand)]
        command: security::FeedbackCommand,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// The settings in force.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A norm's versions over time, and what changed in an article between two days.
    History(history::HistoryArgs),
    /// Show what the data folder holds: norms and passages in the registry and the index.
    Status {
        /// Also check, norm by norm, that the index and the vector store hold exactly what
        /// the registry records, and that the audit chain verifies; exit 1 if not.
        #[arg(long)]
        check: bool,
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
        /// Methods to score, comma-separated: lexical, dense, hybrid, rerank, bm25-plain, and
        /// rrf-plain (bm25-plain and dense fused by plain RRF, k = 60).
        #[arg(long, value_delimiter = ',', default_value = "lexical")]
        method: Vec<EvalMethod>,
        /// Try a grid of fusion settings on hybrid and report the best (mean nDCG@10 over
        /// the sets given).
        #[arg(long)]
        sweep: bool,
        #[command(flatten)]
        fusion: FusionFlags,
        /// Re-embed the passages instead of reading vectors cached by an earlier run.
        #[arg(long)]
        no_cache: bool,
        /// Also report how often answers would abstain: on the set's own questions (all
        /// answerable) and on the out-of-scope questions of --out-of-scope.
        #[arg(long)]
        answerability: bool,
        /// Questions nothing in the corpus answers, one per line (`#` comments).
        #[arg(long, default_value = "eval/out-of-scope-questions.txt")]
        out_of_scope: PathBuf,
        /// Score follow-up questions instead of the sets' own (eval/followups.jsonl): each
        /// searched on its own words, with the conversation, and written out in full.
        #[arg(long)]
        followups: Option<PathBuf>,
        /// Also ask every question the way /v1/ask does and score the answers: citation
        /// precision and recall, generated sentences the check kept, overlap with the
        /// source's own answer, abstention with the relevant norms left out, and time to the
        /// first text and to the whole answer. The writer is --writer (config: answer.generator).
        #[arg(long)]
        answers: bool,
        /// Each scored answer of --answers as a JSON line to this file.
        #[arg(long)]
        answers_log: Option<PathBuf>,
        /// Only the first N questions of each set (an answer from a model on the CPU takes
        /// seconds).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        answer: AnswerFlags,
        /// Weight of heading matches (norm title, breadcrumb) relative to text matches
        /// [config: lexical.head_boost].
        #[arg(long)]
        head_boost: Option<f32>,
        /// Weight of matching two consecutive query words in order [config:
        /// lexical.phrase_boost].
        #[arg(long)]
        phrase_boost: Option<f32>,
        /// Weight of the law's word for an everyday word of a question ("sufragio" for
        /// "votar") [config: lexical.legal_word_weight].
        #[arg(long)]
        legal_word_weight: Option<f32>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective settings (file, profile, environment and flags applied) as TOML,
    /// secrets masked.
    Show,
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
    /// Hybrid search latency and the vector index's recall, over a set's corpus repeated to
    /// each size (passage vectors cached like `cabildo eval`'s).
    Search(commands::SearchBench),
    /// Load on a running server: /v1/search throughput and latency under concurrent
    /// clients, or /v1/ask time to first text and tokens/s.
    Http(bench_http::HttpBench),
    /// Mixed traffic on a running server at a fixed rate, then a burst above it: statuses
    /// and latency per route, the server's memory and descriptors over time.
    Soak(bench_soak::SoakBench),
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
        /// Keep generating past the end of the answer until this many tokens (to time decoding
        /// over a fixed length; `bench/llamacpp_reference.py --min-tokens` does the same).
        #[arg(long, default_value_t = 0)]
        min_tokens: usize,
        /// Write the rendered prompt here (to run a baseline on the very same text).
        #[arg(long)]
        save_prompt: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Builds a set's indexes and retrieves its questions' candidates, with progress.
async fn prepare<'a>(
    set: &'a EvalSet,
    options: &QueryOptions,
    dense: Option<&EvalDense>,
    reranker: Option<std::sync::Arc<dyn cabildo_core::Reranker>>,
    progress: &mut output::StepProgress,
) -> Result<PreparedSet<'a>> {
    let prepared = PreparedSet::new(
        set,
        options,
        false,
        dense,
        reranker,
        &mut progress.callback(),
    )
    .await?;
    progress.finish();
    Ok(prepared)
}

/// Questions from a file, one per line; blank lines and `#` comments skipped.
fn out_of_scope_questions(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, q)| (format!("oos-{i}"), q.to_string()))
        .collect())
}

/// Logs to stderr: JSON lines for the server (one object per event, with the request's
/// id), readable text for the other commands.
fn init_logging(json: bool) {
    let default = if json {
        "info,qdrant_edge=error"
    } else {
        "warn,qdrant_edge=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Whatever a log line carries, national ids, e-mails and phone numbers are redacted.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(security::Redacted(std::io::stderr));
    if json {
        logs.json().with_current_span(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Reads the settings with the command's own flags laid over them.
fn command_overrides(command: &Command) -> Overrides {
    let mut o = Overrides::default();
    match command {
        Command::Serve(args) => return args.flags.overrides(),
        Command::Ask(args) => args.answer.overrides(&mut o),
        Command::Search { fusion, .. } => fusion.overrides(&mut o),
        Command::Eval {
            fusion,
            answer,
            head_boost,
            phrase_boost,
            legal_word_weight,
            ..
        } => {
            fusion.overrides(&mut o);
            answer.overrides(&mut o);
            o.set("lexical.head_boost", head_boost);
            o.set("lexical.phrase_boost", phrase_boost);
            o.set("lexical.legal_word_weight", legal_word_weight);
        }
        _ => {}
    }
    o
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(matches!(
        cli.command,
        Command::Serve(_) | Command::Worker { .. }
    ));
    // Every setting is read and checked here, before any work: a bad value stops the
    // program now, naming its key and where it came from.
    let settings = cli.global.settings(command_overrides(&cli.command))?;
    let data = settings.data.dir.clone();
    let models = settings.data.models.clone();
    let open = |dense: DenseMode| {
        let settings = &settings;
        async move {
            let engine = Engine::from_settings(settings, dense)
                .await
                .with_context(|| format!("opening data folder {}", settings.data.dir.display()))?;
            // A replica's folder first applies what the others wrote (a no-op otherwise).
            engine.catch_up().await?;
            anyhow::Ok(engine)
        }
    };
    match cli.command {
        Command::Serve(_) => answer::serve(&settings).await?,
        Command::Ask(args) => {
            let engine = open(DenseMode::IfPresent).await?;
            answer::ask(&engine, &settings, &args).await?;
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => print!("{}", settings.to_toml()),
        Command::Openapi => println!("{}", cabildo_server::openapi::json()),
        Command::History(args) => {
            let engine = open(DenseMode::Off).await?;
            history::history(&engine, &args).await?;
        }
        Command::Worker {
            lease,
            poll,
            until_idle,
        } => {
            if lease == 0 || !(poll > 0.0 && poll.is_finite()) {
                bail!("--lease and --poll must be above zero");
            }
            let engine = open(DenseMode::IfPresent).await?;
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
            let options = WorkerOptions {
                name: format!("{host}:{}", std::process::id()),
                lease: std::time::Duration::from_secs(lease),
            };
            tracing::info!(worker = %options.name, "waiting for ingest jobs");
            engine
                .work(
                    &options,
                    std::time::Duration::from_secs_f64(poll),
                    until_idle,
                    cabildo_server::shutdown_signal(),
                )
                .await?;
        }
        Command::Clients { command } => security::clients(&settings, command).await?,
        Command::Feedback { command } => security::feedback(&settings, command).await?,
        Command::Audit { command } => {
            if !security::audit(&settings, command).await? {
                std::process::exit(1);
            }
        }
        Command::Ingest {
            paths,
            jurisdiction,
            access,
            tenant,
            redact_pii,
            no_dense,
            json,
        } => {
            if no_dense && settings.vectors.backend == VectorBackend::Edge && has_vectors(&settings)
            {
                bail!(
                    "{} has passage vectors ({}): an ingest must keep them in step, so \
                     --no-dense is refused; drop it, or delete that folder to go lexical-only",
                    data.display(),
                    Engine::vectors_dir(&data).display()
                );
            }
            if let Some(j) = &jurisdiction {
                if !Jurisdiction::is_country_code(j) {
                    bail!("--jurisdiction must be an ISO 3166-1 alpha-2 code such as CL or BR, got {j:?}");
                }
            }
            let engine = open(if no_dense {
                DenseMode::Off
            } else {
                DenseMode::Required
            })
            .await?;
            let defaults = IngestDefaults {
                jurisdiction,
                access,
                tenant,
                redact_pii,
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
            method,
            fusion: _,
            json,
        } => {
            if query.trim().is_empty() {
                bail!("the query is empty");
            }
            let vectors = has_vectors(&settings);
            let method = method.unwrap_or(if vectors {
                Method::Hybrid
            } else {
                Method::Lexical
            });
            if method.needs_vectors() && !vectors {
                bail!(
                    "the {} method needs passage vectors and {} has none: ingest without --no-dense",
                    method.name(),
                    data.display()
                );
            }
            let engine = open(if method.needs_vectors() {
                DenseMode::Required
            } else {
                DenseMode::Off
            })
            .await?;
            if engine.index().is_empty() {
                bail!(
                    "the index in {} is empty: run `cabildo ingest PATH --data {}` first",
                    data.display(),
                    data.display()
                );
            }
            let filters = Filters {
                jurisdictions: jurisdiction,
                kinds: kind,
                in_force_on,
                ..Filters::operator()
            };
            let hits = engine
                .search(&query, &filters, k, method, &settings.retrieval)
                .await?;
            output::search_hits(&hits, json)?;
        }
        Command::Models {
            command: ModelsCommand::List { verify, json },
        } => commands::models_list(&models, verify, json)?,
        Command::Bench {
            command: BenchCommand::Embed { set, limit, json },
        } => commands::bench_embed(&models, &set, limit, json)?,
        Command::Bench {
            command: BenchCommand::Http(args),
        } => bench_http::bench_http(&args)?,
        Command::Bench {
            command: BenchCommand::Soak(args),
        } => bench_soak::bench_soak(&args)?,
        Command::Bench {
            command: BenchCommand::Search(args),
        } => commands::bench_search(&settings, &args).await?,
        Command::Bench {
            command:
                BenchCommand::Generate {
                    set,
                    model,
                    prompt_tokens,
                    max_tokens,
                    min_tokens,
                    save_prompt,
                    json,
                },
        } => commands::bench_generate(
            &models.join(model),
            &set,
            prompt_tokens,
            (min_tokens, max_tokens),
            save_prompt.as_deref(),
            json,
        )?,
        Command::Status { check: true, json } => {
            let engine = open(DenseMode::IfPresent).await?;
            let found = engine.check().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                println!(
                    "{}: {} norms, {} passages recorded; index{} {}; {} pending; audit: {} records, {}",
                    data.display(),
                    found.norms,
                    found.passages,
                    if found.vectors_checked { " and vectors" } else { "" },
                    if found.problems.is_empty() { "match".to_string() } else { format!("{} problems", found.problems.len()) },
                    found.pending.len(),
                    found.audit_records,
                    if found.audit_problems.is_empty() { "intact" } else { "BROKEN" },
                );
                for p in found.problems.iter().chain(&found.audit_problems) {
                    println!("  {p}");
                }
            }
            if !found.consistent() {
                std::process::exit(1);
            }
        }
        Command::Status { check: false, json } => {
            let engine = open(DenseMode::IfPresent).await?;
            let vectors = match engine.dense() {
                Some(d) => Some(d.store.count().await?),
                None => None,
            };
            let status = serde_json::json!({
                "data": data.display().to_string(),
                "norms": engine.registry().norm_count().await?,
                "passages_registered": engine.registry().passage_count().await?,
                "passages_indexed": engine.index().len(),
                "passages_embedded": vectors,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{}: {} norms, {} passages registered, {} passages indexed, {} embedded",
                    data.display(),
                    status["norms"],
                    status["passages_registered"],
                    status["passages_indexed"],
                    vectors.map_or("none".to_string(), |v| v.to_string())
                );
            }
        }
        Command::Eval {
            sets,
            method,
            sweep,
            no_cache,
            answerability,
            out_of_scope,
            followups,
            answers,
            answers_log,
            limit,
            json,
            ..
        } => {
            let followups = match &followups {
                Some(path) => Some(cabildo_engine::eval::load_followups(path)?),
                None => None,
            };
            let options = query_options(&settings);
            let params = settings.retrieval.clone();
            let needs_vectors =
                sweep || answerability || answers || method.iter().any(|m| m.needs_vectors());
            let dense = if needs_vectors {
                Some(EvalDense {
                    embedder: load_embedder(&models, &settings.vectors.embedder)?,
                    cache_dir: if no_cache {
                        None
                    } else {
                        cabildo_engine::eval::default_cache_dir()
                    },
                    settings: settings.clone(),
                })
            } else {
                None
            };
            let reranker = match &settings.vectors.reranker {
                Some(name) => Some(load_reranker(&models, name)?),
                None => None,
            };
            let writer = if answers {
                Some(Writer::from_settings(&settings)?)
            } else {
                None
            };
            let ask = AskOptions::from_settings(&settings);
            let mut answer_log = match &answers_log {
                Some(path) => Some(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => None,
            };
            let mut progress = output::StepProgress::new(std::io::stderr().is_terminal());
            let mut reports = Vec::new();
            let mut answer_reports = Vec::new();
            let mut sweeps = Vec::new();
            let mut answered = Vec::new();
            for dir in &sets {
                let mut loaded =
                    EvalSet::load(dir).with_context(|| format!("loading {}", dir.display()))?;
                if let Some(n) = limit {
                    loaded = loaded.first(n);
                }
                let variants = match &followups {
                    None => vec![loaded],
                    Some(all) => {
                        let mut v = Vec::new();
                        for variant in cabildo_engine::eval::FollowUpVariant::ALL {
                            v.extend(loaded.follow_ups(all, variant)?);
                        }
                        if v.is_empty() {
                            eprintln!("{}: no follow-up questions for this set", loaded.name);
                        }
                        v
                    }
                };
                for set in &variants {
                    let plain = method.contains(&EvalMethod::Bm25Plain);
                    let plain_rrf = method.contains(&EvalMethod::PlainRrf);
                    if plain || plain_rrf {
                        let baseline = PreparedSet::new(
                            set,
                            &options,
                            true,
                            if plain_rrf { dense.as_ref() } else { None },
                            None,
                            &mut progress.callback(),
                        )
                        .await?;
                        if plain {
                            reports.push(baseline.score(Method::Lexical, &params).await?);
                        }
                        if plain_rrf {
                            let rrf = cabildo_engine::eval::plain_rrf_params();
                            reports.push(baseline.score(Method::Hybrid, &rrf).await?);
                        }
                        baseline.close().await?;
                    }
                    let prepared = prepare(
                        set,
                        &options,
                        dense.as_ref(),
                        reranker.clone(),
                        &mut progress,
                    )
                    .await?;
                    for m in &method {
                        if let EvalMethod::Retrieval(m) = m {
                            reports.push(prepared.score(*m, &params).await?);
                        }
                    }
                    if let Some(writer) = &writer {
                        let (report, scored) = prepared
                            .answers(writer, &ask, &mut progress.callback())
                            .await?;
                        if let Some(log) = answer_log.as_mut() {
                            for s in &scored {
                                serde_json::to_writer(&mut *log, s)?;
                                writeln!(log)?;
                            }
                            log.flush()?;
                        }
                        answer_reports.push(report);
                    }
                    if answerability {
                        // The set's own questions (answerable), then questions nothing in it
                        // answers, asked of the same corpus.
                        answered.push(prepared.answerability(&params, &ask).await?);
                        let other = set.with_questions(out_of_scope_questions(&out_of_scope)?);
                        let asked =
                            prepare(&other, &options, dense.as_ref(), None, &mut progress).await?;
                        let mut outside = asked.answerability(&params, &ask).await?;
                        asked.close().await?;
                        outside.set = format!("{} (out-of-scope questions)", set.name);
                        answered.push(outside);
                    }
                    if sweep {
                        let grid = cabildo_engine::eval::sweep_grid();
                        let mut scored = Vec::with_capacity(grid.len());
                        for p in &grid {
                            scored.push(prepared.score(Method::Hybrid, p).await?);
                        }
                        sweeps.push(scored);
                    }
                    prepared.close().await?;
                }
            }
            output::eval_reports(&reports, json)?;
            if sweep {
                output::sweep_report(&sweeps, json)?;
            }
            output::answer_reports(&answer_reports, json)?;
            for a in &answered {
                if json {
                    println!("{}", serde_json::to_string(a)?);
                } else {
                    println!(
                        "{}: answered {} of {} questions ({:.1}%), abstained on the rest",
                        a.set,
                        a.answered,
                        a.questions,
                        100.0 * a.answered as f64 / a.questions.max(1) as f64
                    );
                }
            }
        }
    }
    Ok(())
}
