//! A generator on any OpenAI-compatible server (vLLM, TGI, llama.cpp server, another
//! Cabildo): how a Latam-GPT served on a GPU cluster is reached. Streams the reply through
//! `/v1/chat/completions` with `stream: true`; a consumer that stops listening closes the
//! connection, which such servers take as cancellation.
//!
//! A flapping server must not hold citizens' requests: connecting gives up after
//! [`CONNECT_TIMEOUT`]; a request that fails before any text arrives (no connection, or 429,
//! 502, 503, 504) is retried twice with backoff; one that timed out is not (the citizen has
//! waited the whole timeout already, and a busy server would only get busier); and after
//! [`TRIP_AFTER`] failures in a row a circuit breaker answers at once with
//! [`ModelError::Unavailable`] for [`OPEN_FOR`], then lets one request try again. A stream
//! that breaks off before the server said it was done is an error, never a shorter answer.

use std::io::{BufRead, BufReader};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};

use cabildo_core::{FinishReason, Generation, GenerationRequest, Generator, ModelError};
use serde::Deserialize;
use serde_json::json;

/// Longest wait for a connection to the model server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures in a row that open the circuit breaker.
pub const TRIP_AFTER: u32 = 3;
/// How long an open breaker answers "unavailable" without trying.
pub const OPEN_FOR: Duration = Duration::from_secs(30);

/// A chat model behind an OpenAI-compatible HTTP API.
pub struct OpenAiGenerator {
    endpoint: String,
    api_key: Option<String>,
    model: String,
    name: String,
    context_window: usize,
    agent: ureq::Agent,
    breaker: Breaker,
}

/// Counts failures in a row; after [`TRIP_AFTER`] of them, refuses for [`OPEN_FOR`].
#[derive(Default)]
struct Breaker {
    /// Failures in a row, and until when the breaker is open.
    state: Mutex<(u32, Option<Instant>)>,
}

impl Breaker {
    /// `Err` while open; once [`OPEN_FOR`] has passed, lets a request through (half open:
    /// its failure opens the breaker again at once).
    fn check(&self) -> Result<(), ModelError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.1 {
            Some(until) if Instant::now() < until => Err(ModelError::Unavailable {
                reason: format!(
                    "{} failures in a row; not trying again for a while",
                    state.0
                ),
                retry_after_s: until.saturating_duration_since(Instant::now()).as_secs() + 1,
            }),
            _ => Ok(()),
        }
    }

    fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (0, None);
    }

    fn failed(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        if state.0 >= TRIP_AFTER {
            state.1 = Some(Instant::now() + OPEN_FOR);
            tracing::warn!(
                failures = state.0,
                "model server breaker open for {OPEN_FOR:?}"
            );
        }
    }
}

/// Why a request failed before any text arrived: worth another try or not.
enum Failure {
    /// No connection, or the server said it is overloaded or restarting.
    Transient(String),
    /// No answer within the timeout: counts against the server, but is not tried again.
    TimedOut(String),
    /// Anything else (a bad request, a bad key): trying again would not help.
    Final(ModelError),
}

