//! Attention computed straight over CPU memory: causal grouped-query attention over the KV
//! cache, for a decode step (one query row) and for a prompt's prefill (many rows) alike, and
//! BERT's bidirectional attention over a padded batch of passages ([`padded`]).
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
                    attend_row(fast, query, keys, values, d, scores, y);
                }
            }
        }
    });
    Tensor::from_vec(out, (1, n, heads * d), &Device::Cpu).map(Some)
}

/// BERT's attention over a padded batch: `qkv` (b, t, 3 · heads · d) holds each position's
/// query, key and value side by side, as one projection writes them; each of the first
/// `lengths[s]` rows of sequence `s` sees those positions. Returns (b, t, heads · d), zeros
/// in the rows past each length: nothing reads them (the pooling masks them out), so they
/// are not computed. No mask is built; a work item is one sequence and head. `None` when
/// `qkv` is not f32 in CPU memory or a length is out of range.
pub(crate) fn padded(qkv: &Tensor, heads: usize, lengths: &[usize]) -> Result<Option<Tensor>> {
    padded_in(qkv, heads, lengths, Products::detect())
}

/// How [`padded`] multiplies: in f32 (AVX2 and FMA, or portable), or with its inputs rounded
/// to bf16 and the products added in f32 (AVX512-BF16).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Products {
    Portable,
    F32,
    Bf16,
}

impl Products {
    fn detect() -> Products {
        if has_bf16() {
            Products::Bf16
        } else if has_avx2_fma() {
            Products::F32
        } else {
            Products::Portable
        }
    }
}

fn has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
            && has_avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn padded_in(
    qkv: &Tensor,
    heads: usize,
    lengths: &[usize],
    products: Products,
) -> Result<Option<Tensor>> {
    let (b, t, width) = qkv.dims3()?;
    let d = width / (3 * heads).max(1);
    if d == 0 || width != 3 * heads * d || lengths.len() != b {
        return Ok(None);
    }
    if lengths.iter().any(|&len| len == 0 || len > t) {
        return Ok(None);
    }
    let qkv = qkv.contiguous()?;
    let (storage, layout) = qkv.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let Some(data) = cpu
        .as_slice::<f32>()?
        .get(layout.start_offset()..layout.start_offset() + b * t * width)
    else {
        return Ok(None);
    };
    let hidden = heads * d;
    if products == Products::Bf16 && matches!(d, 32 | 64 | 128) {
        // SAFETY: AVX512-BF16 was detected (Products::Bf16); the head is 32, 64 or 128 wide,
        // and `data` holds b · t rows of `width`.
        return unsafe { padded_bf16(data, t, heads, d, lengths) }.map(Some);
    }
    let fast = products != Products::Portable && matches!(d, 32 | 64 | 128);
    // The fast kernel writes every row of every head (zeros past a sequence's length)
    // through pointers: its output is not zeroed first. The portable path writes through
    // slices, so it is.
    let mut out: Vec<f32> = if fast {
        Vec::with_capacity(b * t * hidden)
    } else {
        vec![0f32; b * t * hidden]
    };
    let out_ptr = out.as_mut_ptr() as usize;
    // Head-major, as in `attend_bf16`: equal ranges of items are equal work.
    candle_core::utils::barrier_pool().execute_chunked(b * heads, |range| {
        let mut scratch = Scratch::default();
        for item in range {
            let (s, h) = (item % b, item / b);
            let head = Head {
                sequence: &data[s * t * width..][..t * width],
                width,
                hidden,
                column: h * d,
                d,
                rows: t,
                len: lengths[s],
            };
            // SAFETY: columns h · d.. of sequence s's rows belong to this work item alone,
            // and the output holds t rows of `hidden` for each sequence.
            let out = unsafe { (out_ptr as *mut f32).add(s * t * hidden) };
            match (fast, d) {
                // SAFETY: AVX2 and FMA were detected; the head is 8 · C wide.
                (true, 32) => unsafe { head_avx2::<4>(&head, &mut scratch, out) },
                (true, 64) => unsafe { head_avx2::<8>(&head, &mut scratch, out) },
                (true, 128) => unsafe { head_avx2::<16>(&head, &mut scratch, out) },
                _ => {
                    scratch.scores.resize(head.len, 0.0);
                    let keys = &head.sequence[hidden + head.column..];
                    let values = &head.sequence[2 * hidden + head.column..];
                    for i in 0..head.len {
                        // SAFETY: as above, row i's columns of this head.
                        let y = unsafe {
                            std::slice::from_raw_parts_mut(out.add(i * hidden + head.column), d)
                        };
                        let query = &head.sequence[i * width + head.column..][..d];
                        row(query, keys, values, width, &mut scratch.scores, y);
                    }
                }
            }
        }
    });
    // SAFETY: zeroed, or (the fast kernel) rows 0..t of columns h · d..(h + 1) · d of every
    // sequence s and head h were written above.
    unsafe { out.set_len(b * t * hidden) };
    Tensor::from_vec(out, (b, t, hidden), &Device::Cpu).map(Some)
}

