//! Answering: retrieve sources under the asker's filters, decide whether they are relevant
//! at all, write an answer with numbered citations (a generator, or extractively), and check
//! every sentence before it is released.
//!
//! Principle: every sentence of an answer is backed by a cited passage, or it is not said.
//! Sentences are checked as the generator completes them ([`check`]); a sentence that cites
//! nothing, cites a source that does not exist, or shares too few content words with what
//! it cites is dropped. When nothing survives, the answer is replaced by an extractive one:
//! the best sentence of each top passage, quoted and cited. When retrieval finds nothing
//! relevant, the answer abstains in the asker's language and lists the closest passages.

pub mod check;
pub mod conversation;
pub mod prompt;
pub mod scope;
mod shape;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use cabildo_core::{
    Filters, FinishReason, GenerationRequest, Generator, Language, ModelError, SearchHit,
};
use cabildo_index::analysis::analyze;
use chrono::NaiveDate;
use serde::Serialize;

use crate::retrieve::{HybridParams, Method, Pipeline};
use crate::{Engine, Result};
use check::{markers_only, terms_of, with_citation, Analysed, Checker, SentenceSplitter, Verdict};
pub use conversation::{Speaker, Turn};
pub use prompt::Register;
pub use scope::Missing;

/// A question and who asks it.
#[derive(Debug, Clone)]
pub struct Question {
    /// The question, as asked.
    pub text: String,
    /// Where to look: the asker's clearance and tenant, jurisdictions, kinds, date.
    pub filters: Filters,
    /// The answer's language; guessed from the question when absent.
    pub language: Option<Language>,
    /// How the answer addresses the asker.
    pub register: Register,
    /// The conversation's earlier turns, oldest first (empty for a first question).
    pub history: Vec<Turn>,
}

/// How answers are made.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Passages given to the writer as numbered sources.
    pub sources: usize,
    /// Characters of each source passage shown to the model.
    pub source_chars: usize,
    /// At most this many generated tokens.
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy, reproducible).
    pub temperature: f64,
    /// Nucleus sampling: only the most likely tokens whose probabilities add up to this.
    pub top_p: Option<f64>,
    /// Seed of the sampler (the same seed and settings give the same answer).
    pub seed: u64,
    /// Generation stops at the first of these strings.
    pub stop: Vec<String>,
    /// Retrieval method; hybrid when the engine has vectors, else lexical.
    pub method: Option<Method>,
    /// Fusion parameters.
    pub params: HybridParams,
    /// Relevance: the closest passage's cosine similarity to the question at or above this
    /// counts as relevant (e5-small vectors with their context, `crate::context`; calibrated
    /// with `cabildo eval --answerability`: out-of-scope questions reach 0.859 at most).
    pub min_cosine: f32,
    /// Relevance: a passage holding at least this share of the question's content terms
    /// (and at least three of them), or all of them, counts as relevant. Calibrated with
    /// `cabildo eval --answerability` (docs/evaluation.md).
    pub min_coverage: f32,
}

impl Default for AskOptions {
    /// The defaults of `[answer]` and `[retrieval]` (`config/cabildo.toml`).
    fn default() -> Self {
        AskOptions::from_settings(&cabildo_core::Settings::default())
    }
}

/// The passages found for a question, and whether they answer it at all.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The question, as asked.
    pub question: String,
    /// What was searched: the question, with the subject of earlier turns when it is a
    /// follow-up ([`conversation::standalone`]).
    pub query: String,
    /// The conversation's earlier turns, as the prompt sees them.
    pub history: Vec<Turn>,
    /// The answer's language.
    pub language: Language,
    /// The answer's register.
    pub register: Register,
    /// The passages, best first; source `n` is `hits[n - 1]`.
    pub hits: Vec<SearchHit>,
    /// Each of `hits` analysed, once for the whole answer.
    pub analysed: Vec<Analysed>,
    /// When nothing is relevant: the issuing body of the hits' norms, the first the registry
    /// knows (the abstention names it).
    pub body: Option<String>,
    /// A country or norm the question names that the index does not hold: the answer
    /// abstains and says so.
    pub missing: Option<Missing>,
    /// Whether any passage is relevant enough to answer from.
    pub relevant: bool,
    /// The question's cosine similarity to the closest passage (dense retrieval only).
    pub best_cosine: Option<f32>,
    /// Largest share of the question's content terms found in one passage.
    pub coverage: f32,
    /// Seconds spent retrieving.
    pub retrieval_seconds: f64,
    /// The day the question asked about (`None`: today).
    pub in_force_on: Option<NaiveDate>,
}

