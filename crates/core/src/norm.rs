//! A norm: one official document (a constitution, a code, a law, a decree, a form…) in one
//! version, with the metadata that citations and filters need.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{AccessLevel, Error};

/// The language a norm is written in; it selects the analyser and the answer language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Spanish.
    #[default]
    Es,
    /// Portuguese.
    Pt,
    /// English.
    En,
}

impl Language {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::Pt => "pt",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "es" | "spa" | "spanish" | "es-cl" | "es-ar" | "es-mx" | "es-es" => Ok(Language::Es),
            "pt" | "por" | "portuguese" | "pt-br" => Ok(Language::Pt),
            "en" | "eng" | "english" => Ok(Language::En),
            _ => Err(Error::Invalid {
                what: "language",
                value: s.to_string(),
                why: "expected es, pt or en".into(),
            }),
        }
    }
}

/// Where a norm applies: an ISO 3166-1 alpha-2 country and optionally a subdivision
/// (ISO 3166-2, e.g. `BR-DF`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Jurisdiction {
    /// ISO 3166-1 alpha-2, upper case (`CL`, `BR`).
    pub country: String,
    /// ISO 3166-2 subdivision, when the norm is not national.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
}

impl Jurisdiction {
    /// The country of passages whose country is not known (ISO 3166's user-assigned `ZZ`):
    /// evaluation sets load their passages so.
    pub const UNKNOWN: &'static str = "ZZ";

    /// Whether `code` has the shape of an ISO 3166-1 alpha-2 code (two ASCII letters).
    pub fn is_country_code(code: &str) -> bool {
        code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic())
    }

    /// A national jurisdiction.
    pub fn country(code: &str) -> Self {
        Jurisdiction {
            country: code.to_ascii_uppercase(),
            subdivision: None,
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subdivision {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.country),
        }
    }
}

/// The kind of instrument. Names follow the Spanish terms used across the region; Portuguese
/// sources map onto them (lei → ley, constituição → constitucion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// A constitution (or a constitutional amendment's text).
    Constitucion,
    /// A code (civil, penal, tributario…).
    Codigo,
    /// A law, including decree-laws and complementary laws.
    Ley,
    /// An executive decree (DNU, decreto supremo, regulation decree).
    Decreto,
    /// A resolution of an agency.
    Resolucion,
    /// A circular or instruction.
    Circular,
    /// A form or its filling instructions.
    Formulario,
    /// Court decisions and binding precedents (súmulas).
    Jurisprudencia,
    /// An official gazette issue.
    Gaceta,
    /// Anything else.
    Otro,
}

impl NormKind {
    /// All kinds, for help texts and validation.
    pub const ALL: [NormKind; 10] = [
        NormKind::Constitucion,
        NormKind::Codigo,
        NormKind::Ley,
        NormKind::Decreto,
        NormKind::Resolucion,
        NormKind::Circular,
        NormKind::Formulario,
        NormKind::Jurisprudencia,
        NormKind::Gaceta,
        NormKind::Otro,
    ];

    /// The stable lower-case name used in the index, the registry and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NormKind::Constitucion => "constitucion",
            NormKind::Codigo => "codigo",
            NormKind::Ley => "ley",
            NormKind::Decreto => "decreto",
            NormKind::Resolucion => "resolucion",
            NormKind::Circular => "circular",
            NormKind::Formulario => "formulario",
            NormKind::Jurisprudencia => "jurisprudencia",
            NormKind::Gaceta => "gaceta",
            NormKind::Otro => "otro",
        }
    }

    /// Guesses the kind from a title or a type name as written in a source
    /// ("DECRETO LEY", "Lei Complementar", "CONSTITUCION DE LA REPUBLICA").
    pub fn guess(text: &str) -> NormKind {
        let t = text.to_lowercase();
        let has = |w: &str| t.contains(w);
        if has("constituci") {
            NormKind::Constitucion
        } else if has("código") || has("codigo") {
            NormKind::Codigo
        } else if has("decreto ley")
            || has("decreto-ley")
            || has("decreto-lei")
            || has("ley")
            || t.starts_with("lei")
            || has(" lei ")
        {
            NormKind::Ley
        } else if has("decreto") || has("dnu") {
            NormKind::Decreto
        } else if has("resoluci") || has("resoluç") || has("acuerdo") {
            NormKind::Resolucion
        } else if has("circular") || has("instrucci") {
            NormKind::Circular
        } else if has("modelo") || has("formulario") {
            NormKind::Formulario
        } else if has("súmula") || has("sumula") || has("acórdão") || has("sentencia") {
            NormKind::Jurisprudencia
        } else if has("diário oficial") || has("diario oficial") {
            NormKind::Gaceta
        } else {
            NormKind::Otro
        }
    }
}

