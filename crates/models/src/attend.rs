//! Causal grouped-query attention computed straight over the KV cache's CPU memory, for a
//! decode step (one query row) and for a prompt's prefill (many rows) alike.
//!
//! Through candle, prefill attention built the whole `rows × positions` score matrix per head
//! (166 MB a layer for a 1,724-token prompt: allocated, zeroed, masked by adding a second
//! matrix, then a single-threaded softmax), half of it for positions the mask then hid. Here
//! each query row reads only the positions it may see, the scores live in one buffer per
//! worker, the exponentials are a polynomial the compiler vectorises, and the rows and KV
//! heads are spread over candle's CPU worker pool. The query heads that share a KV head are
//! computed by the same worker, so each key and value row is read once for all of them. The
//! code is plain Rust, compiled twice: once for AVX2 and FMA (picked at run time) and once
//! for any CPU.

use candle_core::{Device, Layout, Result, Storage, Tensor};

/// Query rows a work item takes (prefill); a decode step is one item per KV head.
const ROWS_PER_ITEM: usize = 4;

/// Attention of `q` (1, heads, n, d), the queries at the last `n` of the cache's positions,
/// against the cache views `k` and `v` (1, kv_heads, positions, d): (1, n, heads · d). Query
/// head `h` reads KV head `h / group`; row `i` sees positions up to its own. `None` when the
/// tensors are not in CPU memory in the expected layout.
pub(crate) fn causal(q: &Tensor, k: &Tensor, v: &Tensor, group: usize) -> Result<Option<Tensor>> {
    let (_, heads, n, d) = q.dims4()?;
    let (_, kv_heads, len, _) = k.dims4()?;
    if len < n || heads != kv_heads * group || d == 0 {
        return Ok(None);
    }
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    let (k_storage, k_layout) = k.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_storage, &*v_storage) else {
        return Ok(None);
    };
    let (Some((k_start, k_head)), Some((v_start, v_head))) = (rows(k_layout, d), rows(v_layout, d))
    else {
        return Ok(None);
    };
    let (keys, values) = (k_cpu.as_slice::<f32>()?, v_cpu.as_slice::<f32>()?);
    let past = len - n;
    let mut out = vec![0f32; n * heads * d];
    let out_ptr = out.as_mut_ptr() as usize;
    let chunks = n.div_ceil(ROWS_PER_ITEM);
    let fast = has_avx2_fma();
    candle_core::utils::barrier_pool().execute_chunked(kv_heads * chunks, |range| {
        let mut scores = vec![0f32; len];
        for item in range {
            let (g, chunk) = (item / chunks, item % chunks);
            let keys = &keys[k_start + g * k_head..][..len * d];
            let values = &values[v_start + g * v_head..][..len * d];
            for i in chunk * ROWS_PER_ITEM..n.min((chunk + 1) * ROWS_PER_ITEM) {
                let visible = past + i + 1;
                for h in g * group..(g + 1) * group {
                    let query = &q[(h * n + i) * d..][..d];
                    // SAFETY: row i, head h of the output belongs to this work item alone.
                    let y = unsafe {
                        std::slice::from_raw_parts_mut(
                            (out_ptr as *mut f32).add((i * heads + h) * d),
                            d,
                        )
                    };
                    let scores = &mut scores[..visible];
                    match (fast, d) {
                        // SAFETY: AVX2 and FMA were detected; the head is 8 · C wide.
                        (true, 64) => unsafe { row_avx2::<8>(query, keys, values, scores, y) },
                        (true, 128) => unsafe { row_avx2::<16>(query, keys, values, scores, y) },
                        _ => row(query, keys, values, scores, y),
                    }
                }
            }
        }
    });
    Tensor::from_vec(out, (1, n, heads * d), &Device::Cpu).map(Some)
}

