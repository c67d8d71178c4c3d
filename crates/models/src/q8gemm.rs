//! 8-bit matrix products for many rows at once (a prompt's prefill, batches of passages), on
//! CPUs with AVX2.
//!
//! candle 0.11 multiplies a Q8_0 matrix by several input rows one 32-value dot product at a
//! time: every weight block is reloaded, and its scale converted, once per input row, and the
//! per-block float work is never shared. On Qwen2.5-0.5B (whose Q5_0 matrices are widened to
//! Q8_0, see [`crate::widen`]) that dot product was 71% of a 700-token prefill's time
//! (`perf`, docs/benchmarks.md).
//!
//! Here the input rows are quantised once to 8 bits per block of 32 values, as candle and
//! llama.cpp do, and a work item's weight rows are copied into the layout of candle's own
//! repacked Q4_K kernel: four consecutive values of eight rows in one 32-byte vector. One
//! byte product (`maddubs`, then `madd` to 32 bits) then advances eight output sums at once
//! against four input values broadcast to every lane; the sums stay integers across a block
//! and the float work (scales, conversion) is done once a block for eight rows. AVX2 has no
//! signed-by-signed byte product, so, as llama.cpp does, the weights' absolute values are
//! multiplied by the inputs carrying the weights' signs. Matrices whose values fit in
//! -16..=16 (every Q5_0 matrix widened at load) add the 16-bit products of a whole block
//! before widening them, which cannot overflow for them. On CPUs with AVX512-VNNI one
//! instruction (`vpdpbusd`) makes the byte products and adds them to 32-bit sums.
//!
//! The inputs are rounded exactly as candle rounds them (scale `amax / 127` stored as f16), so
//! the integer sums are the same as candle's and only the order of the float additions
//! differs.

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Storage, Tensor};
use half::f16;
use std::sync::Arc;

/// Values per block (Q8_0 and the quantised inputs).
const BLOCK: usize = 32;
/// Bytes of one Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Bytes of one Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
const Q5_0_BYTES: usize = 22;
/// Weight rows per work item of a one-row product.
const GEMV_ROWS: usize = 64;
/// Weight rows per vector of sums (eight 32-bit lanes).
const TILE_W: usize = 8;
/// Input rows per register tile, at most: the VNNI kernel's. With AVX-512VL it has 32 vector
/// registers, room for twelve rows' integer sums and float totals; twelve independent chains
/// of `vpdpbusd` hide its latency, where six left the units waiting (1.2–1.4x on e5's
/// matrices). The AVX2 kernel, with 16 registers, takes [`TILE_X_AVX2`] rows.
const TILE_X: usize = 12;
/// Input rows per register tile of the AVX2 kernel.
const TILE_X_AVX2: usize = 6;
const _: () = assert!(TILE_X.is_multiple_of(TILE_X_AVX2));
/// Input rows per work item: 96 rows of a 4,864-wide input are 467 KB, which stay in L2 while
/// the item's weight rows stream past them.
const ITEM_X: usize = 8 * TILE_X;
/// Weight rows per work item (copied into the tile layout once per item).
const ITEM_W: usize = 8 * TILE_W;

/// The block formats read here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Format {
    /// An f16 scale and 32 signed bytes.
    Q8_0,
    /// An f16 scale, 32 high bits and 16 bytes of low nibbles: values -16..=15.
    Q5_0,
}

impl Format {
    fn of(dtype: GgmlDType) -> Option<Format> {
        match dtype {
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            GgmlDType::Q5_0 => Some(Format::Q5_0),
            _ => None,
        }
    }

    /// Bytes of one block of 32 values.
    fn block_bytes(self) -> usize {
        match self {
            Format::Q8_0 => Q8_0_BYTES,
            Format::Q5_0 => Q5_0_BYTES,
        }
    }
}

/// A linear layer over a quantised matrix. On CPUs with AVX2, FMA and F16C, Q8_0 and Q5_0
/// matrices multiply several input rows through the tiled product here, and a Q5_0 matrix
/// one row too (candle has no vectorised Q5_0 product; decoding reads it as stored, 22 bytes
/// a block, where widening it to Q8_0 read 34). Everything else is candle's product.
pub(crate) struct Linear {
    candle: QMatMul,
    tiled: Option<(Arc<QTensor>, Format)>,
    range: WeightRange,
    /// Whether the tiles use AVX512-VNNI ([`has_vnni`] when built; tests turn it off to
    /// check the AVX2 kernel on CPUs that have both).
    vnni: bool,
}

/// The range of a matrix's values, which decides how the kernel adds a block's products.
#[derive(Clone, Copy, Debug, PartialEq)]
enum WeightRange {
    /// Any signed byte: the products are widened to 32 bits as they are made.
    Full = 0,
    /// -16..=16 (every Q5_0 matrix): a block's 16-bit products are added before widening.
    Narrow = 1,
    /// -8..=7 (Q4_0, as e5's matrices): the weights are stored plus 8, unsigned, so that the
    /// byte product takes them as they are, without moving their signs onto the inputs; the
    /// block's extra 8 · Σ input is where its integer sums start ([`Quantised::offsets`]).
    FourBit = 2,
}

impl Linear {
    pub(crate) fn from_qtensor(tensor: QTensor) -> Result<Self> {
        let candle = QMatMul::from_qtensor(tensor)?;
        let tiled = match &candle {
            QMatMul::QTensor(t)
                if t.device().is_cpu() && t.shape().dims().len() == 2 && supported() =>
            {
                Format::of(t.dtype()).map(|format| (t.clone(), format))
            }
            _ => None,
        };
        let range = match &tiled {
            Some((_, Format::Q5_0)) => WeightRange::Narrow,
            Some((t, Format::Q8_0)) => {
                let data = t.data()?;
                let values = || {
                    data.chunks_exact(Q8_0_BYTES)
                        .flat_map(|block| block[2..].iter().map(|&q| q as i8))
                };
                if values().all(|q| (-8..=7).contains(&q)) {
                    WeightRange::FourBit
                } else if values().all(|q| q.unsigned_abs() <= 16) {
                    WeightRange::Narrow
                } else {
                    WeightRange::Full
                }
            }
            None => WeightRange::Full,
        };
        Ok(Linear {
            candle,
            tiled,
            range,
            vnni: has_vnni(),
        })
    }