/// One sequence and head of a padded batch: `rows` positions `width` values apart, each
/// holding queries, then keys (at `hidden`), then values (at `2 · hidden`); this head's `d`
/// values start at `column` in each; the first `len` positions are real.
struct Head<'a> {
    sequence: &'a [f32],
    width: usize,
    hidden: usize,
    column: usize,
    d: usize,
    rows: usize,
    len: usize,
}

impl Head<'_> {
    /// Asserts what the kernels' pointer arithmetic relies on: `d` a multiple of `multiple`,
    /// at least one real position, every row inside `sequence`, and this head's queries,
    /// keys and values inside each row.
    fn check(&self, multiple: usize) {
        assert!(self.d.is_multiple_of(multiple));
        assert!(self.len >= 1 && self.len <= self.rows);
        assert!(self.sequence.len() >= self.rows * self.width);
        assert!(self.column + self.d <= self.hidden && 3 * self.hidden <= self.width);
    }
}

/// A worker's buffers, reused across its work items.
#[derive(Default)]
struct Scratch {
    /// The head's keys transposed: `d` rows of the positions (padded to whole vectors).
    keys: Vec<f32>,
    scores: Vec<f32>,
    /// [`head_bf16`]'s softmax weights as pairs of bf16 in 32 bits.
    weights: Vec<u32>,
}

/// A padded batch's queries, keys and values rounded to bf16 (ties to even) and laid out for
/// [`head_bf16`], one region per sequence and head (`region = s · heads + h`), two bf16 a
/// 32-bit pair as `vdpbf16ps` reads them: queries `[region][row][d / 2]`; keys
/// `[region][d / 2][position]`, `positions` a row (the batch's length rounded up to 32);
/// values `[region][position pair][d]` (positions 2 · p and 2 · p + 1 of a column as one
/// pair, the pair past an odd length's last position zero). Only what a sequence's length
/// reaches is written: the buffers are kept from batch to batch (zeroing megabytes on the
/// calling thread while the pool's worker waited cost more than this packing saved), and the
/// kernel reads nothing past a length but the keys' padding, whose scores it discards.
#[derive(Default)]
struct Bf16Batch {
    queries: Vec<u32>,
    keys: Vec<u32>,
    values: Vec<u32>,
    /// The batch's length: rows of queries in a region.
    rows: usize,
    positions: usize,
    d: usize,
}

/// 16 values' bf16 bits, each in the low half of its lane: rounded to nearest, ties to even,
/// by integer arithmetic on the bits, as the vector conversion the softmax's weights take
/// (`vcvtne2ps2bf16`) rounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn round_bf16(from: &[f32]) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let bits = _mm512_loadu_si512(from[..16].as_ptr() as *const _);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
    let biased = _mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff));
    _mm512_srli_epi32::<16>(_mm512_add_epi32(biased, odd))
}

