//! Retrieval methods over the lexical index and the vector store, and how their rankings
//! are fused.
//!
//! Hybrid search runs both retrievers under the same filters and fuses their rankings.
//! Plain reciprocal-rank fusion with equal weights lets a weak dense ranking pull down a
//! strong lexical one (on `lgpd-pt`, e5-small + BM25 with RRF k=60 scored below BM25 alone),
//! so both fusions here are weighted: RRF with a weight per list, and a convex combination
//! of min-max-normalised scores. The weight depends on the question's length (short
//! everyday questions lean on the embedding, long ones that quote the law on the lexical
//! index), and the dense side searches twice: the second time from the question's vector
//! moved towards the best fused passages (pseudo-relevance feedback). The defaults are the
//! best of `cabildo eval --sweep` by mean nDCG@10 over the two development sets
//! (docs/evaluation.md).

use std::collections::HashMap;
use std::str::FromStr;

use cabildo_core::{Filters, Passage, Reranker, SearchHit};
use cabildo_index::{LexicalIndex, QueryOptions};
use cabildo_vectors::{SearchOptions, VectorHit, VectorStore};
use serde::Serialize;

use crate::Dense;

/// A retrieval method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// BM25 over the legal analysers (the lexical index alone).
    Lexical,
    /// Nearest neighbours of the question's embedding (the vector store alone).
    Dense,
    /// Lexical and dense rankings fused.
    Hybrid,
    /// Hybrid, then the top candidates re-scored by a cross-encoder.
    Rerank,
}

impl Method {
    /// Every method, in the order reports list them.
    pub const ALL: [Method; 4] = [
        Method::Lexical,
        Method::Dense,
        Method::Hybrid,
        Method::Rerank,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lexical => "lexical",
            Method::Dense => "dense",
            Method::Hybrid => "hybrid",
            Method::Rerank => "rerank",
        }
    }

    /// Whether the method needs passage vectors.
    pub fn needs_vectors(self) -> bool {
        self != Method::Lexical
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method {s:?}: use lexical, dense, hybrid or rerank"))
    }
}

/// How two rankings are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Weighted reciprocal-rank fusion: `(1-w)/(k+rank_lexical) + w/(k+rank_dense)`.
    Rrf,
    /// Convex combination of min-max-normalised scores: `(1-w)·lexical + w·dense`.
    Score,
}

impl FromStr for Fusion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rrf" => Ok(Fusion::Rrf),
            "score" => Ok(Fusion::Score),
            _ => Err(format!("unknown fusion {s:?}: use rrf or score")),
        }
    }
}

/// Questions of at most this many words take [`HybridParams::short_dense_weight`].
pub const SHORT_QUESTION_WORDS: usize = 20;
/// Questions of at least this many words take [`HybridParams::dense_weight`]; in between,
/// the weight moves linearly from one to the other.
pub const LONG_QUESTION_WORDS: usize = 40;

/// Parameters of hybrid retrieval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HybridParams {
    /// How the rankings are combined.
    pub fusion: Fusion,
    /// RRF's `k` (ignored by score fusion).
    pub rrf_k: f32,
    /// Weight of the dense ranking for long questions, 0..=1 (the lexical one gets `1 - w`).
    pub dense_weight: f32,
    /// Weight of the dense ranking for short questions. A citizen's question in everyday
    /// words ("¿me pueden despedir estando embarazada?") shares few words with the law,
    /// which the embedding bridges; a long question (an exam item, a caseworker's pasted
    /// paragraph) quotes the law's wording, which the lexical index matches exactly while
    /// its embedding blurs several topics into one vector.
    pub short_dense_weight: f32,
    /// Top fused passages whose vectors move the question's for a second dense search
    /// (pseudo-relevance feedback); 0 turns it off.
    pub feedback: usize,
    /// Weight of those passages' mean vector added to the question's.
    pub feedback_weight: f32,
    /// Candidates taken from the lexical index.
    pub lexical_depth: usize,
    /// Candidates taken from the vector store.
    pub dense_depth: usize,
    /// Fused candidates the reranker re-scores.
    pub rerank_depth: usize,
}

impl Default for HybridParams {
    /// The best parameters of `cabildo eval --sweep` by mean nDCG@10 over lgpd-pt and
    /// bcn-es (docs/evaluation.md).
    fn default() -> Self {
        HybridParams {
            fusion: Fusion::Score,
            rrf_k: 60.0,
            dense_weight: 0.45,
            short_dense_weight: 0.8,
            feedback: 3,
            feedback_weight: 1.0,
            lexical_depth: 100,
            dense_depth: 100,
            rerank_depth: 30,
        }
    }
}

impl HybridParams {
    /// The dense ranking's weight for `question`, by its length in words.
    pub fn dense_weight_for(&self, question: &str) -> f32 {
        let words = question.split_whitespace().count();
        let span = (LONG_QUESTION_WORDS - SHORT_QUESTION_WORDS) as f32;
        let t = (words.saturating_sub(SHORT_QUESTION_WORDS) as f32 / span).min(1.0);
        self.short_dense_weight + (self.dense_weight - self.short_dense_weight) * t
    }
}