/// Start and head stride of a (1, heads, positions, d) view whose rows are contiguous.
fn rows(layout: &Layout, d: usize) -> Option<(usize, usize)> {
    match layout.stride() {
        [_, head_stride, row_stride, 1] if *row_stride == d => {
            Some((layout.start_offset(), *head_stride))
        }
        _ => None,
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`row`] for a head of `C` vectors of eight (64 or 128 values), in AVX2 and FMA: the
/// query and the weighted sum held in registers across the positions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2<const C: usize>(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    scores: &mut [f32],
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = C * 8;
    debug_assert!(query.len() == d && y.len() == d);
    debug_assert!(keys.len() >= scores.len() * d && values.len() >= scores.len() * d);
    let scale = 1.0 / (d as f32).sqrt();
    let q: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(query.as_ptr().add(c * 8)));
    for (j, score) in scores.iter_mut().enumerate() {
        let key = keys.as_ptr().add(j * d);
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in (0..C).step_by(2) {
            even = _mm256_fmadd_ps(q[c], _mm256_loadu_ps(key.add(c * 8)), even);
            odd = _mm256_fmadd_ps(q[c + 1], _mm256_loadu_ps(key.add(c * 8 + 8)), odd);
        }
        *score = crate::q8gemm::sum_lanes(_mm256_add_ps(even, odd)) * scale;
    }
    let total = softmax_weights(scores);
    let mut acc = [_mm256_setzero_ps(); C];
    for (j, &w) in scores.iter().enumerate() {
        let value = values.as_ptr().add(j * d);
        let w = _mm256_set1_ps(w);
        for (c, acc) in acc.iter_mut().enumerate() {
            *acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(value.add(c * 8)), *acc);
        }
    }
    let inverse = _mm256_set1_ps(1.0 / total);
    for (c, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(y.as_mut_ptr().add(c * 8), _mm256_mul_ps(*acc, inverse));
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn row_avx2<const C: usize>(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    scores: &mut [f32],
    y: &mut [f32],
) {
    row(query, keys, values, scores, y)
}

/// One query row of one head against the first `scores.len()` positions: softmax of the
/// scaled scores, then the weighted sum of the values into `y`.
fn row(query: &[f32], keys: &[f32], values: &[f32], scores: &mut [f32], y: &mut [f32]) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    for (score, key) in scores.iter_mut().zip(keys.chunks_exact(d)) {
        *score = dot(query, key) * scale;
    }
    let total = softmax_weights(scores);
    y.fill(0.0);
    for (&w, value) in scores.iter().zip(values.chunks_exact(d)) {
        for (acc, &x) in y.iter_mut().zip(value) {
            *acc += w * x;
        }
    }
    let inverse = 1.0 / total;
    for acc in y.iter_mut() {
        *acc *= inverse;
    }
}

/// Scores into unnormalised softmax weights, e^(score − max); returns their sum.
#[inline(always)]
fn softmax_weights(scores: &mut [f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    scores.iter().sum()
}

/// Dot product in eight lanes (a single running sum would not vectorise: float addition is
/// not reassociated).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    let tail: f32 = a
        .chunks_exact(8)
        .remainder()
        .iter()
        .zip(b.chunks_exact(8).remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// e^x for x ≤ 0 (a softmax's shifted scores), branch-free so that it vectorises: Cephes'
/// expf (x = n·ln 2 + r, a degree-7 polynomial for e^r, n added to the exponent bits);
/// relative error about 2e-7. x is clamped at -87 (e^-87 ≈ 1.6e-38, nothing beside the
/// maximum's 1), where f32's normal range ends.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that n · ln 2 is subtracted exactly.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in -2..2.
    fn values(count: usize, seed: u64) -> Vec<f32> {
        crate::test_values(count, seed)
            .into_iter()
            .map(|v| 2.0 * v)
            .collect()
    }

    /// The same attention through candle's matmul, mask and softmax (the decoder's path
    /// before this module).
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, group: usize) -> Result<Tensor> {
        let (_, heads, n, d) = q.dims4()?;
        let (_, kv_heads, len, _) = k.dims4()?;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..len).map(move |j| {
                    if j > len - n + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, len), &Device::Cpu)?;
        let q = q.reshape((1, kv_heads, group * n, d))?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?
            .reshape((1, kv_heads, group, n, len))?
            .broadcast_add(&mask)?
            .reshape((1, kv_heads, group * n, len))?;
        candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(v)?
            .reshape((1, heads, n, d))?
            .transpose(1, 2)?
            .reshape((1, n, heads * d))
    }

    #[test]
    fn agrees_with_candle_for_prefill_and_decode() -> Result<()> {
        // (query rows, positions before them, head width): a prompt, a later chunk, a decode
        // step, Llama 3's width, and a width only the portable code takes.
        for (n, past, d) in [
            (37, 0, 64),
            (9, 20, 64),
            (1, 700, 64),
            (6, 30, 128),
            (5, 3, 40),
        ] {
            let (heads, kv_heads) = (14, 2);
            let len = past + n;
            let q = Tensor::from_vec(values(heads * n * d, 1), (1, heads, n, d), &Device::Cpu)?;
            let k = Tensor::from_vec(
                values(kv_heads * len * d, 2),
                (1, kv_heads, len, d),
                &Device::Cpu,
            )?;
            let v = Tensor::from_vec(
                values(kv_heads * len * d, 3),
                (1, kv_heads, len, d),
                &Device::Cpu,
            )?;
            let ours = causal(&q, &k, &v, heads / kv_heads)?
                .ok_or_else(|| candle_core::Error::Msg("layout refused".into()))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let theirs = reference(&q, &k, &v, heads / kv_heads)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let worst = ours
                .iter()
                .zip(&theirs)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst < 1e-4,
                "n {n}, past {past}, d {d}: differs by {worst}"
            );
        }
        Ok(())
    }

    #[test]
    fn exp_is_within_a_few_ulps() {
        for i in 0..=10_000 {
            let x = -90.0 * i as f32 / 10_000.0;
            let (ours, std) = (exp(x), x.exp());
            let error = (ours - std).abs();
            assert!(
                error <= 4.0 * f32::EPSILON * std || x < -87.0,
                "exp({x}) = {ours}, std {std}"
            );
        }
    }
}
