//! The retrieval pipeline, in three steps that every caller (the server, the CLI, evaluation,
//! the benchmarks) goes through:
//!
//! 1. [`Pipeline::candidates`]: a question's candidates from each index under the same
//!    filters: the lexical ranking (ids and BM25 scores only) and the dense one (the
//!    question's embedding and its nearest passages), computed side by side off the async
//!    runtime. Evaluation computes them once per question and ranks them many times.
//! 2. [`Pipeline::rank`]: the method's ranking of those candidates (the one place the method
//!    is chosen): lexical, dense, hybrid (fused), or rerank (hybrid, then a cross-encoder).
//! 3. [`Pipeline::hits`]: the top passages loaded from the lexical index, once, with
//!    snippets only where a caller shows them.
//!
//! Hybrid search fuses the two rankings. Plain reciprocal-rank fusion with equal weights lets
//! a weak dense ranking pull down a strong lexical one (on `lgpd-pt`, e5-small + BM25 with
//! RRF k=60 scored below BM25 alone), so both fusions here are weighted: RRF with a weight per
//! list, and a convex combination of min-max-normalised scores. The weight depends on the
//! question's length (short everyday questions lean on the embedding, long ones that quote
//! the law on the lexical index), and each side searches twice (pseudo-relevance feedback):
//! the dense side from the question's vector moved towards the best fused passages, the
//! lexical side with the words those passages share that the question lacks. The
//! defaults are the best of `cabildo eval --sweep` by mean nDCG@10 over the three development
//! sets (docs/evaluation.md), and live in `config/cabildo.toml`'s `[retrieval]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cabildo_core::{Filters, Reranker, SearchHit};
use cabildo_index::{LexicalIndex, QueryOptions, TermFeedback};
use cabildo_vectors::{SearchOptions, VectorHit};

pub use cabildo_core::retrieval::{
    Fusion, HybridParams, Method, LONG_QUESTION_WORDS, SHORT_QUESTION_WORDS,
};

use crate::{Dense, EngineError, Result};

/// A ranking: passage ids with scores, best first.
pub type Ranking = Vec<(String, f32)>;

/// The retrieval pipeline over a lexical index and, when configured, dense retrieval and a
/// reranker. Cheap to clone: the parts are shared.
#[derive(Clone)]
pub struct Pipeline {
    index: LexicalIndex,
    dense: Option<Dense>,
    reranker: Option<Arc<dyn Reranker>>,
    lexical: QueryOptions,
}

/// The question's nearest passages and its vector.
#[derive(Debug, Clone)]
struct DenseCandidates {
    vector: Vec<f32>,
    /// With their vectors when feedback will read them.
    hits: Vec<VectorHit>,
}

/// Step one's result: a question's candidates from each index.
#[derive(Debug, Clone)]
pub struct Candidates {
    query: String,
    filters: Filters,
    k: usize,
    /// Absent for the dense method.
    lexical: Option<Ranking>,
    /// Absent for the lexical method.
    dense: Option<DenseCandidates>,
    /// Milliseconds the lexical search took.
    pub lexical_ms: f64,
    /// Milliseconds the question's embedding and the vector search took.
    pub dense_ms: f64,
}

impl Candidates {
    /// The dense ranking (passage id, cosine similarity to the question); empty without
    /// dense candidates.
    pub fn dense_ranking(&self) -> Ranking {
        self.dense
            .as_ref()
            .map(|d| ranking_of(&d.hits))
            .unwrap_or_default()
    }

    /// The question.
    pub fn query(&self) -> &str {
        &self.query
    }
}

/// Hits of a search and the evidence behind them.
#[derive(Debug, Clone, Default)]
pub struct Retrieved {
    /// The passages, best first.
    pub hits: Vec<SearchHit>,
    /// The dense ranking the hits came from (passage id, cosine similarity to the question),
    /// empty for the lexical method: an absolute measure of closeness, unlike fused scores.
    pub dense: Ranking,
}

