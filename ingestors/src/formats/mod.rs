//! One parser per source format. Each returns the norm and its structural units.

pub mod bcn;
pub mod html;
pub mod impo;
pub mod lexml;
pub mod lexml_csv;
pub mod pdf;
mod pdf_text;
pub mod text;

use cabildo_core::Norm;

use crate::meta::FileContext;
use crate::{IngestError, Unit};

/// Segments lines of plain text (no pages) into units.
pub(crate) fn segment_lines<S: Into<String>>(lines: impl IntoIterator<Item = S>) -> Vec<Unit> {
    let lines: Vec<cabildo_text::Line> = lines.into_iter().map(cabildo_text::Line::new).collect();
    cabildo_text::segment(&lines)
        .into_iter()
        .map(Unit::from)
        .collect()
}

/// What every parser returns.
pub(crate) type Parsed = (Norm, Vec<Unit>);

/// Chooses the XML parser from the root element: BCN LeyChile `Norma` or `LexML`.
pub(crate) fn xml(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let head = String::from_utf8_lossy(&ctx.bytes[..ctx.bytes.len().min(4096)]);
    if head.contains("<LexML") {
        lexml::parse(ctx)
    } else if head.contains("leychile.cl/esquemas") || head.contains("<Norma ") {
        bcn::parse(ctx)
    } else {
        Err(IngestError::Unsupported(
            "XML that is neither BCN LeyChile (EsquemaIntercambioNorma) nor LexML".into(),
        ))
    }
}

/// Decodes bytes: UTF-8 when they are valid UTF-8 (a stale `charset` meta is common), else
/// the declared encoding, else Windows-1252 (a superset of ISO-8859-1 as browsers read it).
pub(crate) fn decode(bytes: &[u8], declared: Option<&str>) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let encoding = declared
        .and_then(|label| encoding_rs::Encoding::for_label(label.trim().as_bytes()))
        .filter(|e| {
            *e != encoding_rs::UTF_8 && *e != encoding_rs::UTF_16LE && *e != encoding_rs::UTF_16BE
        })
        .unwrap_or(encoding_rs::WINDOWS_1252);
    encoding.decode(bytes).0.into_owned()
}
