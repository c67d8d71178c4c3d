//! Cabildo's own forward pass for Llama-family GGUF decoders (`llama`: SmolLM2, Latam-GPT
//! quantised; `qwen2`: the default instruction model), over candle's quantised matmuls.
//!
//! Why not candle-transformers' `quantized_llama` / `quantized_qwen2`: at every decoded token
//! they concatenate each layer's whole KV cache into a new tensor and copy K and V once per
//! query head (`repeat_kv`), so decode slowed from 28 to 14 tokens/s between a 500- and a
//! 1,700-token prompt; and they dequantise the token table to f32 (545 MB for Qwen2.5's
//! 151,936 rows). Here the cache is preallocated and written in place, the query heads of
//! one KV head attend as one batch against the shared K and V (no copies), and the token
//! table stays quantised, rows dequantised as they are looked up.
//!
//! [`Decoder::hidden`] returns the final hidden states, which [`crate::DecoderEmbedder`]
//! pools into sentence vectors.

use std::io::{Read, Seek};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_transformers::quantized_nn::RmsNorm;

use crate::attend;
use crate::q8gemm::Linear;
use crate::widen;

/// KV cache positions allocated at a time (the cache grows by this much when full).
const CACHE_STEP: usize = 512;

/// How the rotary embedding pairs dimensions.
#[derive(Clone, Copy)]
enum Rope {
    /// Adjacent pairs (llama.cpp permutes Llama's Q/K weights for this).
    Interleaved,
    /// First half with second half (Qwen2, "NeoX").
    Halves,
}

struct Layer {
    attn_norm: RmsNorm,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    /// Qwen2's Q, K, V biases.
    biases: Option<(Tensor, Tensor, Tensor)>,
    wo: Linear,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    cache: KvCache,
}

/// The token table, kept quantised on the CPU; rows are dequantised when looked up.
struct TokenTable {
    table: QTensor,
    row_bytes: usize,
    width: usize,
}

impl TokenTable {
    fn rows(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let data = self.table.data()?;
        let rows = ids
            .iter()
            .map(|&id| {
                let start = id as usize * self.row_bytes;
                let bytes = data.get(start..start + self.row_bytes).ok_or_else(|| {
                    candle_core::Error::Msg(format!("token id {id} is outside the vocabulary"))
                })?;
                qtensor_from_ggml(self.table.dtype(), bytes, vec![self.width], &Device::Cpu)?
                    .dequantize(&Device::Cpu)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&rows, 0)?.to_device(device)
    }
}

/// A Llama-family decoder loaded from GGUF.
pub(crate) struct Decoder {
    tokens: TokenTable,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    rope: Rope,
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
}

impl Decoder {
    /// Whether this module runs `architecture` (else candle-transformers' model does).
    pub(crate) fn supports(architecture: &str) -> bool {
        matches!(architecture, "llama" | "qwen2")
    }

