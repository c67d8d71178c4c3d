//! The shapes of requests and responses: what partners code against, kept apart from the
//! engine's internal types so that those can change without breaking the API.

use cabildo_core::{
    Filters, Jurisdiction, Language, Norm, NormKind, Passage, Principal, SearchHit,
};
use cabildo_engine::answer::{Answer, Register, Turn};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Filters a caller may set. Who may read what (access level, tenant) comes from the
/// caller's identity, never from the request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestFilters {
    /// Countries (ISO 3166-1 alpha-2), any of.
    #[serde(default)]
    pub jurisdiction: Vec<String>,
    /// Kinds of norm (constitucion, codigo, ley, decreto…), any of.
    #[serde(default)]
    pub kind: Vec<String>,
    /// Only norms in force on this date.
    #[serde(default)]
    pub in_force_on: Option<NaiveDate>,
}

impl RequestFilters {
    /// The engine's filters for `principal` (its access level and tenant) narrowed by these
    /// restrictions; an unknown kind is an error naming it.
    pub fn within(&self, principal: &Principal) -> Result<Filters, String> {
        let kinds = self
            .kind
            .iter()
            .map(|k| k.parse::<NormKind>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        for j in &self.jurisdiction {
            if !Jurisdiction::is_country_code(j) {
                return Err(format!(
                    "jurisdiction {j:?} is not an ISO 3166-1 alpha-2 code (e.g. CL, BR)"
                ));
            }
        }
        Ok(Filters {
            jurisdictions: self.jurisdiction.iter().map(|j| j.to_uppercase()).collect(),
            kinds,
            in_force_on: self.in_force_on,
            ..principal.filters()
        })
    }
}

/// `POST /v1/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or keywords.
    pub query: String,
    /// Passages to return (1–50, default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// Restrictions.
    #[serde(default)]
    pub filters: Option<RequestFilters>,
    /// lexical, dense or hybrid (default: hybrid when the server has vectors).
    #[serde(default)]
    pub method: Option<String>,
}

/// One passage found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// Retrieval score (scale depends on the method).
    pub score: f32,
    /// The passage's id.
    pub passage_id: String,
    /// Its norm's id.
    pub norm_id: String,
    /// How a lawyer cites it.
    pub label: String,
    /// Norm › título › artículo.
    pub breadcrumb: Vec<String>,
    /// The most precise official URL.
    pub url: Option<String>,
    /// Page in the source PDF.
    pub page: Option<u32>,
    /// An excerpt around the matched terms.
    pub snippet: String,
    /// Where the matched terms are in `snippet`: `[start, end)` pairs counted in Unicode
    /// characters (code points), for pages that highlight them.
    pub highlights: Vec<[usize; 2]>,
    /// The day this text of the provision took effect.
    pub in_force_from: Option<NaiveDate>,
    /// The day a later version replaced it (or the norm was repealed); absent while in
    /// force.
    pub in_force_until: Option<NaiveDate>,
}

impl From<SearchHit> for Hit {
    fn from(h: SearchHit) -> Self {
        let chars = |byte: usize| {
            h.snippet
                .get(..byte)
                .map_or(0, |before| before.chars().count())
        };
        let highlights = h
            .highlights
            .iter()
            .map(|&(start, end)| [chars(start), chars(end)])
            .collect();
        Hit {
            highlights,
            in_force_from: h.passage.valid_from,
            in_force_until: h.passage.valid_to,
            rank: h.rank,
            score: h.score,
            passage_id: h.passage.id,
            norm_id: h.passage.norm_id,
            label: h.passage.label,
            breadcrumb: h.passage.breadcrumb,
            url: h.passage.url,
            page: h.passage.page,
            snippet: h.snippet,
        }
    }
}

/// The passages found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// The method used.
    pub method: String,
    /// Best first.
    pub hits: Vec<Hit>,
    /// Milliseconds spent searching.
    pub took_ms: f64,
}

/// `POST /v1/ask`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question, in Spanish, Portuguese or English.
    pub question: String,
    /// Restrictions.
    #[serde(default)]
    pub filters: Option<RequestFilters>,
    /// Answer language (es, pt, en); guessed from the question when absent.
    #[serde(default)]
    pub language: Option<Language>,
    /// usted (default), tu or vos.
    #[serde(default)]
    pub register: Option<Register>,
    /// Stream as server-sent events (same as `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: Option<bool>,
    /// The conversation so far, oldest first: `{"role": "user"|"assistant", "content"}`.
    /// A follow-up ("¿y cuánto dura?") is searched with the subject of the earlier
    /// questions, and the answer's prompt sees the newest turns. At most 20 turns are read
    /// (older ones are dropped); each at most 8,000 characters.
    #[serde(default)]
    pub history: Vec<Turn>,
}

/// A checked answer.
pub type AskResponse = Answer;

/// A message of an OpenAI-style conversation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatMessageIn {
    /// system, user, assistant (others are ignored).
    pub role: String,
    /// Text, or a list of parts of which the `text` ones are read.
    #[serde(default)]
    pub content: Option<ChatContent>,
}

