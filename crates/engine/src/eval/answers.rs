//! Answer quality on an evaluation set (`cabildo eval --answers`): each question goes the way
//! `/v1/ask` takes it (gather, compose, check) and its answer is scored against the set's
//! relevance labels and, where the source wrote one, its reference answer.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use cabildo_core::{Filters, Language};
use cabildo_index::analysis::analyze;
use regex::Regex;
use serde::Serialize;

use super::{percentile, EvalProgress, PreparedSet};
use crate::answer::{compose, Answer, AskOptions, Question, Register, Sources, Writer};
use crate::{EngineError, Result};

/// One question's answer, scored.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredAnswer {
    /// The question's id in the set.
    pub id: String,
    /// The question.
    pub question: String,
    /// The answer as released.
    pub answer: String,
    /// Whether it abstained.
    pub abstained: bool,
    /// The passages it cites (for an abstention: none).
    pub cited: Vec<String>,
    /// Share of the cited passages that are relevant (of a gold norm, or gold passages).
    pub precision: Option<f64>,
    /// Share of the relevant norms (or passages) it cites.
    pub recall: Option<f64>,
    /// Token F1 against the source's own answer.
    pub reference_f1: Option<f64>,
    /// What the citation check did.
    pub kept: usize,
    /// Generated sentences dropped by the check.
    pub dropped: usize,
    /// Whether the answer was replaced by quotes.
    pub fallback: bool,
    /// Milliseconds from the question to the first released text.
    pub first_text_ms: f64,
    /// Milliseconds from the question to the whole answer.
    pub answer_ms: f64,
    /// Asked again with its relevant norms left out of the corpus: whether it would still
    /// answer rather than abstain, and the norms of the passages it would answer from.
    pub without_gold_answers: bool,
    /// Those norms (empty when it abstains).
    pub without_gold_norms: Vec<String>,
    /// What relevance was judged on, with the relevant norms and without: the closest
    /// passage's cosine similarity and the largest share of the question's terms one
    /// passage holds.
    pub signals: [(Option<f32>, f32); 2],
    /// The sources the answer was written from, in their order: passage id, retrieval score
    /// and whether the passage counts as relevant (as citation precision judges it).
    pub sources: Vec<(String, f32, bool)>,
}

/// Answer quality over a set, for one writer.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    /// The set.
    pub set: String,
    /// Who wrote the answers (`extractive`, a model's name).
    pub writer: String,
    /// Questions asked.
    pub questions: usize,
    /// Answers that did not abstain.
    pub answered: usize,
    /// Mean share of an answer's cited passages that are relevant (answers only).
    pub citation_precision: f64,
    /// Mean share of a question's relevant norms (or passages) its answer cites.
    pub citation_recall: f64,
    /// Generated sentences the check released (as written, or with a citation added).
    pub sentences_kept: usize,
    /// Generated sentences the check dropped.
    pub sentences_dropped: usize,
    /// Answers whose every generated sentence was dropped, replaced by quotes.
    pub fallbacks: usize,
    /// Mean token F1 against the source's own answers, over the questions that have one.
    pub reference_f1: Option<f64>,
    /// Milliseconds to the first released text: median and 99th percentile.
    pub first_text_p50_ms: f64,
    /// See `first_text_p50_ms`.
    pub first_text_p99_ms: f64,
    /// Milliseconds to the whole answer: median and 99th percentile.
    pub answer_p50_ms: f64,
    /// See `answer_p50_ms`.
    pub answer_p99_ms: f64,
    /// Questions that would still be answered, not abstained on, with their relevant norms
    /// left out: every such answer rests on a norm the labels do not name.
    pub without_gold_answered: usize,
}

impl AnswerReport {
    /// Share of the generated sentences the check released; `None` when nothing was
    /// generated (extractive answers are quotes).
    pub fn supported_share(&self) -> Option<f64> {
        let n = self.sentences_kept + self.sentences_dropped;
        (n > 0).then(|| self.sentences_kept as f64 / n as f64)
    }
}

