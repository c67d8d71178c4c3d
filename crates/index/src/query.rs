//! Query construction: the user's words analysed per language and matched against each
//! language's text and heading fields (BM25), with the filters as zero-score clauses of the
//! same query.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::LazyLock;

use cabildo_core::retrieval::question_length;
use cabildo_core::{AccessLevel, Filters, Language, Passage};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::{Searcher, Term};

use crate::analysis::Analysis;
use crate::schema::{day_number, lang_slot, Fields, LANGS};

/// Knobs of the lexical ranking.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Weight of a match in the heading (norm title, breadcrumb, provision) relative to one in
    /// the text.
    pub head_boost: f32,
    /// At most this many distinct terms per language are kept from a long question.
    pub max_terms: usize,
    /// Snippet length in chars.
    pub snippet_chars: usize,
    /// Weight of a match of two consecutive query words in the same order in the text, for
    /// long questions; short ones get none, and the weight grows with the length in between
    /// ([`cabildo_core::retrieval::question_length`]).
    pub phrase_boost: f32,
    /// Whether hits carry a highlighted snippet (evaluation runs skip them).
    pub snippets: bool,
    /// Weight of the law's word for an everyday word of the question ([`PLAIN_TO_LEGAL`]),
    /// relative to the question's own word; 0 turns the expansion off.
    pub legal_word_weight: f32,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            head_boost: 0.5,
            max_terms: 96,
            snippet_chars: 240,
            phrase_boost: 0.5,
            snippets: true,
            legal_word_weight: 0.5,
        }
    }
}

/// A question analysed once, in each language that has passages, for the query clauses and
/// the snippets alike.
pub(crate) struct QueryContext<'a> {
    pub fields: &'a Fields,
    /// Index terms with their positions, per language slot (empty where the index has no
    /// passage in that language).
    terms: [Vec<(usize, String)>; 3],
    /// The question's length, 0 (short) to 1 (long).
    length: f32,
    /// Whether the question's everyday words also look for the law's ([`LEGAL_TERMS`]): the
    /// legal analysis's terms, which the plain baseline's are not.
    expands: bool,
    /// Terms drawn from the passages a first ranking put on top, with their weights, per
    /// language slot ([`crate::LexicalIndex::rank_with_feedback`]).
    feedback: [crate::Weighted; 3],
}

impl<'a> QueryContext<'a> {
    pub fn new(fields: &'a Fields, analysis: Analysis, languages: [bool; 3], text: &str) -> Self {
        let terms = LANGS.map(|lang| {
            if languages[lang_slot(lang)] {
                analysis.terms(lang, text)
            } else {
                Vec::new()
            }
        });
        QueryContext {
            fields,
            terms,
            length: question_length(text),
            expands: analysis == Analysis::Legal,
            feedback: Default::default(),
        }
    }

    /// Whether the question has `term` in language slot `slot`.
    pub fn asks(&self, slot: usize, term: &str) -> bool {
        self.terms[slot].iter().any(|(_, t)| t == term)
    }

    /// Adds terms (with their weights relative to a question's word) to match in `slot`.
    pub fn add_feedback(&mut self, slot: usize, terms: crate::Weighted) {
        self.feedback[slot].extend(terms);
    }
}