/// OpenAI message content: a string or typed parts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChatContent {
    /// Plain text.
    Text(String),
    /// Parts; those with `text` are joined.
    Parts(Vec<ChatPart>),
}

/// One part of a message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatPart {
    /// Its text, for `type: text`.
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatContent {
    /// The text of the content.
    pub fn text(&self) -> String {
        match self {
            ChatContent::Text(t) => t.clone(),
            ChatContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Up to four.
    Many(Vec<String>),
}

impl Stop {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with empty `choices` and the token counts in `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Cabildo's own options, in the request body's `cabildo` field (with the OpenAI Python
/// library: `extra_body={"cabildo": {...}}`; with the npm one: an extra body property).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CabildoOptions {
    /// usted (default), tu or vos.
    #[serde(default)]
    pub register: Option<Register>,
    /// Answer language (es, pt, en); guessed from the conversation when absent.
    #[serde(default)]
    pub language: Option<Language>,
    /// Restrictions, as in `/v1/ask`.
    #[serde(default)]
    pub filters: Option<RequestFilters>,
    /// lexical, dense or hybrid (default: hybrid when the server has vectors).
    #[serde(default)]
    pub method: Option<String>,
}

/// `POST /v1/chat/completions`, as OpenAI clients send it. The last user message is the
/// question and the messages before it are the conversation (system messages are read as
/// nothing: Cabildo's own instructions govern). Fields Cabildo does not use (n, tools…)
/// are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// Ignored: Cabildo answers with its configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessageIn>,
    /// Stream chunks as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// At most this many tokens (capped by the server's limit).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    /// Sampling temperature (0: greedy).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling (0–1].
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stop at the first of these strings (at most 4).
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Seed of the sampler.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The end user's id in the partner's system: accepted, not stored (the audit log keeps
    /// the caller's pseudonym).
    #[serde(default)]
    pub user: Option<String>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Cabildo's own options.
    #[serde(default)]
    pub cabildo: Option<CabildoOptions>,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessageOut {
    /// Always `assistant`.
    pub role: &'static str,
    /// The checked answer.
    pub content: String,
}

/// One choice (Cabildo returns one).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    /// 0.
    pub index: usize,
    /// The answer.
    pub message: ChatMessageOut,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// Token counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatUsage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

/// An OpenAI-style completion, with Cabildo's citations beside the usual fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// Who wrote the answer.
    pub model: String,
    /// The answer.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: ChatUsage,
    /// The sources the answer cites (`[n]` in the content).
    pub citations: Vec<cabildo_engine::answer::Citation>,
    /// Whether the answer says the sources do not answer the question.
    pub abstained: bool,
}

/// A model, as `GET /v1/models` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// `cabildo-<writer>`: any model name is accepted in a completion request.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds (the server's start).
    pub created: i64,
    /// `cabildo`.
    pub owned_by: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The one model that answers.
    pub data: Vec<ModelInfo>,
}

/// `POST /v1/feedback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The answer's `id` (`ans_…` from /v1/ask, `chatcmpl-…` from chat completions).
    pub answer_id: String,
    /// `useful` or `not_useful`.
    #[schema(value_type = String)]
    pub rating: cabildo_store::Rating,
    /// Optional, at most 2,000 characters; personal data is redacted before it is stored.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Feedback stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackReceipt {
    /// The feedback's id (a second rating of the same answer replaces the first, same id).
    pub id: i64,
    /// The answer rated.
    pub answer_id: String,
    /// The rating.
    #[schema(value_type = String)]
    pub rating: cabildo_store::Rating,
}

/// A norm as the API shows it (no server paths, no hashes).
#[derive(Debug, Serialize, ToSchema)]
pub struct NormInfo {
    /// Its id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Country (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// Kind (ley, decreto…).
    pub kind: String,
    /// Number, when it has one.
    pub number: Option<String>,
    /// Who issued it.
    pub issuing_body: Option<String>,
    /// Language.
    pub language: Language,
    /// Official URL.
    pub official_url: Option<String>,
    /// Published on.
    pub publication_date: Option<NaiveDate>,
    /// In force from.
    pub valid_from: Option<NaiveDate>,
    /// In force until (exclusive).
    pub valid_to: Option<NaiveDate>,
}

impl From<Norm> for NormInfo {
    fn from(n: Norm) -> Self {
        NormInfo {
            id: n.id,
            title: n.title,
            jurisdiction: n.jurisdiction.country,
            kind: n.kind.as_str().to_string(),
            number: n.number,
            issuing_body: n.issuing_body,
            language: n.language,
            official_url: n.official_url,
            publication_date: n.publication_date,
            valid_from: n.valid_from,
            valid_to: n.valid_to,
        }
    }
}

/// `GET /v1/norms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NormList {
    /// This page's, by jurisdiction and title.
    pub norms: Vec<NormInfo>,
    /// Norms the caller may read that match the query, on every page.
    pub total: usize,
    /// The `offset` of the next page; absent on the last one.
    pub next_offset: Option<usize>,
}

/// A passage of a norm, for its table of contents.
#[derive(Debug, Serialize, ToSchema)]
pub struct PassageInfo {
    /// Its id.
    pub id: String,
    /// How a lawyer cites it.
    pub label: String,
    /// Norm › título › artículo.
    pub breadcrumb: Vec<String>,
    /// The most precise official URL.
    pub url: Option<String>,
    /// Page in the source PDF.
    pub page: Option<u32>,
    /// Its text.
    pub text: String,
    /// The day this text took effect.
    pub in_force_from: Option<NaiveDate>,
    /// The day a later version replaced it; absent while in force.
    pub in_force_until: Option<NaiveDate>,
}

impl From<Passage> for PassageInfo {
    fn from(p: Passage) -> Self {
        PassageInfo {
            id: p.id,
            label: p.label,
            breadcrumb: p.breadcrumb,
            url: p.url,
            page: p.page,
            text: p.text,
            in_force_from: p.valid_from,
            in_force_until: p.valid_to,
        }
    }
}

/// `GET /v1/norms/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NormDetail {
    /// The norm.
    #[serde(flatten)]
    pub norm: NormInfo,
    /// The day the passages are in force on: the one asked for, else today (for a norm
    /// known only in a version due later, that version's first day).
    pub in_force_on: NaiveDate,
    /// Its passages in force that day, in document order.
    pub passages: Vec<PassageInfo>,
}

