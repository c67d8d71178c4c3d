//! HTML through `scraper`, in the page's declared encoding: InfoLeg (Argentina, ISO-8859-1),
//! SUIN-Juriscol (Colombia) and the Diario Oficial de la Federación (Mexico). The visible
//! text is extracted block by block, site chrome before the norm's own heading is dropped,
//! and the legal segmenter finds the articles.

use std::sync::LazyLock;

use cabildo_core::{Jurisdiction, NormKind};
use cabildo_text::{guess_language, tidy};
use regex::Regex;
use scraper::{ElementRef, Html, Node, Selector};

use super::{decode, Parsed};
use crate::meta::{parse_date, FileContext};
use crate::IngestError;

static CHARSET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)charset\s*=\s*["']?([\w:-]+)"#).expect("regex"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:ley|decreto|dnu|resoluci[óo]n|acto legislativo)\s+(?:n[º°o]\.?\s*)?(\d[\d.]*)",
    )
    .expect("regex")
});

const SKIP: [&str; 12] = [
    "script", "style", "noscript", "nav", "header", "footer", "form", "button", "select", "iframe",
    "svg", "template",
];
const BLOCK: [&str; 22] = [
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "section",
    "article",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dd",
    "dt",
    "center",
    "hr",
];

fn hidden(el: &ElementRef) -> bool {
    let v = el.value();
    v.attr("hidden").is_some()
        || v.attr("style").is_some_and(|s| {
            let s = s.replace(' ', "").to_lowercase();
            s.contains("display:none") || s.contains("visibility:hidden")
        })
}

/// Visible text with a line break at every block boundary.
fn visible_text(el: ElementRef, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => {
                let collapsed: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
                if !collapsed.is_empty() {
                    if t.starts_with(char::is_whitespace) && !out.ends_with(['\n', ' ']) {
                        out.push(' ');
                    }
                    out.push_str(&collapsed);
                    if t.ends_with(char::is_whitespace) {
                        out.push(' ');
                    }
                }
            }
            Node::Element(e) => {
                let Some(child_el) = ElementRef::wrap(child) else {
                    continue;
                };
                let tag = e.name();
                if SKIP.contains(&tag) || hidden(&child_el) {
                    continue;
                }
                let block = BLOCK.contains(&tag);
                if block {
                    out.push('\n');
                }
                visible_text(child_el, out);
                if block {
                    out.push('\n');
                }
            }
            _ => {}
        }
    }
}

fn page_titles(doc: &Html) -> Vec<String> {
    let sel = Selector::parse("title").expect("selector");
    doc.select(&sel)
        .map(|t| {
            t.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// A title that names the norm, not the site ("Infoleg", "DOF - Diario Oficial…").
fn meaningful(title: &str) -> bool {
    let l = title.to_lowercase();
    !(l.contains("infoleg") || l.starts_with("dof -") || l.contains("sin título") || l.len() < 6)
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let head = String::from_utf8_lossy(&ctx.bytes[..ctx.bytes.len().min(8192)]).to_string();
    let declared = CHARSET.captures(&head).map(|c| c[1].to_string());
    let html = decode(ctx.bytes, declared.as_deref());
    let doc = Html::parse_document(&html);
    let lower = html.to_lowercase();
    let (source, country) = if lower.contains("infoleg") {
        ("infoleg", Some("AR"))
    } else if lower.contains("suin-juriscol") || lower.contains("suin juriscol") {
        ("suin", Some("CO"))
    } else if lower.contains("dof.gob.mx") || lower.contains("diario oficial de la federaci") {
        ("dof", Some("MX"))
    } else {
        ("html", None)
    };

    let body_sel = Selector::parse("body").expect("selector");
    let main_sel = Selector::parse("#cuerpo_principal").expect("selector");
    let root = doc
        .select(&main_sel)
        .next()
        .or_else(|| doc.select(&body_sel).next())
        .unwrap_or_else(|| doc.root_element());
    let mut raw = String::new();
    visible_text(root, &mut raw);
    let text = tidy(&raw);
    let mut lines: Vec<&str> = text.lines().collect();

    let titles = page_titles(&doc);
    let site_title = titles.iter().rev().find(|t| meaningful(t)).map(|t| {
        t.split(" - Colombia")
            .next()
            .unwrap_or(t)
            .trim()
            .to_string()
    });
    // Site chrome (menus, banners) comes before the norm's own heading: start there.
    if let Some(t) = &site_title {
        let t_lower = t.to_lowercase();
        if let Some(i) = lines
            .iter()
            .position(|l| l.trim().to_lowercase() == t_lower)
        {
            lines.drain(..i);
        }
    }
    let first_line = lines
        .iter()
        .find(|l| l.chars().filter(|c| c.is_alphabetic()).count() > 8)
        .map(|l| l.trim().to_string());
    let title = ctx
        .collection_title
        .clone()
        .or(site_title)
        .or(first_line)
        .unwrap_or_else(|| ctx.stem());
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(IngestError::NoText("the page has no visible text".into()));
    }

    let jurisdiction = match (country, &ctx.defaults.jurisdiction) {
        (_, Some(j)) => Jurisdiction::country(j),
        (Some(c), None) => Jurisdiction::country(c),
        (None, None) => ctx.jurisdiction(),
    };
    let id = ctx.path_id(&jurisdiction);
    let sample: String = lines
        .iter()
        .take(300)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let mut norm = ctx.norm(
        id,
        title.clone(),
        NormKind::guess(&title),
        source,
        guess_language(&sample),
    );
    norm.jurisdiction = jurisdiction;
    norm.number = NUMBER
        .captures(&title)
        .map(|c| c[1].trim_end_matches('.').to_string());
    let date_after = |label: &str| {
        lines
            .iter()
            .position(|l| l.trim().eq_ignore_ascii_case(label))
            .and_then(|i| lines.get(i + 1))
            .and_then(|l| parse_date(l))
    };
    norm.publication_date = date_after("Fecha de publicación de la norma");
    norm.valid_from =
        date_after("Fecha de entrada en vigencia de la norma").or(norm.publication_date);

    Ok((norm, super::segment_lines(lines)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_page_decodes_with_its_declared_charset() {
        let bytes = b"<html><head><meta charset=\"ISO-8859-1\"></head><body><p>Art\xedculo 1\xba.- Naci\xf3n</p></body></html>";
        let head = String::from_utf8_lossy(bytes).to_string();
        let declared = CHARSET.captures(&head).map(|c| c[1].to_string());
        assert!(decode(bytes, declared.as_deref()).contains("Artículo 1º.- Nación"));
    }

    #[test]
    fn hidden_and_script_text_is_skipped() {
        let doc = Html::parse_document("<body><script>x=1</script><div style=\"display: none\">oculto</div><p>Visible</p><p>Dos</p></body>");
        let mut out = String::new();
        visible_text(doc.root_element(), &mut out);
        assert_eq!(tidy(&out), "Visible\n\nDos");
    }
}