    /// The matrices of `parts` one below the other, as one layer whose output is theirs side
    /// by side (every output value the same dot product). `None` unless all are quantised
    /// matrices of one format and width.
    pub(crate) fn stack(parts: &[&Linear]) -> Result<Option<Linear>> {
        let mut bytes = Vec::new();
        let mut rows = 0;
        let mut kind = None;
        for part in parts {
            let QMatMul::QTensor(t) = &part.candle else {
                return Ok(None);
            };
            let (n, k) = t.shape().dims2()?;
            if kind.is_some_and(|(dtype, width, _)| (dtype, width) != (t.dtype(), k)) {
                return Ok(None);
            }
            kind = Some((t.dtype(), k, t.device()));
            bytes.extend_from_slice(&t.data()?);
            rows += n;
        }
        let Some((dtype, k, device)) = kind else {
            return Ok(None);
        };
        let joined = qtensor_from_ggml(dtype, &bytes, vec![rows, k], &device)?;
        Linear::from_qtensor(joined).map(Some)
    }

    /// Whether many input rows go through the tiled product here (else candle's, one dot
    /// product per row and column: slower than f32 GEMM for batches).
    pub(crate) fn is_tiled(&self) -> bool {
        self.tiled.is_some()
    }

    /// Whether a Q5_0 matrix can be kept as stored (the tiled product runs on this CPU);
    /// otherwise callers widen it to Q8_0 for candle's product.
    pub(crate) fn reads_q5_0() -> bool {
        supported()
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &Epilogue::default())
    }

    /// `x` times the transpose of the matrix, then `epilogue` on every output value: in the
    /// tiled product while each work item's outputs are still in cache, elsewhere as a pass
    /// over candle's output.
    pub(crate) fn forward_with(&self, x: &Tensor, epilogue: &Epilogue) -> Result<Tensor> {
        let Some((weights, format)) = &self.tiled else {
            return epilogue.after(self.candle.forward(x)?);
        };
        let dims = x.dims().to_vec();
        let Some((&k, batch)) = dims.split_last() else {
            return epilogue.after(self.candle.forward(x)?);
        };
        let m: usize = batch.iter().product();
        let (n, wk) = weights.shape().dims2()?;
        if (m < 2 && *format == Format::Q8_0) || m == 0 || wk != k || !k.is_multiple_of(BLOCK) {
            return epilogue.after(self.candle.forward(x)?);
        }
        epilogue.check(m, n)?;
        let x = x.contiguous()?;
        let out = {
            let (storage, layout) = x.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                return epilogue.after(self.candle.forward(&x)?);
            };
            let start = layout.start_offset();
            let Some(input) = cpu.as_slice::<f32>()?.get(start..start + m * k) else {
                candle_core::bail!("input of {m} rows of {k} is shorter than its layout")
            };
            let bytes = weights.data()?;
            let matrix = Matrix {
                bytes: &bytes,
                format: *format,
                n,
                k,
            };
            if m == 1 {
                let mut out = gemv(matrix, input);
                epilogue.apply(&mut out, 0, 0, n);
                out
            } else {
                let kernel = kernel(self.range, self.vnni);
                matmul(matrix, input, m, self.range, kernel, epilogue)
            }
        };
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        Tensor::from_vec(out, shape, x.device())
    }
}

/// What is done to each output value as the product writes it, in this order: the bias
/// added, the activation applied, the residual added. Each step is the float operation a
/// separate pass over the output would make (`y + b`, `y + r`; float addition commutes), so
/// the values are the same bits; what is saved is the passes themselves, each a trip
/// through memory, an allocation and, on two cores, a wait for the worker pool.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    /// One value per output column.
    pub bias: Option<&'a [f32]>,
    /// Applied in place to runs of consecutive outputs of one row.
    pub activation: Option<fn(&mut [f32])>,
    /// As many rows and columns as the output, row-major.
    pub residual: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    fn is_empty(&self) -> bool {
        self.bias.is_none() && self.activation.is_none() && self.residual.is_none()
    }

    /// An error unless the bias and the residual fit an output of `m` rows of `n`.
    fn check(&self, m: usize, n: usize) -> Result<()> {
        if let Some(bias) = self.bias.filter(|b| b.len() != n) {
            candle_core::bail!("bias of {} values for {n} outputs", bias.len())
        }
        if self.residual.is_some_and(|r| r.len() != m * n) {
            candle_core::bail!("residual does not have {m} rows of {n}")
        }
        Ok(())
    }

    /// Applies to `values`, the outputs of row `row` from column `column` on, in an output
    /// `n` columns wide.
    fn apply(&self, values: &mut [f32], row: usize, column: usize, n: usize) {
        if let Some(bias) = self.bias {
            for (y, b) in values.iter_mut().zip(&bias[column..]) {
                *y += *b;
            }
        }
        if let Some(activation) = self.activation {
            activation(values);
        }
        if let Some(residual) = self.residual {
            for (y, r) in values.iter_mut().zip(&residual[row * n + column..]) {
                *y += *r;
            }
        }
    }

    /// Applies to a whole product computed elsewhere (candle's).
    fn after(&self, y: Tensor) -> Result<Tensor> {
        if self.is_empty() {
            return Ok(y);
        }
        let n = y.dims().last().copied().unwrap_or(1).max(1);
        let m = y.elem_count() / n;
        self.check(m, n)?;
        let mut values = y.flatten_all()?.to_vec1::<f32>()?;
        for (row, values) in values.chunks_exact_mut(n).enumerate() {
            self.apply(values, row, 0, n);
        }
        Tensor::from_vec(values, y.shape(), y.device())
    }
}

/// A quantised matrix of `n` rows of `k` values, as stored.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    bytes: &'a [u8],
    format: Format,
    n: usize,
    k: usize,
}

impl Matrix<'_> {
    /// Block `b` of row `r`.
    fn block(&self, r: usize, b: usize) -> &[u8] {
        let size = self.format.block_bytes();
        &self.bytes[(r * (self.k / BLOCK) + b) * size..][..size]
    }
}

