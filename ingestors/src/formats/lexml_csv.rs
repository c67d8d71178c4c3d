//! The per-dispositivo CSV files of Brazilian federal laws (`Tipo,Rotulo,Num_Inicio,
//! Num_Final,Texto,urn`): one row a caput, inciso, parágrafo or alínea with its LexML URN.
//! A bracketed prefix in `Texto` carries the law's nickname and its headings.

use std::sync::LazyLock;

use cabildo_core::{Jurisdiction, Language, NormKind};
use cabildo_text::Line;
use regex::Regex;
use serde::Deserialize;

use super::{decode, Parsed};
use crate::meta::{parse_date, FileContext};
use crate::{IngestError, Unit};

/// Site chrome that leaked into the scraped breadcrumb.
static CHROME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"all_inclusive|Regulamentação|remove_red_eye|Normas correlatas").expect("regex")
});
/// lei_13709_20180814, decreto_lei_4657_19420904, lei_complementar_95_19980226
static FILE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z_]+?)_(\d+)_(\d{8})$").expect("regex"));

#[derive(Deserialize)]
struct Row {
    #[serde(rename = "Rotulo")]
    rotulo: String,
    #[serde(rename = "Texto")]
    texto: String,
    urn: String,
}

/// "[ … Lei Geral de Proteção de Dados Pessoais (LGPD). | DISPOSIÇÕES PRELIMINARES | ] Texto"
/// → (nickname, headings, text).
fn split_prefix(texto: &str) -> (Option<String>, Vec<String>, String) {
    let t = texto.trim();
    let Some(rest) = t.strip_prefix('[') else {
        return (None, Vec::new(), t.to_string());
    };
    let Some(end) = rest.find(" ]").or_else(|| rest.find(']')) else {
        return (None, Vec::new(), t.to_string());
    };
    let inner = &rest[..end];
    let body = rest[end..]
        .trim_start_matches([' ', ']'])
        .trim()
        .to_string();
    let mut parts = inner
        .split('|')
        .map(|p| CHROME.replace_all(p, "").trim().to_string());
    let nickname = parts
        .next()
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('.').to_string());
    let headings = parts.filter(|p| !p.is_empty()).collect();
    (nickname, headings, body)
}

fn kind_name(kind: &str) -> (&'static str, NormKind) {
    match kind {
        "lei" => ("Lei", NormKind::Ley),
        "lei_complementar" => ("Lei Complementar", NormKind::Ley),
        "decreto_lei" => ("Decreto-Lei", NormKind::Ley),
        "decreto" => ("Decreto", NormKind::Decreto),
        _ => ("Norma", NormKind::Otro),
    }
}

pub(crate) fn parse(ctx: &FileContext) -> Result<Parsed, IngestError> {
    let text = decode(ctx.bytes, None);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| IngestError::malformed("CSV", e))?
        .clone();
    for needed in ["Rotulo", "Texto", "urn"] {
        if !headers.iter().any(|h| h == needed) {
            return Err(IngestError::Unsupported(format!(
                "CSV without a `{needed}` column (expected per-dispositivo legislation chunks)"
            )));
        }
    }
    let rows: Vec<Row> = reader
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| IngestError::malformed("CSV", e))?;
    let first = rows
        .first()
        .ok_or_else(|| IngestError::NoText("CSV has a header but no rows".into()))?;
    let norm_urn = first
        .urn
        .split('!')
        .next()
        .unwrap_or(&first.urn)
        .to_string();

    let stem = ctx.stem();
    let (label, kind, number, date) = match FILE_NAME.captures(&stem) {
        Some(c) => {
            let (label, kind) = kind_name(&c[1]);
            (
                label,
                kind,
                Some(c[2].to_string()),
                parse_date(&format!("{}-{}-{}", &c[3][..4], &c[3][4..6], &c[3][6..])),
            )
        }
        None => ("Norma", NormKind::Otro, None, None),
    };
    let nickname = rows.iter().find_map(|r| split_prefix(&r.texto).0);
    let mut title = match (&number, date) {
        (Some(n), Some(d)) => format!("{label} nº {n}, de {}", d.format("%d/%m/%Y")),
        (Some(n), None) => format!("{label} nº {n}"),
        _ => stem.clone(),
    };
    if let Some(nick) = nickname.filter(|n| n.len() < 120) {
        title = format!("{title} ({nick})");
    }

    let mut norm = ctx.norm(norm_urn.clone(), title, kind, "lexml-csv", Language::Pt);
    norm.jurisdiction = Jurisdiction::country("BR");
    norm.number = number;
    norm.publication_date = date;
    norm.valid_from = date;
    norm.official_url = Some(format!("https://www.lexml.gov.br/urn/{norm_urn}"));

    let units = rows
        .into_iter()
        .filter_map(|r| {
            let (_, headings, body) = split_prefix(&r.texto);
            if body.is_empty() {
                return None;
            }
            let provision = r
                .rotulo
                .split_once(", ")
                .map_or(r.rotulo.as_str(), |(_, p)| p)
                .trim_end_matches('.')
                .to_string();
            let anchor = r.urn.split_once('!').map(|(_, a)| a.to_string());
            Some(Unit {
                headings,
                provision,
                url: Some(format!("https://www.lexml.gov.br/urn/{}", r.urn)),
                anchor,
                lines: vec![Line::new(body)],
                start: None,
                is_article: true,
            })
        })
        .collect();
    Ok((norm, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_gives_nickname_and_headings() {
        let (nick, heads, body) = split_prefix("[ all_inclusiveRegulamentaçãoremove_red_eyeNormas correlatas Lei Geral de Proteção de Dados Pessoais (LGPD). | DISPOSIÇÕES PRELIMINARES | ] Esta Lei dispõe.");
        assert_eq!(
            nick.as_deref(),
            Some("Lei Geral de Proteção de Dados Pessoais (LGPD)")
        );
        assert_eq!(heads, ["DISPOSIÇÕES PRELIMINARES"]);
        assert_eq!(body, "Esta Lei dispõe.");
    }
}
