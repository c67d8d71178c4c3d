//! Every setting of a Cabildo deployment, typed, with the measured defaults.
//!
//! `config/cabildo.toml` documents each key and holds these same defaults (a test keeps the
//! two in step). Settings are read in layers, each overriding the one before: the defaults
//! here, the configuration file, the profile's file (`profiles/NAME.toml` beside it), the
//! environment (`CABILDO__SECTION__KEY`), then command-line flags. A value that does not
//! parse, a key nobody reads, or a value out of range fails at start-up with the key and
//! where it came from, never at the first request.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::retrieval::HybridParams;

/// The prefix of the environment variables that override settings:
/// `CABILDO__RETRIEVAL__DENSE_WEIGHT=0.5`.
pub const ENV_PREFIX: &str = "CABILDO__";

/// What a masked secret shows in `cabildo config show`.
const MASK: &str = "********";

/// `url` with its password masked, for messages and `cabildo config show`
/// (`postgres://cabildo:********@db/cabildo`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(MASK));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an address that does not parse)".into(),
    }
}

/// Whether `s` is a web origin as browsers send it: `http` or `https`, a host (name, IPv4
/// or bracketed IPv6) and an optional port, nothing after.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = if rest.starts_with('[') {
        match rest.find(']') {
            Some(end) => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
            None => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if rest.len() > host.len() && port.is_none() {
        return false; // something other than a port after an IPv6 host
    }
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        }
    };
    port_ok && host_ok
}

/// Where the data and the model files are (`[data]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// The data folder: tantivy index, SQLite registry, embedded vectors, uploads.
    pub dir: PathBuf,
    /// The folder `scripts/setup-models.sh` installs model files into.
    pub models: PathBuf,
    /// The registry shared by several replicas: `postgres://user:password@host/database`
    /// (its password masked by `cabildo config show`). Unset: `registry.sqlite` in `dir`.
    pub registry: Option<String>,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            dir: "data".into(),
            models: "models".into(),
            registry: None,
        }
    }
}

/// Where passage vectors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    /// The embedded Qdrant engine, in the data folder's `vectors/` (no server needed).
    Edge,
    /// A Qdrant server or cluster at `vectors.qdrant_url`.
    Qdrant,
}

/// Dense retrieval: the embedding model and the vector store (`[vectors]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorSettings {
    /// Embedding model: `e5-small`, a BERT-family folder under `data.models`, or a
    /// Llama-family GGUF folder as `NAME`, `NAME:last` or `NAME:mean`.
    pub embedder: String,
    /// `edge` (embedded) or `qdrant` (a server).
    pub backend: VectorBackend,
    /// Qdrant's gRPC address for the `qdrant` backend (e.g. `http://localhost:6334`).
    pub qdrant_url: Option<String>,
    /// Qdrant API key (a secret: masked by `cabildo config show`).
    pub qdrant_api_key: Option<String>,
    /// Qdrant collection.
    pub collection: String,
    /// Shards of a Qdrant collection when Cabildo creates it (a cluster spreads them over
    /// its nodes); an existing collection keeps its own.
    pub shards: u32,
    /// Copies of each shard on different nodes when Cabildo creates the collection: 2 keeps
    /// every search answering when one node is lost.
    pub replication_factor: u32,
    /// Cross-encoder folder under `data.models` for the rerank method.
    pub reranker: Option<String>,
}

impl Default for VectorSettings {
    fn default() -> Self {
        VectorSettings {
            embedder: "e5-small".into(),
            backend: VectorBackend::Edge,
            qdrant_url: None,
            qdrant_api_key: None,
            collection: "cabildo".into(),
            shards: 1,
            replication_factor: 1,
            reranker: None,
        }
    }
}

/// The lexical ranking's knobs (`[lexical]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LexicalSettings {
    /// Weight of a match in the heading (norm title, breadcrumb, provision) relative to one
    /// in the text.
    pub head_boost: f32,
    /// Weight of a match of two consecutive query words in the same order in the text, for
    /// questions of 40 words or more; none up to 20 words, growing in between.
    pub phrase_boost: f32,
    /// Weight of the law's word for an everyday word of a question ("sufragio" for "votar"),
    /// relative to the question's word; 0 turns it off.
    pub legal_word_weight: f32,
    /// At most this many distinct terms per language are kept from a long question.
    pub max_terms: usize,
    /// Snippet length in characters.
    pub snippet_chars: usize,
}