/// Whether this CPU runs the tiled kernel.
fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Input rows quantised per block of 32: values row-major, one scale per block; several rows
/// are padded with zero rows to a whole number of register tiles.
#[derive(Default)]
struct Quantised {
    quants: Vec<i8>,
    scales: Vec<f32>,
    /// Each block's −8 · Σ values, when asked for: the four-bit kernel's sums start there
    /// (one broadcast load a row and block, where subtracting 8 · Σ at the end took four
    /// instructions).
    offsets: Vec<i32>,
}

/// Quantises `m` rows of `k` values (a whole number of blocks) as candle's
/// `BlockQ8_0::from_float` does: scale `amax / 127` (kept as the f16 candle stores), values
/// `round(x / scale)`. Several rows are quantised in parallel and padded to whole register
/// tiles, into the buffers [`recycle`] kept from this thread's previous product; one row (a
/// decode step's input, once per matrix and token) in place, unpadded. With `offsets`, each
/// block's offset for the four-bit kernel too, computed by the same workers (on the calling
/// thread alone it kept the pool's worker waiting). The buffers may be longer than asked
/// for: past row `padded` they hold an earlier product's values, which nothing reads.
fn quantise(x: &[f32], m: usize, k: usize, offsets: bool) -> Quantised {
    let kb = k / BLOCK;
    let offsets_per_row = if offsets { kb } else { 0 };
    if m == 1 {
        let (mut quants, mut scales) = (vec![0i8; k], vec![0f32; kb]);
        let mut block_offsets = vec![0i32; offsets_per_row];
        quantise_rows(&x[..k], &mut quants, &mut scales);
        offsets_of(&quants, &mut block_offsets);
        return Quantised {
            quants,
            scales,
            offsets: block_offsets,
        };
    }
    let padded = m.div_ceil(TILE_X) * TILE_X;
    let mut input = SPARE.take().unwrap_or_default();
    // Grown (zeroed) only past the longest product this thread has run; the padding rows
    // are cleared here, every other value is written by a worker below.
    ready(&mut input.quants, m * k, padded * k);
    ready(&mut input.scales, m * kb, padded * kb);
    ready(
        &mut input.offsets,
        m * offsets_per_row,
        padded * offsets_per_row,
    );
    let (quants_ptr, scales_ptr, offsets_ptr) = (
        input.quants.as_mut_ptr() as usize,
        input.scales.as_mut_ptr() as usize,
        input.offsets.as_mut_ptr() as usize,
    );
    candle_core::utils::barrier_pool().execute_chunked(m, |rows| {
        let (start, count) = (rows.start, rows.len());
        // SAFETY: rows `rows` (< m ≤ padded) of the three buffers are inside their lengths,
        // and each row is in one work item alone, so these slices never overlap.
        let (quants, scales, block_offsets) = unsafe {
            (
                std::slice::from_raw_parts_mut((quants_ptr as *mut i8).add(start * k), count * k),
                std::slice::from_raw_parts_mut(
                    (scales_ptr as *mut f32).add(start * kb),
                    count * kb,
                ),
                std::slice::from_raw_parts_mut(
                    (offsets_ptr as *mut i32).add(start * offsets_per_row),
                    count * offsets_per_row,
                ),
            )
        };
        quantise_rows(&x[rows.start * k..rows.end * k], quants, scales);
        offsets_of(quants, block_offsets);
    });
    input
}

/// `buffer` at least `end` long, with zeros in `start..end`.
fn ready<T: Copy + Default>(buffer: &mut Vec<T>, start: usize, end: usize) {
    if buffer.len() < end {
        buffer.resize(end, T::default());
    }
    buffer[start..end].fill(T::default());
}

thread_local! {
    /// The buffers of this thread's last quantised input, for its next product: fresh ones
    /// came from the kernel a page at a time and had to be zeroed, 1–2% of a passage batch.
    /// They stay as long as the longest input quantised on the thread (a 1,724-row prompt
    /// into Qwen2.5 0.5B's 4,864-wide down projection: 8.4 MB).
    static SPARE: std::cell::Cell<Option<Quantised>> = const { std::cell::Cell::new(None) };
}

/// Keeps `input`'s buffers for this thread's next [`quantise`].
fn recycle(input: Quantised) {
    SPARE.set(Some(input));
}

/// Each block's −8 · Σ `quants` into `offsets` (as many blocks as `offsets` holds).
fn offsets_of(quants: &[i8], offsets: &mut [i32]) {
    for (offset, block) in offsets.iter_mut().zip(quants.chunks_exact(BLOCK)) {
        *offset = -8 * block.iter().map(|&q| q as i32).sum::<i32>();
    }
}

/// Quantises whole rows `x` into `quants` and one scale a block into `scales`. Where
/// [`supported`] (callers check) in AVX2: the portable loop's maximum and its `round` (a
/// library call per value on the baseline x86-64 target) were 6% of a passage batch.
fn quantise_rows(x: &[f32], quants: &mut [i8], scales: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        return unsafe { quantise_rows_avx2(x, quants, scales) };
    }
    for ((values, out), scale) in x
        .chunks_exact(BLOCK)
        .zip(quants.chunks_exact_mut(BLOCK))
        .zip(scales.iter_mut())
    {
        let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inverse = block_scale(amax, scale);
        for (q, &v) in out.iter_mut().zip(values) {
            *q = (v * inverse).round() as i8;
        }
    }
}

/// Stores a block's scale (`amax / 127`, as the f16 candle keeps) and returns the factor
/// its values are multiplied by.
fn block_scale(amax: f32, scale: &mut f32) -> f32 {
    let d = amax / 127.0;
    *scale = f16::from_f32(d).to_f32();
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// [`quantise_rows`] in AVX2, rounding halves away from zero as `f32::round` does (the
/// vector instruction's nearest rounding would send them to even).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantise_rows_avx2(x: &[f32], quants: &mut [i8], scales: &mut [f32]) {
    use std::arch::x86_64::*;
    let sign = _mm256_set1_ps(-0.0);
    let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    for ((values, out), scale) in x
        .chunks_exact(BLOCK)
        .zip(quants.chunks_exact_mut(BLOCK))
        .zip(scales.iter_mut())
    {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(values.as_ptr().add(i * 8)));
        let abs = v.map(|v| _mm256_andnot_ps(sign, v));
        let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        let inverse = _mm256_set1_ps(block_scale(_mm_cvtss_f32(m), scale));
        let q = v.map(|v| {
            let y = _mm256_mul_ps(v, inverse);
            let whole = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            let fraction = _mm256_andnot_ps(sign, _mm256_sub_ps(y, whole));
            let away = _mm256_and_ps(
                _mm256_cmp_ps(fraction, half, _CMP_GE_OQ),
                _mm256_or_ps(one, _mm256_and_ps(y, sign)),
            );
            _mm256_cvttps_epi32(_mm256_add_ps(whole, away))
        });
        // Packing works within 128-bit halves: the permutation puts the values back in order.
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, bytes);
    }
}

