//! Command-line flags as the last layer of the settings (`cabildo_core::settings`): each flag
//! that is given overrides one key of `config/cabildo.toml` (and of `CABILDO__…` variables);
//! a flag not given leaves the key as the file and the environment set it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cabildo_core::settings::{Layers, Settings};
use clap::Args;
use serde::Serialize;

/// Where the configuration file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "config/cabildo.toml";

/// Flag values to lay over the settings, by dotted key.
#[derive(Default)]
pub struct Overrides(Vec<(String, serde_json::Value)>);

impl Overrides {
    /// Sets `key` to `value` when the flag was given.
    pub fn set<T: Serialize>(&mut self, key: &str, value: &Option<T>) {
        if let Some(v) = value {
            if let Ok(v) = serde_json::to_value(v) {
                self.0.push((key.to_string(), v));
            }
        }
    }
}

/// Options every command takes: where the settings come from, and the data and models
/// folders and dense retrieval's parts.
#[derive(Args, Clone)]
pub struct GlobalFlags {
    /// Configuration file [default: config/cabildo.toml when present, else built-in defaults].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Profile: embedded (the default) or cluster (profiles/NAME.toml beside the file).
    #[arg(long, global = true, env = "CABILDO_PROFILE")]
    pub profile: Option<String>,
    /// Data folder holding the index and the registry [config: data.dir].
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Folder with the model files, installed by scripts/setup-models.sh [config: data.models].
    #[arg(long, global = true)]
    pub models: Option<PathBuf>,
    /// Embedding model: e5-small, a BERT-family folder under --models, or a Llama-family GGUF
    /// folder as NAME, NAME:last or NAME:mean [config: vectors.embedder].
    #[arg(long, global = true)]
    pub embedder: Option<String>,
    /// Where passage vectors live: edge (embedded) or qdrant [config: vectors.backend].
    #[arg(long, global = true, value_parser = ["edge", "qdrant"])]
    pub vectors: Option<String>,
    /// Qdrant's gRPC address for --vectors qdrant [config: vectors.qdrant_url].
    #[arg(long, global = true)]
    pub qdrant_url: Option<String>,
    /// Qdrant API key (better: CABILDO__VECTORS__QDRANT_API_KEY).
    #[arg(long, global = true)]
    pub qdrant_api_key: Option<String>,
    /// Qdrant collection [config: vectors.collection].
    #[arg(long, global = true)]
    pub qdrant_collection: Option<String>,
    /// Cross-encoder folder under --models for the rerank method [config: vectors.reranker].
    #[arg(long, global = true)]
    pub reranker: Option<String>,
}

impl GlobalFlags {
    /// Reads the settings: defaults, the configuration file, the profile, the environment,
    /// then these flags and the command's own (`command`).
    pub fn settings(&self, command: Overrides) -> Result<Settings> {
        let mut o = Overrides::default();
        o.set("data.dir", &self.data);
        o.set("data.models", &self.models);
        o.set("vectors.embedder", &self.embedder);
        o.set("vectors.backend", &self.vectors);
        o.set("vectors.qdrant_url", &self.qdrant_url);
        o.set("vectors.qdrant_api_key", &self.qdrant_api_key);
        o.set("vectors.collection", &self.qdrant_collection);
        o.set("vectors.reranker", &self.reranker);
        o.0.extend(command.0);
        let file = self.config.clone().or_else(|| {
            let default = Path::new(DEFAULT_CONFIG);
            default.is_file().then(|| default.to_path_buf())
        });
        let layers = Layers {
            file,
            profile: self.profile.clone(),
            flags: o.0,
        };
        Ok(Settings::load(&layers)?)
    }
}

/// Hybrid retrieval's knobs [config: retrieval.*].
#[derive(Args, Clone)]
pub struct FusionFlags {
    /// rrf (weighted reciprocal-rank fusion) or score (min-max-normalised scores).
    #[arg(long, value_parser = ["rrf", "score"])]
    pub fusion: Option<String>,
    /// Weight of the dense ranking for long questions (40 words or more), 0..1.
    #[arg(long)]
    pub dense_weight: Option<f32>,
    /// Weight of the dense ranking for short questions (20 words or fewer; in between, the
    /// weight moves linearly), 0..1.
    #[arg(long)]
    pub short_dense_weight: Option<f32>,
    /// Top fused passages that move the question's vector for a second dense search
    /// (pseudo-relevance feedback); 0 turns it off.
    #[arg(long)]
    pub feedback: Option<usize>,
    /// Words of those passages added to a second lexical search (pseudo-relevance feedback
    /// on words); 0 turns it off.
    #[arg(long)]
    pub term_feedback: Option<usize>,
    /// Weight of the most salient of those words relative to a question's word, 0..1.
    #[arg(long)]
    pub term_feedback_weight: Option<f32>,
    /// RRF's k.
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// Candidates taken from each retriever.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Fused candidates the reranker re-scores.
    #[arg(long)]
    pub rerank_depth: Option<usize>,
}

