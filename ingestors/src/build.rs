//! From structural units to passages: split long units at inciso boundaries, label each
//! piece as a lawyer would cite it, and give it a stable id.

use std::collections::HashSet;

use cabildo_core::{Norm, Passage};
use cabildo_text::{slug, split_article, Article, Line};

/// A structural unit of a norm as a parser found it: an article, a dispositivo, a page.
#[derive(Debug, Clone, Default)]
pub struct Unit {
    /// Headings above it, outermost first.
    pub headings: Vec<String>,
    /// How it is cited: "Artículo 19", "Art. 5º, inciso LXXVIII".
    pub provision: String,
    /// Anchor in the source (`art5_cpt_inc78`, a BCN idParte), used for ids and URLs.
    pub anchor: Option<String>,
    /// URL of this unit, when more precise than the norm's.
    pub url: Option<String>,
    /// Its text, one line per inciso or paragraph.
    pub lines: Vec<Line>,
    /// Char offset in the norm's extracted text, for plain-text sources.
    pub start: Option<usize>,
    /// False for text outside articles: a PDF's piece of it is labelled by page.
    pub is_article: bool,
}

impl From<Article> for Unit {
    fn from(a: Article) -> Self {
        Unit {
            headings: a.headings,
            provision: a.provision,
            anchor: None,
            url: None,
            lines: a.lines,
            start: Some(a.start),
            is_article: a.number.is_some(),
        }
    }
}

/// Turns units into passages: splits long ones, labels and numbers them deterministically.
pub fn build_passages(norm: &Norm, units: Vec<Unit>) -> Vec<Passage> {
    let mut passages = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for unit in units {
        if unit.lines.iter().all(|l| l.text.trim().is_empty()) {
            continue;
        }
        let base_key = unit.anchor.clone().unwrap_or_else(|| slug(&unit.provision));
        let base_key = if base_key.is_empty() {
            "texto".to_string()
        } else {
            base_key
        };
        for (k, piece) in split_article(&unit.lines).into_iter().enumerate() {
            let mut provision = unit.provision.clone();
            if !unit.is_article {
                if let Some(page) = piece.page {
                    // Forms and gazettes have no articles: the page is the citation.
                    provision = if provision == "Encabezado" {
                        format!("página {page}")
                    } else {
                        format!("{provision}, página {page}")
                    };
                }
            }
            if let Some(sub) = &piece.sub_label {
                provision = format!("{provision}, {sub}");
            }
            let key = if k == 0 {
                base_key.clone()
            } else {
                format!("{base_key}~{k}")
            };
            // Ids are unique within a norm: a repeated key gets `-2`, `-3`…, skipping any a
            // source uses itself (LexML numbers "Art. 76-B" `art76-2`).
            let mut unique = key.clone();
            let mut n = 1;
            while !taken.insert(unique.clone()) {
                n += 1;
                unique = format!("{key}-{n}");
            }
            let key = unique;
            let mut breadcrumb = vec![norm.title.clone()];
            breadcrumb.extend(unit.headings.iter().cloned());
            breadcrumb.push(provision.clone());
            let span = unit.start.map(|s| {
                let start = s + piece.offset;
                (start as u32, (start + piece.text.chars().count()) as u32)
            });
            passages.push(Passage {
                id: format!("{}/{}", norm.id, key),
                norm_id: norm.id.clone(),
                ordinal: passages.len() as u32,
                norm_title: norm.title.clone(),
                breadcrumb,
                label: format!("{}, {}", norm.title, provision),
                provision,
                url: unit.url.clone().or_else(|| norm.official_url.clone()),
                anchor: unit.anchor.clone(),
                text: piece.text,
                span,
                page: piece.page,
                jurisdiction: norm.jurisdiction.clone(),
                kind: norm.kind,
                language: norm.language,
                access: norm.access,
                tenant: norm.tenant.clone(),
                valid_from: norm.valid_from,
                valid_to: norm.valid_to,
            });
        }
    }
    passages
}
