//! Generators: tiny random-weight Llama and Qwen2 GGUF files written by the test (loading,
//! determinism, sampling seeds, stop sequences, the context budget, the GGUF-built
//! tokenizer), and the real models when `scripts/setup-models.sh` installed them. The same
//! decoders as embedders ([`DecoderEmbedder`]) are tested here too.

mod common;

use common::dot;

use std::path::Path;

use cabildo_core::{
    ChatMessage, Embedder, FinishReason, GenerationRequest, Generator, ModelError, Role,
};
use cabildo_models::{generate_stream, DecoderEmbedder, LocalGenerator, Pooling, StreamEvent};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Byte-level BPE vocabulary: three control tokens, the 256 byte symbols, a few merges.
fn vocab() -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    alphabet.sort();
    tokens.extend(alphabet.iter().map(|c| c.to_string()));
    let merges = vec!["Ġ d".to_string(), "e l".to_string(), "Ġd e".to_string()];
    tokens.extend(["Ġd", "el", "Ġde"].iter().map(|s| s.to_string()));
    (tokens, merges)
}

fn write_tiny(path: &Path, arch: &str, context: u32) {
    let (tokens, merges) = vocab();
    let n_vocab = tokens.len();
    let (embd, heads, kv_heads, layers, ff) = (64usize, 4u32, 2u32, 2u32, 128usize);
    let head_dim = embd / heads as usize;
    let dev = Device::Cpu;
    let mut weights = common::Weights::new(7, 0.5);
    let mut rand = |shape: &[usize]| weights.tensor(shape);
    let q = |t: Tensor, dtype: GgmlDType| QTensor::quantize(&t, dtype).expect("quantize");
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &dev).expect("ones");
    let kv = kv_heads as usize * head_dim;
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            q(rand(&[n_vocab, embd]), GgmlDType::F32),
        ),
        ("output_norm.weight".into(), q(ones(embd), GgmlDType::F32)),
        (
            "output.weight".into(),
            q(rand(&[n_vocab, embd]), GgmlDType::Q8_0),
        ),
    ];
    for i in 0..layers {
        let p = |s: &str| format!("blk.{i}.{s}");
        tensors.push((p("attn_q.weight"), q(rand(&[embd, embd]), GgmlDType::Q8_0)));
        tensors.push((p("attn_k.weight"), q(rand(&[kv, embd]), GgmlDType::Q8_0)));
        tensors.push((p("attn_v.weight"), q(rand(&[kv, embd]), GgmlDType::Q8_0)));
        tensors.push((
            p("attn_output.weight"),
            q(rand(&[embd, embd]), GgmlDType::Q8_0),
        ));
        tensors.push((p("ffn_gate.weight"), q(rand(&[ff, embd]), GgmlDType::Q8_0)));
        tensors.push((p("ffn_up.weight"), q(rand(&[ff, embd]), GgmlDType::Q8_0)));
        tensors.push((p("ffn_down.weight"), q(rand(&[embd, ff]), GgmlDType::Q8_0)));
        tensors.push((p("attn_norm.weight"), q(ones(embd), GgmlDType::F32)));
        tensors.push((p("ffn_norm.weight"), q(ones(embd), GgmlDType::F32)));
        if arch == "qwen2" {
            tensors.push((p("attn_q.bias"), q(rand(&[embd]), GgmlDType::F32)));
            tensors.push((p("attn_k.bias"), q(rand(&[kv]), GgmlDType::F32)));
            tensors.push((p("attn_v.bias"), q(rand(&[kv]), GgmlDType::F32)));
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    let token_types: Vec<Value> = (0..n_vocab)
        .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
        .collect();
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("tiny-{arch}"))),
        (k("attention.head_count"), Value::U32(heads)),
        (k("attention.head_count_kv"), Value::U32(kv_heads)),
        (k("block_count"), Value::U32(layers)),
        (k("embedding_length"), Value::U32(embd as u32)),
        (k("feed_forward_length"), Value::U32(ff as u32)),
        (k("rope.dimension_count"), Value::U32(head_dim as u32)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (k("rope.freq_base"), Value::F32(10000.0)),
        (k("context_length"), Value::U32(context)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(token_types),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHATML.into()),
        ),
    ];
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).expect("create");
    gguf_file::write(&mut f, &md, &ts).expect("write gguf");
}

/// Encodes and decodes `text` with the generator's tokenizer, checks it comes back unchanged,
/// and returns the ids.
fn round_trip(g: &LocalGenerator, text: &str) -> Vec<u32> {
    let ids = g
        .tokenizer()
        .encode(text, false)
        .expect("encode")
        .get_ids()
        .to_vec();
    assert_eq!(g.tokenizer().decode(&ids, false).expect("decode"), text);
    ids
}

