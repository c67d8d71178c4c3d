//! BCN LeyChile XML (`EsquemaIntercambioNorma-v1-0`): the Library of Congress of Chile's
//! exchange format. Articles come with their `idParte`, so each passage links to the exact
//! article on leychile.cl. Article text is hard-wrapped at ~66 columns with amendment notes
//! in a right-hand margin; both are undone here.

use cabildo_core::{Language, NormKind};
use cabildo_text::{title_case, Line};
use roxmltree::{Document, Node};

use super::{decode, Parsed};
use crate::meta::{parse_date, FileContext};
use crate::{IngestError, Unit};

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.tag_name().name() == name)
}

fn text_of(n: Option<Node>) -> String {
    n.map(|n| {
        n.descendants()
            .filter(|d| d.is_text())
            .filter_map(|d| d.text())
            .collect::<String>()
    })
    .unwrap_or_default()
}

/// Drops the right-margin notes ("CPR Art. 10° D.O. 24.10.1980", "LEY N° 20.050 Art. 1°")
/// and re-joins hard-wrapped lines into paragraphs; an indented line starts a new one.
pub(crate) fn unwrap_bcn_text(text: &str) -> Vec<String> {
    let mut paras: Vec<String> = Vec::new();
    let mut new_para = true;
    for raw in text.lines() {
        let indent = raw.len() - raw.trim_start().len();
        if indent >= 30 {
            continue; // a margin note on a line of its own
        }
        let body = match raw.trim_start().find("    ") {
            Some(i) => &raw.trim_start()[..i],
            None => raw.trim_start(),
        };
        let body = body.trim();
        if body.is_empty() {
            new_para = true;
            continue;
        }
        if indent >= 3 || new_para || paras.is_empty() {
            paras.push(body.to_string());
        } else if let Some(last) = paras.last_mut() {
            if last.ends_with('-') && !last.ends_with(" -") {
                last.pop();
            } else {
                last.push(' ');
            }
            last.push_str(body);
        }
        new_para = false;
    }
    paras
}

struct Walker {
    norma_id: String,
    units: Vec<Unit>,
}

impl Walker {
    fn walk(&mut self, parts: Node, headings: &mut Vec<String>) {
        for part in parts
            .children()
            .filter(|c| c.tag_name().name() == "EstructuraFuncional")
        {
            let tipo = part.attribute("tipoParte").unwrap_or("");
            let derogado = part.attribute("derogado") == Some("derogado");
            let id_parte = part.attribute("idParte").map(str::to_string);
            let meta = child(part, "Metadatos");
            let paras = unwrap_bcn_text(&text_of(child(part, "Texto")));
            let is_article = tipo.starts_with("Artículo")
                || tipo.starts_with("Disposición")
                || tipo == "Doble Articulado";
            let nested = child(part, "EstructurasFuncionales");
            if is_article {
                if derogado || paras.is_empty() {
                    continue;
                }
                let nombre = text_of(meta.and_then(|m| child(m, "NombreParte")))
                    .trim()
                    .to_string();
                let provision = cabildo_text::article_label(&paras[0]).unwrap_or_else(|| {
                    if nombre.is_empty() {
                        tipo.to_string()
                    } else {
                        format!("{tipo} {nombre}")
                    }
                });
                self.units.push(Unit {
                    headings: headings.clone(),
                    provision,
                    url: id_parte.as_ref().map(|p| {
                        format!(
                            "https://www.bcn.cl/leychile/navegar?idNorma={}&idParte={p}",
                            self.norma_id
                        )
                    }),
                    anchor: id_parte,
                    lines: paras.into_iter().map(Line::new).collect(),
                    start: None,
                    is_article: true,
                });
                if let Some(n) = nested {
                    self.walk(n, headings);
                }
            } else {
                let titulo = text_of(meta.and_then(|m| child(m, "TituloParte")));
                let heading = if titulo.trim().is_empty() || titulo.trim() == "\u{a0}" {
                    paras.join(" ")
                } else {
                    titulo.split_whitespace().collect::<Vec<_>>().join(" ")
                };
                headings.push(heading);
                if let Some(n) = nested {
                    self.walk(n, headings);
                }
                headings.pop();
            }
        }
    }
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let xml = decode(ctx.bytes, None);
    let doc = Document::parse(&xml).map_err(|e| IngestError::malformed("BCN XML", e))?;
    let root = doc.root_element();
    let norma_id = root
        .attribute("normaId")
        .ok_or_else(|| IngestError::malformed("BCN XML", "Norma without normaId"))?
        .to_string();
    let ident = child(root, "Identificador");
    let meta = child(root, "Metadatos");
    let tipo = text_of(
        ident
            .and_then(|i| child(i, "TiposNumeros"))
            .and_then(|t| t.descendants().find(|d| d.tag_name().name() == "Tipo")),
    );
    let numero =
        text_of(ident.and_then(|i| i.descendants().find(|d| d.tag_name().name() == "Numero")));
    let comun = text_of(meta.and_then(|m| {
        m.descendants()
            .find(|d| d.tag_name().name() == "NombreUsoComun")
    }));
    let titulo = text_of(meta.and_then(|m| child(m, "TituloNorma")));
    let title = title_case(
        if comun.trim().is_empty() {
            &titulo
        } else {
            &comun
        }
        .trim(),
    );
    let kind = match NormKind::guess(&title) {
        NormKind::Otro => NormKind::guess(&tipo),
        k => k,
    };

