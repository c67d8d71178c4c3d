//! Retrieval evaluation on BEIR-style sets (`corpus.jsonl`, `queries.jsonl`, `qrels.tsv`),
//! computing the metrics exactly as `../shared/eval/README.md` defines them:
//! Recall@5/10/100, MRR@10 and nDCG@10 with binary gains; for norm-level sets the ranking is
//! mapped to `doc_id`s keeping each one's first occurrence. Answers are scored in [`answers`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cabildo_core::{AccessLevel, Embedder, Filters, Jurisdiction, NormKind, Passage, Reranker};
use cabildo_index::{Analysis, LexicalIndex, QueryOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::answer::check::Analysed;
use crate::answer::{
    best_coverage, conversation, guess_question_language, judge, AskOptions, Speaker, Turn,
};
use crate::assemble::ScratchStore;
use crate::context::stored_vectors;
use crate::retrieve::{closest, Candidates, Fusion, HybridParams, Method, Pipeline};
use crate::{Dense, EngineError, Result};

pub mod answers;

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
    /// The source's own answer, where it wrote one (bcn-es).
    answer: Option<String>,
}

/// A loaded set.
pub struct EvalSet {
    /// Folder name (`lgpd-pt`).
    pub name: String,
    /// What reports call it, when not its name (a follow-up variant: `lgpd-pt follow-ups
    /// (own words)`). The name alone keys the passage-vector cache.
    pub label: Option<String>,
    passages: Vec<Passage>,
    queries: Vec<(String, String)>,
    qrels: HashMap<String, HashSet<String>>,
    /// The source's own answers, by question id, where it wrote them.
    references: HashMap<String, String>,
    /// Earlier turns of the questions asked in a conversation, by question id: such a
    /// question is searched as [`conversation::standalone`] makes it.
    histories: HashMap<String, Vec<Turn>>,
    /// Whether relevance is judged on `doc_id`s rather than passage ids.
    pub norm_level: bool,
}

/// A follow-up question of `eval/followups.jsonl`: a first question of a set (by id), a
/// follow-up that leans on it, the follow-up written out in full by hand, and its relevant
/// passages or norms (`gold`), or those of another question of the set (`gold_of`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// The set (`bcn-es`).
    pub set: String,
    /// The first question's id in the set.
    pub first: String,
    /// The follow-up, as a person would type it.
    pub followup: String,
    /// The follow-up written out in full.
    pub full: String,
    /// Relevant passage ids (or norm ids for a norm-level set).
    #[serde(default)]
    pub gold: Vec<String>,
    /// A question of the set whose relevance labels the follow-up shares.
    #[serde(default)]
    pub gold_of: Option<String>,
}

/// How a follow-up is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpVariant {
    /// On its own words.
    Own,
    /// With the conversation ([`conversation::standalone`]).
    Conversation,
    /// Written out in full by hand.
    Full,
}

impl FollowUpVariant {
    /// All three, in report order.
    pub const ALL: [FollowUpVariant; 3] = [
        FollowUpVariant::Own,
        FollowUpVariant::Conversation,
        FollowUpVariant::Full,
    ];

    fn describe(self) -> &'static str {
        match self {
            FollowUpVariant::Own => "own words",
            FollowUpVariant::Conversation => "with the conversation",
            FollowUpVariant::Full => "written out in full",
        }
    }
}

/// Reads a follow-up file (JSON lines; blank lines and `//` comments skipped).
pub fn load_followups(path: &Path) -> Result<Vec<FollowUp>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::EvalSet(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                EngineError::EvalSet(format!("{} line {}: {e}", path.display(), i + 1))
            })
        })
        .collect()
}