/// A ranking: passage ids with scores, best first.
pub type Ranking = Vec<(String, f32)>;

/// The retrieval methods over a lexical index and, when given, a vector store and a
/// reranker. [`crate::Engine::search`] runs through it, and so do benchmarks over indexes
/// built in memory.
pub struct Retriever<'a> {
    /// The lexical index; it also holds the passages every method returns.
    pub index: &'a LexicalIndex,
    /// Dense retrieval, when configured.
    pub dense: Option<&'a Dense>,
    /// The cross-encoder of the rerank method, when configured.
    pub reranker: Option<&'a dyn Reranker>,
}

/// Hits of a search and the evidence behind them.
#[derive(Debug, Clone, Default)]
pub struct Retrieved {
    /// The passages, best first, with snippets.
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
pub fn closest<'a>(ids: impl IntoIterator<Item = &'a str>, dense: &Ranking) -> Option<f32> {
    ids.into_iter()
        .filter_map(|id| dense.iter().find(|(d, _)| d == id).map(|(_, s)| *s))
        .reduce(f32::max)
}

impl Retriever<'_> {
    /// Searches with `method` under `filters`, returning at most `k` hits with snippets.
    pub async fn search(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
        method: Method,
        params: &HybridParams,
    ) -> crate::Result<Vec<SearchHit>> {
        Ok(self.retrieve(query, filters, k, method, params).await?.hits)
    }

    /// Like [`Retriever::search`], and also returns the dense ranking behind the hits.
    pub async fn retrieve(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
        method: Method,
        params: &HybridParams,
    ) -> crate::Result<Retrieved> {
        let options = QueryOptions::default();
        match method {
            Method::Lexical => Ok(Retrieved {
                hits: self.index.search(query, filters, k, &options)?,
                dense: Vec::new(),
            }),
            Method::Dense => {
                let dense = self.dense_ranking(query, filters, k).await?;
                let hits = self.index.hits_for(query, &dense, &options)?;
                Ok(Retrieved { hits, dense })
            }
            Method::Hybrid | Method::Rerank => {
                let unsnipped = QueryOptions {
                    snippets: false,
                    ..options.clone()
                };
                // The lexical search runs on its own thread while the question is embedded:
                // long questions are slow in both, so one after the other their tails added
                // up (p99 ~34 + ~16 ms at 100k passages; overlapped, 44).
                let (lexical, vector) = std::thread::scope(|scope| {
                    let lexical = scope.spawn(|| {
                        self.index
                            .search(query, filters, params.lexical_depth, &unsnipped)
                    });
                    let vector = self.embed_query(query);
                    (lexical.join(), vector)
                });
                let lexical: Ranking = lexical
                    // A panic there is a panic here, as without the thread.
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?
                    .into_iter()
                    .map(|h| (h.passage.id, h.score))
                    .collect();
                let vector = vector?;
                let store = self.dense()?.store.as_ref();
                let first = first_dense(store, &vector, filters, params).await?;
                let mut fused =
                    hybrid_ranking(store, query, &vector, &lexical, &first, filters, params)
                        .await?;
                let dense = ranking_of(&first);
                if method == Method::Hybrid {
                    fused.truncate(k);
                    let hits = self.index.hits_for(query, &fused, &options)?;
                    return Ok(Retrieved { hits, dense });
                }
                let reranker = self.reranker.ok_or_else(|| {
                    crate::EngineError::Unavailable(
                        "the rerank method needs a cross-encoder model; none is configured".into(),
                    )
                })?;
                fused.truncate(params.rerank_depth.max(k));
                let candidates = self.index.hits_for(query, &fused, &options)?;
                let hits = rerank(reranker, query, candidates, k)?;
                Ok(Retrieved { hits, dense })
            }
        }
    }

    /// The passages nearest to the question's embedding.
    async fn dense_ranking(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
    ) -> crate::Result<Ranking> {
        let vector = self.embed_query(query)?;
        self.nearest(&vector, filters, k).await
    }

    fn dense(&self) -> crate::Result<&Dense> {
        self.dense.ok_or_else(|| {
            crate::EngineError::Unavailable(
                "dense retrieval needs an embedding model and a vector store; none is configured"
                    .into(),
            )
        })
    }

    fn embed_query(&self, query: &str) -> crate::Result<Vec<f32>> {
        Ok(self.dense()?.embedder.embed_query(query)?)
    }

    /// The passages nearest to `vector`.
    async fn nearest(&self, vector: &[f32], filters: &Filters, k: usize) -> crate::Result<Ranking> {
        Ok(ranking_of(
            &self
                .dense()?
                .store
                .search(vector, filters, k, SearchOptions::default())
                .await?,
        ))
    }
}

/// The question's nearest passages, for hybrid retrieval: with their vectors when
/// pseudo-relevance feedback will read them.
pub async fn first_dense(
    store: &dyn VectorStore,
    vector: &[f32],
    filters: &Filters,
    params: &HybridParams,
) -> crate::Result<Vec<VectorHit>> {
    let options = SearchOptions {
        with_vectors: params.feedback > 0,
        ..SearchOptions::default()
    };
    Ok(store
        .search(vector, filters, params.dense_depth, options)
        .await?)
}

