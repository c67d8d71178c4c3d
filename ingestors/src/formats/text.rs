//! Markdown, reStructuredText and plain text, with the YAML front-matter of LeyChile's
//! Markdown export (`id_norma`, `version_date`, `titulo_norma`, `source_url`…).

use std::sync::LazyLock;

use cabildo_core::{Language, NormKind};
use cabildo_text::{guess_language, tidy, title_case};
use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

use super::{decode, Parsed};
use crate::meta::{parse_date, FileContext};
use crate::IngestError;

/// Splits `---` front-matter from the body.
fn front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    match rest.find("\n---") {
        Some(end) => {
            let body = &rest[end + 4..];
            (Some(&rest[..end]), body.trim_start_matches(['\r', '\n']))
        }
        None => (None, text),
    }
}

/// The common name inside a long official title: "FIJA EL TEXTO … DE LA CONSTITUCION
/// POLITICA DE LA REPUBLICA DE CHILE" → "CONSTITUCION POLITICA DE LA REPUBLICA DE CHILE".
fn common_name(title: &str) -> &str {
    let upper = title.to_uppercase();
    for key in ["CONSTITUCION", "CONSTITUCIÓN", "CODIGO", "CÓDIGO"] {
        if let Some(i) = upper.find(key) {
            let rest = &title[i..];
            return rest.split([';', ',']).next().unwrap_or(rest).trim();
        }
    }
    title
}

/// A LeyChile note marker: the line `NOTA` where an editorial note is anchored.
static NOTE_MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^NOTA(?: \d+)?$").expect("regex"));

/// The body of a LeyChile editorial note ("Véase el Auto Acordado…", "El N° 8 del Art. Único
/// de la Ley 20390, publicada el 28.10.2009, derogó…"), as opposed to the law's own text that
/// resumes after a marker.
static NOTE_BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:Véase\b|(?:El|La|Los|Las)\b.*\b(?i:ley|decreto)\b.*\bpublicad[oa]s? el \d{1,2}\.\d{2}\.\d{4})",
    )
    .expect("regex")
});

/// LeyChile's Markdown keeps its editorial notes inline: a `NOTA` line wherever a note is
/// anchored (often mid-sentence, even mid-word: "las l / NOTA / eyes") and the notes' text
/// after a marker. Neither is the law's text, and BCN adds notes to old versions too, so
/// left in they would make an article differ between versions where its text did not.
/// Markers go and the text around them is joined again; note bodies go.
fn without_leychile_notes(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut after_marker = false;
    for line in lines {
        let t = line.trim();
        if NOTE_MARKER.is_match(t) {
            after_marker = true;
            continue;
        }
        if !after_marker {
            out.push(line);
            continue;
        }
        after_marker = false;
        if NOTE_BODY.is_match(t) {
            continue;
        }
        match out.last_mut() {
            Some(prev) if continues(prev, t) => {
                if glued(prev, t) {
                    prev.push_str(t);
                } else {
                    prev.push(' ');
                    prev.push_str(t);
                }
            }
            _ => out.push(line),
        }
    }
    out
}

/// Whether `next` continues the sentence of `prev` across a note marker (instead of
/// starting a new paragraph: `prev` ends a sentence and `next` starts with a capital).
fn continues(prev: &str, next: &str) -> bool {
    let prev = prev.trim_end();
    if prev.is_empty() || prev.starts_with('#') {
        return false;
    }
    let ends_sentence = prev.ends_with(['.', ':', ';']) && !prev.ends_with(".-");
    let starts_upper = next.chars().next().is_some_and(char::is_uppercase);
    !(ends_sentence && starts_upper)
}

/// Whether a marker split a word ("garantía / s", "l / eyes"): one side is a lone letter
/// that is not a word by itself.
fn glued(prev: &str, next: &str) -> bool {
    let lone = |w: &str| {
        let mut cs = w.chars();
        matches!((cs.next(), cs.next()), (Some(c), None) if c.is_alphabetic() && !"aeouyAEOUY".contains(c))
    };
    let last = prev.split_whitespace().next_back().unwrap_or("");
    let first = next.split_whitespace().next().unwrap_or("");
    lone(last) || lone(first)
}