/// The entries of `map` whose key is one of `ids`.
fn only<T: Clone>(map: &HashMap<String, T>, ids: &HashSet<&str>) -> HashMap<String, T> {
    map.iter()
        .filter(|(id, _)| ids.contains(id.as_str()))
        .map(|(id, v)| (id.clone(), v.clone()))
        .collect()
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
                // A LexML URN names the dispositivo after its `!` (`…;13709!art5_cpt_inc1`):
                // the anchor our LexML ingestor keeps, which gives the passage its context.
                let anchor = c.id.split_once('!').map(|(_, a)| a.to_string());
                Passage {
                    norm_id: c.doc_id.unwrap_or_else(|| c.id.clone()),
                    id: c.id,
                    ordinal: i as u32,
                    norm_title: title.clone(),
                    breadcrumb: vec![title.clone()],
                    provision: String::new(),
                    label: title,
                    url: c.url,
                    anchor,
                    text: c.text,
                    span: None,
                    page: None,
                    jurisdiction: Jurisdiction::country(Jurisdiction::UNKNOWN),
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
            label: None,
            histories: HashMap::new(),
            passages,
            references: queries
                .iter()
                .filter_map(|q| Some((q.id.clone(), q.answer.clone()?)))
                .collect(),
            queries: queries
                .into_iter()
                .filter(|q| qrels.contains_key(&q.id))
                .map(|q| (q.id, q.text))
                .collect(),
            qrels,
            norm_level,
        })
    }

    /// The same set with only its first `n` questions (all of them when it has fewer).
    pub fn first(&self, n: usize) -> EvalSet {
        let queries: Vec<(String, String)> = self.queries.iter().take(n).cloned().collect();
        let ids: HashSet<&str> = queries.iter().map(|(id, _)| id.as_str()).collect();
        EvalSet {
            name: self.name.clone(),
            label: self.label.clone(),
            passages: self.passages.clone(),
            qrels: only(&self.qrels, &ids),
            references: only(&self.references, &ids),
            histories: only(&self.histories, &ids),
            queries,
            norm_level: self.norm_level,
        }
    }

    /// The same corpus (and name, so its cached passage vectors are reused) with other
    /// questions and no relevance labels: how `--answerability` asks out-of-scope questions.
    pub fn with_questions(&self, questions: Vec<(String, String)>) -> EvalSet {
        EvalSet {
            name: self.name.clone(),
            label: None,
            passages: self.passages.clone(),
            queries: questions,
            qrels: HashMap::new(),
            references: HashMap::new(),
            histories: HashMap::new(),
            norm_level: self.norm_level,
        }
    }

    /// The follow-ups of `all` that belong to this set, as a set of their own searched the
    /// `variant` way; `None` when none belongs here. A first question or `gold_of` the set
    /// does not hold, or a follow-up without relevance labels, is an error.
    pub fn follow_ups(
        &self,
        all: &[FollowUp],
        variant: FollowUpVariant,
    ) -> Result<Option<EvalSet>> {
        let mine: Vec<&FollowUp> = all.iter().filter(|f| f.set == self.name).collect();
        if mine.is_empty() {
            return Ok(None);
        }
        let text_of: HashMap<&str, &str> = self
            .queries
            .iter()
            .map(|(id, t)| (id.as_str(), t.as_str()))
            .collect();
        let mut queries = Vec::new();
        let mut qrels = HashMap::new();
        let mut histories = HashMap::new();
        for (i, f) in mine.into_iter().enumerate() {
            let id = format!("followup-{}", i + 1);
            let first = text_of.get(f.first.as_str()).ok_or_else(|| {
                EngineError::EvalSet(format!("{}: no question {:?}", self.name, f.first))
            })?;
            let mut gold: HashSet<String> = f.gold.iter().cloned().collect();
            if let Some(other) = &f.gold_of {
                gold.extend(self.qrels.get(other).cloned().ok_or_else(|| {
                    EngineError::EvalSet(format!("{}: no labels for {other:?}", self.name))
                })?);
            }
            if gold.is_empty() {
                return Err(EngineError::EvalSet(format!(
                    "{}: follow-up {:?} has no relevant items",
                    self.name, f.followup
                )));
            }
            let text = match variant {
                FollowUpVariant::Full => f.full.clone(),
                FollowUpVariant::Own => f.followup.clone(),
                FollowUpVariant::Conversation => {
                    histories.insert(id.clone(), vec![Turn::user(*first)]);
                    f.followup.clone()
                }
            };
            queries.push((id.clone(), text));
            qrels.insert(id, gold);
        }
        Ok(Some(EvalSet {
            name: self.name.clone(),
            label: Some(format!("{} follow-ups ({})", self.name, variant.describe())),
            passages: self.passages.clone(),
            queries,
            qrels,
            references: HashMap::new(),
            histories,
            norm_level: self.norm_level,
        }))
    }

    /// What reports call this set.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// Number of passages.
    pub fn passages(&self) -> usize {
        self.passages.len()
    }

    /// The passages, in corpus order.
    pub fn passage_list(&self) -> &[Passage] {
        &self.passages
    }

    /// The judged questions: (id, text).
    pub fn questions(&self) -> &[(String, String)] {
        &self.queries
    }
}

