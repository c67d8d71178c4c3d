//! Legal segmentation of plain text (Spanish and Portuguese): finds the structural headings
//! (Parte, Libro/Livro, Título, Capítulo, Sección/Seção, Párrafo) and the articles
//! ("Artículo 1°.-", "Art. 5º", "ARTICULO 13", "Artículo transitorio", "ARTÍCULO ÚNICO"),
//! and returns one [`Article`] per article with its breadcrumb of headings.
//!
//! Text that is not inside an article (a preamble, the body of a form) comes back as units
//! without a number, labelled by the heading above them.

use std::sync::LazyLock;

use regex::Regex;

/// A line of extracted text and the PDF page it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, without the line break.
    pub text: String,
    /// 1-based page, for PDFs.
    pub page: Option<u32>,
}

impl Line {
    /// A line with no page.
    pub fn new(text: impl Into<String>) -> Self {
        Line {
            text: text.into(),
            page: None,
        }
    }
}

/// A structural unit found in plain text: an article, or the text between headings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Headings above it, outermost first ("Capítulo III DE LOS DERECHOS…").
    pub headings: Vec<String>,
    /// Citable label ("Artículo 19", "Art. 5º"); for text outside articles, the nearest
    /// heading or "Encabezado".
    pub provision: String,
    /// The article number as written ("19", "1°", "transitorio"); `None` outside articles.
    pub number: Option<String>,
    /// Its lines, heading line included.
    pub lines: Vec<Line>,
    /// Char offset of its first line in the whole text (lines joined by `\n`).
    pub start: usize,
}

impl Article {
    /// The article's text, lines joined by `\n`.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether it holds any non-blank text besides its label.
    fn has_text(&self) -> bool {
        self.lines.iter().any(|l| !l.text.trim().is_empty())
    }
}

static ARTICLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        (?P<kw>art[íi]culo|artigo|art\.)\s*
        (?P<num>
            \d+(?:\s*[°º]|o\b)?(?:[\s-]*(?:bis|ter|qu[aá]ter|quinquies|sexies|septies|octies)\b|\s*-\s*[a-z]\b)?
          | (?:[úu]nico|primero|segundo|tercero|cuarto|quinto|sexto|s[ée]ptimo|octavo|noveno|d[ée]cimo)(?:\s+transitorio)?
          | transitorio
        )
        (?P<sep>\s*(?:\.-|\.–|\.\s|\.$|-|–|—|:|\s|$))",
    )
    .expect("article regex")
});

static HEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        (?P<kw>parte|libro|livro|t[íi]tulo|cap[íi]tulo|secci[óo]n|se[çc][ãa]o|subsecci[óo]n|subse[çc][ãa]o|p[áa]rrafo)
        \s+
        (?P<id>[ivxlcdm]+\b|\d+[°º]?|[úu]nic[oa]|preliminar|primer[oa]?|segund[oa]|tercer[oa]?|cuart[oa]|quint[oa]|sext[oa]|s[ée]ptim[oa]|octav[oa]|noven[oa]|d[ée]cim[oa])",
    )
    .expect("heading regex")
});

static DISPOSITIONS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^disposi(ci[óo]n|ciones|[çc][ãa]o|[çc][õo]es)\s+(transitori|finai|final|general|complementari|adicional|derogatori|constitucionais|preliminar)")
        .expect("dispositions regex")
});

static MD_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\([^)]*\)").expect("md link regex"));

fn heading_rank(keyword: &str) -> u8 {
    let k = keyword.to_lowercase();
    match k.as_str() {
        "parte" => 1,
        "libro" | "livro" => 2,
        "título" | "titulo" => 3,
        "capítulo" | "capitulo" => 4,
        "sección" | "seccion" | "seção" | "secão" | "seçao" | "secao" => 5,
        _ => 6,
    }
}

/// The citable label of an article heading at the start of `line` ("Artículo 10.- Son…" →
/// "Artículo 10"), or `None` when the line does not open an article.
pub fn article_label(line: &str) -> Option<String> {
    article_start(line).map(|(label, _, _)| label)
}

