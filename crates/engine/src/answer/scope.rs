//! Where a question asks to look. A question that names a country ("¿desde qué edad se
//! puede votar en Chile?") or a norm by its number ("Lei nº 13.709/2018") is searched within
//! it when the index holds it; when it holds none of it, the answer says so instead of
//! answering from another country's law or another norm.

use cabildo_core::{Filters, Jurisdiction, Language};
use cabildo_index::LexicalIndex;
use cabildo_text::{countries_named, norm_numbers_named, Named};

use crate::Result;

/// What a question names that the index does not hold, as the question wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A country none of whose documents are indexed ("Chile").
    Country(String),
    /// A norm no indexed norm's title carries the number of ("Ley N° 21.378").
    Norm(String),
}

/// The filters a question is searched under: `filters` narrowed to what it names, or what
/// it names and the index lacks.
pub fn narrow(
    index: &LexicalIndex,
    question: &str,
    language: Language,
    filters: &Filters,
) -> Result<std::result::Result<Filters, Missing>> {
    let mut narrowed = filters.clone();
    let countries = countries_named(question);
    // An asker who chose the countries already keeps that choice.
    if !countries.is_empty() && filters.jurisdictions.is_empty() {
        let present = index.countries()?;
        // Passages of unknown country may be of any (evaluation sets load that way).
        if !present.contains(Jurisdiction::UNKNOWN) {
            let held: Vec<String> = countries
                .iter()
                .filter(|c| present.contains(&c.key))
                .map(|c| c.key.clone())
                .collect();
            if held.is_empty() {
                return Ok(Err(Missing::Country(written(&countries))));
            }
            narrowed.jurisdictions = held;
        }
    }
    let numbers = norm_numbers_named(question, language);
    if !numbers.is_empty() {
        let mut norms = Vec::new();
        for n in &numbers {
            norms.extend(index.norms_numbered(&n.key, &narrowed)?);
        }
        if norms.is_empty() {
            return Ok(Err(Missing::Norm(written(&numbers))));
        }
        narrowed.norms = norms;
    }
    Ok(Ok(narrowed))
}

/// "Chile", "Chile y Perú": the names as the question wrote them.
fn written(named: &[Named]) -> String {
    let names: Vec<&str> = named.iter().map(|n| n.as_written.as_str()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} / {last}", rest.join(", ")),
        _ => names.concat(),
    }
}