/// `x` (`m` rows of `k`) times the transpose of `weights` (`n` rows of `k` as Q8_0 blocks):
/// `m` rows of `n`. Requires [`supported`], `k` a multiple of 32 and `weights` at least
/// `n · k / 32` blocks (callers check).
fn matmul(
    weights: Matrix,
    x: &[f32],
    m: usize,
    range: WeightRange,
    kernel: Kernel,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let (n, k, kb) = (weights.n, weights.k, weights.k / BLOCK);
    assert!(weights.bytes.len() >= n * kb * weights.format.block_bytes() && x.len() >= m * k);
    // With each input block's offset, for the four-bit kernel.
    let input = quantise(x, m, k, range == WeightRange::FourBit);
    // Not zeroed first: every value is written below, and zeroing megabytes on the calling
    // thread while the pool's worker waited was 5% of a passage batch.
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let out_ptr = out.as_mut_ptr() as usize;
    let (items_x, items_w) = (m.div_ceil(ITEM_X), n.div_ceil(ITEM_W));
    // Items run weight-block major, so that a worker walking a range of them reuses the
    // weight rows it copied into the tile layout.
    candle_core::utils::barrier_pool().execute_chunked(items_x * items_w, |items| {
        let mut tiles: Vec<TileWeights> =
            (0..ITEM_W / TILE_W).map(|_| TileWeights::new(kb)).collect();
        let mut loaded = None;
        for item in items {
            let (w0, x0) = ((item / items_x) * ITEM_W, (item % items_x) * ITEM_X);
            let (w1, x1) = ((w0 + ITEM_W).min(n), (x0 + ITEM_X).min(m));
            if loaded != Some(w0) {
                for (t, tile) in tiles.iter_mut().enumerate() {
                    let w = w0 + t * TILE_W;
                    tile.load(weights, w, w1.saturating_sub(w).min(TILE_W), range);
                }
                loaded = Some(w0);
            }
            for (t, tile_weights) in tiles.iter().enumerate() {
                let w = w0 + t * TILE_W;
                if w >= w1 {
                    break;
                }
                let rw = (w1 - w).min(TILE_W);
                for x in (x0..x1).step_by(kernel.rows) {
                    let rx = (x1 - x).min(kernel.rows);
                    let input = TileInput {
                        quants: input.quants[x * k..].as_ptr(),
                        scales: input.scales[x * kb..].as_ptr(),
                        offsets: input.offsets.get(x * kb..).unwrap_or(&[]).as_ptr(),
                        k,
                        kb,
                    };
                    // SAFETY: the CPU features were checked when the layer was built; the
                    // input (and its block offsets, for four bits) is padded to whole tiles of
                    // TILE_X rows from `x`, and `tile_weights` holds `kb` blocks of TILE_W
                    // rows.
                    let sums = unsafe { (kernel.run)(tile_weights, input) };
                    for (c, row) in sums.iter().enumerate().take(rx) {
                        // SAFETY: row x + c, columns w..w + rw are inside the m × n output
                        // (allocated, not yet initialised: written, never read, here), and
                        // each output element belongs to exactly one work item.
                        unsafe {
                            let to = (out_ptr as *mut f32).add((x + c) * n + w);
                            if rw == TILE_W {
                                // A length known here is one vector move; a length known
                                // only at run time was a `memmove` call per row.
                                to.cast::<[f32; TILE_W]>().write_unaligned(*row);
                            } else {
                                std::ptr::copy_nonoverlapping(row.as_ptr(), to, rw);
                            }
                        }
                    }
                }
            }
            if !epilogue.is_empty() {
                for x in x0..x1 {
                    // SAFETY: as above, row x's columns w0..w1 belong to this work item,
                    // and the tiles above have written them.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            (out_ptr as *mut f32).add(x * n + w0),
                            w1 - w0,
                        )
                    };
                    epilogue.apply(out, x, w0, n);
                }
            }
        }
    });
    recycle(input);
    // SAFETY: the work items cover rows 0..m and columns 0..n between them (rows and
    // columns of items step by ITEM_X and ITEM_W up to m and n), and each wrote its part.
    unsafe { out.set_len(m * n) };
    out
}

/// [`TILE_W`] weight rows copied out of the Q8_0 blocks into the kernel's layout: for each
/// block and each group of four values, the four bytes of row 0, then of row 1, … (32 bytes,
/// one vector; for [`WeightRange::FourBit`] each value plus 8), and the blocks' scales as f32
/// (`[block][row]`); zero rows, with zero scales, past the matrix.
struct TileWeights {
    quants: Vec<i8>,
    scales: Vec<f32>,
}

impl TileWeights {
    fn new(kb: usize) -> Self {
        TileWeights {
            quants: vec![0; kb * TILE_W * BLOCK],
            scales: vec![0.0; kb * TILE_W],
        }
    }

    /// Rows `w..w + rows` of `weights` (`rows` ≤ [`TILE_W`]).
    fn load(&mut self, weights: Matrix, w: usize, rows: usize, range: WeightRange) {
        let offset = if range == WeightRange::FourBit { 8 } else { 0 };
        if rows < TILE_W {
            self.quants.fill(0);
            self.scales.fill(0.0);
        }
        let mut values = [0i8; BLOCK];
        for r in 0..rows {
            for b in 0..weights.k / BLOCK {
                let block = weights.block(w + r, b);
                self.scales[b * TILE_W + r] = decode(weights.format, block, &mut values);
                let quants = &mut self.quants[b * TILE_W * BLOCK..][..TILE_W * BLOCK];
                for (g, four) in values.chunks_exact(4).enumerate() {
                    for (to, &v) in quants[(g * TILE_W + r) * 4..][..4].iter_mut().zip(four) {
                        *to = v + offset;
                    }
                }
            }
        }
    }
}