impl Sources {
    /// Keeps `kept`, a subset of the hits (what a second access check let through), with
    /// their analyses; with none left, nothing is relevant.
    pub fn keep_hits(&mut self, kept: Vec<SearchHit>) {
        let mut analysed: std::collections::HashMap<String, Analysed> = self
            .hits
            .iter()
            .map(|h| h.passage.id.clone())
            .zip(std::mem::take(&mut self.analysed))
            .collect();
        self.analysed = kept
            .iter()
            .map(|h| {
                analysed
                    .remove(&h.passage.id)
                    .unwrap_or_else(|| Analysed::new(&h.passage, self.language))
            })
            .collect();
        self.hits = kept;
        self.relevant &= !self.hits.is_empty();
    }
}

/// Who writes the answer.
#[derive(Clone)]
pub enum Writer {
    /// A language model (in-process candle, or an OpenAI-compatible server).
    Model(Arc<dyn Generator>),
    /// No model: the best sentences of the top passages, quoted and cited. Never invents.
    Extractive,
}

impl Writer {
    /// The name answers report as their model.
    pub fn name(&self) -> String {
        match self {
            Writer::Model(g) => g.name().to_string(),
            Writer::Extractive => "extractive".into(),
        }
    }
}

/// A source an answer cites.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Citation {
    /// Its number in the answer (`[n]`).
    pub n: usize,
    /// The passage.
    pub passage_id: String,
    /// Its norm.
    pub norm_id: String,
    /// How a lawyer cites it.
    pub label: String,
    /// The official URL.
    pub url: Option<String>,
    /// The words of the passage the answer rests on, verbatim.
    pub quote: String,
    /// Page in the source PDF.
    pub page: Option<u32>,
    /// The day this text of the provision took effect (the version that introduced it).
    pub in_force_from: Option<NaiveDate>,
    /// The day a later version replaced it, or the norm was repealed; absent while in force.
    pub in_force_until: Option<NaiveDate>,
}

/// What the citation check did.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckReport {
    /// Generated sentences kept.
    pub kept: usize,
    /// Generated sentences dropped (uncited, unknown source, unsupported).
    pub dropped: usize,
    /// Uncited sentences kept because one source holds most of their words: the check
    /// added that source's number.
    pub repaired: usize,
    /// Whether the answer was replaced by an extractive one.
    pub fallback: bool,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timings {
    /// Retrieval.
    pub retrieval_ms: f64,
    /// From the start of writing to the first released text.
    pub first_text_ms: Option<f64>,
    /// Writing (prompt processing and generation) and checking.
    pub generation_ms: f64,
    /// The model reading the prompt (prefill), until its first token.
    pub prompt_ms: f64,
    /// The model generating, after its first token.
    pub decode_ms: f64,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// A checked answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Answer {
    /// The answer's id, for feedback (`POST /v1/feedback`); set by whoever delivers it.
    pub id: String,
    /// The answer, each sentence ending with its citations.
    pub answer: String,
    /// The cited sources (for an abstention: the closest passages).
    pub citations: Vec<Citation>,
    /// Whether the answer says the sources do not answer the question.
    pub abstained: bool,
    /// Who wrote it (`extractive` for quoted answers).
    pub model: String,
    /// The answer's language.
    pub language: Language,
    /// What the citation check did.
    pub checks: CheckReport,
    /// Why generation ended (absent when no model ran).
    pub finish: Option<FinishReason>,
    /// Where the time went.
    pub timings: Timings,
    /// The day whose law the answer describes (the one asked for, else today).
    pub in_force_on: NaiveDate,
}

