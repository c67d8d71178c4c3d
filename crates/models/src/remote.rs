//! A generator on any OpenAI-compatible server (vLLM, TGI, llama.cpp server, another
//! Cabildo): how a Latam-GPT served on a GPU cluster is reached. Streams the reply through
//! `/v1/chat/completions` with `stream: true`; a consumer that stops listening closes the
//! connection, which such servers take as cancellation.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use cabildo_core::{FinishReason, Generation, GenerationRequest, Generator, ModelError};
use serde::Deserialize;
use serde_json::json;

/// A chat model behind an OpenAI-compatible HTTP API.
pub struct OpenAiGenerator {
    endpoint: String,
    api_key: Option<String>,
    model: String,
    name: String,
    context_window: usize,
    agent: ureq::Agent,
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
        let mut call = self
            .agent
            .post(&self.endpoint)
            .header("Accept", "text/event-stream");
        if let Some(key) = &self.api_key {
            call = call.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = call.send_json(&body).map_err(remote)?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.body_mut().read_to_string().unwrap_or_default();
            let detail: String = detail.chars().take(500).collect();
            return Err(remote(format!(
                "{} answered {status}: {detail}",
                self.endpoint
            )));
        }
        let reader = BufReader::new(response.body_mut().as_reader());
        let mut text = String::new();
        let mut pieces = 0;
        let mut first: Option<f64> = None;
        let mut usage = None;
        let mut finish = FinishReason::Stop;
        for line in reader.lines() {
            let line = line.map_err(remote)?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
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
                if choice.finish_reason.as_deref() == Some("length") {
                    finish = FinishReason::Length;
                }
            }
            if finish == FinishReason::Cancelled {
                break;
            }
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
