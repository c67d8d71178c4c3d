//! LexML Brasil XML: the 1988 Constitution, laws and decisions with element ids such as
//! `art5_cpt_inc78`. Short articles become one unit; long ones one unit per caput, inciso and
//! parágrafo, so a citation points at the exact dispositivo and its LexML URN anchor.

use cabildo_core::{Jurisdiction, Language, NormKind};
use cabildo_text::{title_case, Line, MAX_PASSAGE_CHARS};
use roxmltree::{Document, Node};

use super::{decode, Parsed};
use crate::meta::FileContext;
use crate::{IngestError, Unit};

fn name<'a>(n: &Node<'a, '_>) -> &'a str {
    n.tag_name().name()
}

/// Text of a node with inline markup flattened and whitespace collapsed.
fn flat(n: Node) -> String {
    let s: String = n
        .descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn rotulo(n: Node) -> String {
    n.children()
        .find(|c| name(c) == "Rotulo")
        .map(flat)
        .unwrap_or_default()
}

/// The dispositivo's own paragraphs (`p`), without its children dispositivos.
fn own_text(n: Node) -> String {
    n.children()
        .filter(|c| name(c) == "p")
        .map(flat)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const DISPOSITIVOS: [&str; 5] = ["Inciso", "Alinea", "Item", "Paragrafo", "Caput"];

/// Lines of a dispositivo and everything under it: "LXXVIII – a todos…", "a) …".
fn lines_of(n: Node, out: &mut Vec<String>) {
    let r = rotulo(n);
    let t = own_text(n);
    let line = format!("{r} {t}").trim().to_string();
    if !line.is_empty() {
        out.push(line);
    }
    for c in n.children().filter(|c| DISPOSITIVOS.contains(&name(c))) {
        lines_of(c, out);
    }
}

/// "LXXVIII –" → "inciso LXXVIII"; "§ 1º" → "§ 1º"; "Parágrafo único." → "parágrafo único".
fn sub_label(n: Node) -> String {
    let r = rotulo(n);
    let r = r.trim_end_matches(['–', '-', '—', '.', ' ', ')']).trim();
    match name(&n) {
        "Inciso" => format!("inciso {r}"),
        "Alinea" => format!("alínea {r})"),
        "Paragrafo" if r.starts_with('P') => r.to_lowercase(),
        _ => r.to_string(),
    }
}

struct Walker<'u> {
    urn: &'u str,
    units: Vec<Unit>,
}

impl Walker<'_> {
    fn url(&self, anchor: &str) -> String {
        format!("https://www.lexml.gov.br/urn/{}!{anchor}", self.urn)
    }

    fn unit(
        &self,
        headings: &[String],
        provision: String,
        anchor: &str,
        lines: Vec<String>,
    ) -> Unit {
        Unit {
            headings: headings.to_vec(),
            provision,
            url: Some(self.url(anchor)),
            anchor: Some(anchor.to_string()),
            lines: lines.into_iter().map(Line::new).collect(),
            start: None,
            is_article: true,
        }
    }

    fn artigo(&mut self, art: Node, headings: &[String]) {
        let id = art.attribute("id").unwrap_or("art");
        let label = rotulo(art).trim_end_matches('.').to_string();
        let caput = art.children().find(|c| name(c) == "Caput");
        let mut all = Vec::new();
        if let Some(c) = caput {
            lines_of(c, &mut all);
        }
        for p in art.children().filter(|c| name(c) == "Paragrafo") {
            lines_of(p, &mut all);
        }
        if let Some(first) = all.first_mut() {
            *first = format!("{label} {first}");
        }
        let total: usize = all.iter().map(|l| l.chars().count() + 1).sum();
        if total <= MAX_PASSAGE_CHARS || caput.is_none() {
            let unit = self.unit(headings, label, id, all);
            self.units.push(unit);
            return;
        }
        // Long article: the caput, then each of its incisos, then each parágrafo.
        if let Some(c) = caput {
            let cap_id = c.attribute("id").unwrap_or(id);
            let text = format!("{label} {}", own_text(c));
            let unit = self.unit(headings, format!("{label}, caput"), cap_id, vec![text]);
            self.units.push(unit);
            for inc in c.children().filter(|x| DISPOSITIVOS.contains(&name(x))) {
                self.dispositivo(inc, &label, headings);
            }
        }
        for p in art.children().filter(|c| name(c) == "Paragrafo") {
            self.dispositivo(p, &label, headings);
        }
    }

    fn dispositivo(&mut self, n: Node, article: &str, headings: &[String]) {
        let anchor = n.attribute("id").unwrap_or("");
        let mut lines = Vec::new();
        lines_of(n, &mut lines);
        let unit = self.unit(
            headings,
            format!("{article}, {}", sub_label(n)),
            anchor,
            lines,
        );
        self.units.push(unit);
    }

    fn walk(&mut self, n: Node, headings: &mut Vec<String>) {
        for c in n.children().filter(|c| c.is_element()) {
            match name(&c) {
                "Artigo" => self.artigo(c, headings),
                "Parte" | "Livro" | "Titulo" | "Capitulo" | "Secao" | "Subsecao" => {
                    let nome = c
                        .children()
                        .find(|x| name(x) == "NomeAgrupador")
                        .map(flat)
                        .unwrap_or_default();
                    headings.push(format!("{} {nome}", rotulo(c)).trim().to_string());
                    self.walk(c, headings);
                    headings.pop();
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let xml = decode(ctx.bytes, None);
    let doc = Document::parse(&xml).map_err(|e| IngestError::malformed("LexML XML", e))?;
    let root = doc.root_element();
    let urn = root
        .descendants()
        .find(|d| name(d) == "Identificacao")
        .and_then(|d| d.attribute("URN"))
        .ok_or_else(|| IngestError::malformed("LexML XML", "no Identificacao URN"))?
        .to_string();
    let find = |tag: &str| root.descendants().find(|d| name(d) == tag);
    let epigrafe = find("Epigrafe").map(flat).unwrap_or_default();
    let title = if epigrafe.is_empty() {
        urn.clone()
    } else {
        title_case(&epigrafe)
    };
    let kind = if urn.contains(":constituicao:") {
        NormKind::Constitucion
    } else if urn.contains(":acordao") || urn.contains(":sumula") {
        NormKind::Jurisprudencia
    } else if urn.contains(":decreto:") {
        NormKind::Decreto
    } else if urn.contains(":lei") {
        NormKind::Ley
    } else {
        NormKind::guess(&title)
    };
    let mut norm = ctx.norm(urn.clone(), title, kind, "lexml", Language::Pt);
    norm.jurisdiction = Jurisdiction::country("BR");
    norm.official_url = Some(format!("https://www.lexml.gov.br/urn/{urn}"));
    // urn:lex:br:federal:lei:2008-06-19;11417 → date and number
    if let Some((date, number)) = urn.rsplit(':').next().and_then(|s| s.split_once(';')) {
        norm.publication_date = crate::meta::parse_date(date);
        norm.number = Some(number.to_string());
    }
    norm.valid_from = norm.publication_date;

    let mut walker = Walker {
        urn: &urn,
        units: Vec::new(),
    };
    // Decisions and súmulas have no articles: their text sits in the opening parts.
    for tag in ["Ementa", "Preambulo"] {
        if let Some(n) = find(tag) {
            let lines: Vec<String> = if n.children().any(|c| name(&c) == "p") {
                n.children().filter(|c| name(c) == "p").map(flat).collect()
            } else {
                vec![flat(n)]
            };
            let lines: Vec<String> = lines.into_iter().filter(|t| !t.is_empty()).collect();
            if !lines.is_empty() {
                walker.units.push(Unit {
                    provision: if tag == "Ementa" {
                        "Ementa".into()
                    } else {
                        "Preâmbulo".into()
                    },
                    anchor: Some(tag.to_lowercase()),
                    url: norm.official_url.clone(),
                    lines: lines.into_iter().map(Line::new).collect(),
                    ..Unit::default()
                });
            }
        }
    }
    if let Some(art) = find("Articulacao") {
        walker.walk(art, &mut Vec::new());
    }
    Ok((norm, walker.units))
}