fn ask(text: &str, max_tokens: usize) -> GenerationRequest {
    GenerationRequest::greedy(vec![ChatMessage::new(Role::User, text)], max_tokens)
}

fn run(g: &LocalGenerator, req: &GenerationRequest) -> (cabildo_core::Generation, String) {
    let mut streamed = String::new();
    let out = g
        .generate(req, &mut |t| {
            streamed.push_str(t);
            true
        })
        .expect("generate");
    (out, streamed)
}

#[test]
fn tiny_llama_and_qwen2_load_and_decode_deterministically() {
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tiny.gguf");
        write_tiny(&path, arch, 256);
        let g = LocalGenerator::from_gguf(&path, None).expect("load");
        assert_eq!(g.architecture(), arch);
        assert_eq!(g.context_window(), 256);
        let (a, streamed) = run(&g, &ask("el derecho de propiedad", 12));
        assert!(a.prompt_tokens > 5, "{arch}: {a:?}");
        assert!(a.completion_tokens <= 12);
        assert_eq!(
            a.text, streamed,
            "{arch}: the stream delivers exactly the text"
        );
        let (b, _) = run(&g, &ask("el derecho de propiedad", 12));
        assert_eq!(a.text, b.text, "{arch}: greedy decoding is deterministic");

        let mut sampled = ask("el derecho de propiedad", 12);
        sampled.temperature = 0.9;
        sampled.top_p = Some(0.95);
        sampled.seed = 1234;
        let (s1, _) = run(&g, &sampled);
        let (s2, _) = run(&g, &sampled);
        assert_eq!(s1.text, s2.text, "{arch}: same seed, same sample");
    }
}

#[test]
fn stop_sequences_end_generation_before_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, "llama", 256);
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    let (full, _) = run(&g, &ask("la ley", 16));
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() >= 4, "the tiny model says something: {full:?}");
    let stop: String = chars[2..4].iter().collect();
    let cut = full.text.find(&stop).expect("stop occurs");
    let mut req = ask("la ley", 16);
    req.stop = vec![stop.clone()];
    let (out, streamed) = run(&g, &req);
    assert_eq!(out.finish, FinishReason::StopSequence);
    assert_eq!(out.text, full.text[..cut]);
    assert!(
        !streamed.contains(&stop),
        "the stop sequence is never streamed"
    );
}

#[test]
fn cancelling_the_stream_stops_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, "qwen2", 256);
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    let mut pieces = 0;
    let out = g
        .generate(&ask("la ley", 32), &mut |_| {
            pieces += 1;
            false
        })
        .expect("generate");
    assert_eq!(out.finish, FinishReason::Cancelled);
    assert_eq!(pieces, 1);
}

#[test]
fn a_prompt_over_the_context_window_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, "llama", 64);
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    let err = g.generate(&ask("el derecho de propiedad", 100), &mut |_| true);
    match err {
        Err(ModelError::Input(msg)) => assert!(msg.contains("context of 64 tokens"), "{msg}"),
        other => panic!("expected a context error, got {other:?}"),
    }
    let err = g.generate(&GenerationRequest::greedy(Vec::new(), 4), &mut |_| true);
    assert!(matches!(err, Err(ModelError::Input(_))));
}

#[test]
fn missing_or_damaged_model_files_are_named() {
    let err = LocalGenerator::from_gguf(Path::new("/nonexistent/model.gguf"), None)
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("/nonexistent/model.gguf") && err.contains("setup-models.sh"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF but not really").expect("write");
    let err = LocalGenerator::from_gguf(&bad, None)
        .err()
        .expect("error")
        .to_string();
    assert!(err.contains("not a valid GGUF model"), "{err}");
}

#[test]
fn gguf_built_tokenizer_round_trips_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, "llama", 64);
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    let text = "Artículo 19, N° 24: el derecho de propiedad — ¿qué dice? 日本";
    round_trip(&g, text);
    let chat = g
        .tokenizer()
        .encode("<|im_start|>user", false)
        .expect("encode");
    assert_eq!(chat.get_ids()[0], 1, "control tokens are single tokens");
}

#[test]
fn smollm2_tokenizer_from_gguf_round_trips_and_the_model_answers() {
    let Some(path) = common::installed("smollm2-135m/model.gguf") else {
        return;
    };
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    assert_eq!(g.architecture(), "llama");
    let text = "The State shall protect personal data. Artículo 19 N° 4.";
    round_trip(&g, text);
    let (out, _) = run(&g, &ask("Write one sentence about the sea.", 40));
    assert!(out.text.split_whitespace().count() >= 4, "{out:?}");
    assert!(
        out.text.to_lowercase().contains("sea") || out.text.to_lowercase().contains("ocean"),
        "{out:?}"
    );
}