/// What `cabildo eval` scores: a retrieval method, or the plain-BM25 baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMethod {
    /// One of the search methods.
    Retrieval(Method),
    /// The baseline: BM25 on the text alone with a plain tokenizer, lower-casing and a
    /// Snowball stemmer (no legal normalisation, stop words, folding, headings or phrases).
    Bm25Plain,
    /// The textbook hybrid baseline: `bm25-plain` and `dense` fused by plain reciprocal-rank
    /// fusion (k = 60, equal weights, no feedback).
    PlainRrf,
}

/// The fusion of [`EvalMethod::PlainRrf`]: reciprocal-rank fusion with k = 60 and equal
/// weights (a weighted RRF at 0.5 ranks exactly as the unweighted one), no feedback.
pub fn plain_rrf_params() -> HybridParams {
    HybridParams {
        fusion: Fusion::Rrf,
        rrf_k: 60.0,
        dense_weight: 0.5,
        short_dense_weight: 0.5,
        feedback: 0,
        term_feedback: 0,
        lexical_depth: DEPTH,
        dense_depth: DEPTH,
        ..HybridParams::default()
    }
}

impl EvalMethod {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            EvalMethod::Retrieval(m) => m.name(),
            EvalMethod::Bm25Plain => "bm25-plain",
            EvalMethod::PlainRrf => "rrf-plain",
        }
    }

    /// Whether the method needs passage vectors.
    pub fn needs_vectors(self) -> bool {
        match self {
            EvalMethod::Retrieval(m) => m.needs_vectors(),
            EvalMethod::Bm25Plain => false,
            EvalMethod::PlainRrf => true,
        }
    }
}

impl std::str::FromStr for EvalMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bm25-plain" => return Ok(EvalMethod::Bm25Plain),
            "rrf-plain" => return Ok(EvalMethod::PlainRrf),
            _ => {}
        }
        s.parse::<Method>()
            .map(EvalMethod::Retrieval)
            .map_err(|e| format!("{e} (or bm25-plain, rrf-plain)"))
    }
}

impl Serialize for EvalMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Scores of one method on one set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Set name.
    pub set: String,
    /// Method scored.
    pub method: EvalMethod,
    /// Fusion parameters (hybrid and rerank).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<HybridParams>,
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
    /// Mean milliseconds per query (question embedding included for vector methods).
    pub ms_per_query: f64,
    /// Median milliseconds per query.
    pub p50_ms: f64,
    /// 99th percentile milliseconds per query.
    pub p99_ms: f64,
    /// Seconds to build the indexes (embedding excluded).
    pub index_seconds: f64,
    /// Seconds spent embedding passages (0 when read from the cache).
    pub embed_seconds: f64,
}

