//! Retrieval evaluation on BEIR-style sets (`corpus.jsonl`, `queries.jsonl`, `qrels.tsv`),
//! computing the metrics exactly as `../shared/eval/README.md` defines them:
//! Recall@5/10/100, MRR@10 and nDCG@10 with binary gains; for norm-level sets the ranking is
//! mapped to `doc_id`s keeping each one's first occurrence.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use cabildo_core::{AccessLevel, Filters, Jurisdiction, NormKind, Passage};
use cabildo_index::{Analysis, LexicalIndex, QueryOptions};
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

/// Retrieval methods `cabildo eval` can score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// BM25 over the legal analysers, text and heading fields, with phrase-pair boosts.
    Lexical,
    /// The baseline: BM25 on the text alone with a plain tokenizer, lower-casing and a
    /// Snowball stemmer (no legal normalisation, stop words, folding, headings or phrases).
    #[serde(rename = "bm25-plain")]
    Bm25Plain,
}

impl Method {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lexical => "lexical",
            Method::Bm25Plain => "bm25-plain",
        }
    }
}

#[derive(Deserialize)]
struct CorpusLine {
    #[serde(rename = "_id")]
    id: String,
    doc_id: Option<String>,
    title: Option<String>,
    text: String,
    url: Option<String>,
}

#[derive(Deserialize)]
struct QueryLine {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

/// A loaded set.
pub struct EvalSet {
    /// Folder name (`lgpd-pt`).
    pub name: String,
    passages: Vec<Passage>,
    queries: Vec<(String, String)>,
    qrels: HashMap<String, HashSet<String>>,
    /// Whether relevance is judged on `doc_id`s rather than passage ids.
    pub norm_level: bool,
}

fn read(dir: &Path, name: &str) -> Result<String> {
    std::fs::read_to_string(dir.join(name))
        .map_err(|e| EngineError::EvalSet(format!("{}: {e}", dir.join(name).display())))
}

/// The non-blank lines of a JSON-lines file, each parsed as `T`.
fn read_jsonl<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Vec<T>> {
    read(dir, name)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| EngineError::EvalSet(format!("{}: {e}", dir.join(name).display())))
}

impl EvalSet {
    /// Loads a set folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("set")
            .to_string();
        let corpus: Vec<CorpusLine> = read_jsonl(dir, "corpus.jsonl")?;
        let queries: Vec<QueryLine> = read_jsonl(dir, "queries.jsonl")?;
        let mut qrels: HashMap<String, HashSet<String>> = HashMap::new();
        for line in read(dir, "qrels.tsv")?.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() >= 3 && cols[2].trim() != "0" {
                qrels
                    .entry(cols[0].to_string())
                    .or_default()
                    .insert(cols[1].to_string());
            }
        }
        let sample: String = corpus.iter().take(50).map(|c| c.text.as_str()).collect();
        let language = cabildo_text::guess_language(&sample);
        let ids: HashSet<&str> = corpus.iter().map(|c| c.id.as_str()).collect();
        let judged: Vec<&String> = qrels.values().flatten().collect();
        let norm_level = judged.iter().all(|id| !ids.contains(id.as_str()));
        let passages = corpus
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let title = c.title.unwrap_or_default();
                Passage {
                    norm_id: c.doc_id.unwrap_or_else(|| c.id.clone()),
                    id: c.id,
                    ordinal: i as u32,
                    norm_title: title.clone(),
                    breadcrumb: vec![title.clone()],
                    provision: String::new(),
                    label: title,
                    url: c.url,
                    anchor: None,
                    text: c.text,
                    span: None,
                    page: None,
                    jurisdiction: Jurisdiction::country("ZZ"),
                    kind: NormKind::Otro,
                    language,
                    access: AccessLevel::Public,
                    tenant: None,
                    valid_from: None,
                    valid_to: None,
                }
            })
            .collect();
        Ok(EvalSet {
            name,
            passages,
            queries: queries
                .into_iter()
                .filter(|q| qrels.contains_key(&q.id))
                .map(|q| (q.id, q.text))
                .collect(),
            qrels,
            norm_level,
        })
    }

    /// Number of passages.
    pub fn passages(&self) -> usize {
        self.passages.len()
    }
}

