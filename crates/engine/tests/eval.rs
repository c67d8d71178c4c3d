//! Retrieval quality on the development sets in `../shared/eval`, as a regression guard: the
//! lexical method must keep clearing the bar the ingest issue set (plain BM25 with a Snowball
//! stemmer: nDCG@10 0.647 on lgpd-pt, 0.605 on bcn-es) and our own plain BM25 on every set,
//! and hybrid retrieval must beat lexical alone and plain reciprocal-rank fusion. Skips when
//! the sets are absent.

use std::path::PathBuf;
use std::sync::Arc;

use cabildo_engine::eval::{default_cache_dir, plain_rrf_params, EvalDense, EvalSet, PreparedSet};
use cabildo_engine::retrieve::{HybridParams, Method};
use cabildo_engine::QueryOptions;
use cabildo_models::TextEmbedder;

fn set(name: &str) -> Option<PathBuf> {
    cabildo_core::fixtures::shared(&format!("eval/{name}"))
}

#[tokio::test]
async fn lexical_clears_the_bm25_bar_on_every_set() {
    let params = HybridParams::default();
    let options = QueryOptions::default();
    for (name, bar) in [
        ("lgpd-pt", 0.647),
        ("bcn-es", 0.605),
        ("juristcu-pt", 0.665),
    ] {
        let Some(dir) = set(name) else { continue };
        let s = EvalSet::load(&dir).expect("load set");
        let lexical = PreparedSet::new(&s, &options, false, None, None, &mut |_, _, _| {})
            .await
            .expect("prepare")
            .score(Method::Lexical, &params)
            .await
            .expect("eval");
        let plain = PreparedSet::new(&s, &options, true, None, None, &mut |_, _, _| {})
            .await
            .expect("prepare")
            .score(Method::Lexical, &params)
            .await
            .expect("eval");
        assert!(
            lexical.ndcg_10 > bar,
            "{name}: nDCG@10 {:.3} <= {bar}",
            lexical.ndcg_10
        );
        assert!(
            lexical.ndcg_10 > plain.ndcg_10,
            "{name}: legal analysis beats plain BM25"
        );
        assert_eq!(lexical.queries, plain.queries);
    }
}

/// lgpd-pt and juristcu-pt: their 857 and 1,651 passages embed in a few minutes on two
/// cores (then come from the embedding cache); bcn-es's 24,332 take about an hour and are
/// measured in docs/evaluation.md.
#[tokio::test]
async fn hybrid_beats_lexical_and_plain_fusion() {
    let models = cabildo_core::fixtures::workspace_root().join("models/e5-small");
    let dense = EvalDense {
        embedder: Arc::new(TextEmbedder::e5_small(&models).expect("e5-small")),
        cache_dir: default_cache_dir(),
        settings: cabildo_engine::Settings::default(),
    };
    let params = HybridParams::default();
    for name in ["lgpd-pt", "juristcu-pt"] {
        let Some(dir) = set(name) else { continue };
        let s = EvalSet::load(&dir).expect("load set");
        let options = QueryOptions::default();
        let prepared = PreparedSet::new(&s, &options, false, Some(&dense), None, &mut |_, _, _| {})
            .await
            .expect("prepare");
        let lexical = prepared
            .score(Method::Lexical, &params)
            .await
            .expect("lexical");
        let dense_only = prepared.score(Method::Dense, &params).await.expect("dense");
        let hybrid = prepared
            .score(Method::Hybrid, &params)
            .await
            .expect("hybrid");
        assert!(
            dense_only.ndcg_10 > 0.3,
            "{name}: dense works at all: {:.3}",
            dense_only.ndcg_10
        );
        assert!(
            hybrid.ndcg_10 > lexical.ndcg_10,
            "{name}: hybrid {:.3} <= lexical {:.3}",
            hybrid.ndcg_10,
            lexical.ndcg_10
        );
        assert!(
            prepared.score(Method::Rerank, &params).await.is_err(),
            "rerank without a reranker is an error, not a silent hybrid"
        );
        prepared
            .close()
            .await
            .expect("the scratch vector store is removed");

        let plain = PreparedSet::new(&s, &options, true, Some(&dense), None, &mut |_, _, _| {})
            .await
            .expect("prepare the baseline");
        let rrf = plain
            .score(Method::Hybrid, &plain_rrf_params())
            .await
            .expect("plain RRF");
        plain.close().await.expect("close");
        assert_eq!(rrf.method.name(), "rrf-plain");
        assert!(
            hybrid.ndcg_10 > rrf.ndcg_10,
            "{name}: hybrid {:.3} <= plain RRF of bm25-plain and dense {:.3}",
            hybrid.ndcg_10,
            rrf.ndcg_10
        );
    }
}