/// Dense retrieval for an evaluation run.
pub struct EvalDense {
    /// Embeds the set's passages and its questions.
    pub embedder: Arc<dyn Embedder>,
    /// Which vector backend holds the set's vectors (`[vectors]`: the embedded engine, or a
    /// scratch collection on a Qdrant server).
    pub settings: cabildo_core::Settings,
    /// Where passage vectors are cached between runs (keyed by model and texts), so a
    /// re-run or a sweep does not re-embed; an interrupted embedding resumes from the cache.
    pub cache_dir: Option<PathBuf>,
}

/// How often the answerer would answer (not abstain) on a set's questions.
#[derive(Debug, Clone, Serialize)]
pub struct Answerability {
    /// The set (and, for out-of-scope questions, which ones).
    pub set: String,
    /// Questions asked.
    pub questions: usize,
    /// Questions judged answerable from what retrieval found.
    pub answered: usize,
}

/// Progress of the long steps of a run: (step, done, total).
pub type EvalProgress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// A set with its indexes built and every question's candidates retrieved once, to be ranked
/// under every method and fusion setting.
pub struct PreparedSet<'a> {
    set: &'a EvalSet,
    baseline: bool,
    /// Each question's id and candidates.
    runs: Vec<(String, Candidates)>,
    /// The pipeline over the set's indexes (declared before `vectors`: it holds their store,
    /// which must drop before its folder).
    pipeline: Pipeline,
    /// The run's own vector store, removed by [`PreparedSet::close`].
    vectors: Option<ScratchStore>,
    by_id: HashMap<&'a str, &'a Passage>,
    index_seconds: f64,
    embed_seconds: f64,
}

/// Candidates taken from each retriever per question: the deepest any method or sweep uses.
const DEPTH: usize = 100;

/// Passages embedded per call (and per cache checkpoint).
const EMBED_CHUNK: usize = 256;

impl<'a> PreparedSet<'a> {
    /// Builds the lexical index (legal analysis, or the plain baseline when `baseline`), and
    /// with `dense` the passage vectors in an embedded Qdrant store, then retrieves each
    /// question's candidates from both through the pipeline every search uses (`reranker`
    /// serves the rerank method).
    pub async fn new(
        set: &'a EvalSet,
        options: &QueryOptions,
        baseline: bool,
        dense: Option<&EvalDense>,
        reranker: Option<Arc<dyn Reranker>>,
        progress: EvalProgress<'_>,
    ) -> Result<PreparedSet<'a>> {
        let t0 = Instant::now();
        let (analysis, options) = if baseline {
            let plain = QueryOptions {
                head_boost: 0.0,
                phrase_boost: 0.0,
                legal_word_weight: 0.0,
                snippets: false,
                ..options.clone()
            };
            (Analysis::Plain, plain)
        } else {
            let legal = QueryOptions {
                snippets: false,
                ..options.clone()
            };
            (Analysis::Legal, legal)
        };
        let index = LexicalIndex::in_memory(analysis)?;
        let mut batch = index.batch()?;
        for p in &set.passages {
            batch.add(p)?;
        }
        batch.commit()?;
        let mut index_seconds = t0.elapsed().as_secs_f64();

        let mut embed_seconds = 0.0;
        let mut scratch_store = None;
        let mut pipeline_dense = None;
        if let Some(d) = dense {
            let t = Instant::now();
            let vectors = passage_vectors(set, d, true, progress)?;
            embed_seconds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let scratch =
                ScratchStore::open(&d.settings, d.embedder.dimension(), &set.name).await?;
            let refs: Vec<&Passage> = set.passages.iter().collect();
            for (ps, vs) in refs.chunks(1_000).zip(vectors.chunks(1_000)) {
                scratch.store.upsert(ps, vs).await?;
            }
            scratch.store.optimize().await?;
            index_seconds += t.elapsed().as_secs_f64();
            pipeline_dense = Some(Dense {
                embedder: d.embedder.clone(),
                store: scratch.store.clone(),
            });
            scratch_store = Some(scratch);
        }
        let pipeline = Pipeline::new(index, pipeline_dense, reranker, options);

