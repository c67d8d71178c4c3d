//! Turns official documents into norms and citable passages.
//!
//! One module per format ([`formats`]): Markdown/RST/text (with LeyChile front-matter), PDF
//! (text per page, page numbers kept), HTML (InfoLeg, SUIN-Juriscol, DOF; any declared
//! encoding), BCN LeyChile XML, LexML XML, IMPO JSON and the per-dispositivo CSV files of
//! Brazilian federal laws. Each parser yields a [`Norm`] and [`Unit`]s (articles or other
//! structural pieces); [`build_passages`] turns units into passages with stable ids.
//!
//! This crate depends only on `core` and `text`: it reads bytes and returns values.
#![deny(missing_docs)]

mod build;
pub mod formats;
mod meta;

use std::path::Path;

pub use build::{build_passages, Unit};
use cabildo_core::{Norm, Passage};
pub use meta::{is_metadata_file, IngestDefaults, EVERY_TENANT};

/// Why a file could not be turned into a norm. Each variant reads as one line of a report.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The format is not supported (legacy `.doc`, images…).
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The file has no bytes.
    #[error("empty file")]
    Empty,
    /// The file is damaged or not what its extension says.
    #[error("cannot parse {format}: {reason}")]
    Malformed {
        /// The format it was read as.
        format: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The file parsed but holds no text (a scanned PDF without a text layer…).
    #[error("no text found ({0})")]
    NoText(String),
}

impl IngestError {
    pub(crate) fn malformed(format: &'static str, reason: impl ToString) -> Self {
        IngestError::Malformed {
            format,
            reason: reason.to_string(),
        }
    }
}

/// A parsed file: its norm and its passages.
#[derive(Debug, Clone)]
pub struct ParsedNorm {
    /// The norm, with hash and source path filled in.
    pub norm: Norm,
    /// Its passages in document order.
    pub passages: Vec<Passage>,
}

/// Parses one file's bytes into a norm and its passages, choosing the parser from the
/// extension and, for XML, JSON and HTML, from the content.
pub fn parse_file(
    path: &Path,
    bytes: &[u8],
    defaults: &IngestDefaults,
) -> Result<ParsedNorm, IngestError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(IngestError::Empty);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let ctx = meta::FileContext::new(path, bytes, defaults);
    let (norm, units) = match ext.as_str() {
        "md" | "markdown" | "rst" | "txt" => formats::text::parse(&ctx, &ext)?,
        "pdf" => formats::pdf::parse(&ctx)?,
        "htm" | "html" => formats::html::parse(&ctx)?,
        "xml" => formats::xml(&ctx)?,
        "json" => formats::impo::parse(&ctx)?,
        "csv" => formats::lexml_csv::parse(&ctx)?,
        "doc" => {
            return Err(IngestError::Unsupported(
                "legacy Word 97 .doc; convert it to PDF or HTML first \
                 (libreoffice --headless --convert-to pdf FILE)"
                    .into(),
            ))
        }
        "" => return Err(IngestError::Unsupported("file without extension".into())),
        other => return Err(IngestError::Unsupported(format!(".{other} files"))),
    };
    let passages = build_passages(&norm, units);
    if passages.is_empty() {
        return Err(IngestError::NoText(
            "no passages after segmentation; a scanned PDF needs OCR first".into(),
        ));
    }
    Ok(ParsedNorm { norm, passages })
}
