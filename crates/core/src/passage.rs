//! A passage: the retrievable, citable unit. It follows the norm's tree (never mixes two
//! articles), carries its breadcrumb and the most precise official URL known.

use serde::{Deserialize, Serialize};

use crate::{AccessLevel, Jurisdiction, Language, NormKind};

/// One retrievable unit of a norm, with everything needed to cite it and to filter it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Deterministic id: `{norm_id}/{provision path}[~{piece}]`, stable across re-ingests.
    pub id: String,
    /// The norm it belongs to.
    pub norm_id: String,
    /// Position of the passage within its norm (0-based), for ordering and context.
    pub ordinal: u32,
    /// Norm title.
    pub norm_title: String,
    /// Structural path: norm › título › capítulo › artículo.
    pub breadcrumb: Vec<String>,
    /// The provision as a lawyer cites it: "Artículo 19, N° 24", "Art. 5º, inciso LXXVIII".
    pub provision: String,
    /// Full citable label: "{norm title}, {provision}".
    pub label: String,
    /// Most precise official URL: BCN idNorma+idParte, LexML URN anchor, source URL.
    pub url: Option<String>,
    /// Anchor of the provision inside the source (`art5_cpt_inc78`, BCN idParte), when known.
    pub anchor: Option<String>,
    /// The passage's text, as in the source (whitespace tidied).
    pub text: String,
    /// Char span of this text in the norm's extracted text, when the source is plain text.
    pub span: Option<(u32, u32)>,
    /// 1-based page in the source PDF.
    pub page: Option<u32>,
    /// Inherited filters.
    pub jurisdiction: Jurisdiction,
    /// Inherited kind.
    pub kind: NormKind,
    /// Language of the text.
    pub language: Language,
    /// Inherited access level.
    pub access: AccessLevel,
    /// Inherited owner tenant.
    pub tenant: Option<String>,
    /// In force from (ISO date), inherited from the norm version.
    pub valid_from: Option<chrono::NaiveDate>,
    /// In force until (exclusive), inherited from the norm version.
    pub valid_to: Option<chrono::NaiveDate>,
}

/// A passage returned by a search, with its score and a highlighted snippet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    /// 1-based rank.
    pub rank: usize,
    /// Retrieval score (method-specific scale).
    pub score: f32,
    /// The passage.
    pub passage: Passage,
    /// A short excerpt around the matched terms.
    pub snippet: String,
    /// Byte ranges of matched terms inside `snippet`.
    pub highlights: Vec<(usize, usize)>,
}
