//! The lexical index: tantivy with Spanish and Portuguese legal analysers (see [`analysis`]).
//!
//! Each passage is indexed in the fields of its language: its text, and a heading field with
//! the norm title, breadcrumb and provision label. Filters (jurisdiction, kind, access level,
//! tenant, in force on a date) are clauses of the same query, never a post-filter.
//!
//! Only this crate knows tantivy.
#![deny(missing_docs)]

pub mod analysis;
mod query;
mod schema;

use std::path::Path;

use cabildo_core::{Filters, Language, Passage, SearchHit};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::schema::Value;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use analysis::Analysis;
pub use query::QueryOptions;
use schema::Fields;

/// How far into a passage [`LexicalIndex::rank_with_feedback`] reads its words.
const FEEDBACK_SCAN_BYTES: usize = 12_000;

/// Words with weights, for one language.
type Weighted = Vec<(String, f32)>;

/// Pseudo-relevance feedback on words, for [`LexicalIndex::rank_with_feedback`].
#[derive(Debug, Clone, Copy)]
pub struct TermFeedback<'a> {
    /// Ids of the passages a first ranking put on top.
    pub passages: &'a [String],
    /// How many of their words to draw (0: none).
    pub terms: usize,
    /// Weight of the most salient word relative to a question's word.
    pub weight: f32,
}

