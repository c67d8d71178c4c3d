//! What a question names: countries ("¿desde qué edad se puede votar en Chile?") and norms by
//! number ("Lei nº 13.709/2018", "Ley N° 21.378"), so that it is searched within them.

use cabildo_core::Language;

use crate::normalize::slug;
use crate::tokens::legal_tokens;

/// Country names, accents folded and lower-cased, with their ISO 3166-1 alpha-2 codes:
/// Latin America and the Iberian peninsula, in Spanish, Portuguese and English.
const COUNTRIES: &[(&str, &str)] = &[
    ("argentina", "AR"),
    ("bolivia", "BO"),
    ("brasil", "BR"),
    ("brazil", "BR"),
    ("chile", "CL"),
    ("colombia", "CO"),
    ("costa rica", "CR"),
    ("cuba", "CU"),
    ("ecuador", "EC"),
    ("el salvador", "SV"),
    ("espana", "ES"),
    ("espanha", "ES"),
    ("spain", "ES"),
    ("guatemala", "GT"),
    ("honduras", "HN"),
    ("mexico", "MX"),
    ("nicaragua", "NI"),
    ("panama", "PA"),
    ("paraguay", "PY"),
    ("paraguai", "PY"),
    ("peru", "PE"),
    ("portugal", "PT"),
    ("republica dominicana", "DO"),
    ("dominican republic", "DO"),
    ("uruguay", "UY"),
    ("uruguai", "UY"),
    ("venezuela", "VE"),
];

/// Words that name a kind of norm before its number.
const NORM_WORDS: &[&str] = &[
    "ley",
    "lei",
    "law",
    "decreto",
    "dfl",
    "dl",
    "resolucion",
    "resolucao",
    "resolution",
];

/// A country or norm a text names: its key (an ISO code, a norm number) and the words that
/// name it, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The ISO 3166-1 alpha-2 code, or the number as the legal tokenizer writes it.
    pub key: String,
    /// The words that name it ("Perú", "Ley N° 21.378").
    pub as_written: String,
}

/// The words of a text with their byte ranges, lower-cased and accents folded ([`slug`]).
fn words_of(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i, slug(&text[s..i])));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The countries a text names, each once, in the order they are named. Names only:
/// "chilena" or "peruanos" describe people or things, they do not say where to look.
pub fn countries_named(text: &str) -> Vec<Named> {
    let words = words_of(text);
    let mut out: Vec<Named> = Vec::new();
    for i in 0..words.len() {
        for len in [2, 1] {
            let Some(span) = words.get(i..i + len) else {
                continue;
            };
            let name: Vec<&str> = span.iter().map(|(_, _, w)| w.as_str()).collect();
            let name = name.join(" ");
            let Some((_, code)) = COUNTRIES.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            if !out.iter().any(|n| n.key == *code) {
                out.push(Named {
                    key: code.to_string(),
                    as_written: text[span[0].0..span[len - 1].1].to_string(),
                });
            }
            break;
        }
    }
    out
}

/// The numbers of the norms a text names ("Ley N° 21.378" → "21378", "Decreto Ley 1.939" →
/// "1939"), as the legal tokenizer writes them, each once. Numbers under three digits are
/// left out: "DFL 1" names a different norm in every ministry.
pub fn norm_numbers_named(text: &str, language: Language) -> Vec<Named> {
    let tokens = legal_tokens(text, language);
    let mut out: Vec<Named> = Vec::new();
    for pair in tokens.windows(2) {
        let word = slug(&pair[0].text);
        let number = &pair[1].text;
        let is_number = number.len() >= 3 && number.bytes().all(|b| b.is_ascii_digit());
        if NORM_WORDS.contains(&word.as_str()) && is_number && !out.iter().any(|n| n.key == *number)
        {
            out.push(Named {
                key: number.clone(),
                as_written: text[pair[0].start..pair[1].end].to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(named: Vec<Named>) -> Vec<String> {
        named.into_iter().map(|n| n.key).collect()
    }

    #[test]
    fn countries_are_found_by_name_not_by_adjective() {
        let chile = countries_named("¿Desde qué edad se puede votar en Chile?");
        assert_eq!(
            chile,
            [Named {
                key: "CL".into(),
                as_written: "Chile".into()
            }]
        );
        let peru = countries_named("¿Quiénes son ciudadanos en el Perú?");
        assert_eq!(peru[0].as_written, "Perú");
        assert_eq!(
            keys(countries_named(
                "Diferencias entre la República Dominicana y México"
            )),
            ["DO", "MX"]
        );
        assert!(countries_named("¿Qué sanciona la ley chilena?").is_empty());
        assert!(countries_named("los peruanos mayores de dieciocho años").is_empty());
        assert!(countries_named("la chilenidad").is_empty());
    }

    #[test]
    fn norm_numbers_are_found_after_a_kind_of_norm() {
        let lgpd = norm_numbers_named(
            "Em conformidade com a Lei nº 13.709/2018 — Lei Geral de Proteção de Dados",
            Language::Pt,
        );
        assert_eq!(
            lgpd,
            [Named {
                key: "13709".into(),
                as_written: "Lei nº 13.709".into()
            }]
        );
        assert_eq!(
            keys(norm_numbers_named(
                "¿En qué caso determina la Ley N° 21.378 que…?",
                Language::Es
            )),
            ["21378"]
        );
        assert_eq!(
            keys(norm_numbers_named(
                "el Decreto Ley N° 1.939, de 1977",
                Language::Es
            )),
            ["1939"]
        );
        assert!(norm_numbers_named("el DFL 1 de 2005", Language::Es).is_empty());
        assert!(norm_numbers_named("¿A qué edad puedo votar?", Language::Es).is_empty());
        assert!(norm_numbers_named("el artículo 131 de la ley", Language::Es).is_empty());
    }
}