impl FusionFlags {
    /// The flags given, as overrides.
    pub fn overrides(&self, o: &mut Overrides) {
        o.set("retrieval.fusion", &self.fusion);
        o.set("retrieval.dense_weight", &self.dense_weight);
        o.set("retrieval.short_dense_weight", &self.short_dense_weight);
        o.set("retrieval.feedback", &self.feedback);
        o.set("retrieval.term_feedback", &self.term_feedback);
        o.set("retrieval.term_feedback_weight", &self.term_feedback_weight);
        o.set("retrieval.rrf_k", &self.rrf_k);
        o.set("retrieval.lexical_depth", &self.depth);
        o.set("retrieval.dense_depth", &self.depth);
        o.set("retrieval.rerank_depth", &self.rerank_depth);
    }
}

/// Who writes answers and how [config: answer.*]; shared by `serve` and `ask`.
#[derive(Args, Clone)]
pub struct AnswerFlags {
    /// local (a GGUF model in-process), openai (an OpenAI-compatible server) or extractive
    /// (quotes only). Also `--writer`.
    #[arg(long, alias = "writer", value_parser = ["local", "openai", "extractive"])]
    pub generator: Option<String>,
    /// Model folder under --models for `--generator local`: its `model.gguf`, or a Llama
    /// safetensors checkpoint (`config.json`, `*.safetensors`, `tokenizer.json`).
    #[arg(long)]
    pub generator_model: Option<String>,
    /// Base URL of the OpenAI-compatible server (e.g. http://gpu-node:8000/v1).
    #[arg(long)]
    pub openai_url: Option<String>,
    /// Model name to ask that server for.
    #[arg(long)]
    pub openai_model: Option<String>,
    /// API key for that server (better: CABILDO__ANSWER__OPENAI_API_KEY).
    #[arg(long)]
    pub openai_api_key: Option<String>,
    /// That model's context window in tokens.
    #[arg(long)]
    pub openai_context: Option<usize>,
    /// Passages given to the writer as numbered sources (1..20).
    #[arg(long)]
    pub sources: Option<usize>,
    /// Characters of each source shown to the model.
    #[arg(long)]
    pub source_chars: Option<usize>,
    /// At most this many generated tokens per answer.
    #[arg(long)]
    pub max_tokens: Option<usize>,
}

impl AnswerFlags {
    /// The flags given, as overrides.
    pub fn overrides(&self, o: &mut Overrides) {
        o.set("answer.generator", &self.generator);
        o.set("answer.model", &self.generator_model);
        o.set("answer.openai_url", &self.openai_url);
        o.set("answer.openai_model", &self.openai_model);
        o.set("answer.openai_api_key", &self.openai_api_key);
        o.set("answer.openai_context", &self.openai_context);
        o.set("answer.sources", &self.sources);
        o.set("answer.source_chars", &self.source_chars);
        o.set("answer.max_tokens", &self.max_tokens);
    }
}

/// The server's own flags [config: server.*, auth.*, limits.*].
#[derive(Args, Clone)]
pub struct ServeFlags {
    /// Address to listen on.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Answers generated at once.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Answers that may wait for a generation slot; more get 503 with Retry-After.
    #[arg(long)]
    pub queue: Option<usize>,
    /// Seconds before a request that has not answered gets 504.
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Largest JSON body, in bytes.
    #[arg(long)]
    pub body_limit: Option<usize>,
    /// Largest document upload, in bytes.
    #[arg(long)]
    pub upload_limit: Option<usize>,
    /// Refuse callers without credentials (401) instead of serving them as anonymous
    /// citizens (public documents only).
    #[arg(long)]
    pub no_anonymous: bool,
    /// Shared secret for HS256 tokens, 32+ characters (development only; better:
    /// CABILDO__AUTH__JWT_SECRET).
    #[arg(long)]
    pub jwt_secret: Option<String>,
    /// Public keys for RS256/ES256 tokens: a JWKS file, or its https:// URL.
    #[arg(long)]
    pub jwks: Option<String>,
    /// An OIDC issuer (ClaveÚnica, gov.br…): its discovery document names the JWKS, and
    /// tokens must carry it as `iss`.
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// Required `iss` (defaults to --oidc-issuer).
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Requests per minute from one client IP (0: no limit, e.g. for load tests).
    #[arg(long)]
    pub rate_per_ip: Option<u32>,
    /// Requests per minute by one signed-in caller or API key (0: no limit).
    #[arg(long)]
    pub rate_per_caller: Option<u32>,
    /// Requests per UTC day for partners whose key sets no quota (0: unlimited).
    #[arg(long)]
    pub partner_daily_quota: Option<u64>,
    #[command(flatten)]
    pub answer: AnswerFlags,
}

impl ServeFlags {
    /// The flags given, as overrides.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        o.set("server.addr", &self.addr);
        o.set("server.workers", &self.workers);
        o.set("server.queue", &self.queue);
        o.set("server.request_timeout_s", &self.request_timeout);
        o.set("server.body_limit", &self.body_limit);
        o.set("server.upload_limit", &self.upload_limit);
        o.set("auth.anonymous", &self.no_anonymous.then_some(false));
        o.set("auth.jwt_secret", &self.jwt_secret);
        o.set("auth.jwks", &self.jwks);
        o.set("auth.oidc_issuer", &self.oidc_issuer);
        o.set("auth.jwt_issuer", &self.jwt_issuer);
        o.set("auth.jwt_audience", &self.jwt_audience);
        o.set("limits.per_ip_per_minute", &self.rate_per_ip);
        o.set("limits.per_caller_per_minute", &self.rate_per_caller);
        o.set("limits.partner_daily_quota", &self.partner_daily_quota);
        self.answer.overrides(&mut o);
        o
    }
}