impl Engine {
    /// Retrieves the sources for a question and judges their relevance; when nothing is
    /// relevant, the registry names the issuing body the abstention points to.
    pub async fn gather(&self, question: &Question, options: &AskOptions) -> Result<Sources> {
        let mut sources = self.pipeline().gather(question, options).await?;
        if !sources.relevant {
            for h in &sources.hits {
                sources.body = self
                    .registry()
                    .norm(&h.passage.norm_id)
                    .await?
                    .and_then(|(n, _)| n.issuing_body);
                if sources.body.is_some() {
                    break;
                }
            }
        }
        Ok(sources)
    }
}

impl Pipeline {
    /// Retrieves the sources for a question and judges their relevance, as
    /// [`Engine::gather`] does without the registry (`body` stays unset).
    pub async fn gather(&self, question: &Question, options: &AskOptions) -> Result<Sources> {
        let started = Instant::now();
        let language = question
            .language
            .unwrap_or_else(|| conversation::language(&question.history, &question.text));
        let method = options.method.unwrap_or_else(|| self.default_method());
        let query =
            conversation::standalone(self.index(), &question.history, &question.text, language);
        // Within the countries and norms the question names; with one the index lacks, the
        // closest passages anywhere, for an abstention that says what is missing.
        let (filters, missing) =
            match scope::narrow(self.index(), &query, language, &question.filters)? {
                Ok(narrowed) => (narrowed, None),
                Err(missing) => (question.filters.clone(), Some(missing)),
            };
        // Twice the sources: the same words often come at several levels of a norm's tree
        // (article, caput, chapter), and repeats are dropped below. No snippets: an answer
        // shows quotes, not search snippets.
        let retrieved = self
            .retrieve(
                &query,
                &filters,
                options.sources.max(1) * 2,
                method,
                &options.params,
                false,
            )
            .await?;
        let best_cosine = retrieved.best_cosine();
        let mut hits = retrieved.hits;
        let mut defines = false;
        if let Some(term) = shape::definition_term(&question.text) {
            let mut definitions = shape::defining_passages(self.index(), &term, &filters)?;
            definitions.truncate(2);
            defines = !definitions.is_empty();
            definitions.append(&mut hits);
            hits = definitions;
        }
        let hits = distinct(hits, options.sources.max(1));
        let analysed: Vec<Analysed> = hits
            .iter()
            .map(|h| Analysed::new(&h.passage, language))
            .collect();
        let coverage = best_coverage(&query, language, &analysed);
        let relevant = missing.is_none() && (defines || judge(coverage, best_cosine, options));
        tracing::debug!(
            ?missing,
            ?best_cosine,
            coverage = coverage.0,
            terms = coverage.1,
            defines,
            relevant,
            "relevance"
        );
        Ok(Sources {
            question: question.text.clone(),
            query,
            history: conversation::for_prompt(&question.history),
            language,
            register: question.register,
            hits,
            analysed,
            body: None,
            missing,
            relevant,
            best_cosine,
            coverage: coverage.0,
            retrieval_seconds: started.elapsed().as_secs_f64(),
            in_force_on: question.filters.in_force_on,
        })
    }
}

