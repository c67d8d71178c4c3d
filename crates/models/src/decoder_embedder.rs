//! Sentence embeddings from a Llama-family decoder GGUF (Latam-GPT quantised, Qwen2, SmolLM2):
//! how an agency gets "Latam-GPT embeddings" from the one model it already runs.
//!
//! The text, inside a prompt template, goes through [`Decoder::hidden`]; the final hidden
//! states become one vector by taking the last position's state after a prompt that asks
//! for the text's meaning in one word (the default; see [`ONE_WORD_PROMPT`]), or by mean
//! pooling over the text's tokens; then L2-normalised. A text longer than the window is
//! embedded in consecutive windows, each wrapped in the template, none dropped: with mean
//! pooling their token states are all summed (the mean over the whole text), with
//! last-token pooling the windows' vectors are averaged.
//!
//! A decoder embeds one text at a time (its KV cache holds one sequence), at the model's
//! prefill speed: ~70 tokens/s for Qwen2.5-0.5B on two CPU cores, thousands on a GPU.

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use cabildo_core::{Embedder, ModelError};
use tokenizers::Tokenizer;

use crate::decoder::Decoder;
use crate::generate::{gguf_corrupt, GgufFile};
use crate::runtime;

/// Positions per window at most, whatever the model's context: attention cost grows with
/// the square of the window, and passages are far shorter.
const MAX_WINDOW: usize = 512;

/// The prompt for last-token pooling ("PromptEOL", Jiang et al. 2023, "Scaling Sentence
/// Embeddings with Large Language Models"): asking for the text's meaning in one word makes
/// the last position summarise it. With Qwen2.5-0.5B it puts a question in Spanish,
/// Portuguese and English at cosine 0.91–0.96 against 0.75 for an unrelated sentence; plain
/// mean pooling put Spanish and English at 0.48, below the unrelated 0.57.
pub const ONE_WORD_PROMPT: &str = "This sentence : \"{text}\" means in one word:\"";

/// How a decoder's hidden states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the text's tokens.
    Mean,
    /// The last position's state, after [`ONE_WORD_PROMPT`] by default (the default).
    LastToken,
}

impl Pooling {
    /// The name `--embedder NAME:POOLING` and the embedder's own name use.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::LastToken => "last",
        }
    }
}

impl FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Pooling::Mean, Pooling::LastToken]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("pooling {s:?}: use mean or last"))
    }
}

/// Token ids around a text: the template's part before `{text}` and after it.
struct Template {
    before: Vec<u32>,
    after: Vec<u32>,
}

/// A Llama-family GGUF decoder used as a sentence embedder.
pub struct DecoderEmbedder {
    name: String,
    decoder: Mutex<Decoder>,
    tokenizer: Tokenizer,
    /// A first position that carries no text: decoders park outsized activations on the
    /// first position (an "attention sink"), which would swamp a mean.
    sink: Option<u32>,
    pooling: Pooling,
    positions: usize,
    width: usize,
    query: Template,
    passage: Template,
}

impl DecoderEmbedder {
    /// Loads `path` (a `llama` or `qwen2` GGUF); `tokenizer_json` overrides the tokenizer
    /// built from the GGUF. Last-token pooling wraps texts in [`ONE_WORD_PROMPT`].
    pub fn from_gguf(
        path: &Path,
        tokenizer_json: Option<&Path>,
        pooling: Pooling,
    ) -> Result<Self, ModelError> {
        let GgufFile {
            ct,
            mut file,
            tokenizer,
            declared_bos,
            ..
        } = GgufFile::open(path, tokenizer_json)?;
        let decoder = Decoder::from_gguf(&ct, &mut file, &crate::device())
            .map_err(|e| gguf_corrupt(path, e.to_string()))?;
        // The pooling is part of the name: vectors made one way are not comparable with the
        // other's, and ingest re-embeds when the embedder's name changes.
        let name = format!(
            "{}:{}",
            path.parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or("decoder"),
            pooling.as_str()
        );
        let empty = || Template {
            before: Vec::new(),
            after: Vec::new(),
        };
        let embedder = DecoderEmbedder {
            name,
            positions: decoder.context().min(MAX_WINDOW),
            width: decoder.width(),
            decoder: Mutex::new(decoder),
            tokenizer,
            sink: declared_bos,
            pooling,
            query: empty(),
            passage: empty(),
        };
        match pooling {
            Pooling::Mean => Ok(embedder),
            Pooling::LastToken => embedder.with_templates(ONE_WORD_PROMPT, ONE_WORD_PROMPT),
        }
    }

    /// Prompts around every question and every passage, `{text}` marking where the text
    /// goes (for decoders fine-tuned with an instruction, or another one-word prompt).
    pub fn with_templates(mut self, query: &str, passage: &str) -> Result<Self, ModelError> {
        self.query = self.template(query)?;
        self.passage = self.template(passage)?;
        if self.window(&self.query).min(self.window(&self.passage)) < 16 {
            return Err(ModelError::Input(
                "the embedding templates leave fewer than 16 positions for the text".into(),
            ));
        }
        Ok(self)
    }

    fn template(&self, template: &str) -> Result<Template, ModelError> {
        let (before, after) = template.split_once("{text}").unwrap_or((template, ""));
        Ok(Template {
            before: self.ids(before)?,
            after: self.ids(after)?,
        })
    }

    fn ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Input(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Text tokens per forward pass.
    fn window(&self, template: &Template) -> usize {
        self.positions.saturating_sub(
            usize::from(self.sink.is_some()) + template.before.len() + template.after.len(),
        )
    }

    fn embed_one(&self, text: &str, template: &Template) -> Result<Vec<f32>, ModelError> {
        let ids = self.ids(text)?;
        if ids.is_empty() {
            return Err(ModelError::Input("nothing to embed".into()));
        }
        let mut decoder = self
            .decoder
            .lock()
            .map_err(|_| ModelError::Runtime("model lock poisoned".into()))?;
        // Summed rather than averaged: the direction is the same once normalised.
        let mut sum = vec![0f32; self.width];
        for chunk in ids.chunks(self.window(template).max(1)) {
            let window: Vec<u32> = self
                .sink
                .iter()
                .chain(&template.before)
                .chain(chunk)
                .chain(&template.after)
                .copied()
                .collect();
            let states = decoder
                .hidden(&window, 0)
                .and_then(|h| h.squeeze(0))
                .and_then(|h| h.to_vec2::<f32>())
                .map_err(runtime)?;
            let picked = match self.pooling {
                Pooling::Mean => {
                    let start = usize::from(self.sink.is_some()) + template.before.len();
                    &states[start..start + chunk.len()]
                }
                Pooling::LastToken => &states[states.len() - 1..],
            };
            for row in picked {
                for (acc, v) in sum.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(sum.into_iter().map(|x| x / norm).collect())
    }
}

impl Embedder for DecoderEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.width
    }

    fn max_tokens(&self) -> usize {
        self.window(&self.passage)
    }

    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        texts
            .iter()
            .map(|t| self.embed_one(t, &self.passage))
            .collect()
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::Input("empty query".into()));
        }
        self.embed_one(text, &self.query)
    }
}
