//! Question shaping for definitions. "O que é o controlador?" is answered by a definition
//! list item ("VI – controlador: pessoa natural ou jurídica…"), which ranks poorly: the term
//! appears in dozens of articles, and the question's other words are function words. When a
//! question asks for a definition, the passages that define the term are put first.

use std::sync::LazyLock;

use cabildo_core::{Filters, SearchHit};
use cabildo_index::{LexicalIndex, QueryOptions};
use regex::Regex;

/// "qué es (el) X", "o que é (o) X", "what is (the) X", "definición de X"… up to a
/// qualifier ("según la ley", "segundo a LGPD", "under the law") or the question mark.
static ASKS_DEFINITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        (?: qu[eé]\s+(?:es|son|significa|se\s+entiende\s+por)
          | o\s+que\s+(?:é|e|são|significa|se\s+entende\s+por)
          | what\s+(?:is|are|does)
          | (?:cu[aá]l\s+es\s+la\s+)?definici[oó]n\s+de
          | (?:qual\s+(?:é\s+)?a\s+)?defini[cç][aã]o\s+de
          | definition\s+of
          | concept[oa]\s+de )
        \s+ (?:(?:el|la|los|las|un|una|o|a|os|as|um|uma|the|an?)\s+)?
        (?P<term>[\p{L}\-]+(?:\s+[\p{L}\-]+){0,3}?)
        \s* (?: (?:,|\s)\s*(?:seg[uú]n|segundo|de\s+acuerdo|de\s+acordo|conforme|en\s+la|en\s+el|na|no|para|under|in|according|per|mean)\b.* )?
        \s* [?.!]? \s* $",
    )
    .expect("valid regex")
});

/// The term a question asks to define, if it asks for a definition.
pub fn definition_term(question: &str) -> Option<String> {
    let q = question.trim().trim_start_matches(['¿', '¡']);
    let caps = ASKS_DEFINITION.captures(q)?;
    Some(caps["term"].trim().to_lowercase())
}

/// Passages that define `term`: their text opens with it (after a list marker) followed by
/// a colon or dash, as definition lists are written.
pub fn defining_passages(
    index: &LexicalIndex,
    term: &str,
    filters: &Filters,
) -> cabildo_index::Result<Vec<SearchHit>> {
    let Ok(opening) = Regex::new(&format!(
        r"(?i)^\s*(?:[IVXLC]+|\d+|[a-z])?\s*[\-–—.)]*\s*{}\s*[:–—\-]",
        regex::escape(term)
    )) else {
        return Ok(Vec::new()); // an escaped term always compiles; no shaping if not
    };
    let unsnipped = QueryOptions {
        snippets: false,
        ..QueryOptions::default()
    };
    let hits = index.search(term, filters, 100, &unsnipped)?;
    Ok(hits
        .into_iter()
        .filter(|h| opening.is_match(&h.passage.text))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_term_in_three_languages() {
        assert_eq!(
            definition_term("O que é o controlador segundo a LGPD?").as_deref(),
            Some("controlador")
        );
        assert_eq!(
            definition_term("¿Qué es un dato sensible?").as_deref(),
            Some("dato sensible")
        );
        assert_eq!(
            definition_term("What is the controller under the LGPD?").as_deref(),
            Some("controller")
        );
        assert_eq!(
            definition_term("Qual a definição de dado pessoal?").as_deref(),
            Some("dado pessoal")
        );
        assert_eq!(
            definition_term("¿desde qué edad se puede votar en Chile?"),
            None
        );
    }
}
