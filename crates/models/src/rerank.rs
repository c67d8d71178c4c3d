//! A BERT cross-encoder reranker (Hugging Face `BertForSequenceClassification`): the query
//! and a passage are read together as one pair (`[CLS] q [SEP] p [SEP]`, segment ids 0 and 1);
//! the `[CLS]` state goes through the pooler (dense + tanh) and a one-logit classifier. Pairs
//! longer than the model's window are truncated from the passage side, as these models were
//! trained. No such model ships in the registry packages found so far: reranking stays
//! optional and the trait takes any implementation.

use std::path::Path;

use cabildo_core::{ModelError, Reranker};
use candle_core::{IndexOp, Module, Tensor};
use candle_nn::Linear;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use crate::bert::BertEncoder;
use crate::runtime;

/// Pairs per forward pass.
const BATCH: usize = 16;

/// A cross-encoder loaded from a folder with `config.json`, `model.safetensors` (with
/// `bert.pooler.*` and `classifier.*`) and `tokenizer.json`.
pub struct CrossEncoder {
    name: String,
    encoder: BertEncoder,
    pooler: Linear,
    classifier: Linear,
    tokenizer: Tokenizer,
    pad: u32,
}

impl CrossEncoder {
    /// Loads the folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let (encoder, root) = BertEncoder::from_safetensors(dir, &crate::device())?;
        let h = encoder.hidden_size();
        let corrupt = |e: candle_core::Error| ModelError::Corrupt {
            path: dir.join("model.safetensors").display().to_string(),
            format: "BERT cross-encoder (pooler and classifier)",
            reason: e.to_string(),
        };
        let pooler_at = if root.contains_tensor("bert.pooler.dense.weight") {
            "bert.pooler.dense"
        } else {
            "pooler.dense"
        };
        let pooler = candle_nn::linear(h, h, root.pp(pooler_at)).map_err(corrupt)?;
        let classifier = candle_nn::linear(h, 1, root.pp("classifier")).map_err(corrupt)?;
        let path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| ModelError::Corrupt {
            path: path.display().to_string(),
            format: "tokenizer.json",
            reason: e.to_string(),
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: encoder.max_positions(),
                strategy: TruncationStrategy::OnlySecond,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Runtime(e.to_string()))?;
        tokenizer.with_padding(None);
        let pad = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(CrossEncoder {
            name: dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("cross-encoder")
                .to_string(),
            encoder,
            pooler,
            classifier,
            tokenizer,
            pad,
        })
    }
}

impl Reranker for CrossEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, ModelError> {
        let mut scores = Vec::with_capacity(passages.len());
        for chunk in passages.chunks(BATCH) {
            let encodings = chunk
                .iter()
                .map(|p| self.tokenizer.encode((query, *p), true))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ModelError::Input(e.to_string()))?;
            let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
            let pad_to = |v: &[u32], fill: u32| {
                let mut row = v.to_vec();
                row.resize(len, fill);
                row
            };
            let ids: Vec<Vec<u32>> = encodings
                .iter()
                .map(|e| pad_to(e.get_ids(), self.pad))
                .collect();
            let types: Vec<Vec<u32>> = encodings
                .iter()
                .map(|e| pad_to(e.get_type_ids(), 0))
                .collect();
            let mask: Vec<Vec<f32>> = encodings
                .iter()
                .map(|e| {
                    (0..len)
                        .map(|j| if j < e.len() { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
            let (hidden, _) = self
                .encoder
                .hidden(&ids, Some(&types), &mask)
                .map_err(runtime)?;
            let logits = hidden
                .i((.., 0, ..))
                .and_then(|cls| self.pooler.forward(&cls))
                .and_then(|p| p.tanh())
                .and_then(|p| self.classifier.forward(&p))
                .and_then(|l| l.squeeze(1))
                .and_then(|l: Tensor| l.to_vec1::<f32>())
                .map_err(runtime)?;
            scores.extend(logits);
        }
        Ok(scores)
    }
}