impl OpenAiGenerator {
    /// A generator for `model` at `base_url` (e.g. `http://gpu-node:8000/v1`), whose context
    /// window is `context_window` tokens. Requests time out after `timeout`.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: &str,
        context_window: usize,
        timeout: Duration,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .http_status_as_error(false)
            .build()
            .into();
        OpenAiGenerator {
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model: model.to_string(),
            name: format!("{model} (openai-compatible)"),
            context_window,
            agent,
            breaker: Breaker::default(),
        }
    }

    /// Opens the reply stream: one attempt.
    fn open(&self, body: &serde_json::Value) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut call = self
            .agent
            .post(&self.endpoint)
            .header("Accept", "text/event-stream");
        if let Some(key) = &self.api_key {
            call = call.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = call.send_json(body).map_err(|e| {
            let why = format!("{}: {e}", self.endpoint);
            match e {
                ureq::Error::Timeout(_) => Failure::TimedOut(why),
                _ => Failure::Transient(why),
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let detail = response.body_mut().read_to_string().unwrap_or_default();
        let detail: String = detail.chars().take(500).collect();
        let why = format!("{} answered {status}: {detail}", self.endpoint);
        if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
            Err(Failure::Transient(why))
        } else {
            Err(Failure::Final(remote(why)))
        }
    }

    /// A failure that counts against the server (the breaker) and tells the caller to come
    /// back later.
    fn unavailable(&self, reason: String) -> ModelError {
        self.breaker.failed();
        ModelError::Unavailable {
            reason,
            retry_after_s: 5,
        }
    }

    /// Opens the reply stream, retrying transient failures, through the breaker.
    fn open_with_retries(
        &self,
        body: &serde_json::Value,
    ) -> Result<ureq::http::Response<ureq::Body>, ModelError> {
        self.breaker.check()?;
        let attempt = || self.open(body);
        let opened = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(2),
            )
            .sleep(std::thread::sleep)
            .when(|f| matches!(f, Failure::Transient(_)))
            .call();
        match opened {
            Ok(response) => {
                self.breaker.succeeded();
                Ok(response)
            }
            Err(Failure::Transient(reason) | Failure::TimedOut(reason)) => {
                Err(self.unavailable(reason))
            }
            Err(Failure::Final(e)) => Err(e),
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

fn remote(e: impl std::fmt::Display) -> ModelError {
    ModelError::Runtime(format!("OpenAI-compatible server: {e}"))
}

impl Generator for OpenAiGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn context_window(&self) -> usize {
        self.context_window
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let mut body = json!({
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(p) = request.top_p {
            body["top_p"] = json!(p);
        }
        if request.min_tokens > 0 {
            body["min_tokens"] = json!(request.min_tokens);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        let mut response = self.open_with_retries(&body)?;
        let reader = BufReader::new(response.body_mut().as_reader());
        let mut text = String::new();
        let mut pieces = 0;
        let mut first: Option<f64> = None;
        let mut usage = None;
        let mut finish = FinishReason::Stop;
        // Whether the server said it was done (`[DONE]` or a finish reason).
        let mut ended = false;
        for line in reader.lines() {
            let line = line.map_err(|e| {
                let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                    || e.get_ref()
                        .and_then(|i| i.downcast_ref::<ureq::Error>())
                        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
                if timed_out {
                    // Too slow (servers stream headers before reading the prompt): as
                    // unavailable as one that never answered.
                    self.unavailable(format!("{}: no complete reply in time: {e}", self.endpoint))
                } else {
                    remote(format!("the reply broke off: {e}"))
                }
            })?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                ended = true;
                break;
            }
            let chunk: Chunk = serde_json::from_str(data).map_err(remote)?;
            usage = chunk.usage.or(usage);
            for choice in chunk.choices {
                if let Some(piece) = choice.delta.content.filter(|c| !c.is_empty()) {
                    first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                    pieces += 1;
                    text.push_str(&piece);
                    if !on_text(&piece) {
                        // Dropping the response closes the stream: the server stops.
                        finish = FinishReason::Cancelled;
                    }
                }
                ended |= choice.finish_reason.is_some();
                if choice.finish_reason.as_deref() == Some("length") {
                    finish = FinishReason::Length;
                }
            }
            if finish == FinishReason::Cancelled {
                break;
            }
        }
        if !ended && finish != FinishReason::Cancelled {
            return Err(remote(format!(
                "the reply ended after {pieces} pieces without saying it was done"
            )));
        }
        let prompt_seconds = first.unwrap_or_else(|| started.elapsed().as_secs_f64());
        Ok(Generation {
            prompt_tokens: usage.as_ref().map_or(0, |u| u.prompt_tokens),
            completion_tokens: usage.as_ref().map_or(pieces, |u| u.completion_tokens),
            text,
            finish,
            prompt_seconds,
            decode_seconds: started.elapsed().as_secs_f64() - prompt_seconds,
        })
    }
}