/// Writes and checks the answer to `sources`. Blocking (it runs the generator): call it from
/// a thread of its own. Checked text goes to `on_text` as each sentence passes; returning
/// `false` from it cancels generation, and so does `wanted` returning `false` (asked at
/// every generated token: a client that left is noticed before the next sentence).
pub fn compose(
    sources: &Sources,
    writer: &Writer,
    options: &AskOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
    wanted: &dyn Fn() -> bool,
) -> std::result::Result<Answer, ModelError> {
    let started = Instant::now();
    let mut first_text: Option<f64> = None;
    // An answer about another day than today says which day it describes, first.
    let preface = match sources.in_force_on {
        Some(day) if sources.relevant => prompt::as_of(sources.language, day),
        _ => String::new(),
    };
    let mut emit = |text: &str, first_text: &mut Option<f64>| {
        if first_text.is_none() && !preface.is_empty() && !on_text(&preface) {
            return false;
        }
        first_text.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
        on_text(text)
    };
    let mut answer = Answer {
        id: String::new(),
        answer: String::new(),
        citations: Vec::new(),
        abstained: false,
        model: writer.name(),
        language: sources.language,
        checks: CheckReport::default(),
        finish: None,
        timings: Timings {
            retrieval_ms: sources.retrieval_seconds * 1000.0,
            ..Timings::default()
        },
        in_force_on: sources.in_force_on.unwrap_or_else(cabildo_core::today),
    };
    let question = &sources.question;
    if !sources.relevant {
        let closest: Vec<&SearchHit> = sources.hits.iter().take(3).collect();
        let body = sources.body.as_deref();
        answer.answer = prompt::abstention(
            sources.language,
            sources.register,
            &closest,
            body,
            sources.missing.as_ref(),
        );
        answer.abstained = true;
        answer.model = "extractive".into();
        answer.citations = cite(
            sources,
            &(1..=closest.len()).collect::<Vec<_>>(),
            &sources.query,
        );
        emit(&answer.answer, &mut first_text);
    } else {
        let mut cited: Vec<usize> = Vec::new();
        if let Writer::Model(generator) = writer {
            let checker = Checker::new(&sources.analysed, sources.language);
            let mut splitter = SentenceSplitter::default();
            let mut cancelled = false;
            let mut release = |sentence: String, answer: &mut Answer, cited: &mut Vec<usize>| {
                match check_sentence(&checker, sentence, answer, cited) {
                    Some(text) => emit(&text, &mut first_text),
                    None => true,
                }
            };
            let request = GenerationRequest {
                messages: prompt::messages(
                    sources.language,
                    sources.register,
                    &sources.history,
                    question,
                    &sources.hits,
                    options.source_chars,
                ),
                max_tokens: options.max_tokens,
                temperature: options.temperature,
                top_p: options.top_p,
                seed: options.seed,
                stop: options.stop.clone(),
                min_tokens: 0,
            };
            let echo = prompt::Echo::of(&request.messages[0].content);
            let mut echoed = false;
            let generated = generator.generate(&request, &mut |piece| {
                for sentence in splitter.push(piece) {
                    // The model went on with its instructions: nothing more to read.
                    if echo.repeats(&sentence) {
                        tracing::debug!(sentence = sentence.trim(), "instructions repeated; stop");
                        answer.checks.dropped += 1;
                        echoed = true;
                        break;
                    }
                    if !release(sentence, &mut answer, &mut cited) {
                        cancelled = true;
                    }
                }
                !cancelled && !echoed && wanted()
            });
            match generated {
                Ok(g) => {
                    answer.finish = Some(if echoed {
                        FinishReason::StopSequence
                    } else {
                        g.finish
                    });
                    answer.timings.prompt_tokens = g.prompt_tokens;
                    answer.timings.prompt_ms = g.prompt_seconds * 1000.0;
                    answer.timings.decode_ms = g.decode_seconds * 1000.0;
                    answer.timings.completion_tokens = g.completion_tokens;
                    // After a repeat, what is left is more of it.
                    if let Some(rest) = splitter.finish().filter(|_| !echoed) {
                        release(rest, &mut answer, &mut cited);
                    }
                }
                // Over the context budget or a model failure: the quoted answer still serves.
                Err(e) => tracing::warn!(error = %e, "generation failed; answering extractively"),
            }
            if answer.finish == Some(FinishReason::Cancelled) {
                answer.timings.generation_ms = started.elapsed().as_secs_f64() * 1000.0;
                return Ok(answer);
            }
        }
        if answer.checks.kept == 0 {
            answer.checks.fallback = matches!(writer, Writer::Model(_));
            let (text, numbers) = extractive(sources);
            answer.answer = text;
            cited = numbers;
            emit(&answer.answer, &mut first_text);
        }
        cited.sort_unstable();
        answer.citations = cite(sources, &cited, &answer.answer);
        if let Some(day) = sources.in_force_on {
            answer
                .answer
                .insert_str(0, &prompt::as_of(sources.language, day));
        }
    }
    answer.timings.first_text_ms = first_text;
    answer.timings.generation_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(answer)
}