/// `from` (a multiple of 16 values) as pairs of bf16, in order, into `to` (low half first).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pairs_of(from: &[f32], to: *mut u32) {
    use std::arch::x86_64::*;
    for c in (0..from.len()).step_by(16) {
        let halves = _mm512_cvtepi32_epi16(round_bf16(&from[c..]));
        _mm256_storeu_si256((to as *mut u16).add(c) as *mut __m256i, halves);
    }
}

impl Bf16Batch {
    /// Packs `data` (`lengths.len()` sequences of `t` rows of queries, keys and values for
    /// `heads` heads of `d`, `d` a multiple of 32 up to 128) in one pass over the real rows in
    /// order, two rows a work item. (Packed per head instead, each row's 32 values of a head
    /// were read 4.6 KB after the last, and those loads waited on memory: a quarter of the
    /// attention's time.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn pack(&mut self, data: &[f32], t: usize, heads: usize, d: usize, lengths: &[usize]) {
        use std::arch::x86_64::*;
        assert!(d.is_multiple_of(32) && d <= 128);
        let (b, half, positions) = (lengths.len(), d / 2, t.next_multiple_of(32));
        let (hidden, width, regions) = (heads * d, 3 * heads * d, lengths.len() * heads);
        assert!(data.len() >= b * t * width && lengths.iter().all(|&len| len <= t));
        let sizes = [
            regions * t * half,
            regions * half * positions,
            regions * positions / 2 * d,
        ];
        (self.rows, self.positions, self.d) = (t, positions, d);
        let buffers = [&mut self.queries, &mut self.keys, &mut self.values];
        let to = std::array::from_fn::<_, 3, _>(|i| {
            // Grown, never shrunk: a batch only writes and reads its first `sizes[i]`.
            if buffers[i].len() < sizes[i] {
                buffers[i].resize(sizes[i], 0);
            }
            buffers[i].as_mut_ptr() as usize
        });
        // The real row pairs of all sequences, numbered in order, so that the workers' equal
        // ranges of them are equal work (the sequences' lengths differ).
        let ends: Vec<usize> = lengths
            .iter()
            .scan(0, |end, len| {
                *end += len.div_ceil(2);
                Some(*end)
            })
            .collect();
        let pairs = ends.last().copied().unwrap_or(0);
        candle_core::utils::barrier_pool().execute_chunked(pairs, |items| {
            let [queries, keys, values] = to.map(|at| at as *mut u32);
            let (mut first_keys, mut second_keys) = ([0u32; 64], [0u32; 64]);
            for item in items {
                let s = ends.partition_point(|&end| end <= item);
                let pair = item - (ends[s] - lengths[s].div_ceil(2));
                let j = 2 * pair;
                let first = &data[(s * t + j) * width..][..width];
                let second =
                    (j + 1 < lengths[s]).then(|| &data[(s * t + j + 1) * width..][..width]);
                for h in 0..heads {
                    let (region, column) = (s * heads + h, h * d);
                    // SAFETY (every write below): rows j and j + 1 of sequence s belong to
                    // this work item alone, and each offset lies inside its buffer (j + 1 <
                    // positions: t < positions when t is odd, and j + 1 < t when it is even).
                    let query = queries.add((region * t + j) * half);
                    pairs_of(&first[column..][..d], query);
                    match second {
                        Some(second) => {
                            pairs_of(&second[column..][..d], query.add(half));
                            pairs_of(&second[hidden + column..][..d], second_keys.as_mut_ptr());
                        }
                        // An odd length's last key pairs with a zero.
                        None => second_keys[..half].fill(0),
                    }
                    pairs_of(&first[hidden + column..][..d], first_keys.as_mut_ptr());
                    let key = keys.add(region * half * positions + j);
                    for p in 0..half {
                        key.add(p * positions)
                            .cast::<[u32; 2]>()
                            .write_unaligned([first_keys[p], second_keys[p]]);
                    }
                    let value = values.add((region * positions / 2 + pair) * d);
                    for c in (0..d).step_by(16) {
                        let low = round_bf16(&first[2 * hidden + column + c..]);
                        let high = match second {
                            Some(second) => round_bf16(&second[2 * hidden + column + c..]),
                            None => _mm512_setzero_si512(),
                        };
                        let pair = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
                        _mm512_storeu_si512(value.add(c) as *mut _, pair);
                    }
                }
            }
        });
    }
}