#[test]
fn qwen_answers_a_spanish_question_in_spanish() {
    let Some(path) = common::installed("qwen2.5-0.5b/model.gguf") else {
        return;
    };
    let tok = path.with_file_name("tokenizer.json");
    let g = LocalGenerator::from_gguf(&path, Some(&tok)).expect("load");
    assert_eq!(g.architecture(), "qwen2");
    let (out, _) = run(
        &g,
        &ask(
            "¿Cuál es la edad mínima para votar en Chile? Responde en una frase.",
            40,
        ),
    );
    let words: Vec<String> = out
        .text
        .to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(words.len() >= 4, "{out:?}");
    let spanish = ["la", "el", "de", "en", "es", "para", "años"];
    assert!(
        words
            .iter()
            .filter(|w| spanish.contains(&w.as_str()))
            .count()
            >= 2,
        "{out:?}"
    );
}

/// A Llama-family checkpoint folder as Hugging Face lays it out, with random weights.
fn write_tiny_llama_safetensors(dir: &Path, drop: Option<&str>) {
    let (tokens, merges) = vocab();
    let n_vocab = tokens.len();
    let (h, heads, kv_heads, layers, ff) = (64usize, 4usize, 2usize, 2usize, 128usize);
    let kv = kv_heads * (h / heads);
    let config = serde_json::json!({
        "hidden_size": h, "intermediate_size": ff, "vocab_size": n_vocab,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128,
        "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": true
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let dev = Device::Cpu;
    let mut weights = common::Weights::new(11, 0.5);
    let mut rand = |shape: &[usize]| weights.tensor(shape);
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &dev).expect("ones");
    let mut t = std::collections::HashMap::new();
    t.insert("model.embed_tokens.weight".to_string(), rand(&[n_vocab, h]));
    t.insert("model.norm.weight".to_string(), ones(h));
    for i in 0..layers {
        let p = |s: &str| format!("model.layers.{i}.{s}.weight");
        t.insert(p("self_attn.q_proj"), rand(&[h, h]));
        t.insert(p("self_attn.k_proj"), rand(&[kv, h]));
        t.insert(p("self_attn.v_proj"), rand(&[kv, h]));
        t.insert(p("self_attn.o_proj"), rand(&[h, h]));
        t.insert(p("mlp.gate_proj"), rand(&[ff, h]));
        t.insert(p("mlp.up_proj"), rand(&[ff, h]));
        t.insert(p("mlp.down_proj"), rand(&[h, ff]));
        t.insert(p("input_layernorm"), ones(h));
        t.insert(p("post_attention_layernorm"), ones(h));
    }
    if let Some(d) = drop {
        t.remove(d);
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).expect("save");

    let vocab_map: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab_map, merges)
        .build()
        .expect("bpe");
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
    ));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tok.add_special_tokens(&[
        tokenizers::AddedToken::from("<|endoftext|>", true),
        tokenizers::AddedToken::from("<|im_start|>", true),
        tokenizers::AddedToken::from("<|im_end|>", true),
    ]);
    tok.save(dir.join("tokenizer.json"), false)
        .expect("tokenizer");
    let tc = serde_json::json!({ "chat_template": CHATML, "eos_token": "<|im_end|>", "bos_token": "<|im_start|>" });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).expect("tokenizer_config");
}

#[test]
fn tiny_llama_safetensors_checkpoint_generates() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_llama_safetensors(dir.path(), None);
    let g = LocalGenerator::from_safetensors(dir.path()).expect("load");
    assert_eq!(g.context_window(), 128);
    let (a, streamed) = run(&g, &ask("el derecho de propiedad", 10));
    assert!(a.prompt_tokens > 5);
    assert_eq!(a.text, streamed);
    let (b, _) = run(&g, &ask("el derecho de propiedad", 10));
    assert_eq!(a.text, b.text, "the KV cache is reset between requests");
    let err = g.generate(&ask("el derecho de propiedad", 200), &mut |_| true);
    assert!(matches!(err, Err(ModelError::Input(_))));
}

