//! Text handling for legal documents in Spanish and Portuguese: whitespace and Unicode
//! normalisation, the legal tokenizer that makes "Ley N° 19.628" match "ley 19628",
//! segmentation of plain text into Título › Capítulo › Artículo, splitting long articles at
//! inciso boundaries, a language guess, personal data (national identifiers, e-mails, phones)
//! to redact, text that reads like instructions to the model, and the countries and norms a
//! question names.
//!
//! This crate knows nothing about indexes or file formats: it turns strings into strings,
//! tokens and structure.
#![deny(missing_docs)]

mod injection;
mod lang;
mod named;
mod normalize;
mod pii;
mod segment;
mod split;
mod tokens;

pub use injection::instruction_like;
pub use lang::guess_language;
pub use named::{countries_named, norm_numbers_named, Named};
pub use normalize::{content_hash, slug, tidy, title_case};
pub use pii::{find_pii, redact_pii, PiiKind, PiiMatch};
pub use segment::{article_label, segment, Article, Line};
pub use split::{split_article, Piece, MAX_PASSAGE_CHARS};
pub use tokens::{legal_tokens, LegalToken};