impl Default for LexicalSettings {
    fn default() -> Self {
        LexicalSettings {
            head_boost: 0.5,
            phrase_boost: 0.5,
            legal_word_weight: 0.5,
            max_terms: 96,
            snippet_chars: 240,
        }
    }
}

/// Who writes answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// The GGUF model in `answer.model`, in-process (candle).
    Local,
    /// A model behind an OpenAI-compatible server at `answer.openai_url`.
    Openai,
    /// No model: the best sentences of the top passages, quoted and cited.
    Extractive,
}

/// How answers are written and when they abstain (`[answer]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerSettings {
    /// `local`, `openai` or `extractive`.
    pub generator: GeneratorKind,
    /// Model folder under `data.models` for the local generator.
    pub model: String,
    /// Base URL of the OpenAI-compatible server (e.g. `http://gpu-node:8000/v1`).
    pub openai_url: Option<String>,
    /// Model name to ask that server for.
    pub openai_model: String,
    /// API key for that server (a secret).
    pub openai_api_key: Option<String>,
    /// That model's context window in tokens.
    pub openai_context: usize,
    /// Seconds a call to that server may take.
    pub openai_timeout_s: u64,
    /// Passages given to the writer as numbered sources (1..=20).
    pub sources: usize,
    /// Characters of each source shown to the model.
    pub source_chars: usize,
    /// At most this many generated tokens per answer.
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy, reproducible).
    pub temperature: f64,
    /// The closest passage's cosine similarity to the question at or above this counts as
    /// relevant (calibrated with `cabildo eval --answerability`).
    pub min_cosine: f32,
    /// A passage holding this share of the question's content terms (and three of them),
    /// or all of them, counts as relevant.
    pub min_coverage: f32,
}

impl Default for AnswerSettings {
    fn default() -> Self {
        AnswerSettings {
            generator: GeneratorKind::Local,
            model: "qwen2.5-0.5b".into(),
            openai_url: None,
            openai_model: "latam-gpt".into(),
            openai_api_key: None,
            openai_context: 8192,
            openai_timeout_s: 300,
            sources: 4,
            source_chars: 700,
            max_tokens: 200,
            temperature: 0.0,
            min_cosine: 0.865,
            min_coverage: 0.75,
        }
    }
}

/// How the HTTP server behaves (`[server]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Answers generated at once.
    pub workers: usize,
    /// Answers that may wait for a generation slot; more get 503 with Retry-After.
    pub queue: usize,
    /// Seconds before a request that has not answered gets 504.
    pub request_timeout_s: u64,
    /// Retry-After of a 503, in seconds.
    pub retry_after_s: u64,
    /// Largest JSON body, in bytes.
    pub body_limit: usize,
    /// Largest document upload, in bytes.
    pub upload_limit: usize,
    /// Web origins (`https://portal.gob.cl`) whose pages may call the API from a browser
    /// (CORS) and frame `/embed`; none by default.
    pub cors_origins: Vec<String>,
    /// Seconds a client has to send a request's head (and an idle kept-alive connection
    /// stays open); slower ones are disconnected.
    pub header_timeout_s: u64,
    /// API requests served at once; more are refused at once with 503 and Retry-After.
    pub max_in_flight: usize,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Queue uploads in the registry for `cabildo worker` instead of ingesting them in the
    /// API process (the cluster profile).
    pub queue_uploads: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 1,
            queue: 8,
            request_timeout_s: 180,
            retry_after_s: 30,
            body_limit: 64 * 1024,
            upload_limit: 50 * 1024 * 1024,
            cors_origins: Vec::new(),
            header_timeout_s: 30,
            max_in_flight: 64,
            tls_cert: None,
            tls_key: None,
            queue_uploads: false,
        }
    }
}

/// Who may call and how they prove it (`[auth]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Serve callers without credentials as anonymous citizens (public documents only);
    /// `false` answers them 401.
    pub anonymous: bool,
    /// Shared secret for HS256 tokens, at least 32 characters (development only; a secret).
    pub jwt_secret: Option<String>,
    /// Public keys for RS256/ES256 tokens: a JWKS file, or its https:// URL.
    pub jwks: Option<String>,
    /// An OIDC issuer: its discovery document names the JWKS, and tokens must carry it.
    pub oidc_issuer: Option<String>,
    /// Required `iss` (defaults to `oidc_issuer`).
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    pub jwt_audience: Option<String>,
    /// Key of the callers' pseudonyms in the audit log and the quota counts, at least 32
    /// characters (a secret). Replicas that share a registry must share it; unset, each data
    /// folder makes its own (`audit.key`).
    pub pseudonym_key: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            anonymous: true,
            jwt_secret: None,
            jwks: None,
            oidc_issuer: None,
            jwt_issuer: None,
            jwt_audience: None,
            pseudonym_key: None,
        }
    }
}