impl PreparedSet<'_> {
    /// Asks every question of the set as `/v1/ask` does, with `writer`, and scores the
    /// answers; each is also gathered again with its relevant norms excluded (abstention by
    /// construction: whether to answer is decided before anything is written, so that
    /// needs no writer). Needs the dense candidates when the set was prepared with them.
    pub async fn answers(
        &self,
        writer: &Writer,
        options: &AskOptions,
        progress: EvalProgress<'_>,
    ) -> Result<(AnswerReport, Vec<ScoredAnswer>)> {
        let total = self.set.queries.len();
        let mut scored = Vec::with_capacity(total);
        for (i, asked) in self.set.queries.iter().enumerate() {
            let (id, text) = asked;
            let gold = self.set.qrels.get(id).cloned().unwrap_or_default();
            let sources = self.gather(text, Filters::operator(), options).await?;
            let signals = (sources.best_cosine, sources.coverage);
            let listed = self.listed(&sources, &gold);
            let answer = write(sources, writer, options).await?;
            let without = Filters {
                excluded_norms: self.gold_norms(&gold).into_iter().collect(),
                ..Filters::operator()
            };
            let ablated = self.gather(text, without, options).await?;
            let reference = self.set.references.get(id).map(String::as_str);
            let mut answer = self.score_answer(asked, &answer, signals, &gold, reference, &ablated);
            answer.sources = listed;
            scored.push(answer);
            progress("answering", i + 1, total);
        }
        Ok((self.report(writer, &scored), scored))
    }

    /// The sources `/v1/ask` would gather for `text` under `filters`.
    async fn gather(&self, text: &str, filters: Filters, options: &AskOptions) -> Result<Sources> {
        let question = Question {
            text: text.to_string(),
            filters,
            language: None,
            register: Register::default(),
            history: Vec::new(),
        };
        self.pipeline.gather(&question, options).await
    }

    /// `sources`' passages, scores and whether each counts as relevant.
    fn listed(&self, sources: &Sources, gold: &HashSet<String>) -> Vec<(String, f32, bool)> {
        sources
            .hits
            .iter()
            .map(|h| {
                let p = &h.passage;
                let key = self.judged_by(&p.id, &p.norm_id);
                (p.id.clone(), h.score, gold.contains(key))
            })
            .collect()
    }

    /// What a passage's relevance is judged by: its norm on a norm-level set, else itself.
    fn judged_by<'a>(&self, passage_id: &'a String, norm_id: &'a String) -> &'a String {
        if self.set.norm_level {
            norm_id
        } else {
            passage_id
        }
    }

    /// The norms the relevant items belong to (for a norm-level set, the items themselves).
    fn gold_norms(&self, gold: &HashSet<String>) -> HashSet<String> {
        if self.set.norm_level {
            return gold.clone();
        }
        gold.iter()
            .filter_map(|id| self.by_id.get(id.as_str()).map(|p| p.norm_id.clone()))
            .collect()
    }

    fn score_answer(
        &self,
        (id, question): &(String, String),
        answer: &Answer,
        signals: (Option<f32>, f32),
        gold: &HashSet<String>,
        reference: Option<&str>,
        ablated: &Sources,
    ) -> ScoredAnswer {
        let mut without_gold_norms: Vec<String> = Vec::new();
        if ablated.relevant {
            for h in &ablated.hits {
                if !without_gold_norms.contains(&h.passage.norm_id) {
                    without_gold_norms.push(h.passage.norm_id.clone());
                }
            }
        }
        // An abstention's citations are the closest passages, not claims.
        let citations = if answer.abstained {
            &[][..]
        } else {
            &answer.citations[..]
        };
        let cited: Vec<String> = citations.iter().map(|c| c.passage_id.clone()).collect();
        let keys: Vec<&String> = citations
            .iter()
            .map(|c| self.judged_by(&c.passage_id, &c.norm_id))
            .collect();
        let relevant: Vec<&String> = keys.iter().copied().filter(|k| gold.contains(*k)).collect();
        let distinct: HashSet<&String> = relevant.iter().copied().collect();
        let precision = (!keys.is_empty()).then(|| relevant.len() as f64 / keys.len() as f64);
        let recall = (!answer.abstained && !gold.is_empty())
            .then(|| distinct.len() as f64 / gold.len() as f64);
        let reference_f1 = reference.map(|r| token_f1(&answer.answer, r, answer.language));
        let t = &answer.timings;
        ScoredAnswer {
            id: id.clone(),
            question: question.clone(),
            answer: answer.answer.clone(),
            abstained: answer.abstained,
            cited,
            precision,
            recall,
            reference_f1,
            kept: answer.checks.kept,
            dropped: answer.checks.dropped,
            fallback: answer.checks.fallback,
            first_text_ms: t.retrieval_ms + t.first_text_ms.unwrap_or(t.generation_ms),
            answer_ms: t.retrieval_ms + t.generation_ms,
            without_gold_answers: ablated.relevant,
            without_gold_norms,
            signals: [signals, (ablated.best_cosine, ablated.coverage)],
            sources: Vec::new(),
        }
    }

    fn report(&self, writer: &Writer, scored: &[ScoredAnswer]) -> AnswerReport {
        let mean =
            |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let answered: Vec<&ScoredAnswer> = scored.iter().filter(|s| !s.abstained).collect();
        let sorted = |f: fn(&ScoredAnswer) -> f64| {
            let mut v: Vec<f64> = scored.iter().map(f).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v
        };
        let first = sorted(|s| s.first_text_ms);
        let whole = sorted(|s| s.answer_ms);
        AnswerReport {
            set: self.set.label().to_string(),
            writer: writer.name(),
            questions: scored.len(),
            answered: answered.len(),
            citation_precision: mean(answered.iter().filter_map(|s| s.precision).collect())
                .unwrap_or(0.0),
            // An abstention cites nothing of what answers: it counts as zero recall.
            citation_recall: mean(scored.iter().map(|s| s.recall.unwrap_or(0.0)).collect())
                .unwrap_or(0.0),
            sentences_kept: answered.iter().map(|s| s.kept).sum(),
            sentences_dropped: scored.iter().map(|s| s.dropped).sum(),
            fallbacks: answered.iter().filter(|s| s.fallback).count(),
            reference_f1: mean(scored.iter().filter_map(|s| s.reference_f1).collect()),
            first_text_p50_ms: percentile(&first, 0.5),
            first_text_p99_ms: percentile(&first, 0.99),
            answer_p50_ms: percentile(&whole, 0.5),
            answer_p99_ms: percentile(&whole, 0.99),
            without_gold_answered: scored.iter().filter(|s| s.without_gold_answers).count(),
        }
    }
}

