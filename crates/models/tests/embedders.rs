//! Embedders: a tiny random-weight BERT written to a temp folder by the test (loader, masks,
//! windows, determinism), and the real models when `scripts/setup-models.sh` installed them.

mod common;

use common::dot;

use std::collections::HashMap;
use std::path::Path;

use cabildo_models::{CachedEmbedder, CrossEncoder, Embedder, Reranker, TextEmbedder};
use candle_core::{DType, Device, Tensor};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::Tokenizer;

const WORDS: &[&str] = &[
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "el",
    "derecho",
    "de",
    "propiedad",
    "ley",
    "la",
    "persona",
    "vida",
    "estado",
    "nación",
    "voto",
    "edad",
];

/// Writes config.json, model.safetensors (random weights) and tokenizer.json.
fn tiny_bert(dir: &Path, max_positions: usize) {
    let (h, layers, heads, ff) = (32, 2, 4, 64);
    let config = serde_json::json!({
        "vocab_size": WORDS.len(), "hidden_size": h, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": ff,
        "max_position_embeddings": max_positions, "type_vocab_size": 2, "layer_norm_eps": 1e-12
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");

    let dev = Device::Cpu;
    let mut weights = common::Weights::new(42, 0.2);
    let mut rand = |shape: &[usize]| weights.tensor(shape);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert(
        "embeddings.word_embeddings.weight".into(),
        rand(&[WORDS.len(), h]),
    );
    t.insert(
        "embeddings.position_embeddings.weight".into(),
        rand(&[max_positions, h]),
    );
    t.insert(
        "embeddings.token_type_embeddings.weight".into(),
        rand(&[2, h]),
    );
    let ones = || Tensor::ones(h, DType::F32, &dev).expect("ones");
    let zeros = || Tensor::zeros(h, DType::F32, &dev).expect("zeros");
    t.insert("embeddings.LayerNorm.weight".into(), ones());
    t.insert("embeddings.LayerNorm.bias".into(), zeros());
    for i in 0..layers {
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        for (name, rows, cols) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", ff, h),
            ("output.dense", h, ff),
        ] {
            t.insert(p(&format!("{name}.weight")), rand(&[rows, cols]));
            t.insert(p(&format!("{name}.bias")), rand(&[rows]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.insert(p(&format!("{name}.weight")), ones());
            t.insert(p(&format!("{name}.bias")), zeros());
        }
    }
    // A sequence-classification head, so the same folder also loads as a cross-encoder.
    t.insert("pooler.dense.weight".into(), rand(&[h, h]));
    t.insert("pooler.dense.bias".into(), rand(&[h]));
    t.insert("classifier.weight".into(), rand(&[1, h]));
    t.insert("classifier.bias".into(), rand(&[1]));
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).expect("safetensors");

    let vocab = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .expect("wordlevel");
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), 3),
        ("[CLS]".into(), 2),
    )));
    tok.save(dir.join("tokenizer.json"), false)
        .expect("tokenizer");
}

#[test]
fn tiny_bert_loads_and_embeds_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_bert(dir.path(), 16);
    let e = TextEmbedder::bert_dir(dir.path()).expect("load");
    assert_eq!(e.dimension(), 32);
    assert_eq!(e.max_tokens(), 16);
    let a = e
        .embed_passages(&["el derecho de propiedad", "la vida"])
        .expect("embed");
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|v| v.len() == 32));
    for v in &a {
        assert!((dot(v, v) - 1.0).abs() < 1e-4, "L2-normalised");
    }
    let b = e
        .embed_passages(&["el derecho de propiedad", "la vida"])
        .expect("embed");
    assert_eq!(a, b, "same input, same vectors");
    assert!(dot(&a[0], &a[1]) < 0.9999, "different texts differ");
}

#[test]
fn padding_does_not_change_a_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_bert(dir.path(), 32);
    let e = TextEmbedder::bert_dir(dir.path()).expect("load");
    let alone = e.embed_passages(&["la vida"]).expect("embed");
    let padded = e
        .embed_passages(&[
            "la vida",
            "el derecho de propiedad de la persona y el estado",
        ])
        .expect("embed");
    let cos = dot(&alone[0], &padded[0]);
    assert!(
        cos > 0.99999,
        "masked padding leaves the short text's vector as is: {cos}"
    );
}