/// Everyday words a citizen asks with, and the word the law uses for the same thing, where
/// the two share no stem: asked "¿A qué edad puedo votar?", the article that grants the vote
/// (Chile's Article 13: "dieciocho años de edad … derechos de sufragio") holds "edad" but not
/// "votar", while the ages of senators and deputies hold both "edad" and "voto". General
/// knowledge of each language's legal vocabulary, not read off the evaluation sets.
const PLAIN_TO_LEGAL: &[(Language, &str, &[&str])] = &[
    (Language::Es, "votar", &["sufragio", "sufragar"]),
    (Language::Es, "voto", &["sufragio", "sufragar"]),
    (Language::Es, "sueldo", &["remuneración"]),
    (Language::Es, "salario", &["remuneración"]),
    (Language::Es, "jubilación", &["pensión"]),
    (Language::Es, "jubilarse", &["pensión"]),
    (Language::Es, "arriendo", &["arrendamiento"]),
    (Language::Es, "alquiler", &["arrendamiento"]),
    (Language::Es, "vacaciones", &["feriado"]),
    (Language::Es, "casarse", &["matrimonio"]),
    (Language::Es, "herencia", &["sucesión"]),
    (Language::Es, "heredar", &["sucesión"]),
    (Language::Es, "cárcel", &["presidio", "reclusión"]),
    (Language::Pt, "votar", &["sufrágio"]),
    (Language::Pt, "voto", &["sufrágio"]),
    (Language::Pt, "salário", &["remuneração"]),
    (Language::Pt, "aluguel", &["locação"]),
    (Language::Pt, "herança", &["sucessão"]),
];

/// [`PLAIN_TO_LEGAL`] as index terms of the legal analysis: per language slot, each
/// everyday word's term and its legal words' terms (those that differ from it).
static LEGAL_TERMS: LazyLock<[BTreeMap<String, Vec<String>>; 3]> = LazyLock::new(|| {
    let mut map: [BTreeMap<String, Vec<String>>; 3] = Default::default();
    let term = |lang, word| Analysis::Legal.terms(lang, word).into_iter().next();
    for &(lang, plain, legal) in PLAIN_TO_LEGAL {
        let Some((_, plain)) = term(lang, plain) else {
            continue;
        };
        let entry = map[lang_slot(lang)].entry(plain.clone()).or_default();
        for word in legal {
            if let Some((_, t)) = term(lang, word) {
                if t != plain && !entry.contains(&t) {
                    entry.push(t);
                }
            }
        }
    }
    map
});

/// Distinct terms per language slot in order of first use, with their counts.
fn terms_per_language(ctx: &QueryContext, max_terms: usize) -> [Vec<(String, usize)>; 3] {
    ctx.terms.each_ref().map(|positioned| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut order = Vec::new();
        for (_, t) in positioned {
            let c = counts.entry(t.as_str()).or_insert(0);
            if *c == 0 {
                order.push(t.as_str());
            }
            *c += 1;
        }
        order
            .into_iter()
            .take(max_terms)
            .map(|t| (t.to_string(), counts[t]))
            .collect()
    })
}

fn term_query(field: tantivy::schema::Field, term: &str, weight: f32) -> Box<dyn Query> {
    let q = TermQuery::new(
        Term::from_field_text(field, term),
        IndexRecordOption::WithFreqs,
    );
    if (weight - 1.0).abs() < f32::EPSILON {
        Box::new(q)
    } else {
        Box::new(BoostQuery::new(Box::new(q), weight))
    }
}

fn filter(q: impl Query) -> (Occur, Box<dyn Query>) {
    (
        Occur::Must,
        Box::new(ConstScoreQuery::new(Box::new(q), 0.0)),
    )
}

/// Documents whose keyword `field` equals one of `values`.
pub(crate) fn any_of(
    field: tantivy::schema::Field,
    values: impl Iterator<Item = String>,
) -> BooleanQuery {
    BooleanQuery::new(
        values
            .map(|v| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, &v),
                    IndexRecordOption::Basic,
                ));
                (Occur::Should, q)
            })
            .collect(),
    )
}

/// Passages under `filters` whose headings, in any language, hold `term` as it is indexed.
pub(crate) fn headings_holding(f: &Fields, term: &str, filters: &Filters) -> BooleanQuery {
    let headings: Vec<(Occur, Box<dyn Query>)> = f
        .head
        .iter()
        .map(|field| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(*field, term),
                IndexRecordOption::Basic,
            ));
            (Occur::Should, q)
        })
        .collect();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, Box::new(BooleanQuery::new(headings)))];
    clauses.extend(filter_clauses(f, filters));
    BooleanQuery::new(clauses)
}