        // Both indexes' candidates at the deepest any method or sweep uses.
        let filters = Filters::operator();
        let (method, deepest) = if pipeline.dense().is_some() {
            (
                Method::Hybrid,
                HybridParams {
                    lexical_depth: DEPTH,
                    dense_depth: DEPTH,
                    ..HybridParams::default()
                },
            )
        } else {
            (Method::Lexical, HybridParams::default())
        };
        let by_id: HashMap<&str, &Passage> =
            set.passages.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut runs = Vec::with_capacity(set.queries.len());
        for (i, (id, text)) in set.queries.iter().enumerate() {
            let query = match set.histories.get(id) {
                Some(history) => {
                    let history = answered(&pipeline, history, method, &by_id).await?;
                    let language = conversation::language(&history, text);
                    let query =
                        conversation::standalone(pipeline.index(), &history, text, language);
                    tracing::debug!(question = %id, %query, "follow-up searched as");
                    query
                }
                None => text.clone(),
            };
            let candidates = pipeline
                .candidates(&query, &filters, DEPTH, method, &deepest)
                .await?;
            runs.push((id.clone(), candidates));
            progress("questions", i + 1, set.queries.len());
        }
        Ok(PreparedSet {
            set,
            baseline,
            runs,
            pipeline,
            vectors: scratch_store,
            by_id,
            index_seconds,
            embed_seconds,
        })
    }

    /// Removes the run's vector store (a Qdrant scratch collection, or a temporary folder).
    pub async fn close(self) -> Result<()> {
        let PreparedSet {
            pipeline, vectors, ..
        } = self;
        // The pipeline holds the store: it goes first.
        drop(pipeline);
        match vectors {
            Some(v) => v.close().await,
            None => Ok(()),
        }
    }

    /// How many questions the answerer would answer rather than abstain on: hybrid
    /// retrieval with `params`, then [`crate::answer::judge`] over the top `2 × sources`
    /// passages, as `Engine::gather` does (without its definition shaping, which needs the
    /// registry's index). Needs the dense candidates.
    pub async fn answerability(
        &self,
        params: &HybridParams,
        options: &AskOptions,
    ) -> Result<Answerability> {
        let mut answered = 0;
        for (id, candidates) in &self.runs {
            let fused = self
                .pipeline
                .rank(candidates, Method::Hybrid, params)
                .await?;
            let dense = candidates.dense_ranking();
            let top: Vec<&Passage> = fused
                .iter()
                .take(options.sources.max(1) * 2)
                .filter_map(|(id, _)| self.by_id.get(id.as_str()).copied())
                .collect();
            let best_cosine = closest(top.iter().map(|p| p.id.as_str()), &dense);
            let question = candidates.query();
            let language = guess_question_language(question);
            let analysed: Vec<Analysed> = top.iter().map(|p| Analysed::new(p, language)).collect();
            let coverage = best_coverage(question, language, &analysed);
            let answers = judge(coverage, best_cosine, options);
            tracing::debug!(question = %id, ?best_cosine, ?coverage, answers, "answerability");
            if answers {
                answered += 1;
            }
        }
        Ok(Answerability {
            set: self.set.label().to_string(),
            questions: self.runs.len(),
            answered,
        })
    }

    /// Scores `method` (with `params` for hybrid and rerank), ranking each question's
    /// candidates as every search does.
    pub async fn score(&self, method: Method, params: &HybridParams) -> Result<EvalReport> {
        let mut sums = [0.0f64; 5];
        let mut times = Vec::with_capacity(self.runs.len());
        for (id, candidates) in &self.runs {
            let t = Instant::now();
            let ranking = self.pipeline.rank(candidates, method, params).await?;
            let ms = match method {
                Method::Lexical => candidates.lexical_ms,
                Method::Dense => candidates.dense_ms,
                Method::Hybrid | Method::Rerank => {
                    let own = t.elapsed().as_secs_f64() * 1000.0;
                    candidates.lexical_ms + candidates.dense_ms + own
                }
            };
            times.push(ms);
            let mut seen = HashSet::new();
            let ranked: Vec<String> = ranking
                .into_iter()
                .filter_map(|(id, _)| {
                    let p = self.by_id.get(id.as_str())?;
                    // For norm-level sets a passage stands for its norm (the set's doc_id).
                    let key = if self.set.norm_level {
                        p.norm_id.clone()
                    } else {
                        id
                    };
                    seen.insert(key.clone()).then_some(key)
                })
                .collect();
            let s = score(&ranked, &self.set.qrels[id]);
            for (acc, v) in sums.iter_mut().zip([s.0, s.1, s.2, s.3, s.4]) {
                *acc += v;
            }
        }
        let n = self.runs.len().max(1) as f64;
        let mean_ms = times.iter().sum::<f64>() / n;
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(EvalReport {
            set: self.set.label().to_string(),
            method: match (self.baseline, method) {
                (false, m) => EvalMethod::Retrieval(m),
                (true, Method::Hybrid) => EvalMethod::PlainRrf,
                (true, _) => EvalMethod::Bm25Plain,
            },
            params: matches!(method, Method::Hybrid | Method::Rerank).then(|| params.clone()),
            queries: self.runs.len(),
            passages: self.set.passages.len(),
            recall_5: sums[0] / n,
            recall_10: sums[1] / n,
            recall_100: sums[2] / n,
            mrr_10: sums[3] / n,
            ndcg_10: sums[4] / n,
            ms_per_query: mean_ms,
            p50_ms: percentile(&times, 0.5),
            p99_ms: percentile(&times, 0.99),
            index_seconds: self.index_seconds,
            embed_seconds: self.embed_seconds,
        })
    }
}