/// Parses an article heading at the start of `line`: (label, number, rest of the line).
pub(crate) fn article_start(line: &str) -> Option<(String, String, String)> {
    let first = line.chars().next()?;
    // Running text says "artículo 5 de la ley…"; headings are capitalised.
    if !first.is_uppercase() {
        return None;
    }
    let caps = ARTICLE.captures(line)?;
    let kw = caps.name("kw")?.as_str();
    let num = caps.name("num")?.as_str().trim();
    let sep = caps.name("sep")?.as_str();
    let rest = line[caps.get(0)?.end()..].trim();
    // "Art. 5º Todos são iguais" is a heading; "Art. 5 da Lei" (lower case after) is not.
    if sep.trim().is_empty() && !rest.is_empty() {
        let next = rest.chars().next()?;
        if !(next.is_uppercase() || next == '"' || next == '«' || next == '(') {
            return None;
        }
    }
    let kw_label = if kw.eq_ignore_ascii_case("art.") {
        "Art."
    } else if kw.to_lowercase() == "artigo" {
        "Artigo"
    } else {
        "Artículo"
    };
    let num_clean: String = num.split_whitespace().collect::<Vec<_>>().join(" ");
    let num_clean = if num_clean.chars().all(|c| c.is_alphabetic() || c == ' ') {
        num_clean.to_lowercase()
    } else {
        num_clean
    };
    Some((
        format!("{kw_label} {num_clean}"),
        num_clean,
        rest.to_string(),
    ))
}

fn clean_markup(line: &str) -> String {
    let l = MD_LINK.replace_all(line, "$1");
    l.replace("**", "").trim().to_string()
}

fn is_heading_line(text: &str) -> Option<u8> {
    // Table-of-contents entries ("TÍTULO VII. Economía y Hacienda ....... 25") are not headings.
    if text.chars().count() > 200 || !text.chars().next()?.is_uppercase() || text.contains("....") {
        return None;
    }
    if let Some(c) = HEADING.captures(text) {
        return Some(heading_rank(c.name("kw")?.as_str()));
    }
    if DISPOSITIONS.is_match(text) && text.chars().count() < 80 {
        return Some(3);
    }
    None
}

/// A short line that names the heading above it ("BASES DE LA INSTITUCIONALIDAD").
fn is_heading_title(text: &str) -> bool {
    let n = text.chars().count();
    n > 0
        && n < 140
        && !text.ends_with(['.', ';', ','])
        && article_start(text).is_none()
        && is_heading_line(text).is_none()
        && text
            .chars()
            .filter(|c| c.is_alphabetic())
            .all(|c| c.is_uppercase())
}