impl Retrieved {
    /// The question's cosine similarity to the closest of the hits, when dense retrieval ran.
    pub fn best_cosine(&self) -> Option<f32> {
        closest(self.hits.iter().map(|h| h.passage.id.as_str()), &self.dense)
    }
}

/// The highest score `dense` gives any of the passages `ids`.
pub(crate) fn closest<'a>(ids: impl IntoIterator<Item = &'a str>, dense: &Ranking) -> Option<f32> {
    ids.into_iter()
        .filter_map(|id| dense.iter().find(|(d, _)| d == id).map(|(_, s)| *s))
        .reduce(f32::max)
}

/// Runs CPU-bound work (model inference, index reads) on the blocking pool, so it never holds
/// an async worker.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    joined(tokio::task::spawn_blocking(work)).await
}

/// The result of blocking work started earlier. A panic there is a panic here, as without
/// the thread.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels blocking work.
            Err(e) => panic!("blocking work cancelled: {e}"),
        },
    }
}

fn milliseconds(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Pipeline {
    /// A pipeline over `index`, with dense retrieval and a reranker when given; `lexical`
    /// holds the lexical ranking's knobs.
    pub fn new(
        index: LexicalIndex,
        dense: Option<Dense>,
        reranker: Option<Arc<dyn Reranker>>,
        lexical: QueryOptions,
    ) -> Self {
        Pipeline {
            index,
            dense,
            reranker,
            lexical,
        }
    }

    pub(crate) fn with_dense(self, dense: Dense) -> Self {
        Pipeline {
            dense: Some(dense),
            ..self
        }
    }

    pub(crate) fn with_reranker(self, reranker: Arc<dyn Reranker>) -> Self {
        Pipeline {
            reranker: Some(reranker),
            ..self
        }
    }

    pub(crate) fn with_query_options(self, lexical: QueryOptions) -> Self {
        Pipeline { lexical, ..self }
    }

    /// The lexical index; it also holds the passages every method returns.
    pub fn index(&self) -> &LexicalIndex {
        &self.index
    }

    /// Dense retrieval, when configured.
    pub fn dense(&self) -> Option<&Dense> {
        self.dense.as_ref()
    }

    /// The method a caller gets when it names none: hybrid with vectors, else lexical.
    pub fn default_method(&self) -> Method {
        if self.dense.is_some() {
            Method::Hybrid
        } else {
            Method::Lexical
        }
    }

    fn require_dense(&self) -> Result<&Dense> {
        self.dense.as_ref().ok_or_else(|| {
            EngineError::Unavailable(
                "dense retrieval needs an embedding model and a vector store; none is configured"
                    .into(),
            )
        })
    }

    /// Steps one to three: `method`'s top `k` passages for `query` under `filters`, with
    /// snippets when `snippets` is set.
    pub async fn retrieve(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
        method: Method,
        params: &HybridParams,
        snippets: bool,
    ) -> Result<Retrieved> {
        let candidates = self.candidates(query, filters, k, method, params).await?;
        let ranking = self.rank(&candidates, method, params).await?;
        self.hits(&candidates, &ranking, snippets).await
    }

    /// Step one: the candidates `method` needs for its top `k`. The lexical and the dense
    /// method take `k` from their index; hybrid and rerank take `params`' depths from both,
    /// the lexical search and the question's embedding running side by side (long questions
    /// are slow in both: one after the other, their tails added up).
    pub async fn candidates(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
        method: Method,
        params: &HybridParams,
    ) -> Result<Candidates> {
        let filters = &filters.dated();
        let (lexical_depth, dense_depth) = match method {
            Method::Lexical => (Some(k), None),
            Method::Dense => (None, Some(k)),
            Method::Hybrid | Method::Rerank => {
                (Some(params.lexical_depth), Some(params.dense_depth))
            }
        };
        let lexical = lexical_depth.map(|depth| {
            let (index, options) = (self.index.clone(), self.lexical.clone());
            let (query, filters) = (query.to_string(), filters.clone());
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let ranking = index.rank(&query, &filters, depth.max(1), &options);
                (ranking, milliseconds(t))
            })
        });
        let mut dense = None;
        let mut dense_ms = 0.0;
        if let Some(depth) = dense_depth {
            let d = self.require_dense()?;
            let t = Instant::now();
            let embedder = d.embedder.clone();
            let question = query.to_string();
            let vector = blocking(move || embedder.embed_query(&question)).await?;
            let options = SearchOptions {
                // Feedback reads the first hits' vectors; the dense method never does.
                with_vectors: method != Method::Dense && params.feedback > 0,
                ..SearchOptions::default()
            };
            let hits = d.store.search(&vector, filters, depth, options).await?;
            dense_ms = milliseconds(t);
            dense = Some(DenseCandidates { vector, hits });
        }
        let (lexical, lexical_ms) = match lexical {
            Some(task) => {
                let (ranking, ms) = joined(task).await;
                (Some(ranking?), ms)
            }
            None => (None, 0.0),
        };
        Ok(Candidates {
            query: query.to_string(),
            filters: filters.clone(),
            k,
            lexical,
            dense,
            lexical_ms,
            dense_ms,
        })
    }

    /// Step two: `method`'s ranking of `candidates`, best first (longer than `k` for
    /// evaluation's deeper metrics; [`Pipeline::hits`] cuts it).
    pub async fn rank(
        &self,
        candidates: &Candidates,
        method: Method,
        params: &HybridParams,
    ) -> Result<Ranking> {
        let missing = |what: &str| {
            EngineError::Unavailable(format!(
                "the {} method needs {what} candidates, which this search did not retrieve",
                method.name()
            ))
        };
        match method {
            Method::Lexical => candidates.lexical.clone().ok_or_else(|| missing("lexical")),
            Method::Dense => {
                let d = candidates.dense.as_ref().ok_or_else(|| missing("dense"))?;
                Ok(ranking_of(&d.hits))
            }
            Method::Hybrid => self.hybrid_ranking(candidates, params).await,
            Method::Rerank => {
                let reranker = self.reranker.clone().ok_or_else(|| {
                    EngineError::Unavailable(
                        "the rerank method needs a cross-encoder model; none is configured".into(),
                    )
                })?;
                let mut fused = self.hybrid_ranking(candidates, params).await?;
                fused.truncate(params.rerank_depth.max(candidates.k));
                let index = self.index.clone();
                let query = candidates.query.clone();
                blocking(move || rerank(&index, reranker.as_ref(), &query, fused)).await
            }
        }
    }

    /// Step three: the passages of `ranking`'s top `k`, loaded once from the lexical index,
    /// with highlighted snippets when `snippets` is set.
    pub async fn hits(
        &self,
        candidates: &Candidates,
        ranking: &[(String, f32)],
        snippets: bool,
    ) -> Result<Retrieved> {
        let top: Ranking = ranking.iter().take(candidates.k).cloned().collect();
        let index = self.index.clone();
        let options = QueryOptions {
            snippets,
            ..self.lexical.clone()
        };
        let query = candidates.query.clone();
        let hits = blocking(move || index.hits_for(&query, &top, &options)).await?;
        Ok(Retrieved {
            hits,
            dense: candidates.dense_ranking(),
        })
    }

    /// The vector search of step one alone, for a question's `vector` (benchmarks time it).
    pub async fn nearest(
        &self,
        vector: &[f32],
        filters: &Filters,
        params: &HybridParams,
    ) -> Result<Vec<VectorHit>> {
        let options = SearchOptions {
            with_vectors: params.feedback > 0,
            ..SearchOptions::default()
        };
        Ok(self
            .require_dense()?
            .store
            .search(vector, filters, params.dense_depth, options)
            .await?)
    }

    /// The hybrid ranking: the lexical candidates fused with the dense ones, with the dense
    /// weight for the question's length. With feedback on, the question's vector is then
    /// moved towards the vectors of the best fused passages (those among the dense
    /// candidates, whose vectors they carry) and searched again, and that ranking is fused
    /// instead: the passages the two retrievers agree on say in the corpus's own words what
    /// the question is about (Rocchio's pseudo-relevance feedback). On the development sets
    /// it is worth +0.02–0.03 nDCG@10 (docs/evaluation.md). With term feedback on, the
    /// lexical side is searched again with the salient words of the passages that fusion
    /// then puts first, and fused again: +0.013 on bcn-es, whose citizens ask in everyday
    /// words.
    async fn hybrid_ranking(&self, c: &Candidates, params: &HybridParams) -> Result<Ranking> {
        let (Some(lexical), Some(dense)) = (&c.lexical, &c.dense) else {
            return Err(EngineError::Unavailable(
                "hybrid ranking needs lexical and dense candidates".into(),
            ));
        };
        let params = HybridParams {
            dense_weight: params.dense_weight_for(&c.query),
            ..params.clone()
        };
        let fused = fuse(lexical, &ranking_of(&dense.hits), &params);
        if params.feedback == 0 {
            return Ok(fused);
        }
        let vectors: HashMap<&str, &Vec<f32>> = dense
            .hits
            .iter()
            .filter_map(|h| Some((h.passage_id.as_str(), h.vector.as_ref()?)))
            .collect();
        let feedback: Vec<&Vec<f32>> = fused
            .iter()
            .filter_map(|(id, _)| vectors.get(id.as_str()).copied())
            .take(params.feedback)
            .collect();
        if feedback.is_empty() {
            return Ok(fused);
        }
        let mut moved = dense.vector.clone();
        let share = params.feedback_weight / feedback.len() as f32;
        for v in feedback {
            for (m, x) in moved.iter_mut().zip(v) {
                *m += share * x;
            }
        }
        crate::context::normalise(&mut moved);
        let second = ranking_of(
            &self
                .require_dense()?
                .store
                .search(
                    &moved,
                    &c.filters,
                    params.dense_depth,
                    SearchOptions::default(),
                )
                .await?,
        );
        let fused = fuse(lexical, &second, &params);
        if params.term_feedback == 0 {
            return Ok(fused);
        }
        // The words of the passages now on top, for the lexical side.
        let top: Vec<String> = fused
            .iter()
            .take(params.feedback)
            .map(|(id, _)| id.clone())
            .collect();
        let (index, options) = (self.index.clone(), self.lexical.clone());
        let (query, filters) = (c.query.clone(), c.filters.clone());
        let (terms, weight) = (params.term_feedback, params.term_feedback_weight);
        let depth = params.lexical_depth;
        let lexical = blocking(move || {
            let feedback = TermFeedback {
                passages: &top,
                terms,
                weight,
            };
            index.rank_with_feedback(&query, &feedback, &filters, depth, &options)
        })
        .await?;
        Ok(fuse(&lexical, &second, &params))
    }
}