#[test]
fn long_text_is_embedded_in_windows_not_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_bert(dir.path(), 8); // 6 content tokens per window
    let e = TextEmbedder::bert_dir(dir.path()).expect("load");
    let head = "el derecho de propiedad de la";
    let long = format!("{head} persona vida estado nación voto edad ley");
    let v = e.embed_passages(&[head, &long]).expect("embed");
    assert!(
        dot(&v[0], &v[1]) < 0.9999,
        "the words past the first window count"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TextEmbedder::bert_dir(dir.path())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("setup-models.sh"),
        "{err}"
    );
    std::fs::write(dir.path().join("e5-small-q4.bin"), b"not a model").expect("write");
    let err = TextEmbedder::e5_small(dir.path())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("e5-small-q4.bin") && err.contains("E5S1"),
        "{err}"
    );
}

#[test]
fn cache_returns_the_same_vectors_without_recomputing() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_bert(dir.path(), 16);
    let e = CachedEmbedder::new(TextEmbedder::bert_dir(dir.path()).expect("load"), 100);
    let a = e.embed_passages(&["la vida", "el estado"]).expect("embed");
    assert_eq!(e.len(), 2);
    let b = e
        .embed_passages(&["el estado", "la ley", "la vida"])
        .expect("embed");
    assert_eq!(e.len(), 3, "only the new text was embedded");
    assert_eq!(a[0], b[2]);
    assert_eq!(a[1], b[0]);
}

#[test]
fn e5_puts_a_question_in_three_languages_closer_than_an_unrelated_sentence() {
    let Some(dir) = common::installed("e5-small") else {
        return;
    };
    let e = TextEmbedder::e5_small(&dir).expect("load e5");
    assert_eq!(e.dimension(), 384);
    let v = e.embed_passages(&common::VOTING_AGE).expect("embed");
    common::assert_languages_agree(&v, 0.05);
    // A question retrieves the passage that answers it.
    let q = e
        .embed_query("¿me pueden despedir estando embarazada?")
        .expect("query");
    let p = e
        .embed_passages(&[
            "Durante el período de embarazo y hasta un año después de expirado el descanso de maternidad, la trabajadora gozará de fuero laboral.",
            "El impuesto territorial se paga en cuatro cuotas anuales.",
        ])
        .expect("embed");
    assert!(dot(&q, &p[0]) > dot(&q, &p[1]));
}

#[test]
fn e5_vectors_agree_whether_a_text_runs_alone_or_in_a_batch() {
    // Alone, a short text runs through the 8-bit matrices (fast path for questions); in a
    // batch over 512 rows (the long text pads both rows to its ~400 tokens), through f32
    // GEMM (passages). Questions and passages must land in the same space.
    let Some(dir) = common::installed("e5-small") else {
        return;
    };
    let e = TextEmbedder::e5_small(&dir).expect("load e5");
    let short = "¿Desde qué edad se puede votar en Chile?";
    let alone = e.embed_passages(&[short]).expect("embed");
    let long = "Son ciudadanos los chilenos que hayan cumplido dieciocho años de edad y que no hayan sido condenados a pena aflictiva. ".repeat(15);
    let tokens = e.token_count(&long, false).expect("count");
    assert!(
        2 * tokens > 512,
        "the batch must be over the 8-bit path's 512 rows to reach GEMM: {tokens} tokens"
    );
    let batch = e.embed_passages(&[short, &long]).expect("embed");
    let cos = dot(&alone[0], &batch[0]);
    assert!(cos > 0.999, "cosine between the two paths: {cos}");
}

#[test]
fn minilm_safetensors_loads_and_ranks_english() {
    let Some(dir) = common::installed("all-minilm-l6-v2") else {
        return;
    };
    let e = TextEmbedder::bert_dir(&dir).expect("load minilm");
    assert_eq!(e.dimension(), 384);
    let q = e
        .embed_query("How old must you be to vote?")
        .expect("query");
    let p = e
        .embed_passages(&[
            "Citizens aged eighteen or over have the right to vote.",
            "The recipe needs flour and sugar.",
        ])
        .expect("embed");
    assert!(dot(&q, &p[0]) > dot(&q, &p[1]) + 0.1);
}

#[test]
fn tiny_cross_encoder_scores_each_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_bert(dir.path(), 16);
    let r = CrossEncoder::load(dir.path()).expect("load");
    let passages = [
        "el derecho de propiedad",
        "la vida",
        "la edad de voto de la persona y el estado nación",
    ];
    let a = r.score("derecho de propiedad", &passages).expect("score");
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|s| s.is_finite()));
    assert_eq!(
        a,
        r.score("derecho de propiedad", &passages).expect("score"),
        "deterministic"
    );
    assert_ne!(a[0], a[1], "the passage matters");
    let alone = r
        .score("derecho de propiedad", &passages[1..2])
        .expect("score");
    assert!(
        (alone[0] - a[1]).abs() < 1e-4,
        "padding in a batch does not change a score"
    );
    assert_ne!(
        a[0],
        r.score("la vida", &passages[..1]).expect("score")[0],
        "the query matters"
    );
}