/// A conversation's first question with the answer a client would send back with it: the
/// best passage for it (what the extractive answer quotes first), as "label: text".
async fn answered(
    pipeline: &Pipeline,
    history: &[Turn],
    method: Method,
    by_id: &HashMap<&str, &Passage>,
) -> Result<Vec<Turn>> {
    let mut out = history.to_vec();
    let Some(last) = history.iter().rev().find(|t| t.role == Speaker::User) else {
        return Ok(out);
    };
    let params = HybridParams::default();
    let candidates = pipeline
        .candidates(&last.content, &Filters::operator(), 10, method, &params)
        .await?;
    let ranking = pipeline.rank(&candidates, method, &params).await?;
    if let Some(p) = ranking.first().and_then(|(id, _)| by_id.get(id.as_str())) {
        out.push(Turn::assistant(format!("{}: {}", p.label, p.text)));
    }
    Ok(out)
}

/// The fusion settings `--sweep` tries: score fusion and weighted RRF (k 10, 20, 60), each
/// over dense weights for short and for long questions, with and without feedback. Depth
/// stays at 100 (earlier sweeps over 20, 50 and 100 found 100 best everywhere).
pub fn sweep_grid() -> Vec<HybridParams> {
    let mut grid = Vec::new();
    let fusions = [
        (Fusion::Score, 60.0),
        (Fusion::Rrf, 10.0),
        (Fusion::Rrf, 20.0),
        (Fusion::Rrf, 60.0),
    ];
    for (fusion, rrf_k) in fusions {
        for short_dense_weight in [0.5, 0.6, 0.7, 0.8, 0.9] {
            for dense_weight in [0.3, 0.4, 0.45, 0.5] {
                for feedback in [0, 3] {
                    grid.push(HybridParams {
                        fusion,
                        rrf_k,
                        dense_weight,
                        short_dense_weight,
                        feedback,
                        ..HybridParams::default()
                    });
                }
            }
        }
    }
    grid
}

