//! Splits a long article into passages at inciso boundaries (numerals, letters, roman
//! incisos, §), never mid-sentence, and labels each piece with the inciso it starts in
//! ("N° 24", "inciso LXXVIII", "§ 1º", "letra a)").

use std::sync::LazyLock;

use regex::Regex;

use crate::Line;

/// Passages longer than this many chars are split. Sized so a passage fits a 512-token
/// embedding window in Spanish or Portuguese and stays readable as a citation.
pub const MAX_PASSAGE_CHARS: usize = 1500;
/// A split at an inciso boundary is taken only once the piece has this much text.
const MIN_PIECE_CHARS: usize = 300;

/// A piece of an article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The text, lines joined by `\n`.
    pub text: String,
    /// The inciso it starts in ("N° 24", "letra a)"), when it does not start at the article's
    /// head.
    pub sub_label: Option<String>,
    /// Page of its first line.
    pub page: Option<u32>,
    /// Char offset of its first char, relative to the article's first char.
    pub offset: usize,
}

static NUMERAL_CL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)\s*[°º]\s*\.?\s*-").expect("regex"));
static NUMERAL_DOT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)[.)]\s+\p{Lu}").expect("regex"));
static ROMAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([IVXLC]+)\s*[–—-]\s").expect("regex"));
static PARAGRAPH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(§\s*\d+\s*[º°o]?|Parágrafo único)").expect("regex"));
static LETTER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([a-z])\)\s").expect("regex"));
static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.;:]\s+[\p{Lu}¿¡«\x22(]").expect("regex"));

/// Which inciso a line opens, as (level, label): level 0 numerals/incisos/§, level 1 letters.
fn inciso_of(line: &str) -> Option<(u8, String)> {
    let l = line.trim_start();
    if let Some(c) = NUMERAL_CL.captures(l) {
        return Some((0, format!("N° {}", &c[1])));
    }
    if let Some(c) = ROMAN.captures(l) {
        return Some((0, format!("inciso {}", &c[1])));
    }
    if let Some(c) = PARAGRAPH.captures(l) {
        let p = c[1].split_whitespace().collect::<Vec<_>>().join(" ");
        return Some((
            0,
            if p.starts_with('P') {
                p.to_lowercase()
            } else {
                p
            },
        ));
    }
    if let Some(c) = NUMERAL_DOT.captures(l) {
        return Some((0, format!("inciso {}", &c[1])));
    }
    if let Some(c) = LETTER.captures(l) {
        return Some((1, format!("letra {})", &c[1])));
    }
    None
}

/// Splits one over-long line into sentence-sized runs, each at most `max` chars when the
/// sentences allow it.
fn sentences(line: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cut_points: Vec<usize> = SENTENCE_END
        .find_iter(line)
        .map(|m| m.start() + m.as_str().find(char::is_whitespace).unwrap_or(1))
        .collect();
    cut_points.push(line.len());
    let mut last_ok = None;
    for &cut in &cut_points {
        if line[start..cut].chars().count() > max {
            match last_ok {
                Some(ok) if ok > start => {
                    out.push(line[start..ok].trim().to_string());
                    start = ok;
                }
                _ => {
                    // One sentence longer than a passage: keep it whole rather than cut it.
                    out.push(line[start..cut].trim().to_string());
                    start = cut;
                    last_ok = None;
                    continue;
                }
            }
        }
        last_ok = Some(cut);
    }
    if start < line.len() && !line[start..].trim().is_empty() {
        out.push(line[start..].trim().to_string());
    }
    out
}

/// Splits an article's lines into pieces of at most [`MAX_PASSAGE_CHARS`] chars.
pub fn split_article(lines: &[Line]) -> Vec<Piece> {
    split_article_with(lines, MAX_PASSAGE_CHARS)
}

fn split_article_with(lines: &[Line], max: usize) -> Vec<Piece> {
    let total: usize = lines.iter().map(|l| l.text.chars().count() + 1).sum();
    let mut pieces = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_len = 0usize;
    let mut cur_page = None;
    let mut cur_offset = 0usize;
    let mut cur_label: Option<String> = None;
    let (mut primary, mut secondary): (Option<String>, Option<String>) = (None, None);
    let mut offset = 0usize;
    let label_now = |p: &Option<String>, s: &Option<String>| match (p, s) {
        (Some(p), Some(s)) => Some(format!("{p}, {s}")),
        (Some(p), None) => Some(p.clone()),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };

    for (i, line) in lines.iter().enumerate() {
        let line_offset = offset;
        offset += line.text.chars().count() + 1;
        if line.text.trim().is_empty() {
            continue;
        }
        let opens = if i == 0 { None } else { inciso_of(&line.text) };
        if let Some((level, label)) = &opens {
            if *level == 0 {
                primary = Some(label.clone());
                secondary = None;
            } else {
                secondary = Some(label.clone());
            }
        }
        let runs = if line.text.chars().count() > max {
            sentences(&line.text, max)
        } else {
            vec![line.text.clone()]
        };
        for (j, run) in runs.into_iter().enumerate() {
            let len = run.chars().count() + 1;
            let at_boundary = j == 0 && opens.as_ref().is_some_and(|(lvl, _)| *lvl == 0);
            let flush = !cur.is_empty()
                && (cur_len + len > max
                    || (total > max && at_boundary && cur_len >= MIN_PIECE_CHARS));
            if flush {
                pieces.push(Piece {
                    text: cur.join("\n"),
                    sub_label: cur_label.take(),
                    page: cur_page,
                    offset: cur_offset,
                });
                cur.clear();
                cur_len = 0;
            }
            if cur.is_empty() {
                cur_page = line.page;
                cur_offset = line_offset;
                cur_label = if pieces.is_empty() {
                    None
                } else {
                    label_now(&primary, &secondary)
                };
            }
            cur_len += len;
            cur.push(run);
        }
    }
    if !cur.is_empty() {
        pieces.push(Piece {
            text: cur.join("\n"),
            sub_label: cur_label,
            page: cur_page,
            offset: cur_offset,
        });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<Line> {
        v.iter().map(|s| Line::new(*s)).collect()
    }

    #[test]
    fn short_article_is_one_piece() {
        let p = split_article(&lines(&["Artículo 2º.- Son emblemas nacionales."]));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].sub_label, None);
    }

    #[test]
    fn long_article_splits_at_numerals_with_labels() {
        let filler = "Texto del numeral con contenido suficiente para crecer. ".repeat(8);
        let l1 = format!("23º.- La libertad para adquirir. {filler}");
        let l2 = format!("24º.- El derecho de propiedad en sus diversas especies. {filler}");
        let l3 = format!("a) Subliteral. {filler}");
        let art = lines(&["Artículo 19.- La Constitución asegura:", &l1, &l2, &l3]);
        let p = split_article_with(&art, 800);
        let labels: Vec<_> = p.iter().map(|x| x.sub_label.clone()).collect();
        assert_eq!(labels[0], None);
        assert!(labels.contains(&Some("N° 24".into())), "{labels:?}");
        assert!(p
            .iter()
            .any(|x| x.text.starts_with("24º.- El derecho de propiedad")));
        assert!(p.iter().all(|x| x.text.chars().count() <= 800));
    }

    #[test]
    fn never_cuts_mid_sentence() {
        let long = "Primera oración bastante larga. ".repeat(40) + "Última oración.";
        let p = split_article_with(&lines(&["Art. 1º", &long]), 300);
        assert!(p.len() > 2);
        for piece in &p[1..] {
            assert!(piece.text.ends_with('.'), "{}", piece.text);
        }
    }

    #[test]
    fn portuguese_incisos_and_paragraphs() {
        assert_eq!(inciso_of("LXXVIII – a todos").unwrap().1, "inciso LXXVIII");
        assert_eq!(inciso_of("§ 1º As normas").unwrap().1, "§ 1º");
        assert_eq!(
            inciso_of("Parágrafo único. Todo").unwrap().1,
            "parágrafo único"
        );
        assert_eq!(
            inciso_of("a) Toda persona").unwrap(),
            (1, "letra a)".into())
        );
    }
}