/// Errors of the lexical index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Tantivy failed (I/O, corruption, lock).
    #[error("lexical index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index folder cannot be opened.
    #[error("lexical index folder {path}: {reason}")]
    Open {
        /// The folder.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another process is writing to the index.
    #[error("the index is locked by another ingest (only one writer at a time): {0}")]
    Locked(String),
    /// A stored passage could not be decoded.
    #[error("stored passage is unreadable: {0}")]
    Corrupt(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, IndexError>;

/// A tantivy index of passages. Cheap to clone: clones share the index and its reader.
#[derive(Clone)]
pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    analysis: Analysis,
}

impl LexicalIndex {
    /// Opens the index in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mmap = MmapDirectory::open(dir).map_err(|e| IndexError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let (schema, fields) = schema::build();
        let index = Index::open_or_create(mmap, schema)?;
        let opened = Self::with_index(index, fields, Analysis::Legal)?;
        opened.keep_analysis_current(dir)?;
        Ok(opened)
    }

    /// Re-indexes the stored passages when the folder was written by an earlier analysis
    /// (its `analysis` file names the version; a folder without one predates the file), so
    /// that an upgrade never leaves passages indexed under terms that questions no longer
    /// produce. Takes the writer's lock; the passages themselves are kept in the index.
    fn keep_analysis_current(&self, dir: &Path) -> Result<()> {
        let marker = dir.join("analysis");
        let written = std::fs::read_to_string(&marker).unwrap_or_default();
        if written.trim() == analysis::VERSION {
            return Ok(());
        }
        if !self.is_empty() {
            let searcher = self.reader.searcher();
            let all = searcher.search(
                &tantivy::query::AllQuery,
                &tantivy::collector::DocSetCollector,
            )?;
            let mut passages = Vec::with_capacity(all.len());
            for addr in all {
                passages.push(self.passage_at(&searcher.doc(addr)?)?);
            }
            tracing::info!(
                passages = passages.len(),
                from = if written.is_empty() {
                    "1"
                } else {
                    written.trim()
                },
                to = analysis::VERSION,
                "lexical index: re-analysing the stored passages for the current analysis"
            );
            let mut batch = self.batch()?;
            batch.writer.delete_all_documents()?;
            for p in &passages {
                batch.add(p)?;
            }
            batch.commit()?;
        }
        std::fs::write(&marker, analysis::VERSION).map_err(|e| IndexError::Open {
            path: marker.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// An index held in memory (evaluation runs, tests).
    pub fn in_memory(kind: Analysis) -> Result<Self> {
        let (schema, fields) = schema::build();
        Self::with_index(Index::create_in_ram(schema), fields, kind)
    }

    fn with_index(index: Index, fields: Fields, kind: Analysis) -> Result<Self> {
        for lang in [Language::Es, Language::Pt, Language::En] {
            index
                .tokenizers()
                .register(analysis::analyzer_name(lang), kind.analyzer(lang));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(LexicalIndex {
            index,
            reader,
            fields,
            analysis: kind,
        })
    }

    /// Starts a write batch. Nothing it does is visible until [`WriteBatch::commit`]; if the
    /// process dies first, the index stays as it was.
    pub fn batch(&self) -> Result<WriteBatch<'_>> {
        let writer: IndexWriter =
            self.index
                .writer_with_num_threads(1, 200_000_000)
                .map_err(|e| match e {
                    tantivy::TantivyError::LockFailure(..) => IndexError::Locked(e.to_string()),
                    other => IndexError::Tantivy(other),
                })?;
        Ok(WriteBatch {
            index: self,
            writer,
        })
    }

    /// Makes the last commit visible to searches.
    pub fn refresh(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    /// Number of passages visible to searches.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no passage.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the passages stored for a norm, in document order.
    pub fn passage_ids_of(&self, norm_id: &str) -> Result<Vec<String>> {
        Ok(self
            .passages_of(norm_id)?
            .into_iter()
            .map(|p| p.id)
            .collect())
    }

    /// How many passages each norm has in the index (norms with none are absent): what a
    /// consistency check compares with the registry.
    pub fn norm_counts(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let searcher = self.reader.searcher();
        let mut ids = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.norm_id)?;
            let mut terms = inverted
                .terms()
                .stream()
                .map_err(tantivy::TantivyError::from)?;
            while terms.advance() {
                ids.insert(String::from_utf8_lossy(terms.key()).into_owned());
            }
        }
        let mut counts = std::collections::BTreeMap::new();
        for id in ids {
            // Counted live: a term outlives its deleted documents until segments merge.
            let q = tantivy::query::TermQuery::new(
                Term::from_field_text(self.fields.norm_id, &id),
                tantivy::schema::IndexRecordOption::Basic,
            );
            let n = searcher.search(&q, &tantivy::collector::Count)?;
            if n > 0 {
                counts.insert(id, n);
            }
        }
        Ok(counts)
    }

    /// A norm's passages, in document order.
    pub fn passages_of(&self, norm_id: &str) -> Result<Vec<Passage>> {
        let searcher = self.reader.searcher();
        let q = tantivy::query::TermQuery::new(
            Term::from_field_text(self.fields.norm_id, norm_id),
            tantivy::schema::IndexRecordOption::Basic,
        );
        // Every match, unscored: a top-k heap sized for the worst case would be allocated
        // on each call.
        let matches = searcher.search(&q, &tantivy::collector::DocSetCollector)?;
        let mut passages = Vec::with_capacity(matches.len());
        for addr in matches {
            passages.push(self.passage_at(&searcher.doc(addr)?)?);
        }
        passages.sort_by_key(|p| p.ordinal);
        Ok(passages)
    }

    /// Searches `text` under `filters`, returning at most `k` hits with snippets.
    pub fn search(
        &self,
        text: &str,
        filters: &Filters,
        k: usize,
        options: &QueryOptions,
    ) -> Result<Vec<SearchHit>> {
        let searcher = self.reader.searcher();
        let query_ctx = self.question(&searcher, text)?;
        let top = best(&searcher, &query_ctx, filters, k, options)?;
        let snippets = if options.snippets {
            Some(query::Snippets::new(&searcher, &query_ctx, options)?)
        } else {
            None
        };
        let mut scored = Vec::with_capacity(top.len());
        for (score, addr) in top {
            scored.push((score, self.passage_at(&searcher.doc(addr)?)?));
        }
        Ok(ranked_hits(scored, snippets))
    }

    /// The ids and BM25 scores of the best `k` passages for `text` under `filters`, best
    /// first: [`LexicalIndex::search`] without loading the passages (a caller that fuses
    /// rankings loads only the few it keeps, with [`LexicalIndex::hits_for`]).
    pub fn rank(
        &self,
        text: &str,
        filters: &Filters,
        k: usize,
        options: &QueryOptions,
    ) -> Result<Vec<(String, f32)>> {
        let searcher = self.reader.searcher();
        let question = self.question(&searcher, text)?;
        self.ranking(&searcher, &question, filters, k, options)
    }

    /// [`LexicalIndex::rank`] for `text` with words drawn from the passages a first ranking
    /// put on top ([`TermFeedback`]): the words of theirs the question lacks that stand out
    /// most in them (the share of their words it makes up, times its inverse document
    /// frequency), each weighted up to `feedback.weight` of a question's word in proportion.
    /// Pseudo-relevance feedback on words: a citizen asks in everyday words, and the passages
    /// that answer share the law's words with each other ("feriado", "remuneración").
    pub fn rank_with_feedback(
        &self,
        text: &str,
        feedback: &TermFeedback,
        filters: &Filters,
        k: usize,
        options: &QueryOptions,
    ) -> Result<Vec<(String, f32)>> {
        let searcher = self.reader.searcher();
        let mut question = self.question(&searcher, text)?;
        if feedback.terms > 0 && feedback.weight > 0.0 && !feedback.passages.is_empty() {
            let drawn = self.feedback_terms(&searcher, &question, feedback)?;
            for (slot, words) in drawn.into_iter().enumerate() {
                let weighted = words.into_iter().map(|(t, s)| (t, s * feedback.weight));
                question.add_feedback(slot, weighted.collect());
            }
        }
        self.ranking(&searcher, &question, filters, k, options)
    }

    /// The best `feedback.terms` words of its passages that `question` lacks, per language
    /// slot, scored relative to the best (1.0).
    fn feedback_terms(
        &self,
        searcher: &tantivy::Searcher,
        question: &query::QueryContext,
        feedback: &TermFeedback,
    ) -> Result<[Weighted; 3]> {
        let by_id = query::any_of(self.fields.id, feedback.passages.iter().cloned());
        // Per slot: each word's share of each passage's words, summed over the passages.
        let mut shares: [std::collections::HashMap<String, f32>; 3] = Default::default();
        let mut passages = 0;
        for addr in searcher.search(&by_id, &tantivy::collector::DocSetCollector)? {
            let p = self.passage_at(&searcher.doc(addr)?)?;
            let slot = schema::lang_slot(p.language);
            // A norm of one long article is read from its head, as snippets are.
            let text = &p.text[..p.text.floor_char_boundary(FEEDBACK_SCAN_BYTES)];
            let words = self.analysis.terms(p.language, text);
            if words.is_empty() {
                continue;
            }
            passages += 1;
            let share = 1.0 / words.len() as f32;
            for (_, t) in words {
                if !question.asks(slot, &t) {
                    *shares[slot].entry(t).or_default() += share;
                }
            }
        }
        let all = searcher.num_docs() as f32;
        let mut out: [Weighted; 3] = Default::default();
        for (slot, shares) in shares.into_iter().enumerate() {
            let field = self.fields.text[slot];
            let mut scored = Vec::new();
            for (t, share) in shares {
                let holding = searcher.doc_freq(&Term::from_field_text(field, &t))?;
                // A word of one passage alone says nothing the passage does not.
                if holding < 2 {
                    continue;
                }
                let idf = (all / holding as f32).ln();
                scored.push((t, share / passages as f32 * idf));
            }
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            scored.truncate(feedback.terms);
            if let Some(top) = scored.first().map(|(_, s)| *s).filter(|s| *s > 0.0) {
                out[slot] = scored.into_iter().map(|(t, s)| (t, s / top)).collect();
            }
        }
        Ok(out)
    }

    /// The ids and scores of the best `k` passages for an analysed question.
    fn ranking(
        &self,
        searcher: &tantivy::Searcher,
        question: &query::QueryContext,
        filters: &Filters,
        k: usize,
        options: &QueryOptions,
    ) -> Result<Vec<(String, f32)>> {
        let top = best(searcher, question, filters, k, options)?;
        let mut ranking = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let id = doc
                .get_first(self.fields.id)
                .and_then(|v| v.as_str())
                .ok_or_else(|| IndexError::Corrupt("a passage without its id".into()))?;
            ranking.push((id.to_string(), score));
        }
        Ok(ranking)
    }

    /// The words of `text` that name something specific: each word whose index term (in
    /// `language`'s text field) some passage holds, as (word, term, passages holding it),
    /// rarest first, one word per term. How a follow-up question borrows the subject of the
    /// turn before it ("¿y cuánto dura?" after a question on the fuero maternal).
    pub fn specific_words(&self, text: &str, language: Language) -> Vec<(String, String, u64)> {
        let searcher = self.reader.searcher();
        let field = self.fields.text[schema::lang_slot(language)];
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let Some((_, term)) = self.analysis.terms(language, word).into_iter().next() else {
                continue; // a stop word
            };
            if !seen.insert(term.clone()) {
                continue;
            }
            let passages = searcher
                .doc_freq(&Term::from_field_text(field, &term))
                .unwrap_or(0);
            if passages > 0 {
                found.push((word.to_string(), term, passages));
            }
        }
        found.sort_by_key(|(_, _, n)| *n);
        found
    }

    /// The countries (ISO codes) the index holds passages of.
    pub fn countries(&self) -> Result<std::collections::BTreeSet<String>> {
        let searcher = self.reader.searcher();
        let mut out = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(self.fields.jurisdiction)?;
            let mut terms = index
                .terms()
                .stream()
                .map_err(|e| IndexError::Corrupt(format!("the countries: {e}")))?;
            while terms.advance() {
                if let Ok(code) = std::str::from_utf8(terms.key()) {
                    let term = Term::from_field_text(self.fields.jurisdiction, code);
                    // A term stays in the dictionary after its passages are deleted.
                    if searcher.doc_freq(&term)? > 0 {
                        out.insert(code.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The norms under `filters` whose headings (title, breadcrumb) hold `number` as a word,
    /// as the legal tokenizer writes it ("13709" for "Lei nº 13.709"): the norms a question
    /// naming that number means.
    pub fn norms_numbered(&self, number: &str, filters: &Filters) -> Result<Vec<String>> {
        let searcher = self.reader.searcher();
        let mut found: Vec<String> = Vec::new();
        // One passage per norm: each search leaves out the norms already found, so a law of
        // a thousand articles costs one lookup, not a thousand.
        while found.len() < 10 {
            let seen = Filters {
                excluded_norms: [filters.excluded_norms.clone(), found.clone()].concat(),
                ..filters.clone()
            };
            let query = query::headings_holding(&self.fields, number, &seen);
            let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
            let Some((_, addr)) = top.first() else { break };
            found.push(self.passage_at(&searcher.doc(*addr)?)?.norm_id);
        }
        Ok(found)
    }

    /// Hits for passages ranked elsewhere (dense or fused retrieval): the passages with these
    /// ids, in the given order and with the given scores, each with a snippet for `text`
    /// when `options.snippets` is set. Ids the index does not hold are skipped.
    pub fn hits_for(
        &self,
        text: &str,
        ranked: &[(String, f32)],
        options: &QueryOptions,
    ) -> Result<Vec<SearchHit>> {
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let by_id = query::any_of(self.fields.id, ranked.iter().map(|(id, _)| id.clone()));
        let mut found = std::collections::HashMap::new();
        for addr in searcher.search(&by_id, &tantivy::collector::DocSetCollector)? {
            let p = self.passage_at(&searcher.doc(addr)?)?;
            found.insert(p.id.clone(), p);
        }
        let snippets = if options.snippets {
            let ctx = self.question(&searcher, text)?;
            Some(query::Snippets::new(&searcher, &ctx, options)?)
        } else {
            None
        };
        let scored = ranked
            .iter()
            .filter_map(|(id, score)| Some((*score, found.remove(id)?)))
            .collect();
        Ok(ranked_hits(scored, snippets))
    }

    /// `text` analysed in each language the index has passages in.
    fn question(
        &self,
        searcher: &tantivy::Searcher,
        text: &str,
    ) -> Result<query::QueryContext<'_>> {
        let languages = self.languages_present(searcher)?;
        Ok(query::QueryContext::new(
            &self.fields,
            self.analysis,
            languages,
            text,
        ))
    }

    /// Which languages have passages: a question is analysed and matched only in those.
    fn languages_present(&self, searcher: &tantivy::Searcher) -> Result<[bool; 3]> {
        let mut present = [false; 3];
        for (slot, field) in self.fields.text.iter().enumerate() {
            for segment in searcher.segment_readers() {
                if segment.inverted_index(*field)?.terms().num_terms() > 0 {
                    present[slot] = true;
                    break;
                }
            }
        }
        Ok(present)
    }

    fn passage_at(&self, doc: &TantivyDocument) -> Result<Passage> {
        let json = doc
            .get_first(self.fields.stored)
            .and_then(|v| v.as_str())
            .ok_or_else(|| IndexError::Corrupt("no stored passage".into()))?;
        serde_json::from_str(json).map_err(|e| IndexError::Corrupt(e.to_string()))
    }
}

/// The best `k` documents for the question under `filters`, best first (none for a question
/// with no searchable term).
fn best(
    searcher: &tantivy::Searcher,
    question: &query::QueryContext,
    filters: &Filters,
    k: usize,
    options: &QueryOptions,
) -> Result<Vec<(f32, tantivy::DocAddress)>> {
    let Some(query) = query::build(question, filters, options) else {
        return Ok(Vec::new());
    };
    Ok(searcher.search(&query, &TopDocs::with_limit(k.max(1)).order_by_score())?)
}

/// Scored passages, best first, as hits ranked from 1, with snippets when a maker is given.
fn ranked_hits(
    scored: Vec<(f32, Passage)>,
    mut snippets: Option<query::Snippets>,
) -> Vec<SearchHit> {
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (score, passage))| {
            let (snippet, highlights) = match snippets.as_mut() {
                Some(s) => s.make(&passage),
                None => (String::new(), Vec::new()),
            };
            SearchHit {
                rank: i + 1,
                score,
                passage,
                snippet,
                highlights,
            }
        })
        .collect()
}

/// Pending changes to the index; atomic on commit.
pub struct WriteBatch<'a> {
    index: &'a LexicalIndex,
    writer: IndexWriter,
}

impl WriteBatch<'_> {
    /// Removes every passage of a norm (before adding its new version).
    pub fn delete_norm(&mut self, norm_id: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.index.fields.norm_id, norm_id));
    }

    /// Adds a passage.
    pub fn add(&mut self, passage: &Passage) -> Result<()> {
        let doc = schema::document(&self.index.fields, passage);
        self.writer.add_document(doc)?;
        Ok(())
    }

    /// Makes the batch durable and visible, all at once.
    pub fn commit(mut self) -> Result<()> {
        self.writer.commit()?;
        self.writer.wait_merging_threads()?;
        self.index.refresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn passage(norm: &str, id: &str, text: &str, ordinal: u32) -> Passage {
        Passage {
            ordinal,
            norm_title: "Ley de prueba".into(),
            breadcrumb: vec!["Ley de prueba".into(), id.into()],
            provision: id.into(),
            label: format!("Ley de prueba, {id}"),
            ..cabildo_core::fixtures::passage(&format!("{norm}/{id}"), norm, text)
        }
    }

    #[test]
    fn replacing_a_norm_is_atomic_and_ids_are_listed_in_order() {
        let index = LexicalIndex::in_memory(Analysis::Legal).unwrap();
        let mut b = index.batch().unwrap();
        b.add(&passage("n1", "art-2", "segundo texto", 1)).unwrap();
        b.add(&passage("n1", "art-1", "primer texto", 0)).unwrap();
        b.add(&passage("n2", "art-1", "otra norma", 0)).unwrap();
        b.commit().unwrap();
        assert_eq!(
            index.passage_ids_of("n1").unwrap(),
            ["n1/art-1", "n1/art-2"]
        );

        let mut b = index.batch().unwrap();
        b.delete_norm("n1");
        b.add(&passage("n1", "art-1", "texto nuevo", 0)).unwrap();
        assert_eq!(index.len(), 3, "nothing visible before commit");
        b.commit().unwrap();
        assert_eq!(index.passage_ids_of("n1").unwrap(), ["n1/art-1"]);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn excluded_norms_are_never_found() {
        let index = LexicalIndex::in_memory(Analysis::Legal).unwrap();
        let mut b = index.batch().unwrap();
        b.add(&passage("n1", "art-1", "la patente municipal", 0))
            .unwrap();
        b.add(&passage("n2", "art-1", "la patente de alcoholes", 0))
            .unwrap();
        b.commit().unwrap();
        let without_n1 = Filters {
            excluded_norms: vec!["n1".into()],
            ..Filters::default()
        };
        let hits = index
            .search("patente", &without_n1, 10, &QueryOptions::default())
            .unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.passage.id.as_str()).collect();
        assert_eq!(ids, ["n2/art-1"]);
    }

    /// Asked in everyday words, the article in the law's words ranks first: "votar" also
    /// looks for "sufragio". With the expansion off, the shorter article about another age
    /// does; the plain baseline never expands.
    #[test]
    fn everyday_words_also_find_the_laws_words() {
        let ranked = |analysis: Analysis, weight: f32| {
            let index = LexicalIndex::in_memory(analysis).unwrap();
            let mut b = index.batch().unwrap();
            b.add(&passage(
                "c",
                "art-13",
                "Son ciudadanos los que hayan cumplido dieciocho años de edad. La calidad de \
                 ciudadano otorga los derechos de sufragio.",
                0,
            ))
            .unwrap();
            b.add(&passage(
                "c",
                "art-86",
                "Los fiscales deberán haber cumplido treinta años de edad.",
                1,
            ))
            .unwrap();
            b.commit().unwrap();
            let options = QueryOptions {
                legal_word_weight: weight,
                ..QueryOptions::default()
            };
            let hits = index
                .search("¿A qué edad puedo votar?", &Filters::default(), 2, &options)
                .unwrap();
            hits.iter()
                .map(|h| h.passage.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ranked(Analysis::Legal, 0.5), ["c/art-13", "c/art-86"]);
        assert_eq!(ranked(Analysis::Legal, 0.0), ["c/art-86", "c/art-13"]);
        assert_eq!(ranked(Analysis::Plain, 0.5), ranked(Analysis::Plain, 0.0));
    }

    /// Words the top passages share and the question lacks find the passages that use only
    /// them; a word of one passage alone is not drawn.
    #[test]
    fn feedback_draws_the_words_the_top_passages_share() {
        let index = LexicalIndex::in_memory(Analysis::Legal).unwrap();
        let mut b = index.batch().unwrap();
        for (i, (id, text)) in [
            (
                "art-67",
                "Los trabajadores con más de un año de servicio tendrán derecho a un feriado \
                 anual de quince días hábiles de descanso.",
            ),
            (
                "art-68",
                "El feriado se concederá de preferencia en primavera o verano.",
            ),
            ("art-70", "El feriado es irrenunciable."),
            ("art-38", "Los días domingo son de descanso."),
        ]
        .into_iter()
        .enumerate()
        {
            b.add(&passage("c", id, text, i as u32)).unwrap();
        }
        b.commit().unwrap();
        let (question, options) = (
            "¿Cuántos días hábiles de descanso tengo?",
            QueryOptions::default(),
        );
        let ids = |passages: &[String], weight: f32| {
            let feedback = TermFeedback {
                passages,
                terms: 3,
                weight,
            };
            index
                .rank_with_feedback(question, &feedback, &Filters::default(), 10, &options)
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        };
        let first = index
            .rank(question, &Filters::default(), 10, &options)
            .unwrap();
        let plain: Vec<String> = first.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(plain, ["c/art-67", "c/art-38"]);
        assert_eq!(ids(&[], 0.5), plain);
        assert_eq!(ids(&plain[..1], 0.0), plain);
        let widened = ids(&plain[..1], 0.5);
        assert_eq!(widened[0], "c/art-67");
        assert!(widened.contains(&"c/art-68".to_string()), "{widened:?}");
        assert!(widened.contains(&"c/art-70".to_string()), "{widened:?}");
        // "trabajadores", "servicio" and "quince" are art-67's alone: nothing else is found.
        assert_eq!(widened.len(), 4, "{widened:?}");
    }

    #[test]
    fn norms_are_found_by_the_number_in_their_headings_and_countries_listed() {
        let index = LexicalIndex::in_memory(Analysis::Legal).unwrap();
        let mut b = index.batch().unwrap();
        let titled = |norm: &str, title: &str, country: &str, ordinal: u32| Passage {
            norm_title: title.into(),
            breadcrumb: vec![title.into()],
            jurisdiction: cabildo_core::Jurisdiction::country(country),
            ..passage(
                norm,
                &format!("art-{ordinal}"),
                "texto del artículo",
                ordinal,
            )
        };
        for i in 0..3 {
            b.add(&titled(
                "lgpd",
                "Lei nº 13.709, de 14 de agosto de 2018",
                "BR",
                i,
            ))
            .unwrap();
        }
        b.add(&titled("reg", "Reglamento de la Ley N° 20.285", "CL", 0))
            .unwrap();
        b.add(&titled(
            "otra",
            "Ley sobre acceso a la información",
            "CL",
            0,
        ))
        .unwrap();
        b.commit().unwrap();
        let all = Filters::default();
        assert_eq!(index.norms_numbered("13709", &all).unwrap(), ["lgpd"]);
        assert_eq!(index.norms_numbered("20285", &all).unwrap(), ["reg"]);
        assert!(index.norms_numbered("21378", &all).unwrap().is_empty());
        let without = Filters {
            excluded_norms: vec!["lgpd".into()],
            ..Filters::default()
        };
        assert!(index.norms_numbered("13709", &without).unwrap().is_empty());
        let countries: Vec<String> = index.countries().unwrap().into_iter().collect();
        assert_eq!(countries, ["BR", "CL"]);
    }

    #[test]
    fn a_folder_written_by_an_earlier_analysis_is_reanalysed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("analysis");
        {
            let index = LexicalIndex::open(dir.path()).unwrap();
            let mut b = index.batch().unwrap();
            b.add(&passage("n1", "art-1", "la patente municipal", 0))
                .unwrap();
            b.add(&passage("n1", "art-2", "el consejo regional", 1))
                .unwrap();
            b.commit().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), analysis::VERSION);
        std::fs::write(&marker, "1").unwrap();
        let index = LexicalIndex::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), analysis::VERSION);
        assert_eq!(
            index.len(),
            2,
            "every stored passage is indexed again, once"
        );
        let hits = index
            .search("patente", &Filters::default(), 10, &QueryOptions::default())
            .unwrap();
        assert_eq!(hits[0].passage.id, "n1/art-1");
    }

    #[test]
    fn snippets_of_long_passages_look_for_matches_only_near_the_start() {
        let filler = "el consejo sesionará en la capital de la región. ".repeat(400); // ~20k chars
        let index = LexicalIndex::in_memory(Analysis::Legal).unwrap();
        let mut b = index.batch().unwrap();
        let early = format!("la municipalidad fijará la patente. {filler}");
        let late = format!("{filler} la municipalidad fijará la patente.");
        b.add(&passage("n1", "art-1", &early, 0)).unwrap();
        b.add(&passage("n1", "art-2", &late, 1)).unwrap();
        b.commit().unwrap();
        let hits = index
            .search(
                "patente municipal",
                &Filters::default(),
                10,
                &QueryOptions::default(),
            )
            .unwrap();
        assert_eq!(hits.len(), 2, "both are found: the cap is only on snippets");
        let early = hits.iter().find(|h| h.passage.id == "n1/art-1").unwrap();
        assert!(early.snippet.contains("patente") && !early.highlights.is_empty());
        let late = hits.iter().find(|h| h.passage.id == "n1/art-2").unwrap();
        assert!(
            late.highlights.is_empty(),
            "past the scanned part: the head instead"
        );
        assert!(late.snippet.starts_with("el consejo"));
    }
}
