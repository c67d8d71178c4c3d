//! PDF through `lopdf`: text page by page, so every passage keeps the page it starts on.
//! Running headers and footers (a line repeated on most pages, page numbers) are dropped
//! before segmentation; a scanned PDF without a text layer is reported, not ingested empty.

use std::collections::HashMap;

use cabildo_core::NormKind;
use cabildo_text::{guess_language, segment, tidy, Line};
use lopdf::{Document, Object};

use super::Parsed;
use crate::meta::FileContext;
use crate::{IngestError, Unit};

/// A line with its digits masked, to recognise "Página 3 de 39" on every page.
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim().chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn is_page_number(line: &str) -> bool {
    let t = line.trim().trim_matches(['-', '–', ' ', '.']);
    !t.is_empty() && t.len() <= 4 && t.chars().all(|c| c.is_ascii_digit())
}

/// Lines near the top or bottom of a page: where running heads and feet live.
const EDGE_LINES: usize = 4;

/// Drops lines repeated at the top or bottom of most pages (running heads and feet, "Página
/// 3 de 39") and bare page numbers. Article headings repeat their shape on every page too
/// ("Artículo 12."), so they are never dropped.
fn strip_running_lines(pages: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let n = pages.len();
    let at_edge = |i: usize, len: usize| i < EDGE_LINES || i + EDGE_LINES >= len;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in &pages {
        let mut seen = std::collections::HashSet::new();
        for (i, l) in page.iter().enumerate() {
            let s = shape(l);
            if at_edge(i, page.len()) && s.chars().count() < 120 && seen.insert(s.clone()) {
                *counts.entry(s).or_default() += 1;
            }
        }
    }
    let threshold = (n / 2).max(3);
    pages
        .into_iter()
        .map(|page| {
            let len = page.len();
            page.into_iter()
                .enumerate()
                .filter(|(i, l)| {
                    let running = n >= 3
                        && at_edge(*i, len)
                        && counts.get(&shape(l)).copied().unwrap_or(0) >= threshold
                        && cabildo_text::article_label(l.trim()).is_none();
                    !running && !is_page_number(l)
                })
                .map(|(_, l)| l)
                .collect()
        })
        .collect()
}

/// The document's /Title, unless it is a producer's placeholder.
fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = lopdf::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let t = title.trim().to_string();
    let lower = t.to_lowercase();
    let placeholder = t.len() < 6
        || lower.starts_with("microsoft")
        || lower.ends_with(".doc")
        || lower.ends_with(".docx")
        || lower.ends_with(".pdf")
        || lower == "untitled";
    (!placeholder).then_some(t)
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    if !ctx.bytes.starts_with(b"%PDF") {
        return Err(IngestError::malformed("PDF", "no %PDF header"));
    }
    let doc = Document::load_mem(ctx.bytes).map_err(|e| IngestError::malformed("PDF", e))?;
    if doc.is_encrypted() {
        return Err(IngestError::Unsupported("encrypted PDF".into()));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(IngestError::malformed("PDF", "no pages"));
    }
    let mut texts = Vec::with_capacity(pages.len());
    let mut failed = 0;
    for (&number, &page_id) in &pages {
        match super::pdf_text::page_text(&doc, page_id) {
            Ok(t) => texts.push(tidy(&t).lines().map(str::to_string).collect::<Vec<_>>()),
            Err(e) => {
                failed += 1;
                tracing::debug!(page = number, error = %e, "page text not extracted");
                texts.push(Vec::new());
            }
        }
    }
    if failed == pages.len() {
        return Err(IngestError::malformed(
            "PDF",
            "no page could be read (damaged or truncated file)",
        ));
    }
    let page_lines = strip_running_lines(texts);
    let lines: Vec<Line> = page_lines
        .iter()
        .zip(pages.keys())
        .flat_map(|(ls, &p)| {
            ls.iter().map(move |l| Line {
                text: l.clone(),
                page: Some(p),
            })
        })
        .collect();
    if lines.iter().all(|l| l.text.trim().is_empty()) {
        return Err(IngestError::NoText(
            "the PDF has no text layer (scanned?); run OCR first".into(),
        ));
    }
    let sample: String = lines
        .iter()
        .take(400)
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let title = ctx
        .collection_title
        .clone()
        .or_else(|| info_title(&doc))
        .unwrap_or_else(|| ctx.stem().replace(['-', '_'], " "));
    let kind = NormKind::guess(&format!("{title} {}", ctx.stem()));
    let language = guess_language(&sample);
    let jurisdiction = ctx.jurisdiction();
    let id = ctx.path_id(&jurisdiction);
    let norm = ctx.norm(id, title, kind, "pdf", language);
    let units = segment(&lines).into_iter().map(Unit::from).collect();
    Ok((norm, units))
}