/// Writes and checks the answer to `sources` on a thread of its own, as the server does.
async fn write(sources: Sources, writer: &Writer, options: &AskOptions) -> Result<Answer> {
    let writer = writer.clone();
    let options = options.clone();
    tokio::task::spawn_blocking(move || {
        compose(&sources, &writer, &options, &mut |_| true, &|| true)
    })
    .await
    .map_err(|e| EngineError::Unavailable(format!("the answer's thread failed: {e}")))?
    .map_err(EngineError::Model)
}

/// Citation markers (`[2]`, `[1, 3]`): not words of the answer.
static MARKERS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\d+(?:\s*,\s*\d+)*\]").expect("marker pattern"));

/// Token F1 of `answer` against `reference`, both analysed as questions are (stems, no stop
/// words, accents folded), counting repeated tokens as often as they occur in both.
pub fn token_f1(answer: &str, reference: &str, language: Language) -> f64 {
    let counts = |text: &str| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for t in analyze(language, &MARKERS.replace_all(text, " ")) {
            *m.entry(t).or_default() += 1;
        }
        m
    };
    let (a, r) = (counts(answer), counts(reference));
    let overlap: usize = a
        .iter()
        .map(|(t, n)| (*n).min(r.get(t).copied().unwrap_or(0)))
        .sum();
    let (na, nr): (usize, usize) = (a.values().sum(), r.values().sum());
    if overlap == 0 {
        return 0.0;
    }
    let p = overlap as f64 / na as f64;
    let r = overlap as f64 / nr as f64;
    2.0 * p * r / (p + r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_f1_counts_shared_stems_and_ignores_markers() {
        let same = token_f1(
            "Son ciudadanos los mayores de dieciocho años [1].",
            "son ciudadanos los mayores de dieciocho años",
            Language::Es,
        );
        assert!((same - 1.0).abs() < 1e-9, "{same}");
        let none = token_f1("La capital es Lima [2].", "dieciocho años", Language::Es);
        assert_eq!(none, 0.0);
        // Half of the answer's words are in the reference, all of the reference's in it.
        let half = token_f1(
            "ciudadanos votan capital lima",
            "ciudadanos votan",
            Language::Es,
        );
        assert!((half - 2.0 / 3.0).abs() < 1e-9, "{half}");
    }
}
