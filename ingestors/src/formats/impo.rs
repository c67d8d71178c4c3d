//! IMPO (Uruguay) JSON, as served in Latin-1: a norm with its `articulos`, each with its
//! headings (`titulosArticulo`), title, text and URL on impo.com.uy.

use std::sync::LazyLock;

use cabildo_core::{Jurisdiction, NormKind};
use cabildo_text::{guess_language, title_case, Line};
use regex::Regex;
use serde::Deserialize;

use super::{decode, Parsed};
use crate::meta::{parse_date, FileContext};
use crate::{IngestError, Unit};

static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]+>").expect("regex"));

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImpoNorm {
    tipo_norma: Option<String>,
    nro_norma: Option<serde_json::Value>,
    anio_norma: Option<serde_json::Value>,
    nombre_norma: Option<String>,
    fecha_promulgacion: Option<String>,
    fecha_publicacion: Option<String>,
    articulos: Vec<ImpoArticle>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImpoArticle {
    titulos_articulo: Option<String>,
    titulo_articulo: Option<String>,
    url_articulo: Option<String>,
    texto_articulo: Option<String>,
}

fn value_str(v: &Option<serde_json::Value>) -> Option<String> {
    match v.as_ref()? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// IMPO text is hard-wrapped; an indented line or a blank line starts a new paragraph.
fn paragraphs(text: &str) -> Vec<String> {
    let text = TAG.replace_all(text, "\n");
    let mut paras: Vec<String> = Vec::new();
    let mut new_para = true;
    for raw in text.lines() {
        let indent = raw.len() - raw.trim_start().len();
        let body = raw.trim();
        if body.is_empty() {
            new_para = true;
            continue;
        }
        match paras.last_mut() {
            Some(last) if !new_para && indent < 2 => {
                last.push(' ');
                last.push_str(body);
            }
            _ => paras.push(body.to_string()),
        }
        new_para = false;
    }
    paras
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let text = decode(ctx.bytes, Some("iso-8859-1"));
    let n: ImpoNorm = serde_json::from_str(&text).map_err(|e| {
        IngestError::malformed(
            "IMPO JSON",
            format!("{e} (expected an IMPO norm with `articulos`)"),
        )
    })?;
    let tipo = n.tipo_norma.clone().unwrap_or_else(|| "Norma".into());
    let nro = value_str(&n.nro_norma);
    let mut title = title_case(&tipo);
    if let Some(nro) = &nro {
        title = format!("{title} N° {nro}");
    }
    if let Some(nombre) = n.nombre_norma.as_deref().filter(|s| !s.trim().is_empty()) {
        title = format!(
            "{title}, {}",
            title_case(nombre.trim()).to_lowercase_first()
        );
    }
    let base_path = n
        .articulos
        .iter()
        .find_map(|a| a.url_articulo.as_deref())
        .and_then(|u| u.rsplit_once('/').map(|(base, _)| base.to_string()));
    let jurisdiction = Jurisdiction::country("UY");
    let id = match &base_path {
        Some(b) => format!(
            "uy-impo-{}",
            cabildo_text::slug(b.trim_start_matches("/bases/"))
        ),
        None => ctx.path_id(&jurisdiction),
    };
    let sample: String = n
        .articulos
        .iter()
        .take(20)
        .filter_map(|a| a.texto_articulo.as_deref())
        .collect();
    let kind = NormKind::guess(&tipo);
    let mut norm = ctx.norm(id, title, kind, "impo-json", guess_language(&sample));
    norm.jurisdiction = jurisdiction;
    let year = value_str(&n.anio_norma);
    norm.number = nro.map(|nro| match &year {
        Some(y) => format!("{nro}/{y}"),
        None => nro,
    });
    norm.official_url = base_path.map(|b| format!("https://www.impo.com.uy{b}"));
    norm.publication_date = n.fecha_publicacion.as_deref().and_then(parse_date);
    norm.valid_from = n
        .fecha_promulgacion
        .as_deref()
        .and_then(parse_date)
        .or(norm.publication_date);

    let mut headings: Vec<String> = Vec::new();
    let mut units = Vec::new();
    for a in n.articulos {
        if let Some(t) = a.titulos_articulo.as_deref() {
            let hs: Vec<String> = t
                .split("<br>")
                .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|h| !h.is_empty())
                .collect();
            if !hs.is_empty() {
                headings = hs;
            }
        }
        let paras = paragraphs(a.texto_articulo.as_deref().unwrap_or(""));
        if paras.is_empty() {
            continue;
        }
        let provision = a
            .titulo_articulo
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Artículo".into());
        let mut lines = vec![Line::new(format!("{provision}. {}", paras[0]))];
        lines.extend(paras.into_iter().skip(1).map(Line::new));
        units.push(Unit {
            headings: headings.clone(),
            anchor: Some(cabildo_text::slug(&provision)),
            provision,
            url: a
                .url_articulo
                .map(|u| format!("https://www.impo.com.uy{u}")),
            lines,
            start: None,
            is_article: true,
        });
    }
    Ok((norm, units))
}

trait LowerFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowerFirst for String {
    /// "Reglamentacion De La Ley" stays readable after a comma: only the first letter drops.
    fn to_lowercase_first(&self) -> String {
        let mut c = self.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_paragraphs_are_joined() {
        let t = "     La República Oriental del Uruguay es la asociación política de todos\r\nlos habitantes.\r\n     Segundo inciso.\r\n ";
        assert_eq!(
            paragraphs(t),
            [
                "La República Oriental del Uruguay es la asociación política de todos los habitantes.",
                "Segundo inciso."
            ]
        );
    }
}