    let jurisdiction = cabildo_core::Jurisdiction::country("CL");
    let mut norm = ctx.norm(
        format!("cl-bcn-{norma_id}"),
        title,
        kind,
        "bcn-xml",
        Language::Es,
    );
    norm.jurisdiction = jurisdiction;
    norm.number = Some(numero.trim().to_string()).filter(|n| !n.is_empty());
    norm.issuing_body =
        Some(text_of(ident.and_then(|i| {
            i.descendants().find(|d| d.tag_name().name() == "Organismo")
        })))
        .map(|s| title_case(s.trim()))
        .filter(|s| !s.is_empty());
    norm.official_url = Some(format!(
        "https://www.bcn.cl/leychile/navegar?idNorma={norma_id}"
    ));
    norm.publication_date = ident
        .and_then(|i| i.attribute("fechaPublicacion"))
        .and_then(parse_date);
    norm.version_date = root.attribute("fechaVersion").and_then(parse_date);
    norm.valid_from = norm.version_date.or(norm.publication_date);
    if root.attribute("derogado") == Some("derogado") {
        norm.valid_to = root
            .descendants()
            .find(|d| {
                d.tag_name().name() == "FechaDerogacion"
                    && d.parent().and_then(|p| p.parent()) == Some(root)
            })
            .and_then(|d| d.text())
            .and_then(parse_date);
    }

    let mut walker = Walker {
        norma_id,
        units: Vec::new(),
    };
    let encabezado = unwrap_bcn_text(&text_of(
        child(root, "Encabezado").and_then(|e| child(e, "Texto")),
    ));
    if !encabezado.is_empty() {
        walker.units.push(Unit {
            provision: "Encabezado".into(),
            lines: encabezado.into_iter().map(Line::new).collect(),
            ..Unit::default()
        });
    }
    if let Some(parts) = child(root, "EstructurasFuncionales") {
        walker.walk(parts, &mut Vec::new());
    }
    Ok((norm, walker.units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_notes_and_wrapping_are_undone() {
        let t = "     Artículo 10.- Son chilenos:                                    CPR Art. 10° D.O.\n     1º.- Los nacidos en el territorio de Chile, con                24.10.1980\nexcepción de los hijos de extranjeros;\n                                                                    26.08.2005\n     2º.- Los hijos.";
        assert_eq!(
            unwrap_bcn_text(t),
            [
                "Artículo 10.- Son chilenos:",
                "1º.- Los nacidos en el territorio de Chile, con excepción de los hijos de extranjeros;",
                "2º.- Los hijos."
            ]
        );
    }
}