/// One block's 32 values into `values`; returns its scale.
fn decode(format: Format, block: &[u8], values: &mut [i8; BLOCK]) -> f32 {
    let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
    match format {
        Format::Q8_0 => {
            for (v, &q) in values.iter_mut().zip(&block[2..]) {
                *v = q as i8;
            }
        }
        // SAFETY: `supported` was checked when the layer was built, and a Q5_0 block is 22
        // bytes.
        Format::Q5_0 => unsafe { q5_0_into(block.as_ptr(), values) },
    }
    scale
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn q5_0_into(block: *const u8, values: &mut [i8; BLOCK]) {
    use std::arch::x86_64::*;
    _mm256_storeu_si256(values.as_mut_ptr() as *mut __m256i, q5_0_values(block));
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn q5_0_into(_: *const u8, _: &mut [i8; BLOCK]) {
    unreachable!("the tiled product is only built where `supported` is true")
}

/// A Q5_0 block's 32 values (-16..=15) in one vector, as ggml unpacks them: value `j` of the
/// first half is the low nibble of byte `j` with bit `j` of the high bits as its fifth bit,
/// value `j` of the second half the high nibble with bit `j + 16`; both offset by 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q5_0_values(block: *const u8) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let high_bits = std::ptr::read_unaligned(block.add(2) as *const u32);
    let packed = _mm_loadu_si128(block.add(6) as *const __m128i);
    let low_mask = _mm_set1_epi8(0x0f);
    let nibbles = _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask),
        _mm_and_si128(packed, low_mask),
    );
    // Byte j of `spread` is byte j / 8 of the high bits; OR-ing every bit but bit j % 8 and
    // comparing with all ones leaves 0xff where bit j was set.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(high_bits as i32),
        _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0x0000000000000000,
        ),
    );
    let others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1));
    // Where the fifth bit is clear the value is the nibble minus 16: the nibble with 0xf0.
    _mm256_or_si256(
        nibbles,
        _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0_u8 as i8)),
    )
}

/// One input row `x` times the transpose of `weights`, rows spread over candle's worker pool.
fn gemv(weights: Matrix, x: &[f32]) -> Vec<f32> {
    let (n, k) = (weights.n, weights.k);
    assert!(weights.bytes.len() >= n * (k / BLOCK) * weights.format.block_bytes());
    let input = quantise(x, 1, k, false);
    let mut out = vec![0f32; n];
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(GEMV_ROWS), |range| {
        for item in range {
            for r in item * GEMV_ROWS..n.min((item + 1) * GEMV_ROWS) {
                // SAFETY: features checked at build; the row is inside `weights` (asserted);
                // output row r belongs to this work item alone.
                unsafe {
                    *(out_ptr as *mut f32).add(r) = dot_q5_0(weights, r, &input);
                }
            }
        }
    });
    out
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_q5_0(_: Matrix, _: usize, _: &Quantised) -> f32 {
    unreachable!("the tiled product is only built where `supported` is true")
}

/// Row `r` of a Q5_0 matrix against the quantised input row 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_0(weights: Matrix, r: usize, input: &Quantised) -> f32 {
    use std::arch::x86_64::*;
    let kb = weights.k / BLOCK;
    let row = weights.bytes.as_ptr().add(r * kb * Q5_0_BYTES);
    let ones = _mm256_set1_epi16(1);
    let block_sum = |b: usize| {
        let block = row.add(b * Q5_0_BYTES);
        let wv = q5_0_values(block);
        let xv = _mm256_loadu_si256(input.quants.as_ptr().add(b * BLOCK) as *const __m256i);
        let products = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
        let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
        let bits = std::ptr::read_unaligned(block as *const u16);
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
        (sums, _mm256_set1_ps(d * *input.scales.get_unchecked(b)))
    };
    // Two sums, even and odd blocks, so that consecutive blocks do not wait on one another.
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for b in (0..kb).step_by(2) {
        let (sums, scale) = block_sum(b);
        even = _mm256_fmadd_ps(sums, scale, even);
        if b + 1 < kb {
            let (sums, scale) = block_sum(b + 1);
            odd = _mm256_fmadd_ps(sums, scale, odd);
        }
    }
    sum_lanes(_mm256_add_ps(even, odd))
}

/// The sum of a vector's eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub(crate) unsafe fn sum_lanes(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)))
}

/// [`TILE_X`] quantised input rows for [`tile`]: values of row 0 (rows `k` apart), scales
/// and, for [`WeightRange::FourBit`], block offsets (rows `kb` apart).
#[derive(Clone, Copy)]
struct TileInput {
    quants: *const i8,
    scales: *const f32,
    offsets: *const i32,
    k: usize,
    kb: usize,
}

/// A register tile's kernel: [`TILE_W`] weight rows against `rows` input rows (at most
/// [`TILE_X`]), `sums[c][r]`; rows past `rows` are left zero.
#[derive(Clone, Copy)]
struct Kernel {
    run: unsafe fn(&TileWeights, TileInput) -> [[f32; TILE_W]; TILE_X],
    rows: usize,
}

