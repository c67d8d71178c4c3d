use cabildo_models::{Embedder, TextEmbedder};
use std::path::Path;
use std::time::Instant;
fn main() {
    let e = TextEmbedder::e5_small(Path::new("models/e5-small")).unwrap();
    let qs: Vec<String> = std::fs::read_to_string("../shared/eval/bcn-es/queries.jsonl")
        .unwrap()
        .lines()
        .take(100)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for q in &qs[..5] {
        e.embed_query(q).unwrap();
    }
    let mut ts = vec![];
    for q in &qs {
        let t = Instant::now();
        e.embed_query(q).unwrap();
        ts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("p50 {:.1} ms p99 {:.1} max {:.1}", ts[50], ts[98], ts[99]);
}