/// What `--generator-model DIR` loads: a folder with a safetensors checkpoint and no GGUF is
/// the checkpoint; one with neither says which file is missing.
#[test]
fn a_model_folder_loads_its_safetensors_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_llama_safetensors(dir.path(), None);
    let g = LocalGenerator::from_folder(dir.path()).expect("load");
    assert_eq!(g.context_window(), 128);
    let (a, _) = run(&g, &ask("el derecho de propiedad", 10));
    assert!(a.prompt_tokens > 5);
    let empty = tempfile::tempdir().expect("tempdir");
    let err = LocalGenerator::from_folder(empty.path())
        .err()
        .expect("error")
        .to_string();
    assert!(err.contains("model.gguf"), "{err}");
}

#[test]
fn a_checkpoint_missing_a_tensor_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_llama_safetensors(dir.path(), Some("model.layers.1.mlp.up_proj.weight"));
    let err = LocalGenerator::from_safetensors(dir.path())
        .err()
        .expect("error")
        .to_string();
    assert!(err.contains("model.layers.1.mlp.up_proj.weight"), "{err}");
}

#[test]
fn a_channel_streams_text_then_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, "llama", 256);
    let g: std::sync::Arc<dyn Generator> =
        std::sync::Arc::new(LocalGenerator::from_gguf(&path, None).expect("load"));
    let rx = generate_stream(g, ask("la ley", 12));
    let mut text = String::new();
    let mut done = None;
    for event in rx {
        match event {
            StreamEvent::Text(t) => text.push_str(&t),
            StreamEvent::Done(r) => done = Some(r.expect("generation")),
        }
    }
    let done = done.expect("a final event");
    assert_eq!(done.text, text, "the pieces add up to the final text");
    assert!(!text.is_empty());
}

#[test]
fn gemma3_loads_with_a_sentencepiece_tokenizer_built_from_its_gguf() {
    let Some(path) = common::installed("gemma3-270m/model.gguf") else {
        return;
    };
    let g = LocalGenerator::from_gguf(&path, None).expect("load");
    assert_eq!(g.architecture(), "gemma3");
    let text = "The State protects personal data. El Estado protege los datos personales.";
    let ids = round_trip(&g, text);
    assert!(
        ids.len() < text.len() / 2,
        "whole words, not bytes: {ids:?}"
    );
    // A base model: it completes rather than follows instructions, but it writes words.
    let (out, _) = run(&g, &ask("The capital of France is", 16));
    assert!(out.text.split_whitespace().count() >= 3, "{out:?}");
}

#[test]
fn tiny_decoders_embed_whole_texts_deterministically() {
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tiny.gguf");
        write_tiny(&path, arch, 64);
        let mean = DecoderEmbedder::from_gguf(&path, None, Pooling::Mean).expect("load");
        assert_eq!(mean.dimension(), 64);
        // The context less the first position, which holds BOS as an attention sink.
        assert_eq!(mean.max_tokens(), 63);
        let short = "el derecho de propiedad";
        let long = "el derecho de propiedad en sus diversas especies ".repeat(6);
        let v = mean.embed_passages(&[short, &long]).expect("embed");
        for x in &v {
            assert_eq!(x.len(), 64);
            assert!((dot(x, x) - 1.0).abs() < 1e-4, "{arch}: unit length");
        }
        assert_eq!(
            v[0],
            mean.embed_query(short).expect("query"),
            "{arch}: deterministic"
        );
        // The long text spans several windows; its tail counts.
        let head: String = long.chars().take(60).collect();
        let first_window = mean.embed_passages(&[&head]).expect("embed");
        assert!(
            dot(&v[1], &first_window[0]) < 0.9999,
            "{arch}: windows after the first count"
        );
        let last = DecoderEmbedder::from_gguf(&path, None, Pooling::LastToken).expect("load");
        let l = last.embed_passages(&[short]).expect("embed");
        assert_ne!(l[0], v[0], "{arch}: pooling matters");
        assert!(last.max_tokens() < 63, "{arch}: the prompt takes positions");
        assert!(matches!(mean.embed_query("  "), Err(ModelError::Input(_))));
        assert!(matches!(
            mean.with_templates(&"palabra ".repeat(40), "{text}"),
            Err(ModelError::Input(_))
        ));
    }
}

#[test]
fn qwen_embeddings_put_a_question_in_three_languages_closer_than_an_unrelated_sentence() {
    let Some(dir) = common::installed("qwen2.5-0.5b") else {
        return;
    };
    let tokenizer = dir.join("tokenizer.json");
    let e = DecoderEmbedder::from_gguf(
        &dir.join("model.gguf"),
        tokenizer.is_file().then_some(tokenizer.as_path()),
        Pooling::LastToken,
    )
    .expect("load");
    assert_eq!(e.dimension(), 896);
    let v = e.embed_passages(&common::VOTING_AGE).expect("embed");
    common::assert_languages_agree(&v, 0.05);
}