/// Scores of one method on one set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Set name.
    pub set: String,
    /// Method scored.
    pub method: Method,
    /// Queries with judgements.
    pub queries: usize,
    /// Passages indexed.
    pub passages: usize,
    /// Recall@5.
    pub recall_5: f64,
    /// Recall@10.
    pub recall_10: f64,
    /// Recall@100.
    pub recall_100: f64,
    /// MRR@10.
    pub mrr_10: f64,
    /// nDCG@10.
    pub ndcg_10: f64,
    /// Mean milliseconds per query.
    pub ms_per_query: f64,
    /// Median milliseconds per query.
    pub p50_ms: f64,
    /// 99th percentile milliseconds per query.
    pub p99_ms: f64,
    /// Seconds to build the index.
    pub index_seconds: f64,
}

/// Metrics of one ranked list against its relevant set.
pub fn score(ranking: &[String], relevant: &HashSet<String>) -> (f64, f64, f64, f64, f64) {
    let rel = relevant.len().max(1) as f64;
    let found = |k: usize| {
        ranking
            .iter()
            .take(k)
            .filter(|r| relevant.contains(*r))
            .count() as f64
    };
    let mrr = ranking
        .iter()
        .take(10)
        .position(|r| relevant.contains(r))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0));
    let dcg: f64 = ranking
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, r)| relevant.contains(*r))
        .map(|(i, _)| 1.0 / ((i as f64) + 2.0).log2())
        .sum();
    let idcg: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / ((i as f64) + 2.0).log2())
        .sum();
    let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    (found(5) / rel, found(10) / rel, found(100) / rel, mrr, ndcg)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Indexes the set's passages in memory and scores `method` on its queries.
pub fn evaluate(set: &EvalSet, method: Method, options: &QueryOptions) -> Result<EvalReport> {
    let t0 = Instant::now();
    let (analysis, options) = match method {
        Method::Lexical => (
            Analysis::Legal,
            QueryOptions {
                snippets: false,
                ..options.clone()
            },
        ),
        Method::Bm25Plain => (
            Analysis::Plain,
            QueryOptions {
                head_boost: 0.0,
                phrase_boost: 0.0,
                snippets: false,
                ..options.clone()
            },
        ),
    };
    let index = LexicalIndex::in_memory(analysis)?;
    let mut batch = index.batch()?;
    for p in &set.passages {
        batch.add(p)?;
    }
    batch.commit()?;
    let index_seconds = t0.elapsed().as_secs_f64();

    let filters = Filters::operator();
    let mut sums = [0.0f64; 5];
    let mut times = Vec::with_capacity(set.queries.len());
    for (qid, text) in &set.queries {
        let t = Instant::now();
        let hits = index.search(text, &filters, 100, &options)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let mut ranking: Vec<String> = Vec::with_capacity(hits.len());
        let mut seen = HashSet::new();
        for h in hits {
            // A passage's norm id is the set's doc_id (its own id when the set has none).
            let id = if set.norm_level {
                h.passage.norm_id
            } else {
                h.passage.id
            };
            if seen.insert(id.clone()) {
                ranking.push(id);
            }
        }
        let s = score(&ranking, &set.qrels[qid]);
        for (acc, v) in sums.iter_mut().zip([s.0, s.1, s.2, s.3, s.4]) {
            *acc += v;
        }
    }
    let n = set.queries.len().max(1) as f64;
    let mean_ms = times.iter().sum::<f64>() / n;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(EvalReport {
        set: set.name.clone(),
        method,
        queries: set.queries.len(),
        passages: set.passages.len(),
        recall_5: sums[0] / n,
        recall_10: sums[1] / n,
        recall_100: sums[2] / n,
        mrr_10: sums[3] / n,
        ndcg_10: sums[4] / n,
        ms_per_query: mean_ms,
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
        index_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_their_definitions() {
        let relevant: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let ranking: Vec<String> = ["x", "a", "y", "b"].iter().map(|s| s.to_string()).collect();
        let (r5, r10, r100, mrr, ndcg) = score(&ranking, &relevant);
        assert_eq!((r5, r10, r100), (1.0, 1.0, 1.0));
        assert_eq!(mrr, 0.5);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - dcg / idcg).abs() < 1e-12);
        assert_eq!(score(&[], &relevant), (0.0, 0.0, 0.0, 0.0, 0.0));
    }
}
