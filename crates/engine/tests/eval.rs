//! Retrieval quality on the development sets in `../shared/eval`, as a regression guard: the
//! lexical method must keep clearing the bar the ingest issue set (plain BM25 with a Snowball
//! stemmer: nDCG@10 0.647 on lgpd-pt, 0.605 on bcn-es). Skips when the sets are absent.

use std::path::{Path, PathBuf};

use cabildo_engine::eval::{evaluate, EvalSet, Method};
use cabildo_engine::QueryOptions;

fn set(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/eval")
        .join(name);
    if dir.join("corpus.jsonl").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/eval/{name} not found");
        None
    }
}

#[test]
fn lexical_clears_the_bm25_bar_on_both_sets() {
    for (name, bar) in [("lgpd-pt", 0.647), ("bcn-es", 0.605)] {
        let Some(dir) = set(name) else { continue };
        let s = EvalSet::load(&dir).expect("load set");
        let lexical = evaluate(&s, Method::Lexical, &QueryOptions::default()).expect("eval");
        let plain = evaluate(&s, Method::Bm25Plain, &QueryOptions::default()).expect("eval");
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