/// Checks a generated sentence; a supported one (or an uncited one the check can attribute)
/// is appended to the answer and returned for release, anything else is counted as dropped.
fn check_sentence(
    checker: &Checker,
    sentence: String,
    answer: &mut Answer,
    cited: &mut Vec<usize>,
) -> Option<String> {
    // Markers alone ("[1] [2]") are no sentence: nothing to release, nor to count.
    if markers_only(&sentence) {
        return None;
    }
    let verdict = checker.check(&sentence);
    let restates = match verdict {
        Verdict::Uncited => checker.attribute(&sentence),
        _ => None,
    };
    let (sentence, numbers) = match (verdict, restates) {
        (Verdict::Supported { cited }, _) => (sentence, cited),
        (Verdict::Uncited, Some(n)) => {
            answer.checks.repaired += 1;
            (with_citation(&sentence, n), vec![n])
        }
        (verdict, _) => {
            tracing::debug!(?verdict, sentence = sentence.trim(), "sentence dropped");
            answer.checks.dropped += 1;
            return None;
        }
    };
    let text = if answer.answer.is_empty() {
        sentence.trim_start().to_string()
    } else {
        sentence
    };
    answer.checks.kept += 1;
    answer.answer.push_str(&text);
    for n in numbers {
        if !cited.contains(&n) {
            cited.push(n);
        }
    }
    Some(text)
}

/// A further quote from a norm other than the first quote's needs at least this share of
/// the first's retrieval score. Measured with `cabildo eval --answers` on the three sets
/// (docs/evaluation.md): a passage of another norm that ranks well below the first is
/// mostly not what answers.
const OTHER_NORM_SCORE: f32 = 0.8;

/// The extractive answer: for each of the top three relevant passages, its label and its
/// sentence closest to the question, quoted, with its number. After the first, a quote is
/// given only when it says something about what the question asks (one of its terms, a
/// country it names not counted): "La capital de la República del Perú es la ciudad de
/// Lima" shares only the country's name with "¿Quiénes son ciudadanos en el Perú?", and is
/// left out. (A rule of half the first quote's weight also dropped the answer itself when a
/// passage on another age ranked first.) And a quote from another norm than the first
/// only when it scored nearly as well ([`OTHER_NORM_SCORE`]).
fn extractive(sources: &Sources) -> (String, Vec<usize>) {
    let mut lines = Vec::new();
    let mut numbers = Vec::new();
    let wanted = terms_of(&sources.query, sources.language);
    // The question as asked: a follow-up's searched form carries the subject of the turn
    // before ("votar" in "¿Y quiénes pierden ese derecho?"), which the quote of that turn's
    // answer holds best. A country it names says where to look, not what it asks about.
    let mut asked = terms_of(&sources.question, sources.language);
    for country in cabildo_text::countries_named(&sources.question) {
        for term in terms_of(&country.as_written, sources.language) {
            asked.remove(&term);
        }
    }
    let says = |quote: &str| !terms_of(quote, sources.language).is_disjoint(&asked);
    // Whether the first quote says something about the question, its norm and its score.
    let mut first: Option<(bool, &str, f32)> = None;
    for (i, (h, analysed)) in sources
        .hits
        .iter()
        .zip(&sources.analysed)
        .enumerate()
        .take(3)
    {
        let quote = analysed.quote(&wanted);
        if quote.is_empty() {
            continue;
        }
        let relevant = says(&quote);
        match first {
            None => first = Some((relevant, &h.passage.norm_id, h.score)),
            Some((true, _, _)) if !relevant => continue,
            Some((_, norm, score))
                if h.passage.norm_id != norm && h.score < OTHER_NORM_SCORE * score =>
            {
                continue
            }
            Some(_) => {}
        }
        lines.push(format!("{}: «{}» [{}]", h.passage.label, quote, i + 1));
        numbers.push(i + 1);
    }
    (lines.join("\n"), numbers)
}