/// Splits lines of plain text into articles and the text between them.
pub fn segment(lines: &[Line]) -> Vec<Article> {
    let mut out: Vec<Article> = Vec::new();
    let mut stack: Vec<(u8, String)> = Vec::new();
    let mut current: Option<Article> = None;
    let mut title_pending = false;
    let mut offset = 0usize;

    let headings_of = |stack: &Vec<(u8, String)>| stack.iter().map(|(_, t)| t.clone()).collect();
    let close = |current: &mut Option<Article>, out: &mut Vec<Article>| {
        if let Some(a) = current.take() {
            if a.has_text() {
                out.push(a);
            }
        }
    };

    for raw in lines {
        let line_start = offset;
        offset += raw.text.chars().count() + 1;
        let trimmed = raw.text.trim();
        if trimmed.is_empty() {
            if let Some(a) = current.as_mut() {
                a.lines.push(Line {
                    text: String::new(),
                    page: raw.page,
                });
            }
            continue;
        }

        // Markdown headings: "## Capítulo I", "## ARTICULO 1".
        let md_level = trimmed.chars().take_while(|&c| c == '#').count();
        let is_md_heading = md_level > 0 && trimmed[md_level..].starts_with(' ');
        let text = clean_markup(if is_md_heading {
            &trimmed[md_level..]
        } else {
            trimmed
        });
        if text.is_empty() {
            continue;
        }

        if title_pending {
            title_pending = false;
            if current.is_none() && is_heading_title(&text) {
                if let Some((_, title)) = stack.last_mut() {
                    title.push(' ');
                    title.push_str(&text);
                    continue;
                }
            }
        }

        if let Some((label, number, _rest)) = article_start(&text) {
            close(&mut current, &mut out);
            current = Some(Article {
                headings: headings_of(&stack),
                provision: label,
                number: Some(number),
                lines: vec![Line {
                    text: text.clone(),
                    page: raw.page,
                }],
                start: line_start,
            });
            continue;
        }

        let rank = if is_md_heading {
            Some(md_level as u8)
        } else {
            is_heading_line(&text)
        };
        if let Some(rank) = rank {
            close(&mut current, &mut out);
            while stack.last().is_some_and(|(r, _)| *r >= rank) {
                stack.pop();
            }
            stack.push((rank, text.clone()));
            title_pending = true;
            continue;
        }

        match current.as_mut() {
            Some(a) => a.lines.push(Line {
                text: text.clone(),
                page: raw.page,
            }),
            None => {
                let provision = stack
                    .last()
                    .map_or_else(|| "Encabezado".to_string(), |(_, t)| t.clone());
                current = Some(Article {
                    headings: headings_of(&stack),
                    provision,
                    number: None,
                    lines: vec![Line {
                        text: text.clone(),
                        page: raw.page,
                    }],
                    start: line_start,
                });
            }
        }
    }
    close(&mut current, &mut out);
    for a in &mut out {
        while a.lines.last().is_some_and(|l| l.text.is_empty()) {
            a.lines.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<Line> {
        s.lines().map(Line::new).collect()
    }

    #[test]
    fn article_heading_forms() {
        for (line, label) in [
            ("Artículo 1°.- Las personas nacen libres", "Artículo 1°"),
            ("Art. 5º Todos são iguais perante a lei", "Art. 5º"),
            ("ARTICULO 13.- Son ciudadanos", "Artículo 13"),
            ("Artículo transitorio.- Mientras", "Artículo transitorio"),
            ("ARTÍCULO ÚNICO.- Se REFORMAN", "Artículo único"),
            ("Artículo 1o. Las reformas", "Artículo 1o"),
            ("Artículo 14", "Artículo 14"),
            ("Artículo 24 bis.- Texto", "Artículo 24 bis"),
            ("Art. 1º-A. Texto", "Art. 1º-A"),
            // A Portuguese article opening with "A" or "O" is not a letter suffix.
            ("Art. 2º A disciplina da proteção de dados", "Art. 2º"),
            ("Art. 3º O cadastro é gratuito", "Art. 3º"),
        ] {
            let got = article_start(line).map(|(l, _, _)| l);
            assert_eq!(got.as_deref(), Some(label), "{line}");
        }
        assert!(article_start("artículo 5 de la ley").is_none());
        assert!(article_start("Art. 5 da Lei 8.906").is_none());
        assert!(article_start("Artesanos y obreros").is_none());
    }

    #[test]
    fn headings_become_breadcrumbs_and_absorb_their_title() {
        let text = "## Capítulo I\nBASES DE LA INSTITUCIONALIDAD\n\nArtículo 1°.- Las personas nacen libres.\nLa familia es el núcleo.\n\nArtículo 2º.- Son emblemas.\n## Capítulo II\nNACIONALIDAD\nArtículo 10.- Son chilenos:";
        let arts = segment(&lines(text));
        assert_eq!(arts.len(), 3);
        assert_eq!(
            arts[0].headings,
            ["Capítulo I BASES DE LA INSTITUCIONALIDAD"]
        );
        assert_eq!(arts[0].provision, "Artículo 1°");
        assert_eq!(
            arts[0].text(),
            "Artículo 1°.- Las personas nacen libres.\nLa familia es el núcleo."
        );
        assert_eq!(arts[2].headings, ["Capítulo II NACIONALIDAD"]);
    }

    #[test]
    fn plain_keyword_headings_nest_by_rank() {
        let text = "TITULO I\nDE LA PERSONA\nCAPITULO I\nDERECHOS\nARTICULO 1.- Uno.\nCAPITULO II\nARTICULO 2.- Dos.\nTITULO II\nARTICULO 3.- Tres.";
        let arts = segment(&lines(text));
        assert_eq!(
            arts[0].headings,
            ["TITULO I DE LA PERSONA", "CAPITULO I DERECHOS"]
        );
        assert_eq!(arts[1].headings, ["TITULO I DE LA PERSONA", "CAPITULO II"]);
        assert_eq!(arts[2].headings, ["TITULO II"]);
    }

    #[test]
    fn preamble_is_kept_outside_articles() {
        let arts = segment(&lines(
            "Visto: lo dispuesto.\nDecreto:\nArtículo 1.- Texto.",
        ));
        assert_eq!(arts[0].provision, "Encabezado");
        assert_eq!(arts[0].number, None);
        assert_eq!(
            arts[1].start,
            "Visto: lo dispuesto.\nDecreto:\n".chars().count()
        );
    }
}