/// Where evaluation runs and benchmarks keep passage vectors between runs:
/// `$XDG_CACHE_HOME/cabildo/embeddings`, else `~/.cache/cabildo/embeddings`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cabildo").join("embeddings"))
}

/// The set's passage vectors: read from the cache when present, else embedded in chunks,
/// each appended to a partial cache file so an interrupted run resumes where it stopped.
/// With `embed_missing` false, only what the cache holds (the first passages' vectors, all
/// of them once a run has finished) is returned and nothing is embedded. The cache keeps
/// each passage's own embedding; what is returned is mixed with its context, as stored.
pub fn passage_vectors(
    set: &EvalSet,
    d: &EvalDense,
    embed_missing: bool,
    progress: EvalProgress<'_>,
) -> Result<Vec<Vec<f32>>> {
    let passages: Vec<&Passage> = set.passages.iter().collect();
    stored_vectors(&passages, |texts| {
        cached_embeddings(set, d, texts, embed_missing, progress)
    })
}

/// The passages' own embeddings of `texts`, through the cache: see [`passage_vectors`].
fn cached_embeddings(
    set: &EvalSet,
    d: &EvalDense,
    texts: &[String],
    embed_missing: bool,
    progress: EvalProgress<'_>,
) -> Result<Vec<Vec<f32>>> {
    let dim = d.embedder.dimension();
    let mut key = Sha256::new();
    key.update(d.embedder.name().as_bytes());
    for t in texts {
        key.update((t.len() as u64).to_le_bytes());
        key.update(t.as_bytes());
    }
    let key = hex::encode(&key.finalize()[..8]);
    let io = |path: &Path, e: std::io::Error| EngineError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let paths = d.cache_dir.as_ref().map(|dir| {
        let base = format!("{}-{}-{key}.f32", set.name, d.embedder.name());
        (dir.join(&base), dir.join(format!("{base}.partial")))
    });
    // One run at a time per cache file: two runs appending to the same partial file (an
    // eval beside the test suite) interleave their vectors. The lock goes with the file.
    let _one_run = match &paths {
        Some((done, _)) => {
            std::fs::create_dir_all(done.parent().unwrap_or(Path::new(".")))
                .map_err(|e| io(done, e))?;
            let lock = done.with_extension("lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(|e| io(&lock, e))?;
            file.lock().map_err(|e| io(&lock, e))?;
            Some(file)
        }
        None => None,
    };
    let mut flat: Vec<f32> = Vec::with_capacity(texts.len() * dim);
    if let Some((done, partial)) = &paths {
        for path in [done, partial] {
            if let Ok(bytes) = std::fs::read(path) {
                let whole = bytes.len() / (dim * 4) * dim * 4;
                flat = bytes[..whole]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                break;
            }
        }
        std::fs::create_dir_all(done.parent().unwrap_or(Path::new(".")))
            .map_err(|e| io(done, e))?;
    }
    flat.truncate(texts.len() * dim);
    if embed_missing {
        let mut start = flat.len() / dim;
        progress("embedding passages", start, texts.len());
        while start < texts.len() {
            let end = (start + EMBED_CHUNK).min(texts.len());
            let refs: Vec<&str> = texts[start..end].iter().map(String::as_str).collect();
            let vectors = d.embedder.embed_passages(&refs)?;
            let chunk: Vec<f32> = vectors.into_iter().flatten().collect();
            if let Some((_, partial)) = &paths {
                use std::io::Write;
                let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(partial)
                    .and_then(|mut f| f.write_all(&bytes))
                    .map_err(|e| io(partial, e))?;
            }
            flat.extend(chunk);
            start = end;
            progress("embedding passages", start, texts.len());
        }
        if let Some((done, partial)) = &paths {
            if partial.exists() {
                std::fs::rename(partial, done).map_err(|e| io(partial, e))?;
            }
        }
    }
    Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
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

/// The `p` quantile (0..=1) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
