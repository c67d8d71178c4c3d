//! What the rest of Cabildo asks of a model, independent of how it runs (candle in-process,
//! a remote server): embeddings for retrieval.

/// Errors of loading and running models. Each names the file or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is not installed.
    #[error("model file {path} is missing ({reason}); install it with `scripts/setup-models.sh`")]
    Missing {
        /// The file.
        path: String,
        /// What the OS said.
        reason: String,
    },
    /// A model file is damaged or not in the expected format.
    #[error("model file {path} is not a valid {format}: {reason}; reinstall it with `scripts/setup-models.sh`")]
    Corrupt {
        /// The file.
        path: String,
        /// The format it was read as.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The input cannot be processed (empty text, over the context budget…).
    #[error("input rejected: {0}")]
    Input(String),
    /// The computation failed.
    #[error("model inference failed: {0}")]
    Runtime(String),
    /// The model's server cannot be reached, or keeps failing; try again in
    /// `retry_after_s` seconds.
    #[error("the model server is unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
        /// When trying again makes sense.
        retry_after_s: u64,
    },
}

/// Turns text into vectors for dense retrieval. Vectors are L2-normalised, so the dot
/// product is the cosine similarity.
pub trait Embedder: Send + Sync {
    /// A short name for logs and reports (`e5-small`).
    fn name(&self) -> &str;
    /// Length of the vectors.
    fn dimension(&self) -> usize;
    /// The model's window in tokens; longer texts are embedded in windows and averaged.
    fn max_tokens(&self) -> usize;
    /// Embeds passages (documents) for indexing.
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// Embeds a question for search.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, ModelError>;
}

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The name chat templates use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// What to generate and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerationRequest {
    /// The conversation; rendered with the model's chat template.
    pub messages: Vec<ChatMessage>,
    /// At most this many new tokens.
    pub max_tokens: usize,
    /// 0 for greedy decoding.
    pub temperature: f64,
    /// Nucleus sampling threshold, when sampling.
    pub top_p: Option<f64>,
    /// Seed of the sampler: the same request and seed give the same text.
    pub seed: u64,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// End-of-turn tokens are suppressed until this many tokens are out (vLLM's
    /// `min_tokens`; benchmarks use it to time decoding over a fixed length).
    pub min_tokens: usize,
}

impl GenerationRequest {
    /// Greedy decoding of a conversation, up to `max_tokens`.
    pub fn greedy(messages: Vec<ChatMessage>, max_tokens: usize) -> Self {
        GenerationRequest {
            messages,
            max_tokens,
            temperature: 0.0,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
            min_tokens: 0,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn (end-of-sequence token).
    Stop,
    /// A stop sequence was reached.
    StopSequence,
    /// `max_tokens` was reached.
    Length,
    /// The consumer asked to stop (client gone).
    Cancelled,
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Generation {
    /// The generated text (stop sequence excluded).
    pub text: String,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish: FinishReason,
    /// Seconds spent on the prompt (prefill), until the first new token.
    pub prompt_seconds: f64,
    /// Seconds spent generating after the first token.
    pub decode_seconds: f64,
}

/// A text generator. `on_text` receives each new piece of text as soon as it is complete
/// UTF-8; returning `false` cancels generation.
pub trait Generator: Send + Sync {
    /// A short name for logs and answers (`qwen2.5-0.5b-instruct-q4_k_m`).
    fn name(&self) -> &str;
    /// The model's context window in tokens (prompt plus generated).
    fn context_window(&self) -> usize;
    /// Generates a reply to the conversation.
    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, ModelError>;
}

/// Scores how well each passage answers a query (a cross-encoder reads both together).
/// Higher is better; scores compare within one call only.
pub trait Reranker: Send + Sync {
    /// A short name for logs and reports.
    fn name(&self) -> &str;
    /// One score per passage, in the given order.
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, ModelError>;
}
