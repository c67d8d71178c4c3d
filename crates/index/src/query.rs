//! Query construction: the user's words analysed per language and matched against each
//! language's text and heading fields (BM25), with the filters as zero-score clauses of the
//! same query.

use std::collections::BTreeMap;
use std::ops::Bound;

use cabildo_core::{AccessLevel, Filters, Passage};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::{Searcher, Term};

use crate::analysis::analyze;
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
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            head_boost: 0.5,
            max_terms: 96,
            snippet_chars: 240,
        }
    }
}

/// Analysed terms of `text` per language slot, with their counts.
fn terms_per_language(text: &str, max_terms: usize) -> [Vec<(String, usize)>; 3] {
    LANGS.map(|lang| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut order = Vec::new();
        for t in analyze(lang, text) {
            let c = counts.entry(t.clone()).or_insert(0);
            if *c == 0 {
                order.push(t);
            }
            *c += 1;
        }
        order
            .into_iter()
            .take(max_terms)
            .map(|t| {
                let c = counts[&t];
                (t, c)
            })
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

fn any_of(field: tantivy::schema::Field, values: impl Iterator<Item = String>) -> BooleanQuery {
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
    clauses
}

/// The full query, or `None` when the text has no searchable term.
pub(crate) fn build(
    f: &Fields,
    text: &str,
    filters: &Filters,
    options: &QueryOptions,
) -> Option<Box<dyn Query>> {
    let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (slot, terms) in terms_per_language(text, options.max_terms)
        .iter()
        .enumerate()
    {
        for (term, count) in terms {
            let weight = 1.0 + (*count as f32).ln();
            should.push((Occur::Should, term_query(f.text[slot], term, weight)));
            if options.head_boost > 0.0 {
                should.push((
                    Occur::Should,
                    term_query(f.head[slot], term, weight * options.head_boost),
                ));
            }
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

impl Snippets {
    pub fn new(
        searcher: &Searcher,
        f: &Fields,
        text: &str,
        options: &QueryOptions,
    ) -> crate::Result<Self> {
        let terms = terms_per_language(text, options.max_terms);
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
            let s = g.snippet(&p.text);
            if !s.highlighted().is_empty() {
                let ranges = s.highlighted().iter().map(|r| (r.start, r.end)).collect();
                return (s.fragment().to_string(), ranges);
            }
        }
        let head: String = p.text.chars().take(self.chars).collect();
        (head, Vec::new())
    }
}