/// Citations for source numbers `numbers`, each quoting the passage's sentence closest to
/// `context` (the answer text, or the question).
fn cite(sources: &Sources, numbers: &[usize], context: &str) -> Vec<Citation> {
    let wanted = terms_of(context, sources.language);
    numbers
        .iter()
        .filter_map(|&n| {
            let h = sources.hits.get(n.checked_sub(1)?)?;
            let analysed = sources.analysed.get(n - 1)?;
            let p = &h.passage;
            Some(Citation {
                n,
                passage_id: p.id.clone(),
                norm_id: p.norm_id.clone(),
                label: p.label.clone(),
                url: p.url.clone(),
                quote: analysed.quote(&wanted),
                page: p.page,
                in_force_from: p.valid_from,
                in_force_until: p.valid_to,
            })
        })
        .collect()
}

/// The first `n` hits whose text neither repeats nor contains an earlier one's, re-ranked.
fn distinct(hits: Vec<SearchHit>, n: usize) -> Vec<SearchHit> {
    let mut out: Vec<SearchHit> = Vec::with_capacity(n);
    for h in hits {
        let text = h.passage.text.trim();
        let repeats = out.iter().any(|o| {
            let earlier = o.passage.text.trim();
            o.passage.id == h.passage.id
                || !text.is_empty() && (earlier.contains(text) || text.contains(earlier))
        });
        if !repeats {
            out.push(h);
        }
        if out.len() == n {
            break;
        }
    }
    for (i, h) in out.iter_mut().enumerate() {
        h.rank = i + 1;
    }
    out
}

/// Question words of the three languages.
pub(crate) const INTERROGATIVES: &str =
    "qué quién quiénes cuál cuáles cómo cuándo dónde cuánto cuánta \
    cuántos cuántas quem quais qual como quando onde quanto quanta quantos quantas \
    what who whom which how when where";

/// Whether retrieval found something to answer from, given the largest share of the
/// question's content terms one passage holds (and how many: see [`best_coverage`]) and the
/// closest passage's cosine similarity to the question.
pub fn judge(coverage: (f32, usize), best_cosine: Option<f32>, options: &AskOptions) -> bool {
    let (share, terms) = coverage;
    terms > 0 && (share >= options.min_coverage && terms >= 3 || share >= 1.0)
        || best_cosine.is_some_and(|c| c >= options.min_cosine)
}

/// The largest share of the question's content terms that one passage holds, and how many.
pub fn best_coverage(question: &str, language: Language, passages: &[Analysed]) -> (f32, usize) {
    // Interrogatives are not what the question is about, and the stop-word lists keep some.
    let asking: HashSet<String> = analyze(language, INTERROGATIVES).into_iter().collect();
    let wanted: HashSet<String> = analyze(language, question)
        .into_iter()
        .filter(|t| !asking.contains(t))
        .collect();
    if wanted.is_empty() {
        return (0.0, 0);
    }
    passages
        .iter()
        .map(|p| {
            let n = wanted.intersection(&p.terms).count();
            (n as f32 / wanted.len() as f32, n)
        })
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// The language of a question: an opening `¿` or `¡` is Spanish; otherwise function words.
pub fn guess_question_language(text: &str) -> Language {
    if text.contains('¿') || text.contains('¡') {
        return Language::Es;
    }
    cabildo_text::guess_language(text)
}