/// A ranking of vector hits: passage ids with their cosine similarity.
pub fn ranking_of(hits: &[VectorHit]) -> Ranking {
    hits.iter()
        .map(|h| (h.passage_id.clone(), h.score))
        .collect()
}

/// The hybrid ranking of `question` (embedded as `vector`): its `lexical` ranking fused with
/// its `first` dense hits, with the dense weight for its length. With feedback on, the
/// question's vector is then moved towards the vectors of the best fused passages (those
/// among `first`, whose vectors it holds) and searched again, and that ranking is fused
/// instead: the passages the two retrievers agree on say in the corpus's own words what
/// the question is about (Rocchio's pseudo-relevance feedback). On the development sets it
/// is worth +0.02–0.03 nDCG@10 (docs/evaluation.md).
pub async fn hybrid_ranking(
    store: &dyn VectorStore,
    question: &str,
    vector: &[f32],
    lexical: &Ranking,
    first: &[VectorHit],
    filters: &Filters,
    params: &HybridParams,
) -> crate::Result<Ranking> {
    let params = HybridParams {
        dense_weight: params.dense_weight_for(question),
        ..params.clone()
    };
    let fused = fuse(lexical, &ranking_of(first), &params);
    if params.feedback == 0 {
        return Ok(fused);
    }
    let vectors: HashMap<&str, &Vec<f32>> = first
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
    let mut moved = vector.to_vec();
    let share = params.feedback_weight / feedback.len() as f32;
    for v in feedback {
        for (m, x) in moved.iter_mut().zip(v) {
            *m += share * x;
        }
    }
    crate::context::normalise(&mut moved);
    let second = store
        .search(
            &moved,
            filters,
            params.dense_depth,
            SearchOptions::default(),
        )
        .await?;
    Ok(fuse(lexical, &ranking_of(&second), &params))
}

/// Fuses a lexical and a dense ranking (each best first) into one, best first.
pub fn fuse(lexical: &[(String, f32)], dense: &[(String, f32)], p: &HybridParams) -> Ranking {
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

/// A cross-encoder's scores for passages, read as their vectors are: heading, then text.
pub fn rerank_scores(
    reranker: &dyn Reranker,
    query: &str,
    passages: &[&Passage],
) -> crate::Result<Vec<f32>> {
    let texts: Vec<String> = passages.iter().map(|p| dense_text(p)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    Ok(reranker.score(query, &refs)?)
}

/// Re-scores `candidates` with a cross-encoder and keeps the best `k`.
pub fn rerank(
    reranker: &dyn Reranker,
    query: &str,
    candidates: Vec<SearchHit>,
    k: usize,
) -> crate::Result<Vec<SearchHit>> {
    let passages: Vec<&Passage> = candidates.iter().map(|h| &h.passage).collect();
    let scores = rerank_scores(reranker, query, &passages)?;
    let mut scored: Vec<(f32, SearchHit)> = scores.into_iter().zip(candidates).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(scored
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, (score, mut hit))| {
            hit.rank = i + 1;
            hit.score = score;
            hit
        })
        .collect())
}

/// Longest text a passage's vector is computed from, in chars (~250 tokens): the heading and
/// the start of the article carry its topic, and embedding cost grows with length (a 2-core
/// machine embeds ~1,500 tokens/s). The whole text stays searchable lexically.
pub const DENSE_MAX_CHARS: usize = 1_000;

/// What a passage's vector is computed from: where it sits (norm, title, chapter, article),
/// then its text, cut at [`DENSE_MAX_CHARS`].
pub fn dense_text(p: &Passage) -> String {
    let heading = if p.breadcrumb.is_empty() {
        p.norm_title.clone()
    } else {
        p.breadcrumb.join(" › ")
    };
    let heading = if !p.label.is_empty() && !heading.contains(&p.label) {
        format!("{heading} › {}", p.label)
    } else {
        heading
    };
    let text = format!("{heading}\n{}", p.text);
    match text.char_indices().nth(DENSE_MAX_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    }
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

    #[test]
    fn dense_text_leads_with_the_heading_and_is_capped() {
        let p = Passage {
            id: "p".into(),
            norm_id: "n".into(),
            ordinal: 0,
            norm_title: "Constitución".into(),
            breadcrumb: vec!["Constitución".into(), "Capítulo II".into()],
            provision: String::new(),
            label: "Artículo 13".into(),
            url: None,
            anchor: None,
            text: "x".repeat(5_000),
            span: None,
            page: None,
            jurisdiction: cabildo_core::Jurisdiction::country("CL"),
            kind: cabildo_core::NormKind::Constitucion,
            language: cabildo_core::Language::Es,
            access: cabildo_core::AccessLevel::Public,
            tenant: None,
            valid_from: None,
            valid_to: None,
        };
        let t = dense_text(&p);
        assert!(t.starts_with("Constitución › Capítulo II › Artículo 13\nxx"));
        assert_eq!(t.chars().count(), DENSE_MAX_CHARS);
    }
}