/// [`padded`] with AVX512-BF16: the batch packed in bf16 ([`Bf16Batch::pack`]), then one
/// work item of [`head_bf16`] per sequence and head. `data` holds the `lengths.len()`
/// sequences of `t` rows; `d` is 32, 64 or 128.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn padded_bf16(
    data: &[f32],
    t: usize,
    heads: usize,
    d: usize,
    lengths: &[usize],
) -> Result<Tensor> {
    thread_local! {
        static BATCH: std::cell::RefCell<Bf16Batch> = Default::default();
    }
    BATCH.with_borrow_mut(|batch| {
        batch.pack(data, t, heads, d, lengths);
        attend_bf16(batch, t, heads, lengths)
    })
}

/// [`padded_bf16`]'s work once `batch` is packed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn attend_bf16(
    batch: &Bf16Batch,
    t: usize,
    heads: usize,
    lengths: &[usize],
) -> Result<Tensor> {
    let (b, d) = (lengths.len(), batch.d);
    let hidden = heads * d;
    let mut out: Vec<f32> = Vec::with_capacity(b * t * hidden);
    let out_ptr = out.as_mut_ptr() as usize;
    // Work items head-major: a worker's range takes the same heads of every sequence, so the
    // ranges are equal work whatever the sequences' lengths.
    candle_core::utils::barrier_pool().execute_chunked(b * heads, |range| {
        let mut scratch = Scratch::default();
        for item in range {
            let (s, h) = (item % b, item / b);
            // SAFETY: columns h · d.. of sequence s's t rows belong to this work item alone.
            let out = (out_ptr as *mut f32).add(s * t * hidden + h * d);
            head_bf16(batch, s * heads + h, lengths[s], hidden, &mut scratch, out);
        }
    });
    // SAFETY: head_bf16 wrote rows 0..t of columns h · d..(h + 1) · d of every sequence s
    // and head h.
    out.set_len(b * t * hidden);
    Tensor::from_vec(out, (b, t, hidden), &Device::Cpu)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn padded_bf16(_: &[f32], _: usize, _: usize, _: usize, _: &[usize]) -> Result<Tensor> {
    unreachable!("AVX512-BF16 is only detected on x86-64")
}

/// [`padded`]'s work for one region of `batch` (a sequence and head whose first `len`
/// positions are real) with AVX512-BF16's `vdpbf16ps`: a lane adds the products of two bf16
/// pairs to its f32 sum, twice the multiply-adds of an f32 FMA per instruction. Queries,
/// keys, values and the softmax's weights are rounded to bf16 (8 bits of mantissa); the
/// products are exact in f32 and summed in f32, and the softmax itself is in f32. Scores:
/// four query rows against 32 positions, a broadcast query pair times 16 key pairs per
/// instruction. Weighted sums: a broadcast pair of weights (two positions) times the values
/// of those two positions for 16 columns. Writes the head's `d` columns of `batch.rows` rows,
/// `hidden` values apart, from `out`: zeros past `len`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn head_bf16(
    batch: &Bf16Batch,
    region: usize,
    len: usize,
    hidden: usize,
    scratch: &mut Scratch,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    use std::mem::transmute;
    let (rows, positions, d) = (batch.rows, batch.positions, batch.d);
    assert!(d.is_multiple_of(32) && len >= 1 && len <= rows);
    let (half, padded, position_pairs) = (d / 2, len.next_multiple_of(32), len.div_ceil(2));
    let queries = &batch.queries[region * rows * half..][..rows * half];
    let keys = &batch.keys[region * half * positions..][..half * positions];
    let values = &batch.values[region * positions / 2 * d..][..positions / 2 * d];
    let weights = &mut scratch.weights;
    weights.resize(HEAD_ROWS * padded / 2, 0);
    let scores = &mut scratch.scores;
    scores.clear();
    scores.resize(HEAD_ROWS * padded, 0.0);
    let scale = _mm512_set1_ps(1.0 / (d as f32).sqrt());
    let broadcast = |x: u32| -> __m512bh { transmute(_mm512_set1_epi32(x as i32)) };
    let load = |p: *const u32| -> __m512bh { transmute(_mm512_loadu_si512(p as *const _)) };
    for first in (0..len).step_by(HEAD_ROWS) {
        // Past the last real row the group repeats it; those results are not written.
        let query: [&[u32]; HEAD_ROWS] =
            std::array::from_fn(|r| &queries[(first + r).min(len - 1) * half..][..half]);
        for j in (0..padded).step_by(32) {
            let mut acc = [[_mm512_setzero_ps(); 2]; HEAD_ROWS];
            for p in 0..half {
                // SAFETY: p < half and j + 32 ≤ padded ≤ positions.
                let key = keys.as_ptr().add(p * positions + j);
                let (k0, k1) = (load(key), load(key.add(16)));
                for (acc, query) in acc.iter_mut().zip(&query) {
                    let q = broadcast(*query.get_unchecked(p));
                    acc[0] = _mm512_dpbf16_ps(acc[0], q, k0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], q, k1);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = scores.as_mut_ptr().add(r * padded + j);
                _mm512_storeu_ps(row, _mm512_mul_ps(acc[0], scale));
                _mm512_storeu_ps(row.add(16), _mm512_mul_ps(acc[1], scale));
            }
        }
        let mut totals = [0f32; HEAD_ROWS];
        for (r, total) in totals.iter_mut().enumerate() {
            let row = &mut scores[r * padded..][..padded];
            *total = softmax_weights(&mut row[..len]);
            row[len..].fill(0.0);
            // The weights in bf16, two positions a pair: 32 at a time, in order.
            let to = weights.as_mut_ptr().add(r * padded / 2);
            for (c, chunk) in row.chunks_exact(32).enumerate() {
                let low = _mm512_loadu_ps(chunk.as_ptr());
                let high = _mm512_loadu_ps(chunk.as_ptr().add(16));
                let packed: __m512i = transmute(_mm512_cvtne2ps_pbh(high, low));
                _mm512_storeu_si512(to.add(c * 16) as *mut _, packed);
            }
        }
        for part in (0..d).step_by(32) {
            let mut acc = [[_mm512_setzero_ps(); 2]; HEAD_ROWS];
            for pair in 0..position_pairs {
                // SAFETY: pair < position_pairs ≤ positions / 2, part + 32 ≤ d.
                let value = values.as_ptr().add(pair * d + part);
                let (v0, v1) = (load(value), load(value.add(16)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w = broadcast(*weights.get_unchecked(r * padded / 2 + pair));
                    acc[0] = _mm512_dpbf16_ps(acc[0], w, v0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], w, v1);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                if first + r >= len {
                    break;
                }
                let inverse = _mm512_set1_ps(1.0 / totals[r]);
                let y = out.add((first + r) * hidden + part);
                _mm512_storeu_ps(y, _mm512_mul_ps(acc[0], inverse));
                _mm512_storeu_ps(y.add(16), _mm512_mul_ps(acc[1], inverse));
            }
        }
    }
    for i in len..rows {
        std::ptr::write_bytes(out.add(i * hidden), 0, d);
    }
}

/// Query rows whose scores are computed together (an even number: their weighted sums go
/// in pairs).
const HEAD_ROWS: usize = 4;
const _: () = assert!(HEAD_ROWS.is_multiple_of(2));

/// [`padded`]'s work for one head, in AVX2 and FMA. The keys are first transposed, so that
/// the scores of four query rows against sixteen positions are eight running vectors of
/// fused multiply-adds, each key value loaded once for the four rows and no horizontal sum
/// per score (a head of 32 values made one sum of eight lanes per 32 multiplications).
/// `C` is a multiple of 4 (heads of 32, 64 or 128 values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2<const C: usize>(head: &Head, scratch: &mut Scratch, out: *mut f32) {
    use std::arch::x86_64::*;
    let d = C * 8;
    assert!(C.is_multiple_of(4) && head.d == d);
    head.check(32);
    let Head {
        sequence,
        width,
        hidden,
        column,
        rows,
        len,
        ..
    } = *head;
    let padded = len.next_multiple_of(16);
    let keys = &mut scratch.keys;
    // Only the padding past `len` needs zeros: the rest is written below (clearing the whole
    // buffer for every head was most of a passage batch's memset).
    keys.resize(keys.len().max(d * padded), 0.0);
    for c in 0..d {
        keys[c * padded + len..(c + 1) * padded].fill(0.0);
    }
    for j in 0..len {
        for (c, &value) in sequence[j * width + hidden + column..][..d]
            .iter()
            .enumerate()
        {
            keys[c * padded + j] = value;
        }
    }
    let scores = &mut scratch.scores;
    scores.clear();
    scores.resize(HEAD_ROWS * padded, 0.0);
    let scale = _mm256_set1_ps(1.0 / (d as f32).sqrt());
    let base = sequence.as_ptr();
    for first in (0..len).step_by(HEAD_ROWS) {
        // Past the last real row the group repeats it; those results are not written.
        let query: [*const f32; HEAD_ROWS] =
            std::array::from_fn(|r| base.add((first + r).min(len - 1) * width + column));
        for j in (0..padded).step_by(16) {
            let mut acc = [[_mm256_setzero_ps(); 2]; HEAD_ROWS];
            for c in 0..d {
                let key = keys.as_ptr().add(c * padded + j);
                let (k0, k1) = (_mm256_loadu_ps(key), _mm256_loadu_ps(key.add(8)));
                for (acc, q) in acc.iter_mut().zip(&query) {
                    let q = _mm256_broadcast_ss(&*q.add(c));
                    acc[0] = _mm256_fmadd_ps(q, k0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(q, k1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = scores.as_mut_ptr().add(r * padded + j);
                _mm256_storeu_ps(row, _mm256_mul_ps(acc[0], scale));
                _mm256_storeu_ps(row.add(8), _mm256_mul_ps(acc[1], scale));
            }
        }
        let totals: [f32; HEAD_ROWS] =
            std::array::from_fn(|r| softmax_weights(&mut scores[r * padded..][..len]));
        // The weighted sums of the values two rows at a time, 32 values at a time: eight
        // running sums share each value loaded (one row's four made the adds wait on each
        // other).
        for pair in (0..HEAD_ROWS).step_by(2) {
            let weights = [
                scores.as_ptr().add(pair * padded),
                scores.as_ptr().add((pair + 1) * padded),
            ];
            for part in (0..C).step_by(4) {
                let (mut first_row, mut second_row) =
                    ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
                for j in 0..len {
                    let value = base.add(j * width + 2 * hidden + column + part * 8);
                    let w = weights.map(|row| _mm256_broadcast_ss(&*row.add(j)));
                    for (c, (a, b)) in first_row.iter_mut().zip(&mut second_row).enumerate() {
                        let v = _mm256_loadu_ps(value.add(c * 8));
                        *a = _mm256_fmadd_ps(w[0], v, *a);
                        *b = _mm256_fmadd_ps(w[1], v, *b);
                    }
                }
                let acc = [first_row, second_row];
                for (r, acc) in (pair..pair + 2).zip(&acc) {
                    if first + r >= len {
                        break;
                    }
                    let inverse = _mm256_set1_ps(1.0 / totals[r]);
                    let y = out.add((first + r) * hidden + column + part * 8);
                    for (c, acc) in acc.iter().enumerate() {
                        _mm256_storeu_ps(y.add(c * 8), _mm256_mul_ps(*acc, inverse));
                    }
                }
            }
        }
    }
    for i in len..rows {
        std::ptr::write_bytes(out.add(i * hidden + column), 0, d);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn head_avx2<const C: usize>(_: &Head, _: &mut Scratch, _: *mut f32) {
    unreachable!("AVX2 is only detected on x86-64")
}

/// One query row against the first `scores.len()` positions of `keys` and `values`, whose
/// rows lie `stride` values apart, into `y`: in AVX2 and FMA for heads of 32, 64 or 128
/// when `fast`, else portable.
fn attend_row(
    fast: bool,
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    let d = query.len();
    match (fast, d) {
        // SAFETY: AVX2 and FMA were detected; the head is 8 · C wide.
        (true, 32) => unsafe { row_avx2::<4>(query, keys, values, stride, scores, y) },
        (true, 64) => unsafe { row_avx2::<8>(query, keys, values, stride, scores, y) },
        (true, 128) => unsafe { row_avx2::<16>(query, keys, values, stride, scores, y) },
        _ => row(query, keys, values, stride, scores, y),
    }
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
    stride: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = C * 8;
    let reach = scores.len().saturating_sub(1) * stride + d;
    assert!(query.len() == d && y.len() == d && stride >= d);
    assert!(scores.is_empty() || (keys.len() >= reach && values.len() >= reach));
    let scale = 1.0 / (d as f32).sqrt();
    let q: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(query.as_ptr().add(c * 8)));
    for (j, score) in scores.iter_mut().enumerate() {
        let key = keys.as_ptr().add(j * stride);
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
        let value = values.as_ptr().add(j * stride);
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
    stride: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    row(query, keys, values, stride, scores, y)
}

/// One query row of one head against the first `scores.len()` positions (rows `stride`
/// values apart): softmax of the scaled scores, then the weighted sum of the values into `y`.
fn row(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    for (j, score) in scores.iter_mut().enumerate() {
        *score = dot(query, &keys[j * stride..][..d]) * scale;
    }
    let total = softmax_weights(scores);
    y.fill(0.0);
    for (j, &w) in scores.iter().enumerate() {
        for (acc, &x) in y.iter_mut().zip(&values[j * stride..][..d]) {
            *acc += w * x;
        }
    }
    let inverse = 1.0 / total;
    for acc in y.iter_mut() {
        *acc *= inverse;
    }
}

/// Scores into unnormalised softmax weights, e^(score − max); returns their sum. The maximum
/// and the sum run in eight lanes: as one running value neither vectorises (float addition
/// is not reassociated), and they were a seventh of a passage batch's attention.
#[inline(always)]
fn softmax_weights(scores: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    for chunk in scores.chunks_exact(8) {
        for (lane, &score) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(score);
        }
    }
    let tail = scores.chunks_exact(8).remainder();
    let max = lanes
        .iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let mut lanes = [0f32; 8];
    for chunk in scores.chunks_exact(8) {
        for (lane, &weight) in lanes.iter_mut().zip(chunk) {
            *lane += weight;
        }
    }
    lanes.iter().sum::<f32>() + scores.chunks_exact(8).remainder().iter().sum::<f32>()
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
/// maximum's 1), where f32's normal range ends. The steps are fused multiply-adds: one
/// instruction each on the x86-64-v3 target this builds for, and one rounding instead of two
/// (the exponentials were a quarter of the passage attention's time).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that n · ln 2 is subtracted exactly.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = x.mul_add(LOG2E, 0.5).floor();
    let r = n.mul_add(-LN2_LOW, n.mul_add(-LN2_HIGH, x));
    let p = 1.987_569_1e-4f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 0.166_666_65);
    let p = p.mul_add(r, 0.5);
    let e = (p * r).mul_add(r, r + 1.0);
    // n is a whole number in -126..=1: added to 1.5 · 2²³ it fills the low bits of the sum's
    // mantissa, read back as an integer. (`n as i32` saturates and maps NaN to 0, which the
    // compiler does with scalar compares and moves: the loop did not vectorise, and the
    // softmax's exponentials were 15% of a passage batch's time.)
    let n = (n + 12_582_912.0).to_bits() as i32 - 0x4B40_0000;
    e * f32::from_bits(((n + 127) << 23) as u32)
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

    /// BERT's attention over a padded batch, against candle's permute, matmul, additive
    /// mask and softmax (the encoder's path before [`padded`]), for e5-small's head width and
    /// two the other kernels take.
    #[test]
    fn padded_agrees_with_candle() -> Result<()> {
        for (heads, d, lengths) in [
            (12, 32, vec![23, 23, 9]),
            (4, 64, vec![17, 1]),
            (2, 128, vec![5]),
            (3, 40, vec![6, 2]),
        ] {
            let (b, t) = (lengths.len(), lengths[0]);
            let hidden = heads * d;
            let qkv = Tensor::from_vec(
                values(b * t * 3 * hidden, 4),
                (b, t, 3 * hidden),
                &Device::Cpu,
            )?;
            let mask: Vec<f32> = lengths
                .iter()
                .flat_map(|&len| (0..t).map(move |j| if j < len { 0.0 } else { -1e9 }))
                .collect();
            let mask = Tensor::from_vec(mask, (b, 1, 1, t), &Device::Cpu)?;
            let split = qkv
                .reshape((b, t, 3, heads, d))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?;
            let (q, k, v) = (split.get(0)?, split.get(1)?, split.get(2)?);
            let scores =
                (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?.broadcast_add(&mask)?;
            let theirs = candle_nn::ops::softmax_last_dim(&scores)?
                .matmul(&v)?
                .transpose(1, 2)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let mut products = vec![(Products::Portable, 1e-4)];
            if has_avx2_fma() {
                products.push((Products::F32, 1e-4));
            }
            // bf16 keeps 8 bits of mantissa: scores and weights move by a few parts in a
            // thousand, and so does each output.
            if has_bf16() {
                products.push((Products::Bf16, 2e-2));
            }
            for (products, bound) in products {
                let ours = padded_in(&qkv, heads, &lengths, products)?
                    .ok_or_else(|| candle_core::Error::Msg("layout refused".into()))?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut worst = 0f32;
                for (i, (ours, theirs)) in
                    ours.chunks(hidden).zip(theirs.chunks(hidden)).enumerate()
                {
                    if i % t < lengths[i / t] {
                        for (a, b) in ours.iter().zip(theirs) {
                            worst = worst.max((a - b).abs());
                        }
                    } else {
                        assert!(
                            ours.iter().all(|&x| x == 0.0),
                            "{products:?}: padding row {i} not zero"
                        );
                    }
                }
                assert!(
                    worst < bound,
                    "{heads} heads of {d}, {products:?}: differs by {worst}"
                );
            }
        }
        Ok(())
    }

    /// The queries', keys' and values' rounding gives the bits of the conversion instruction
    /// the weights take, ties and negative values included.
    #[test]
    fn bf16_rounding_matches_the_conversion_instruction() {
        if !has_bf16() {
            return;
        }
        let mut xs = values(4096, 9);
        // Exact ties (the low 16 bits 0x8000), with an odd and an even bf16 below them.
        xs.extend([0x3f80_8000u32, 0x3f81_8000, 0xbf80_8000, 0x4049_0fdb].map(f32::from_bits));
        xs.resize(xs.len().next_multiple_of(32), 1.0);
        #[cfg(target_arch = "x86_64")]
        for chunk in xs.chunks_exact(32) {
            use std::arch::x86_64::*;
            // SAFETY: AVX512-BF16 was detected above.
            let (ours, theirs): ([u16; 32], [u16; 32]) = unsafe {
                let mut ours = [0u32; 16];
                pairs_of(chunk, ours.as_mut_ptr());
                let high = _mm512_loadu_ps(chunk.as_ptr().add(16));
                let low = _mm512_loadu_ps(chunk.as_ptr());
                (
                    std::mem::transmute::<[u32; 16], [u16; 32]>(ours),
                    std::mem::transmute::<__m512bh, [u16; 32]>(_mm512_cvtne2ps_pbh(high, low)),
                )
            };
            assert_eq!(ours, theirs);
        }
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