impl fmt::Display for NormKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NormKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim().to_lowercase();
        NormKind::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| Error::Invalid {
                what: "kind",
                value: s.to_string(),
                why: format!(
                    "expected one of {}",
                    NormKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            })
    }
}

/// One norm in one version, as kept in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    /// Deterministic id: the official identifier when the source has one
    /// (`cl-bcn-242302`, a LexML URN), otherwise derived from the file's place in its collection.
    pub id: String,
    /// Where it applies.
    pub jurisdiction: Jurisdiction,
    /// What kind of instrument it is.
    pub kind: NormKind,
    /// Official number ("19.628", "13.709"), when it has one.
    pub number: Option<String>,
    /// Official or common title.
    pub title: String,
    /// Issuing body, when the source names it.
    pub issuing_body: Option<String>,
    /// Language of the text.
    pub language: Language,
    /// Official URL of the norm (BCN, LexML, InfoLeg…), when known.
    pub official_url: Option<String>,
    /// Date of original publication.
    pub publication_date: Option<NaiveDate>,
    /// Date of the consolidated version ingested.
    pub version_date: Option<NaiveDate>,
    /// In force from (inclusive); `None` means "since always" for filtering.
    pub valid_from: Option<NaiveDate>,
    /// In force until (exclusive); `None` means still in force.
    pub valid_to: Option<NaiveDate>,
    /// Who may read it.
    pub access: AccessLevel,
    /// Owning tenant (agency); `None` for documents shared by all.
    pub tenant: Option<String>,
    /// SHA-256 of the source file's bytes.
    pub content_hash: String,
    /// Source format (`markdown`, `pdf`, `bcn-xml`…).
    pub format: String,
    /// Path of the source file, as given to ingest.
    pub source_path: String,
    /// Whether `id` was derived from the file's place (the source names no identifier), so
    /// that two files could claim it; known while ingesting, not stored.
    #[serde(skip)]
    pub id_from_path: bool,
}

impl Norm {
    /// Whether the norm is in force on `date` (valid_from <= date < valid_to).
    pub fn in_force_on(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|from| from <= date) && self.valid_to.is_none_or(|to| date < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_guess_covers_regional_names() {
        assert_eq!(
            NormKind::guess("CONSTITUCION DE LA REPUBLICA"),
            NormKind::Constitucion
        );
        assert_eq!(NormKind::guess("Decreto Ley 1939"), NormKind::Ley);
        assert_eq!(NormKind::guess("Lei Complementar 95"), NormKind::Ley);
        assert_eq!(NormKind::guess("Decreto"), NormKind::Decreto);
        assert_eq!(NormKind::guess("Código Civil"), NormKind::Codigo);
        assert_eq!(NormKind::guess("Súmula 683"), NormKind::Jurisprudencia);
    }

    #[test]
    fn kind_parse_rejects_unknown_with_the_list() {
        let err = "statute".parse::<NormKind>().unwrap_err().to_string();
        assert!(err.contains("constitucion"), "{err}");
        assert_eq!("Ley".parse::<NormKind>().unwrap(), NormKind::Ley);
    }
}