/// Which day of a norm to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NormDay {
    /// The day (YYYY-MM-DD) whose text to return; default today.
    pub in_force_on: Option<NaiveDate>,
}

/// Which of a norm's versions to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    /// Only changes to this article ("15": the article and its parts) or provision label.
    pub article: Option<String>,
}

/// `GET /v1/norms/{id}/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// The norm's id.
    pub norm_id: String,
    /// Its versions, oldest first (empty when its text is undated).
    pub versions: Vec<cabildo_engine::versions::VersionInfo>,
}

/// Two days of a norm to compare.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The earlier day (YYYY-MM-DD).
    pub from: NaiveDate,
    /// The later day (YYYY-MM-DD); default today.
    pub to: Option<NaiveDate>,
    /// Only this article ("15": the article and its parts) or provision label.
    pub article: Option<String>,
}

/// `GET /v1/norms/{id}/diff`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffResult {
    /// The norm's id.
    pub norm_id: String,
    /// The earlier day.
    pub from: NaiveDate,
    /// The later day.
    pub to: NaiveDate,
    /// The provisions whose text differs between the two days, in document order.
    pub changes: Vec<cabildo_engine::versions::ProvisionDiff>,
}

/// `POST /v1/documents` accepted the files; the ingest runs as a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    /// Poll `GET /v1/jobs/{job_id}`.
    pub job_id: i64,
    /// `running` (ingested by this process), or `queued` for `cabildo worker` (the cluster
    /// profile's `[server] queue_uploads`).
    pub status: String,
    /// The files received.
    pub files: Vec<String>,
}

/// A file an ingest job could not ingest.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobFailure {
    /// The uploaded file's name.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobInfo {
    /// The job's id.
    pub id: i64,
    /// queued (waiting for `cabildo worker`), running, done or failed.
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Files looked at.
    pub files: u64,
    /// Files already indexed with the same content.
    pub unchanged: u64,
    /// Norms written.
    pub norms: u64,
    /// Passages written.
    pub passages: u64,
    /// Files that failed, with reasons.
    pub failures: Vec<JobFailure>,
    /// Passages whose text reads like instructions to the model (indexed as data; worth a look).
    pub flagged: u64,
    /// Why the job failed as a whole.
    pub error: Option<String>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok, ready or not-ready.
    pub status: &'static str,
    /// The answer writer (readyz).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The embedding model, when dense retrieval is on (readyz).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// What is wrong (readyz, when not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/jobs`: the newest ingest jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobInfo>,
}

/// `GET /v1/me`: who the server takes the caller to be, and what that lets it do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `anonymous`, `key:<id>` for an API key, or the token's issuer and subject.
    pub subject: String,
    /// anonymous, citizen, caseworker, partner or admin.
    pub role: String,
    /// Its agency, if any.
    pub tenant: Option<String>,
    /// The highest access level it reads: public, internal or restricted.
    pub clearance: String,
    /// Whether it may upload and delete documents, manage clients and read the audit log.
    pub admin: bool,
}

/// An API client, without its key (only the key's hash is kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientInfo {
    /// Its unique name.
    pub name: String,
    /// The role its key grants.
    pub role: String,
    /// Its tenant, if any.
    pub tenant: Option<String>,
    /// Its clearance.
    pub clearance: String,
    /// Requests allowed per UTC day; absent: the deployment's default.
    pub daily_quota: Option<u64>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when its key was revoked.
    pub revoked_at: Option<String>,
}

/// `GET /v1/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    /// Every client, revoked ones included, by name.
    pub clients: Vec<ClientInfo>,
}

/// `GET /v1/audit/verify`: the audit chain walked end to end.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditCheck {
    /// Whether every record's hash, link and sequence number checks out.
    pub intact: bool,
    /// Records read.
    pub records: u64,
    /// The newest record's hash (publish it elsewhere to anchor the chain).
    pub head: String,
    /// Every break found, first first.
    pub problems: Vec<String>,
}
