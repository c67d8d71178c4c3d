//! How retrieval ranks: the methods, how two rankings are fused, and hybrid retrieval's
//! parameters (the `[retrieval]` settings).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A retrieval method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Parameters of hybrid retrieval (`[retrieval]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Words of those same passages, the ones that stand out most there and that the
    /// question lacks, added to a second lexical search (pseudo-relevance feedback on
    /// words); 0 turns it off.
    pub term_feedback: usize,
    /// Weight of the most salient of those words relative to a question's word (the others
    /// in proportion).
    pub term_feedback_weight: f32,
    /// Candidates taken from the lexical index.
    pub lexical_depth: usize,
    /// Candidates taken from the vector store.
    pub dense_depth: usize,
    /// Fused candidates the reranker re-scores.
    pub rerank_depth: usize,
}

impl Default for HybridParams {
    /// The best parameters of `cabildo eval --sweep` by mean nDCG@10 over lgpd-pt, bcn-es
    /// and juristcu-pt (docs/evaluation.md). The short-question weight is where the sets
    /// disagree (best alone: 0.8 on bcn-es, 0.5 on juristcu-pt); 0.7 is best on the mean.
    fn default() -> Self {
        HybridParams {
            fusion: Fusion::Score,
            rrf_k: 60.0,
            dense_weight: 0.45,
            short_dense_weight: 0.7,
            feedback: 3,
            feedback_weight: 1.0,
            term_feedback: 5,
            term_feedback_weight: 0.2,
            lexical_depth: 100,
            dense_depth: 100,
            rerank_depth: 30,
        }
    }
}

/// How long `question` is, from 0 (a short question, [`SHORT_QUESTION_WORDS`] words or fewer)
/// to 1 (a long one, [`LONG_QUESTION_WORDS`] or more), linear in between.
pub fn question_length(question: &str) -> f32 {
    let words = question.split_whitespace().count();
    let span = (LONG_QUESTION_WORDS - SHORT_QUESTION_WORDS) as f32;
    (words.saturating_sub(SHORT_QUESTION_WORDS) as f32 / span).min(1.0)
}

impl HybridParams {
    /// The dense ranking's weight for `question`, by its length in words.
    pub fn dense_weight_for(&self, question: &str) -> f32 {
        let t = question_length(question);
        self.short_dense_weight + (self.dense_weight - self.short_dense_weight) * t
    }
}