/// Whether this CPU has AVX512-VNNI (Ice Lake and later Xeons, AMD Zen 4), whose byte product
/// adds into 32-bit sums in one instruction.
fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel for `range`, with VNNI (callers check [`has_vnni`]) or AVX2 alone.
fn kernel(range: WeightRange, vnni: bool) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        let run = match (range, vnni) {
            (WeightRange::Full, false) => tile_avx2::<{ WeightRange::Full as u8 }>,
            (WeightRange::Narrow, false) => tile_avx2::<{ WeightRange::Narrow as u8 }>,
            (WeightRange::FourBit, false) => tile_avx2::<{ WeightRange::FourBit as u8 }>,
            (WeightRange::Full, true) => tile_vnni::<{ WeightRange::Full as u8 }>,
            (WeightRange::Narrow, true) => tile_vnni::<{ WeightRange::Narrow as u8 }>,
            (WeightRange::FourBit, true) => tile_vnni::<{ WeightRange::FourBit as u8 }>,
        };
        let rows = if vnni { TILE_X } else { TILE_X_AVX2 };
        Kernel { run, rows }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (range, vnni);
        Kernel {
            run: unreachable_kernel,
            rows: TILE_X,
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn unreachable_kernel(_: &TileWeights, _: TileInput) -> [[f32; TILE_W]; TILE_X] {
    unreachable!("the tiled product is only built where `supported` is true")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const RANGE: u8>(
    weights: &TileWeights,
    input: TileInput,
) -> [[f32; TILE_W]; TILE_X] {
    tile::<RANGE, false, TILE_X_AVX2>(weights, input)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
unsafe fn tile_vnni<const RANGE: u8>(
    weights: &TileWeights,
    input: TileInput,
) -> [[f32; TILE_W]; TILE_X] {
    tile::<RANGE, true, TILE_X>(weights, input)
}

/// The body of both kernels, inlined into each so that it is compiled with its features.
/// `RANGE` is a [`WeightRange`] as a number; `VNNI`: `vpdpbusd` adds each lane's four byte
/// products to its 32-bit sum (else `maddubs` makes 16-bit pair sums, widened by `madd`).
/// `ROWS` input rows (at most [`TILE_X`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile<const RANGE: u8, const VNNI: bool, const ROWS: usize>(
    weights: &TileWeights,
    input: TileInput,
) -> [[f32; TILE_W]; TILE_X] {
    use std::arch::x86_64::*;
    let (full, four_bit) = (
        RANGE == WeightRange::Full as u8,
        RANGE == WeightRange::FourBit as u8,
    );
    // Whether a block's products are added in 16 bits and widened once a block.
    let narrow_sums = !VNNI && !full;
    let TileInput {
        quants: q,
        scales: s,
        k,
        kb,
        ..
    } = input;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); ROWS];
    let w = weights.quants.as_ptr();
    let ws = weights.scales.as_ptr();
    for b in 0..kb {
        // Four-bit sums start at their block's offset, −8 · Σ input, unless added in 16 bits
        // (the AVX2 kernel's, which adds the offset once they are widened: it would not fit
        // beside a block's products in 16 bits).
        let mut sums: [__m256i; ROWS] = std::array::from_fn(|c| {
            if four_bit && !narrow_sums {
                _mm256_set1_epi32(*input.offsets.add(c * kb + b))
            } else {
                _mm256_setzero_si256()
            }
        });
        for g in 0..BLOCK / 4 {
            let wv = _mm256_loadu_si256(w.add((b * BLOCK / 4 + g) * 32) as *const __m256i);
            let magnitudes = _mm256_abs_epi8(wv);
            for (c, sum) in sums.iter_mut().enumerate() {
                let four = std::ptr::read_unaligned(q.add(c * k + b * BLOCK + g * 4) as *const i32);
                let xv = _mm256_set1_epi32(four);
                // Unsigned weights times signed inputs: four-bit weights are stored
                // unsigned (0..=15: pairs within ±3,810, a block's eight steps within
                // ±30,480); other weights lend their signs to the inputs.
                let (unsigned, signed) = if four_bit {
                    (wv, xv)
                } else {
                    (magnitudes, _mm256_sign_epi8(xv, wv))
                };
                *sum = if VNNI {
                    _mm256_dpbusd_epi32(*sum, unsigned, signed)
                } else if full {
                    let products = _mm256_maddubs_epi16(unsigned, signed);
                    _mm256_add_epi32(*sum, _mm256_madd_epi16(products, ones))
                } else {
                    _mm256_add_epi16(*sum, _mm256_maddubs_epi16(unsigned, signed))
                };
            }
        }
        let wd = _mm256_loadu_ps(ws.add(b * TILE_W));
        for (c, (acc, sum)) in acc.iter_mut().zip(sums).enumerate() {
            let sum = if narrow_sums {
                _mm256_madd_epi16(sum, ones)
            } else {
                sum
            };
            let sum = if four_bit && narrow_sums {
                _mm256_add_epi32(sum, _mm256_set1_epi32(*input.offsets.add(c * kb + b)))
            } else {
                sum
            };
            let scale = _mm256_mul_ps(wd, _mm256_broadcast_ss(&*s.add(c * kb + b)));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, *acc);
        }
    }
    // Built lane by lane rather than zeroed and stored over: the zeroing was a `memset` call
    // per tile.
    std::array::from_fn(|c| match acc.get(c) {
        Some(&sums) => std::mem::transmute::<__m256, [f32; TILE_W]>(sums),
        None => [0.0; TILE_W],
    })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::test_values as values;

    /// How a test matrix is stored.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Stored {
        Q8_0,
        /// Quantised as Q5_0 and widened to Q8_0 (values -16..=15: the narrow kernel).
        Widened,
        Q5_0,
        /// Quantised as Q4_0 and widened to Q8_0 (values -8..=7: the four-bit kernel).
        FourBit,
    }

    /// A random `n × k` matrix stored as `stored`, its values after quantisation, the layer,
    /// and candle's product over a copy of the same blocks.
    fn matrix(
        n: usize,
        k: usize,
        seed: u64,
        stored: Stored,
    ) -> Result<(Vec<f32>, Linear, QMatMul)> {
        let w = Tensor::from_vec(values(n * k, seed), (n, k), &Device::Cpu)?;
        let q = match stored {
            Stored::Q8_0 => QTensor::quantize(&w, GgmlDType::Q8_0)?,
            Stored::Q5_0 => QTensor::quantize(&w, GgmlDType::Q5_0)?,
            Stored::Widened => {
                let q5 = QTensor::quantize(&w, GgmlDType::Q5_0)?;
                let wide = crate::widen::q5_0_bytes_to_q8_0(&q5.data()?);
                qtensor_from_ggml(GgmlDType::Q8_0, &wide, vec![n, k], &Device::Cpu)?
            }
            Stored::FourBit => {
                let q4 = QTensor::quantize(&w, GgmlDType::Q4_0)?;
                let wide = crate::widen::q4_0_bytes_to_q8_0(&q4.data()?);
                qtensor_from_ggml(GgmlDType::Q8_0, &wide, vec![n, k], &Device::Cpu)?
            }
        };
        let exact = q
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bytes = q.data()?.to_vec();
        let copy = qtensor_from_ggml(q.dtype(), &bytes, vec![n, k], &Device::Cpu)?;
        let ours = Linear::from_qtensor(q)?;
        let range = match stored {
            Stored::Q8_0 => WeightRange::Full,
            Stored::Widened | Stored::Q5_0 => WeightRange::Narrow,
            Stored::FourBit => WeightRange::FourBit,
        };
        assert_eq!(ours.range, range, "{stored:?}");
        Ok((exact, ours, QMatMul::from_qtensor(copy)?))
    }

    /// The vector quantiser rounds exactly as the portable one and candle do, halves and
    /// the largest value included.
    #[test]
    fn quantised_inputs_match_candles_rounding() -> Result<()> {
        if !supported() {
            return Ok(());
        }
        let mut x = values(32 * 64, 21);
        // Values whose quotient by the scale is a half: 127 · 0.5 / 127 and its neighbours.
        x[..4].copy_from_slice(&[1.0, 0.5 / 127.0, -0.5 / 127.0, 1.5 / 127.0]);
        x[32..64].fill(0.0);
        let (mut quants, mut scales) = (vec![0i8; x.len()], vec![0f32; x.len() / 32]);
        quantise_rows(&x, &mut quants, &mut scales);
        let blocks = QTensor::quantize(
            &Tensor::from_vec(x.clone(), (64, 32), &Device::Cpu)?,
            GgmlDType::Q8_0,
        )?;
        for (i, block) in blocks.data()?.chunks_exact(Q8_0_BYTES).enumerate() {
            let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
            assert_eq!(scale, scales[i], "block {i}'s scale");
            let theirs: Vec<i8> = block[2..].iter().map(|&b| b as i8).collect();
            assert_eq!(theirs, quants[i * 32..][..32], "block {i}");
        }
        Ok(())
    }

    /// Every tile shape and ragged edges (rows not a multiple of the tiles or the work
    /// items), against candle's product on the same quantised input (same integer sums) and
    /// against the f32 product (bounded by the inputs' 8-bit rounding).
    #[test]
    fn agrees_with_candle_and_with_f32() -> Result<()> {
        if !supported() {
            return Ok(());
        }
        for (m, n, k, seed, stored) in [
            (2, 4, 32, 1, Stored::Q8_0),
            (5, 7, 64, 2, Stored::Q8_0),
            (50, 67, 96, 3, Stored::Q8_0),
            (97, 130, 896, 4, Stored::Q8_0),
            (3, 9, 64, 5, Stored::Widened),
            (70, 131, 896, 6, Stored::Widened),
            (2, 9, 64, 10, Stored::FourBit),
            (101, 67, 384, 11, Stored::FourBit),
            (1, 9, 64, 7, Stored::Q5_0),
            (1, 131, 896, 8, Stored::Q5_0),
            (70, 131, 896, 9, Stored::Q5_0),
        ] {
            let (exact, mut ours, candle) = matrix(n, k, seed, stored)?;
            let x = Tensor::from_vec(values(m * k, seed + 100), (1, m, k), &Device::Cpu)?;
            let b = candle.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            let mut kernels = vec![false];
            if has_vnni() {
                kernels.push(true);
            }
            let mut results = Vec::new();
            for vnni in kernels {
                ours.vnni = vnni;
                let a = ours.forward(&x)?;
                assert_eq!(a.dims(), &[1, m, n]);
                let a = a.flatten_all()?.to_vec1::<f32>()?;
                agrees(
                    &a,
                    &b,
                    &exact,
                    &x.flatten_all()?.to_vec1::<f32>()?,
                    (m, n, k),
                )?;
                results.push(a);
            }
            // Both kernels make the same integer sums and add them in the same order.
            if let [avx2, vnni] = results.as_slice() {
                assert_eq!(avx2, vnni, "({m},{n},{k}) {stored:?}");
            }
        }
        Ok(())
    }

    /// The epilogue gives the same bits as the separate passes it replaces (bias, then an
    /// activation, then the residual), in the tiled product and on candle's path alike
    /// (one row of Q8_0).
    #[test]
    fn epilogue_gives_the_same_bits_as_separate_passes() -> Result<()> {
        fn halve_negatives(values: &mut [f32]) {
            for v in values.iter_mut().filter(|v| **v < 0.0) {
                *v *= 0.5;
            }
        }
        for (m, n, k, seed, stored) in [
            (101, 67, 384, 31, Stored::FourBit),
            (97, 130, 96, 32, Stored::Q8_0),
            (1, 9, 64, 33, Stored::Q8_0),
        ] {
            let (_, ours, _) = matrix(n, k, seed, stored)?;
            let x = Tensor::from_vec(values(m * k, seed + 100), (m, k), &Device::Cpu)?;
            let bias = values(n, seed + 200);
            let residual = values(m * n, seed + 300);
            let plain = ours.forward(&x)?;
            let separate = plain
                .broadcast_add(&Tensor::from_vec(bias.clone(), n, &Device::Cpu)?)?
                .flatten_all()?;
            let mut separate = separate.to_vec1::<f32>()?;
            halve_negatives(&mut separate);
            let separate = (Tensor::from_vec(residual.clone(), m * n, &Device::Cpu)?
                + Tensor::from_vec(separate, m * n, &Device::Cpu)?)?
            .to_vec1::<f32>()?;
            let epilogue = Epilogue {
                bias: Some(&bias),
                activation: Some(halve_negatives),
                residual: Some(&residual),
            };
            let fused = ours.forward_with(&x, &epilogue)?;
            assert_eq!(fused.dims(), &[m, n]);
            assert_eq!(
                fused.flatten_all()?.to_vec1::<f32>()?,
                separate,
                "({m},{n},{k})"
            );
            let short = Epilogue {
                bias: Some(&bias[1..]),
                ..Epilogue::default()
            };
            assert!(
                ours.forward_with(&x, &short).is_err(),
                "a bias of the wrong length"
            );
        }
        Ok(())
    }

    /// `ours` against candle's product `theirs` (the same integer sums: equal up to float
    /// addition order) and against the f32 product of the input with the weights' values
    /// `exact` (`n × k`), within the input's rounding: each input value moves by at most
    /// 0.6 of its block's step (half a step, plus the scale stored as f16), so output `[i, j]`
    /// by at most the sum over blocks of 0.6 · step · Σ|w|.
    fn agrees(
        ours: &[f32],
        theirs: &[f32],
        exact: &[f32],
        xs: &[f32],
        (m, n, k): (usize, usize, usize),
    ) -> Result<()> {
        for i in 0..m {
            let x = &xs[i * k..][..k];
            for j in 0..n {
                let w = &exact[j * k..][..k];
                let (a, b) = (ours[i * n + j], theirs[i * n + j]);
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "({m},{n},{k}) [{i},{j}]: {a} against candle's {b}"
                );
                let reference: f32 = x.iter().zip(w).map(|(x, w)| x * w).sum();
                let bound: f32 = x
                    .chunks_exact(BLOCK)
                    .zip(w.chunks_exact(BLOCK))
                    .map(|(x, w)| {
                        let step = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                        0.6 * step * w.iter().map(|w| w.abs()).sum::<f32>()
                    })
                    .sum();
                assert!(
                    (a - reference).abs() <= bound + 1e-4 * (1.0 + reference.abs()),
                    "({m},{n},{k}) [{i},{j}]: {a} against f32 {reference} (bound {bound})"
                );
            }
        }
        Ok(())
    }

    /// Real matrices: Qwen2.5-0.5B's first feed-forward gate (Q5_0 in the file: as stored,
    /// and widened to Q8_0) and first value projection (Q8_0 in the file), against 37 rows of
    /// real inputs (the token table's rows of 37 tokens) and against the first of them alone.
    #[test]
    fn real_matrices_agree_with_candle_and_with_f32() -> Result<()> {
        let Some(path) = cabildo_core::fixtures::installed_model("qwen2.5-0.5b/model.gguf") else {
            return Ok(());
        };
        if !supported() {
            return Ok(());
        }
        let mut file = std::fs::File::open(&path)?;
        let ct = candle_core::quantized::gguf_file::Content::read(&mut file)?;
        let ids: Vec<u32> = (0..37).map(|i| 100 + i * 3001).collect();
        let rows = crate::widen::read_tensor(&ct, &mut file, "token_embd.weight", &Device::Cpu)?
            .dequantize(&Device::Cpu)?
            .index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?
            .unsqueeze(0)?;
        for (name, widened) in [
            ("blk.0.ffn_gate.weight", false),
            ("blk.0.ffn_gate.weight", true),
            ("blk.0.attn_v.weight", true),
        ] {
            let mut read = || match widened {
                true => crate::widen::read_tensor(&ct, &mut file, name, &Device::Cpu),
                false => ct.tensor(&mut file, name, &Device::Cpu),
            };
            let (tensor, copy) = (read()?, read()?);
            let (n, k) = tensor.shape().dims2()?;
            let exact = tensor
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let ours = Linear::from_qtensor(tensor)?;
            let candle = QMatMul::from_qtensor(copy)?;
            for x in [rows.clone(), rows.narrow(1, 0, 1)?] {
                let m = x.dim(1)?;
                let a = ours.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                let b = candle.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                agrees(&a, &b, &exact, &xs, (m, n, k))?;
            }
        }
        Ok(())
    }

    /// One row of a Q8_0 matrix goes to candle's product; so do matrices in other formats.
    #[test]
    fn single_rows_and_other_formats_use_candle() -> Result<()> {
        let w = Tensor::from_vec(values(8 * 256, 7), (8, 256), &Device::Cpu)?;
        let q4k = Linear::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4K)?)?;
        assert!(q4k.tiled.is_none());
        let (_, ours, candle) = matrix(8, 256, 8, Stored::Q8_0)?;
        let x = Tensor::from_vec(values(256, 9), (1, 1, 256), &Device::Cpu)?;
        let a = ours.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let b = candle.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        Ok(())
    }

    /// Throughput of the tiled product on a Qwen2.5-0.5B feed-forward shape against candle's:
    /// `cargo test --workspace --lib q8gemm::tests::speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn speed() -> Result<()> {
        for (m, n, k, stored) in [
            (256, 4864, 896, Stored::Q8_0),
            (256, 4864, 896, Stored::Widened),
            (256, 4864, 896, Stored::Q5_0),
            (256, 896, 4864, Stored::Q8_0),
            (1, 4864, 896, Stored::Q5_0),
            (1, 4864, 896, Stored::Widened),
            // e5-small's query/key/value, attention output, and feed-forward matrices, on a
            // batch of 1,024 passage tokens (its weights are 4-bit, widened to Q8_0).
            (1024, 1152, 384, Stored::FourBit),
            (1024, 384, 384, Stored::FourBit),
            (1024, 1536, 384, Stored::FourBit),
            (1024, 384, 1536, Stored::FourBit),
        ] {
            let (exact, ours, candle) = matrix(n, k, 11, stored)?;
            let (_, mut avx2, _) = matrix(n, k, 11, stored)?;
            avx2.vnni = false;
            let dense = Tensor::from_vec(exact, (n, k), &Device::Cpu)?.t()?;
            let x = Tensor::from_vec(values(m * k, 12), (1, m, k), &Device::Cpu)?;
            type Product<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;
            let layers: [(&str, Product); 4] = [
                ("tiled", &|x| ours.forward(x)),
                ("tiled, AVX2 only", &|x| avx2.forward(x)),
                ("candle", &|x| candle.forward(x)),
                ("f32 GEMM", &|x| x.broadcast_matmul(&dense)),
            ];
            for (name, layer) in layers {
                layer(&x)?;
                let start = std::time::Instant::now();
                let runs = if m == 1 { 200 } else { 5 };
                for _ in 0..runs {
                    layer(&x)?;
                }
                let s = start.elapsed().as_secs_f64() / runs as f64;
                println!(
                    "{name} ({m},{n},{k}, {stored:?}): {:.1} ms, {:.1} GMAC/s",
                    s * 1e3,
                    (m * n * k) as f64 / s / 1e9
                );
            }
        }
        Ok(())
    }
}