/// A ranking of vector hits: passage ids with their cosine similarity.
fn ranking_of(hits: &[VectorHit]) -> Ranking {
    hits.iter()
        .map(|h| (h.passage_id.clone(), h.score))
        .collect()
}

/// Fuses a lexical and a dense ranking (each best first) into one, best first.
fn fuse(lexical: &[(String, f32)], dense: &[(String, f32)], p: &HybridParams) -> Ranking {
    let lexical = &lexical[..lexical.len().min(p.lexical_depth)];
    let dense = &dense[..dense.len().min(p.dense_depth)];
    let w = p.dense_weight.clamp(0.0, 1.0);
    let mut fused: HashMap<&str, f32> = HashMap::new();
    for (list, weight) in [(lexical, 1.0 - w), (dense, w)] {
        if weight == 0.0 {
            continue;
        }
        let contributions: Vec<f32> = match p.fusion {
            Fusion::Rrf => (0..list.len())
                .map(|rank| 1.0 / (p.rrf_k + rank as f32 + 1.0))
                .collect(),
            Fusion::Score => normalised(list),
        };
        for ((id, _), c) in list.iter().zip(contributions) {
            *fused.entry(id.as_str()).or_default() += weight * c;
        }
    }
    let mut ranking: Ranking = fused
        .into_iter()
        .map(|(id, s)| (id.to_string(), s))
        .collect();
    // Ties broken by id so a ranking is reproducible.
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranking
}