/// Filter clauses, each a `Must` that scores zero.
fn filter_clauses(f: &Fields, filters: &Filters) -> Vec<(Occur, Box<dyn Query>)> {
    let mut clauses = Vec::new();
    if !filters.jurisdictions.is_empty() {
        clauses.push(filter(any_of(
            f.jurisdiction,
            filters.jurisdictions.iter().map(|j| j.to_ascii_uppercase()),
        )));
    }
    if !filters.kinds.is_empty() {
        clauses.push(filter(any_of(
            f.kind,
            filters.kinds.iter().map(|k| k.as_str().to_string()),
        )));
    }
    if !filters.norms.is_empty() {
        clauses.push(filter(any_of(f.norm_id, filters.norms.iter().cloned())));
    }
    if !filters.excluded_norms.is_empty() {
        let norms = any_of(f.norm_id, filters.excluded_norms.iter().cloned());
        clauses.push((Occur::MustNot, Box::new(norms)));
    }
    clauses.push(filter(RangeQuery::new(
        Bound::Unbounded,
        Bound::Included(Term::from_field_u64(f.access, filters.max_access as u64)),
    )));
    if !filters.all_tenants {
        // Public documents, documents without an owner, and the caller's own tenant's.
        let mut visible: Vec<(Occur, Box<dyn Query>)> = vec![
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.access, AccessLevel::Public as u64),
                    IndexRecordOption::Basic,
                )),
            ),
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.tenant, ""),
                    IndexRecordOption::Basic,
                )),
            ),
        ];
        if let Some(t) = &filters.tenant {
            visible.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.tenant, t),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        clauses.push(filter(BooleanQuery::new(visible)));
    }
    if let Some(date) = filters.in_force_on {
        let day = day_number(date);
        clauses.push(filter(RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_i64(f.valid_from, day)),
        )));
        clauses.push(filter(RangeQuery::new(
            Bound::Excluded(Term::from_field_i64(f.valid_to, day)),
            Bound::Unbounded,
        )));
    }
    if let Some(date) = filters.not_ended_on {
        clauses.push(filter(RangeQuery::new(
            Bound::Excluded(Term::from_field_i64(f.valid_to, day_number(date))),
            Bound::Unbounded,
        )));
    }
    clauses
}

/// Consecutive pairs of query terms (with the gap stop words left between them): a passage
/// that has them in the same order quotes the question's wording, as exam options and
/// caseworkers' queries often quote the law.
fn phrase_pairs(terms: &[(usize, String)], max: usize) -> Vec<(usize, String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    for w in terms.windows(2) {
        let ((p0, t0), (p1, t1)) = (&w[0], &w[1]);
        let gap = p1.saturating_sub(*p0);
        if (1..=3).contains(&gap) && seen.insert((gap, t0.clone(), t1.clone())) {
            pairs.push((gap, t0.clone(), t1.clone()));
            if pairs.len() >= max {
                break;
            }
        }
    }
    pairs
}

