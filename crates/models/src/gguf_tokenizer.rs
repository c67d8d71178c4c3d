//! A `tokenizers` tokenizer built from a GGUF file's own vocabulary, for GGUF models that
//! ship without tokenizer.json: byte-level BPE from `tokenizer.ggml.tokens` and `merges`
//! (`gpt2` type: SmolLM2, Qwen, Llama 3) or SentencePiece from tokens and scores (`llama`
//! type: Llama 2, Gemma). Control tokens become special tokens, so chat markup such as
//! `<|im_start|>` is one token.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper, Tokenizer};

/// GGUF token type of control tokens (`<|im_start|>`, `<s>`).
const CONTROL: i32 = 3;
/// User-defined tokens are matched whole too.
const USER_DEFINED: i32 = 4;

fn strings(ct: &Content, key: &str) -> Result<Vec<String>, String> {
    match ct.metadata.get(key) {
        Some(Value::Array(v)) => v
            .iter()
            .map(|x| {
                x.to_string()
                    .map(|s| s.to_string())
                    .map_err(|e| e.to_string())
            })
            .collect(),
        _ => Err(format!("GGUF has no {key}")),
    }
}

fn numbers(ct: &Content, key: &str) -> Vec<f64> {
    match ct.metadata.get(key) {
        Some(Value::Array(v)) => v
            .iter()
            .map(|x| match x {
                Value::F32(f) => *f as f64,
                Value::I32(i) => *i as f64,
                Value::U32(u) => *u as f64,
                Value::U8(u) => *u as f64,
                Value::I8(i) => *i as f64,
                _ => 0.0,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds the tokenizer described by the GGUF metadata.
pub(crate) fn from_gguf(ct: &Content) -> Result<Tokenizer, String> {
    let model = ct
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let tokens = strings(ct, "tokenizer.ggml.tokens")?;
    let types = numbers(ct, "tokenizer.ggml.token_type");
    let mut tokenizer = match model.as_str() {
        "gpt2" => {
            let merges: Vec<(String, String)> = strings(ct, "tokenizer.ggml.merges")?
                .into_iter()
                .filter_map(|m| {
                    m.split_once(' ')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                })
                .collect();
            let vocab: tokenizers::models::bpe::Vocab = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i as u32))
                .collect();
            let bpe = BPE::builder()
                .vocab_and_merges(vocab, merges)
                .build()
                .map_err(|e| e.to_string())?;
            let mut t = Tokenizer::new(bpe);
            t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            t.with_decoder(Some(ByteLevelDecoder::default()));
            t
        }
        "llama" => {
            let scores = numbers(ct, "tokenizer.ggml.scores");
            let vocab: Vec<(String, f64)> = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), scores.get(i).copied().unwrap_or(0.0)))
                .collect();
            let unk = ct
                .metadata
                .get("tokenizer.ggml.unknown_token_id")
                .and_then(|v| v.to_u32().ok())
                .map(|u| u as usize);
            let unigram = Unigram::from(vocab, unk, true).map_err(|e| e.to_string())?;
            let mut t = Tokenizer::new(unigram);
            // SentencePiece: spaces are "▁"; decoding undoes it and the byte fallback.
            t.with_normalizer(Some(Replace::new(" ", "▁").map_err(|e| e.to_string())?));
            t.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
                DecoderWrapper::Replace(Replace::new("▁", " ").map_err(|e| e.to_string())?),
                DecoderWrapper::ByteFallback(ByteFallback::new()),
                DecoderWrapper::Fuse(Fuse::new()),
                DecoderWrapper::Strip(Strip::new(' ', 1, 0)),
            ]))));
            t
        }
        other => return Err(format!("unsupported GGUF tokenizer model {other:?}")),
    };
    let specials: Vec<AddedToken> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            matches!(
                types.get(*i).map(|t| *t as i32),
                Some(CONTROL | USER_DEFINED)
            )
        })
        .map(|(_, t)| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}