/// Scores mapped to 0..=1 by the list's own minimum and maximum (all 1 when they are equal).
fn normalised(list: &[(String, f32)]) -> Vec<f32> {
    let (lo, hi) = list
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| {
            (lo.min(*s), hi.max(*s))
        });
    list.iter()
        .map(|(_, s)| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 })
        .collect()
}

/// `ranked` re-scored by a cross-encoder reading each passage as its vector does (heading,
/// then text), best first.
fn rerank(
    index: &LexicalIndex,
    reranker: &dyn Reranker,
    query: &str,
    ranked: Ranking,
) -> Result<Ranking> {
    let unsnipped = QueryOptions {
        snippets: false,
        ..QueryOptions::default()
    };
    let passages = index.hits_for(query, &ranked, &unsnipped)?;
    let texts: Vec<String> = passages
        .iter()
        .map(|h| crate::context::dense_text(&h.passage))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores = reranker.score(query, &refs)?;
    let mut scored: Ranking = passages
        .into_iter()
        .zip(scores)
        .map(|(h, s)| (h.passage.id, s))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(scored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> Ranking {
        ids.iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), 10.0 - i as f32))
            .collect()
    }

    #[test]
    fn the_dense_weight_moves_from_short_questions_to_long_ones() {
        let p = HybridParams {
            short_dense_weight: 0.8,
            dense_weight: 0.4,
            ..HybridParams::default()
        };
        let words = |n: usize| vec!["palabra"; n].join(" ");
        assert_eq!(
            p.dense_weight_for("¿me pueden despedir estando embarazada?"),
            0.8
        );
        assert_eq!(p.dense_weight_for(&words(SHORT_QUESTION_WORDS)), 0.8);
        let middle = p.dense_weight_for(&words(30));
        assert!((middle - 0.6).abs() < 1e-6, "{middle}");
        assert_eq!(p.dense_weight_for(&words(LONG_QUESTION_WORDS)), 0.4);
        assert_eq!(p.dense_weight_for(&words(400)), 0.4);
    }

    #[test]
    fn weight_zero_keeps_the_lexical_order_and_one_the_dense_order() {
        let lex = list(&["a", "b", "c"]);
        let dense = list(&["c", "b", "a"]);
        for fusion in [Fusion::Rrf, Fusion::Score] {
            let mut p = HybridParams {
                fusion,
                dense_weight: 0.0,
                ..HybridParams::default()
            };
            let ids = |r: Ranking| r.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
            assert_eq!(ids(fuse(&lex, &dense, &p)), ["a", "b", "c"]);
            p.dense_weight = 1.0;
            assert_eq!(ids(fuse(&lex, &dense, &p)), ["c", "b", "a"]);
        }
    }

    #[test]
    fn a_passage_both_lists_rank_well_wins() {
        let lex = list(&["a", "b", "x"]);
        let dense = list(&["y", "b", "z"]);
        let p = HybridParams {
            fusion: Fusion::Rrf,
            dense_weight: 0.5,
            ..HybridParams::default()
        };
        assert_eq!(fuse(&lex, &dense, &p)[0].0, "b");
    }

    #[test]
    fn depths_cut_each_list_before_fusing() {
        let lex = list(&["a", "b", "c"]);
        let p = HybridParams {
            lexical_depth: 2,
            dense_weight: 0.5,
            ..HybridParams::default()
        };
        assert_eq!(fuse(&lex, &[], &p).len(), 2);
    }
}