/// The full query, or `None` when the text has no searchable term.
pub(crate) fn build(
    ctx: &QueryContext,
    filters: &Filters,
    options: &QueryOptions,
) -> Option<Box<dyn Query>> {
    let f = ctx.fields;
    let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    // A term in one language's text and heading, weighted by how often the question has it.
    let mut add = |slot: usize, term: &str, count: usize, weight: f32| {
        let weight = (1.0 + (count as f32).ln()) * weight;
        should.push((Occur::Should, term_query(f.text[slot], term, weight)));
        if options.head_boost > 0.0 {
            should.push((
                Occur::Should,
                term_query(f.head[slot], term, weight * options.head_boost),
            ));
        }
    };
    let terms = terms_per_language(ctx, options.max_terms);
    for (slot, terms) in terms.iter().enumerate() {
        for (term, count) in terms {
            add(slot, term, *count, 1.0);
        }
    }
    // The law's words for the question's everyday ones, each once, at the count of the word
    // it stands for, unless the question has it already.
    if ctx.expands && options.legal_word_weight > 0.0 {
        for (slot, terms) in terms.iter().enumerate() {
            let mut added: Vec<&str> = Vec::new();
            for (term, count) in terms {
                for legal in LEGAL_TERMS[slot].get(term).into_iter().flatten() {
                    let asked = terms.iter().any(|(t, _)| t == legal);
                    if !asked && !added.contains(&legal.as_str()) {
                        added.push(legal);
                        add(slot, legal, *count, options.legal_word_weight);
                    }
                }
            }
        }
    }
    for (slot, terms) in ctx.feedback.iter().enumerate() {
        for (term, weight) in terms {
            add(slot, term, 1, *weight);
        }
    }
    // Phrase pairs are for a long question, which quotes the law's wording (an exam item, a
    // pasted paragraph); in a short one ("restos a pagar", a citizen's question) they
    // rewarded passages that happen to repeat two of its words and cost every set.
    let phrase_boost = options.phrase_boost * ctx.length;
    if phrase_boost > 0.0 {
        for (slot, positioned) in ctx.terms.iter().enumerate() {
            should.extend(phrase_pairs(positioned, options.max_terms).into_iter().map(
                |(gap, t0, t1)| {
                    let q = PhraseQuery::new_with_offset(vec![
                        (0, Term::from_field_text(f.text[slot], &t0)),
                        (gap, Term::from_field_text(f.text[slot], &t1)),
                    ]);
                    let q: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(q), phrase_boost));
                    (Occur::Should, q)
                },
            ));
        }
    }
    if should.is_empty() {
        return None;
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
    clauses.extend(filter_clauses(f, filters));
    Some(Box::new(BooleanQuery::new(clauses)))
}

/// Snippet makers, one per language's text field.
pub(crate) struct Snippets {
    generators: Vec<Option<SnippetGenerator>>,
    chars: usize,
}

/// How far into a passage a snippet's matches are looked for. The snippet generator analyses
/// (and stems) all the text it is given: on passages of 100k characters (some BCN norms are
/// one long article) that took up to 90 ms per hit, the tail of every search's latency.
/// Matches further in leave the passage's head as its snippet.
const SNIPPET_SCAN_BYTES: usize = 12_000;

impl Snippets {
    pub fn new(
        searcher: &Searcher,
        ctx: &QueryContext,
        options: &QueryOptions,
    ) -> crate::Result<Self> {
        let f = ctx.fields;
        let terms = terms_per_language(ctx, options.max_terms);
        let mut generators = Vec::new();
        for (slot, lang_terms) in terms.iter().enumerate() {
            if lang_terms.is_empty() {
                generators.push(None);
                continue;
            }
            let q = BooleanQuery::new(
                lang_terms
                    .iter()
                    .map(|(t, _)| (Occur::Should, term_query(f.text[slot], t, 1.0)))
                    .collect(),
            );
            let mut g = SnippetGenerator::create(searcher, &q, f.text[slot])?;
            g.set_max_num_chars(options.snippet_chars);
            generators.push(Some(g));
        }
        Ok(Snippets {
            generators,
            chars: options.snippet_chars,
        })
    }

    /// A snippet of the passage's text around the matched terms, and the matches' ranges.
    pub fn make(&mut self, p: &Passage) -> (String, Vec<(usize, usize)>) {
        if let Some(Some(g)) = self.generators.get(lang_slot(p.language)) {
            let scanned = &p.text[..p.text.floor_char_boundary(SNIPPET_SCAN_BYTES)];
            let s = g.snippet(scanned);
            if !s.highlighted().is_empty() {
                let ranges = s.highlighted().iter().map(|r| (r.start, r.end)).collect();
                return (s.fragment().to_string(), ranges);
            }
        }
        let head: String = p.text.chars().take(self.chars).collect();
        (head, Vec::new())
    }
}