    /// Loads the tensors named in `ct` from `reader`; other architectures than
    /// [`Decoder::supports`] are refused.
    pub(crate) fn from_gguf<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let arch = match ct.metadata.get("general.architecture") {
            Some(v) => v.to_string()?.clone(),
            None => candle_core::bail!("general.architecture is missing"),
        };
        if !Self::supports(&arch) {
            candle_core::bail!("architecture {arch:?} is not a Llama-family decoder (llama, qwen2)")
        }
        let meta = |key: &str| {
            ct.metadata
                .get(&format!("{arch}.{key}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("{arch}.{key} is missing")))
        };
        let heads = meta("attention.head_count")?.to_u32()? as usize;
        let kv_heads = meta("attention.head_count_kv")?.to_u32()? as usize;
        let width = meta("embedding_length")?.to_u32()? as usize;
        let blocks = meta("block_count")?.to_u32()? as usize;
        let context = meta("context_length")?.to_u32()? as usize;
        let eps = meta("attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let rope_base = meta("rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(10_000.0);
        if heads == 0
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || !width.is_multiple_of(heads)
        {
            candle_core::bail!("{heads} attention heads and {kv_heads} KV heads do not fit {width}")
        }
        let head_dim = width / heads;
        let table = ct.tensor(reader, "token_embd.weight", &Device::Cpu)?;
        // Q5_0 matrices are kept as stored where the tiled 8-bit product runs (`q8gemm`), and
        // widened to Q8_0 for candle's product elsewhere (see `widen`); the token table stays
        // as it is, since only its looked-up rows are read.
        let keep_q5_0 = Linear::reads_q5_0();
        let mut tensor = |name: &str| match keep_q5_0 {
            true => ct.tensor(reader, name, device),
            false => widen::read_tensor(ct, reader, name, device),
        };
        let dtype = table.dtype();
        let tokens = TokenTable {
            row_bytes: width / dtype.block_size() * dtype.type_size(),
            width,
            table,
        };
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        let output = match tensor("output.weight") {
            Ok(t) => t,
            // Tied embeddings: the token table is the output projection too.
            Err(_) => tensor("token_embd.weight")?,
        };
        let output = Linear::from_qtensor(output)?;
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let mut w = |name: &str| tensor(&format!("blk.{i}.{name}"));
            let biases = match w("attn_q.bias") {
                Ok(bq) => Some((
                    bq.dequantize(device)?,
                    w("attn_k.bias")?.dequantize(device)?,
                    w("attn_v.bias")?.dequantize(device)?,
                )),
                Err(_) => None,
            };
            layers.push(Layer {
                attn_norm: RmsNorm::from_qtensor(w("attn_norm.weight")?, eps)?,
                wq: Linear::from_qtensor(w("attn_q.weight")?)?,
                wk: Linear::from_qtensor(w("attn_k.weight")?)?,
                wv: Linear::from_qtensor(w("attn_v.weight")?)?,
                biases,
                wo: Linear::from_qtensor(w("attn_output.weight")?)?,
                ffn_norm: RmsNorm::from_qtensor(w("ffn_norm.weight")?, eps)?,
                gate: Linear::from_qtensor(w("ffn_gate.weight")?)?,
                up: Linear::from_qtensor(w("ffn_up.weight")?)?,
                down: Linear::from_qtensor(w("ffn_down.weight")?)?,
                cache: KvCache::new(2, CACHE_STEP),
            });
        }
        let (cos, sin) = rope_tables(head_dim, rope_base, context, device)?;
        Ok(Decoder {
            tokens,
            layers,
            norm,
            output,
            rope: if arch == "qwen2" {
                Rope::Halves
            } else {
                Rope::Interleaved
            },
            cos,
            sin,
            heads,
            kv_heads,
            head_dim,
            device: device.clone(),
        })
    }

    /// Width of the hidden states.
    pub(crate) fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Positions the model was trained for.
    pub(crate) fn context(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Logits of the last of `ids`, which sit at positions `pos..`; position 0 starts a new
    /// sequence (the cache is cleared).
    pub(crate) fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Tensor> {
        let x = self.hidden(ids, pos)?;
        let last = x.narrow(1, ids.len() - 1, 1)?.squeeze(1)?;
        self.output.forward(&last)
    }

    /// Final (normalised) hidden states of `ids` at positions `pos..`: shape (1, n, width).
    pub(crate) fn hidden(&mut self, ids: &[u32], pos: usize) -> Result<Tensor> {
        if ids.is_empty() {
            candle_core::bail!("no tokens to run")
        }
        if pos == 0 {
            for layer in &mut self.layers {
                layer.cache.reset();
            }
        }
        let n = ids.len();
        if pos + n > self.context() {
            candle_core::bail!("position {} is past the model's context", pos + n)
        }
        let cos = self.cos.narrow(0, pos, n)?;
        let sin = self.sin.narrow(0, pos, n)?;
        let mut x = self.tokens.rows(ids, &self.device)?.unsqueeze(0)?;
        for i in 0..self.layers.len() {
            let attn = self.attention(i, &x, &cos, &sin)?;
            x = (x + attn)?;
            let layer = &self.layers[i];
            let h = layer.ffn_norm.forward(&x)?;
            let h = (layer.gate.forward(&h)?.silu()? * layer.up.forward(&h)?)?;
            x = (x + layer.down.forward(&h)?)?;
        }
        self.norm.forward(&x)
    }

    fn attention(&mut self, i: usize, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (heads, kv_heads, head_dim, rope) =
            (self.heads, self.kv_heads, self.head_dim, self.rope);
        let layer = &mut self.layers[i];
        let n = x.dim(1)?;
        let h = layer.attn_norm.forward(x)?;
        let (mut q, mut k, mut v) = (
            layer.wq.forward(&h)?,
            layer.wk.forward(&h)?,
            layer.wv.forward(&h)?,
        );
        if let Some((bq, bk, bv)) = &layer.biases {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        // (1, n, heads·d) → (1, heads, n, d)
        let split = |t: Tensor, count: usize| {
            t.reshape((1, n, count, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let rotate = |t: &Tensor| match rope {
            Rope::Interleaved => candle_nn::rotary_emb::rope_i(t, cos, sin),
            Rope::Halves => candle_nn::rotary_emb::rope(t, cos, sin),
        };
        let q = rotate(&split(q, heads)?)?;
        let k = rotate(&split(k, kv_heads)?)?;
        let v = split(v, kv_heads)?;
        // Views of the cache up to this position: (1, kv_heads, len, d).
        let (k, v) = layer.cache.append(&k, &v)?;
        let len = k.dim(2)?;
        let group = heads / kv_heads;
        if let Some(y) = attend::causal(&q, &k, &v, group)? {
            return layer.wo.forward(&y);
        }
        // Not in CPU memory (a GPU): the query heads sharing a KV head are one batch of
        // `group·n` rows against it.
        let q = q.reshape((1, kv_heads, group * n, head_dim))?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        // A mask hides the positions after each query row's own.
        let scores = match (n > 1)
            .then(|| causal_mask(n, len - n, &self.device))
            .transpose()?
        {
            Some(mask) => scores
                .reshape((1, kv_heads, group, n, len))?
                .broadcast_add(&mask)?
                .reshape((1, kv_heads, group * n, len))?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .matmul(&v)?
            .reshape((1, heads, n, head_dim))?
            .transpose(1, 2)?
            .reshape((1, n, heads * head_dim))?;
        layer.wo.forward(&y)
    }
}

/// 0 where position `pos + row` may attend to column, minus infinity after it: (n, pos + n).
fn causal_mask(n: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let len = pos + n;
    let values: Vec<f32> = (0..n)
        .flat_map(|row| {
            (0..len).map(move |col| {
                if col > pos + row {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (n, len), device)
}

/// Cosine and sine of every position's rotation angles: (context, head_dim / 2) each.
fn rope_tables(
    head_dim: usize,
    base: f32,
    context: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv_freq = Tensor::new(inv_freq.as_slice(), device)?.unsqueeze(0)?;
    let positions = Tensor::arange(0u32, context as u32, device)?
        .to_dtype(DType::F32)?
        .unsqueeze(1)?;
    let angles = positions.broadcast_mul(&inv_freq)?;
    Ok((angles.cos()?, angles.sin()?))
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::path::{Path, PathBuf};

    use candle_transformers::models::{quantized_llama, quantized_qwen2};

    use super::*;

    fn installed(rel: &str) -> Option<PathBuf> {
        cabildo_core::fixtures::installed_model(rel)
    }

    /// This decoder's logits against candle-transformers' implementation of the same
    /// architecture on the same file: a prompt of `prompt_len` tokens, then three decode steps.
    fn agrees_with_reference(
        path: &Path,
        prompt_len: u32,
        mut reference: impl FnMut(&Tensor, usize) -> Result<Tensor>,
    ) -> Result<()> {
        let mut file = File::open(path)?;
        let ct = Content::read(&mut file)?;
        let mut ours = Decoder::from_gguf(&ct, &mut file, &Device::Cpu)?;
        let prompt: Vec<u32> = (0..prompt_len).map(|i| 100 + i * 97 % 3000).collect();
        let mut steps = vec![(prompt, 0)];
        for (i, id) in [17u32, 4242, 9].into_iter().enumerate() {
            steps.push((vec![id], prompt_len as usize + i));
        }
        for (ids, pos) in steps {
            let a = ours.forward(&ids, pos)?.flatten_all()?.to_vec1::<f32>()?;
            let input = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let b = reference(&input, pos)?.flatten_all()?.to_vec1::<f32>()?;
            let range = b.iter().fold(0f32, |m, x| m.max(x.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            // Activations are rounded to 8 bits before each quantised matmul, so any change
            // in float summation order moves some roundings, and the moves compound over the
            // layers: candle's own model fed the same prompt in two chunks instead of one
            // differs from itself by ~1.4% of the logit range on Qwen2.5, and on an AVX2-only
            // CPU this decoder differed by up to 2.9% through candle's products and 3.1%
            // through the tiled 8-bit product (`q8gemm`, same integer sums, another order of
            // float additions). 4% is allowed. The next token must agree, unless the reference
            // itself all but ties the two (within 1% of the range: SmolLM2 at position 532
            // gives 27.15 and 27.05 there, and this decoder 27.21 and 27.25).
            assert!(
                worst <= 0.04 * range,
                "{}: position {pos}: logits differ by {worst} (range {range})",
                path.display()
            );
            let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j]));
            let (ours, theirs) = (argmax(&a).unwrap_or(0), argmax(&b).unwrap_or(0));
            assert!(
                ours == theirs || b[theirs] - b[ours] <= 0.01 * range,
                "position {pos}: next token {ours} ({}), the reference's {theirs} ({})",
                b[ours],
                b[theirs]
            );
        }
        Ok(())
    }

    #[test]
    fn qwen2_logits_match_candle_transformers() -> Result<()> {
        let Some(path) = installed("qwen2.5-0.5b/model.gguf") else {
            return Ok(());
        };
        let mut file = File::open(&path)?;
        let ct = Content::read(&mut file)?;
        let mut model = quantized_qwen2::ModelWeights::from_gguf(ct, &mut file, &Device::Cpu)?;
        agrees_with_reference(&path, 40, |x, pos| model.forward(x, pos))
    }

    /// Past 512 positions, where the KV cache grows.
    #[test]
    fn llama_logits_match_candle_transformers() -> Result<()> {
        let Some(path) = installed("smollm2-135m/model.gguf") else {
            return Ok(());
        };
        let mut file = File::open(&path)?;
        let ct = Content::read(&mut file)?;
        let mut model = quantized_llama::ModelWeights::from_gguf(ct, &mut file, &Device::Cpu)?;
        agrees_with_reference(&path, CACHE_STEP as u32 + 20, |x, pos| {
            model.forward(x, pos)
        })
    }
}
