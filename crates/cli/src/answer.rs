//! `cabildo serve` and `cabildo ask`: who writes answers (a local model, an OpenAI-compatible
//! server, or quotes only) and how the server behaves.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cabildo_core::{Filters, Language};
use cabildo_engine::answer::{compose, AskOptions, Question, Register, Writer};
use cabildo_engine::Engine;
use cabildo_models::{LocalGenerator, OpenAiGenerator};
use cabildo_server::{AppState, Config};
use clap::{Args, ValueEnum};

/// Who writes answers.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GeneratorKind {
    /// The GGUF model in --generator-model, in-process (candle).
    Local,
    /// A model behind an OpenAI-compatible server at --openai-url (vLLM, TGI, llama.cpp).
    Openai,
    /// No model: the best sentences of the top passages, quoted and cited.
    Extractive,
}

/// Options of answering, shared by `serve` and `ask`.
#[derive(Args, Clone)]
pub struct AnswerArgs {
    /// Who writes answers.
    #[arg(long, env = "CABILDO_GENERATOR", value_enum, default_value_t = GeneratorKind::Local)]
    pub generator: GeneratorKind,
    /// Model folder under --models for `--generator local` (model.gguf, optional tokenizer.json).
    #[arg(long, env = "CABILDO_GENERATOR_MODEL", default_value = "qwen2.5-0.5b")]
    pub generator_model: String,
    /// Base URL of the OpenAI-compatible server (e.g. http://gpu-node:8000/v1).
    #[arg(long, env = "CABILDO_OPENAI_URL")]
    pub openai_url: Option<String>,
    /// Model name to ask that server for.
    #[arg(long, env = "CABILDO_OPENAI_MODEL", default_value = "latam-gpt")]
    pub openai_model: String,
    /// API key for that server.
    #[arg(long, env = "CABILDO_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// That model's context window in tokens.
    #[arg(long, default_value_t = 8192)]
    pub openai_context: usize,
    /// Passages given to the writer as numbered sources.
    #[arg(long, default_value_t = AskOptions::default().sources)]
    pub sources: usize,
    /// Characters of each source shown to the model.
    #[arg(long, default_value_t = AskOptions::default().source_chars)]
    pub source_chars: usize,
    /// At most this many generated tokens per answer.
    #[arg(long, default_value_t = AskOptions::default().max_tokens)]
    pub max_tokens: usize,
}

impl AnswerArgs {
    /// Loads the writer.
    pub fn writer(&self, models: &Path) -> Result<Writer> {
        Ok(match self.generator {
            GeneratorKind::Extractive => Writer::Extractive,
            GeneratorKind::Local => {
                let dir = models.join(&self.generator_model);
                let tokenizer = dir.join("tokenizer.json");
                let g = LocalGenerator::from_gguf(
                    &dir.join("model.gguf"),
                    tokenizer.is_file().then_some(tokenizer.as_path()),
                )
                .with_context(|| format!("loading the generator from {}", dir.display()))?;
                Writer::Model(Arc::new(g))
            }
            GeneratorKind::Openai => {
                let Some(url) = &self.openai_url else {
                    bail!("--generator openai needs --openai-url (or CABILDO_OPENAI_URL)");
                };
                Writer::Model(Arc::new(OpenAiGenerator::new(
                    url,
                    self.openai_api_key.clone(),
                    &self.openai_model,
                    self.openai_context,
                    Duration::from_secs(300),
                )))
            }
        })
    }

    /// Answering options.
    pub fn options(&self) -> Result<AskOptions> {
        if self.sources == 0 || self.sources > 20 {
            bail!("--sources must be between 1 and 20");
        }
        Ok(AskOptions {
            sources: self.sources,
            source_chars: self.source_chars,
            max_tokens: self.max_tokens,
            ..AskOptions::default()
        })
    }
}

/// Options of `cabildo serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CABILDO_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub auth: crate::security::AuthArgs,
    /// Answers generated at once.
    #[arg(long, default_value_t = Config::default().generation_workers)]
    pub workers: usize,
    /// Answers that may wait for a generation slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = Config::default().queue_capacity)]
    pub queue: usize,
    /// Seconds before a request that has not answered gets 504.
    #[arg(long, default_value_t = Config::default().request_timeout.as_secs())]
    pub request_timeout: u64,
    /// Largest JSON body, in bytes.
    #[arg(long, default_value_t = Config::default().body_limit)]
    pub body_limit: usize,
    /// Largest document upload, in bytes.
    #[arg(long, default_value_t = Config::default().upload_limit)]
    pub upload_limit: usize,
    #[command(flatten)]
    pub answer: AnswerArgs,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(engine: Engine, models: &Path, args: &ServeArgs) -> Result<()> {
    let writer = args.answer.writer(models)?;
    let config = Config {
        body_limit: args.body_limit,
        upload_limit: args.upload_limit,
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        generation_workers: args.workers.max(1),
        queue_capacity: args.queue,
        auth: args.auth.auth()?,
        limits: args.auth.limits(),
        ask: args.answer.options()?,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, model = %writer.name(), passages = engine.index().len(), "serving");
    // The address on stdout, for scripts and tests that bind port 0.
    println!("listening on http://{local}");
    std::io::stdout().flush()?;
    let state = Arc::new(AppState::new(Arc::new(engine), writer, config).await?);
    cabildo_server::serve(listener, state, cabildo_server::shutdown_signal()).await?;
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
    pub answer: AnswerArgs,
}

/// Answers one question, streaming checked text to stdout, then the sources.
pub async fn ask(engine: &Engine, models: &Path, args: &AskArgs) -> Result<()> {
    if args.question.trim().is_empty() {
        bail!("the question is empty");
    }
    if engine.index().is_empty() {
        bail!(
            "the index in {} is empty: run `cabildo ingest PATH` first",
            engine.data_dir().display()
        );
    }
    let writer = args.answer.writer(models)?;
    let options = args.answer.options()?;
    let question = Question {
        text: args.question.clone(),
        filters: Filters {
            jurisdictions: args.jurisdiction.iter().map(|j| j.to_uppercase()).collect(),
            in_force_on: args.in_force_on,
            ..Filters::operator()
        },
        language: args.language,
        register: args.register,
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