/// Request rates and quotas (`[limits]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests per minute from one client IP (0: no limit).
    pub per_ip_per_minute: u32,
    /// Requests per minute by one signed-in caller or API key (0: no limit).
    pub per_caller_per_minute: u32,
    /// Requests per UTC day for partners whose key sets no quota (0: unlimited).
    pub partner_daily_quota: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_ip_per_minute: 300,
            per_caller_per_minute: 120,
            partner_daily_quota: 10_000,
        }
    }
}

/// Every setting, by section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `[data]`.
    pub data: DataSettings,
    /// `[vectors]`.
    pub vectors: VectorSettings,
    /// `[lexical]`.
    pub lexical: LexicalSettings,
    /// `[retrieval]`.
    pub retrieval: HybridParams,
    /// `[answer]`.
    pub answer: AnswerSettings,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[limits]`.
    pub limits: LimitSettings,
}

/// Why settings could not be read: the key, what is wrong, and where the value came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("setting {key}: {reason} (from {origin})")]
pub struct SettingsError {
    /// The dotted key (`retrieval.dense_weight`).
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
    /// The file, environment variable or flag it came from.
    pub origin: String,
}

/// Where settings are read from, besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// The configuration file; `None` reads none. A file named here must exist.
    pub file: Option<PathBuf>,
    /// A profile: `profiles/NAME.toml` beside the file is read after it (`embedded`, the
    /// default, has nothing to add).
    pub profile: Option<String>,
    /// Command-line overrides: dotted keys and their values, applied last.
    pub flags: Vec<(String, serde_json::Value)>,
}

impl Settings {
    /// Reads the layers (defaults, file, profile file, `CABILDO__…` environment, flags) and
    /// checks the result.
    pub fn load(layers: &Layers) -> Result<Settings, SettingsError> {
        Self::load_with_env(layers, Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn load_with_env(layers: &Layers, env: Env) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = &layers.file {
            if !file.is_file() {
                return Err(SettingsError {
                    key: "--config".into(),
                    reason: "no such file".into(),
                    origin: file.display().to_string(),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        if let Some(profile) = layers.profile.as_deref().filter(|p| *p != "embedded") {
            let dir = layers
                .file
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("config"));
            let path = dir.join("profiles").join(format!("{profile}.toml"));
            if !path.is_file() {
                return Err(SettingsError {
                    key: "--profile".into(),
                    reason: format!("no profile {profile:?}"),
                    origin: path.display().to_string(),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(env);
        for (key, value) in &layers.flags {
            figment = figment.merge(Serialized::default(key, value));
        }
        let settings: Settings = figment.extract().map_err(|e| {
            let e = e
                .into_iter()
                .next()
                .unwrap_or_else(|| figment::Error::from("settings could not be read".to_string()));
            let key = e.path.join(".");
            SettingsError {
                origin: origin(&figment, &key, e.metadata.as_ref()),
                reason: e.kind.to_string(),
                key,
            }
        })?;
        settings.check().map_err(|(key, reason)| SettingsError {
            origin: origin(&figment, &key, None),
            key,
            reason,
        })?;
        Ok(settings)
    }

    /// Values that parse but make no sense: the first found, as (dotted key, why).
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: &str| Err((key.to_string(), why.to_string()));
        let r = &self.retrieval;
        for (key, w) in [
            ("retrieval.dense_weight", r.dense_weight),
            ("retrieval.short_dense_weight", r.short_dense_weight),
            ("retrieval.term_feedback_weight", r.term_feedback_weight),
            ("answer.min_cosine", self.answer.min_cosine),
            ("answer.min_coverage", self.answer.min_coverage),
        ] {
            if !(0.0..=1.0).contains(&w) {
                return bad(key, "must be between 0 and 1");
            }
        }
        if r.rrf_k.is_nan() || r.rrf_k <= 0.0 {
            return bad("retrieval.rrf_k", "must be above 0");
        }
        for (key, depth) in [
            ("retrieval.lexical_depth", r.lexical_depth),
            ("retrieval.dense_depth", r.dense_depth),
            ("retrieval.rerank_depth", r.rerank_depth),
        ] {
            if !(1..=1000).contains(&depth) {
                return bad(key, "must be between 1 and 1000");
            }
        }
        if r.term_feedback > 50 {
            return bad("retrieval.term_feedback", "must be at most 50");
        }
        if !(1..=20).contains(&self.answer.sources) {
            return bad("answer.sources", "must be between 1 and 20");
        }
        if !(0.0..=2.0).contains(&self.answer.temperature) {
            return bad("answer.temperature", "must be between 0 and 2");
        }
        if self.answer.max_tokens == 0 {
            return bad("answer.max_tokens", "must be at least 1");
        }
        if self.answer.generator == GeneratorKind::Openai && self.answer.openai_url.is_none() {
            return bad("answer.openai_url", "the openai generator needs its URL");
        }
        if self.vectors.shards == 0 {
            return bad("vectors.shards", "must be at least 1");
        }
        if self.vectors.replication_factor == 0 {
            return bad("vectors.replication_factor", "must be at least 1");
        }
        if let Some(r) = &self.data.registry {
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| r.starts_with(p))
                || url::Url::parse(r).is_err()
            {
                return bad(
                    "data.registry",
                    "expected postgres://user:password@host/database (or sqlite://FILE)",
                );
            }
        }
        if self.vectors.backend == VectorBackend::Qdrant && self.vectors.qdrant_url.is_none() {
            return bad("vectors.qdrant_url", "the qdrant backend needs its URL");
        }
        if self.server.workers == 0 {
            return bad("server.workers", "must be at least 1");
        }
        if self.server.request_timeout_s == 0 {
            return bad("server.request_timeout_s", "must be at least 1");
        }
        if self.server.header_timeout_s == 0 {
            return bad("server.header_timeout_s", "must be at least 1");
        }
        if self.server.max_in_flight == 0 {
            return bad("server.max_in_flight", "must be at least 1");
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => return bad("server.tls_key", "tls_cert needs its tls_key"),
            (None, Some(_)) => return bad("server.tls_cert", "tls_key needs its tls_cert"),
            _ => {}
        }
        if let Some(o) = self.server.cors_origins.iter().find(|o| !is_origin(o)) {
            return bad(
                "server.cors_origins",
                &format!("{o:?} is not an origin like https://portal.gob.cl (scheme, host, optional port; no path)"),
            );
        }
        let a = &self.auth;
        if a.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return bad("auth.jwt_secret", "must be at least 32 characters");
        }
        if a.pseudonym_key.as_ref().is_some_and(|s| s.len() < 32) {
            return bad("auth.pseudonym_key", "must be at least 32 characters");
        }
        if a.jwks.is_some() && a.oidc_issuer.is_some() {
            return bad("auth.jwks", "give jwks or oidc_issuer, not both");
        }
        Ok(())
    }

    /// The settings with every secret replaced by a mask, for printing.
    pub fn masked(&self) -> Settings {
        let mask = |s: &Option<String>| s.as_ref().map(|_| MASK.to_string());
        let mut out = self.clone();
        out.vectors.qdrant_api_key = mask(&self.vectors.qdrant_api_key);
        out.answer.openai_api_key = mask(&self.answer.openai_api_key);
        out.auth.jwt_secret = mask(&self.auth.jwt_secret);
        out.auth.pseudonym_key = mask(&self.auth.pseudonym_key);
        out.data.registry = self.data.registry.as_deref().map(redact_url);
        out
    }

    /// The settings as TOML, secrets masked (`cabildo config show`).
    pub fn to_toml(&self) -> String {
        let printed = toml::Value::try_from(self.masked()).and_then(|mut v| {
            shortest_floats(&mut v);
            toml::to_string_pretty(&v)
        });
        printed.unwrap_or_else(|e| format!("# the settings could not be printed: {e}\n"))
    }
}

/// Floats that were `f32`s printed as they were written (`0.45`, not `0.44999998807907104`):
/// serde widens an `f32` to `f64` on the way to TOML.
fn shortest_floats(v: &mut toml::Value) {
    match v {
        toml::Value::Float(f) => {
            let narrow = *f as f32;
            if f64::from(narrow) == *f {
                *f = narrow.to_string().parse().unwrap_or(*f);
            }
        }
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| shortest_floats(v)),
        toml::Value::Array(a) => a.iter_mut().for_each(shortest_floats),
        _ => {}
    }
}

/// Where the value of `key` came from, in words: a file's path, the environment variable's
/// name, or the flag's key.
fn origin(figment: &Figment, key: &str, metadata: Option<&figment::Metadata>) -> String {
    let Some(m) = metadata.or_else(|| figment.find_metadata(key)) else {
        return "the defaults".into();
    };
    if let Some(source) = &m.source {
        return source.to_string();
    }
    if m.name.contains("environment variable") {
        return format!(
            "environment variable {ENV_PREFIX}{}",
            key.to_uppercase().replace('.', "__")
        );
    }
    if m.name.contains("Serialized") {
        return format!("the command-line flag for {key}");
    }
    m.name.to_string()
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "https://portal.gob.cl",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://a-b.gov.br",
        ] {
            assert!(super::is_origin(ok), "{ok}");
        }
        for bad in [
            "portal.gob.cl",
            "https://portal.gob.cl/",
            "https://x.cl/path",
            "https://x.cl:",
            "https://X.cl",
            "ftp://x.cl",
            "*",
            "https://[::1]x",
            "https://x.cl:99999a",
        ] {
            assert!(!super::is_origin(bad), "{bad}");
        }
    }

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn the_project_file_holds_the_defaults() {
        let file = crate::fixtures::workspace_root().join("config/cabildo.toml");
        let layers = Layers {
            file: Some(file),
            ..Layers::default()
        };
        let read = Settings::load_with_env(&layers, Env::prefixed("CABILDO_TEST_NONE__"))
            .expect("config/cabildo.toml reads");
        assert_eq!(read, Settings::default());
    }

    /// No environment variable has this prefix: the tests read files and flags only.
    fn no_env() -> Env {
        Env::prefixed("CABILDO_TEST_UNSET_PREFIX__").split("__")
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            "c.toml",
            "[retrieval]\ndense_weight = \"heavy\"\n",
        );
        let layers = Layers {
            file: Some(file.clone()),
            ..Layers::default()
        };
        let e = Settings::load_with_env(&layers, no_env()).expect_err("refused");
        assert_eq!(e.key, "retrieval.dense_weight");
        assert!(e.origin.contains("c.toml"), "{e}");
        let file = write(dir.path(), "d.toml", "[retrieval]\ndense_weight = 1.5\n");
        let layers = Layers {
            file: Some(file),
            ..Layers::default()
        };
        let e = Settings::load_with_env(&layers, no_env()).expect_err("out of range");
        assert_eq!(e.key, "retrieval.dense_weight");
        assert!(
            e.reason.contains("between 0 and 1") && e.origin.contains("d.toml"),
            "{e}"
        );
        let file = write(dir.path(), "e.toml", "[retrieval]\ndense_wieght = 0.5\n");
        let layers = Layers {
            file: Some(file),
            ..Layers::default()
        };
        let e = Settings::load_with_env(&layers, no_env()).expect_err("unknown key");
        assert!(e.reason.contains("dense_wieght"), "{e}");
        let file = write(dir.path(), "f.toml", "[server]\ntls_cert = \"cert.pem\"\n");
        let layers = Layers {
            file: Some(file),
            ..Layers::default()
        };
        let e = Settings::load_with_env(&layers, no_env()).expect_err("a cert without its key");
        assert_eq!(e.key, "server.tls_key", "{e}");
    }

    #[test]
    fn profiles_and_flags_layer_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            "cabildo.toml",
            "[answer]\nsources = 5\nmax_tokens = 300\n",
        );
        write(
            dir.path(),
            "profiles/cluster.toml",
            "[vectors]\nbackend = \"qdrant\"\nqdrant_url = \"http://127.0.0.1:6334\"\n[answer]\nsources = 6\n",
        );
        let layers = Layers {
            file: Some(file),
            profile: Some("cluster".into()),
            flags: vec![("answer.sources".into(), serde_json::json!(7))],
        };
        let s = Settings::load_with_env(&layers, no_env()).expect("reads");
        assert_eq!(s.vectors.backend, VectorBackend::Qdrant);
        assert_eq!((s.answer.sources, s.answer.max_tokens), (7, 300));
        let missing = Layers {
            profile: Some("nowhere".into()),
            ..layers
        };
        let e = Settings::load_with_env(&missing, no_env()).expect_err("no such profile");
        assert_eq!(e.key, "--profile");
    }

    #[test]
    fn secrets_are_masked() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some("a-development-secret-of-32-chars!".into());
        s.answer.openai_api_key = Some("sk-live".into());
        let shown = s.to_toml();
        assert!(!shown.contains("a-development-secret") && !shown.contains("sk-live"));
        assert!(shown.contains(MASK));
        assert!(shown.contains("dense_weight = 0.45\n"), "{shown}");
    }
}