/// reStructuredText section titles (a line underlined with `=`, `-`, `~`) become Markdown
/// headings so one segmenter reads both.
fn rst_headings(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for line in lines {
        let t = line.trim();
        let underline = t.len() >= 3
            && t.chars().all(|c| matches!(c, '=' | '-' | '~' | '^' | '*'))
            && out.last().is_some_and(|p| !p.trim().is_empty());
        if underline {
            if let Some(prev) = out.pop() {
                let level = match t.chars().next() {
                    Some('=') => 1,
                    Some('-') => 2,
                    _ => 3,
                };
                out.push(format!("{} {}", "#".repeat(level), prev.trim()));
            }
        } else {
            out.push(line);
        }
    }
    out
}

pub(crate) fn parse(ctx: &FileContext, ext: &str) -> Result<Parsed, IngestError> {
    let raw = decode(ctx.bytes, None);
    let (fm, body) = front_matter(&raw);
    let fm = match fm {
        Some(y) => YamlLoader::load_from_str(y)
            .map_err(|e| IngestError::malformed("front-matter YAML", e))?
            .into_iter()
            .next(),
        None => None,
    };
    let get = |key: &str| -> Option<String> {
        let v = &fm.as_ref()?[key];
        match v {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Integer(i) => Some(i.to_string()),
            Yaml::Boolean(b) => Some(b.to_string()),
            Yaml::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_string),
            _ => None,
        }
    };

    let body = tidy(body);
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    if ext == "rst" {
        lines = rst_headings(lines);
    }
    // LeyChile's export names its source: the norm is Chilean wherever the file sits.
    let from_leychile = get("id_norma").is_some()
        && get("source_url").is_some_and(|u| u.contains("leychile") || u.contains("bcn.cl"));
    if from_leychile {
        lines = without_leychile_notes(lines);
    }
    // The first level-1 heading is the document's own title, not part of its structure,
    // unless the file is one piece of a larger norm (a chapter of a constitution).
    let first_h1 = lines
        .iter()
        .position(|l| l.starts_with("# "))
        .filter(|&i| i < 5);
    let h1_title = first_h1.map(|i| lines[i][2..].trim().to_string());
    let fm_title = get("titulo_norma").or_else(|| get("titulo"));
    if first_h1.is_some() && (fm_title.is_some() || ctx.collection_title.is_none()) {
        if let Some(i) = first_h1 {
            lines.remove(i);
        }
    }

    let title = fm_title
        .as_deref()
        .map(|t| title_case(common_name(t)))
        .or_else(|| ctx.collection_title.clone())
        .or(h1_title)
        .unwrap_or_else(|| ctx.stem().replace(['-', '_'], " "));

    let language = guess_language(&body);
    let jurisdiction = if from_leychile && ctx.defaults.jurisdiction.is_none() {
        cabildo_core::Jurisdiction::country("CL")
    } else {
        ctx.jurisdiction()
    };
    let id = match get("id_norma") {
        Some(id) => format!("{}-leychile-{id}", jurisdiction.country.to_lowercase()),
        None => ctx.path_id(&jurisdiction),
    };
    let path_hint = ctx.path.to_string_lossy().to_lowercase();
    let kind = match get("compuesto").or_else(|| get("tipo")).as_deref() {
        Some(c) if c.starts_with("LEY") || c.starts_with("DL") => NormKind::Ley,
        _ if path_hint.contains("/codigos/") => NormKind::Codigo,
        _ if path_hint.contains("/constitucion") => NormKind::Constitucion,
        _ => NormKind::guess(&title),
    };
    let format = match ext {
        "rst" => "rst",
        "txt" => "text",
        _ => "markdown",
    };
    let mut norm = ctx.norm(id, title, kind, format, language);
    norm.jurisdiction = jurisdiction;
    if let Some(id_norma) = get("id_norma") {
        // The version's own page (LeyChile shows any version by the date it took effect).
        norm.official_url = Some(match get("version_date") {
            Some(v) => {
                format!("https://www.bcn.cl/leychile/navegar?idNorma={id_norma}&idVersion={v}")
            }
            None => format!("https://www.bcn.cl/leychile/navegar?idNorma={id_norma}"),
        });
    } else if let Some(url) = get("source_url") {
        norm.official_url = Some(url);
    }
    norm.number = get("numero").or_else(|| {
        get("compuesto").and_then(|c| {
            c.split_once('-')
                .map(|(_, n)| n.to_string())
                .filter(|n| n.chars().any(|c| c.is_ascii_digit()))
        })
    });
    norm.issuing_body = get("organismos").or_else(|| get("organismo"));
    norm.publication_date = get("fecha_publicacion_original")
        .or_else(|| get("fecha_publicacion"))
        .and_then(|d| parse_date(&d));
    norm.version_date = get("version_date").and_then(|d| parse_date(&d));
    norm.valid_from = get("fecha_vigencia_de_la_modificacion")
        .and_then(|d| parse_date(&d))
        .or(norm.version_date)
        .or(norm.publication_date);
    if get("derogada").is_some_and(|d| d == "true") {
        // A repealed norm's last version: the repeal took effect on the version's date.
        norm.valid_to = norm.version_date;
    }
    if norm.language != Language::Es && norm.jurisdiction.country == "BR" {
        norm.language = Language::Pt;
    }

    Ok((norm, super::segment_lines(lines)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leychile_notes_leave_the_text_whole() {
        let lines = [
            "Artículo 15.- En las votaciones populares, el sufragio será personal.",
            "El sufragio será obligatorio",
            "NOTA",
            "para los electores en todas las elecciones, conforme a las l",
            "NOTA",
            "eyes y la garantía",
            "NOTA",
            "s establecidas.",
            "Sólo podrá convocarse a votación popular en los casos previstos.",
            "NOTA",
            "El Nº 2 del artículo único de la ley 21773, publicada el 07.10.2025, dispone eliminar la frase.",
            "",
            "Artículo 20.-",
            "NOTA",
            "El que por causa de actos u omisiones arbitrarios sufra privación.",
            "Procederá, también, el recurso de protección.",
            "NOTA",
            "Véase el Auto Acordado, Corte Suprema, publicado el 28.08.2015.",
        ]
        .map(String::from)
        .to_vec();
        let out = without_leychile_notes(lines);
        assert_eq!(
            out,
            [
                "Artículo 15.- En las votaciones populares, el sufragio será personal.",
                "El sufragio será obligatorio para los electores en todas las elecciones, \
                 conforme a las leyes y la garantías establecidas.",
                "Sólo podrá convocarse a votación popular en los casos previstos.",
                "",
                "Artículo 20.- El que por causa de actos u omisiones arbitrarios sufra privación.",
                "Procederá, también, el recurso de protección.",
            ]
        );
    }

    #[test]
    fn common_name_of_long_titles() {
        assert_eq!(
            common_name("FIJA EL TEXTO REFUNDIDO, COORDINADO Y SISTEMATIZADO DE LA CONSTITUCION POLITICA DE LA REPUBLICA DE CHILE"),
            "CONSTITUCION POLITICA DE LA REPUBLICA DE CHILE"
        );
        assert_eq!(
            common_name("FIJA TEXTO DEL CODIGO DE AGUAS"),
            "CODIGO DE AGUAS"
        );
        assert_eq!(common_name("LEY DE PRUEBA"), "LEY DE PRUEBA");
    }

    #[test]
    fn front_matter_is_split() {
        let (fm, body) = front_matter("---\nid_norma: 1\n---\n\n# T\n");
        assert_eq!(fm, Some("id_norma: 1"));
        assert_eq!(body, "# T\n");
    }
}
