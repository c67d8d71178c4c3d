//! The legal tokenizer: splits text into words (with byte offsets into the original, so
//! highlighting works) and normalises legal references so that the many ways of writing the
//! same citation meet in the index:
//!
//! - `19.628` → `19628` (thousands dots in norm numbers);
//! - `5º`, `1o`, `2ª` → `5`, `1`, `2` (ordinal marks; `1°` splits on its own);
//! - `N°`, `Nº`, `Núm.`, `nro.` before a number are dropped;
//! - `art.` / `arts.` → `artículo(s)` (Spanish) or `artigo(s)` (Portuguese), `inc.` → `inciso`;
//! - `§` → `parágrafo`.
//!
//! Case, accents, stop words and stemming are left to the analyser chain that follows.

use cabildo_core::Language;

/// One token: its normalised text and the byte range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalToken {
    /// Normalised text (not yet lower-cased).
    pub text: String,
    /// Byte offset of the first byte in the original text.
    pub start: usize,
    /// Byte offset one past the last byte in the original text.
    pub end: usize,
}

fn raw_words(text: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        let after_mark = matches!(prev, 'º' | 'ª');
        prev = c;
        if c.is_alphanumeric() {
            // "Nº19.628": the number marker and the number are two words.
            if let (Some(s), true) = (start, after_mark && c.is_ascii_digit()) {
                words.push((s, i));
                start = None;
            }
            if start.is_none() {
                start = Some(i);
            }
        } else {
            if let Some(s) = start.take() {
                words.push((s, i));
            }
            if c == '§' {
                words.push((i, i + c.len_utf8()));
            }
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    words
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `text` into legal tokens for `language`.
pub fn legal_tokens(text: &str, language: Language) -> Vec<LegalToken> {
    let words = raw_words(text);
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    let next_char = |end: usize| text[end..].chars().next();
    while i < words.len() {
        let (start, mut end) = words[i];
        let word = &text[start..end];
        i += 1;

        if word == "§" {
            out.push(LegalToken {
                text: "parágrafo".into(),
                start,
                end,
            });
            continue;
        }

        // Thousands-grouped numbers: 19.628, 1.000.000
        if word.len() <= 3 && is_digits(word) {
            let mut number = word.to_string();
            while i < words.len() {
                let (ns, ne) = words[i];
                let next = &text[ns..ne];
                let joined_by_dot = &text[end..ns] == ".";
                let group = next.len() >= 3
                    && next.is_char_boundary(3)
                    && is_digits(&next[..3])
                    && (next.len() == 3 || is_ordinal_mark(&next[3..]));
                if joined_by_dot && group {
                    number.push_str(&next[..3]);
                    end = ne;
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(LegalToken {
                text: number,
                start,
                end,
            });
            continue;
        }

        // Ordinal marks glued to numbers: 5º, 1o, 2ª
        if let Some(digits) = strip_ordinal(word) {
            out.push(LegalToken {
                text: digits.to_string(),
                start,
                end,
            });
            continue;
        }

        let lower = word.to_lowercase();
        let followed_by_dot = next_char(end) == Some('.');
        let next_is_number = words
            .get(i)
            .is_some_and(|&(ns, _)| text[ns..].starts_with(|c: char| c.is_ascii_digit()));

        // "N° 19.628", "Nº 5", "Núm. 100", "nro. 3": the marker adds nothing to the number.
        let number_marker = matches!(lower.as_str(), "n" | "nº" | "nª" | "nro" | "núm" | "num")
            || (lower == "no" && followed_by_dot);
        if number_marker && next_is_number {
            continue;
        }

        let expanded = match (lower.as_str(), language) {
            ("art", Language::Pt) if followed_by_dot || next_is_number => Some("artigo"),
            ("arts", Language::Pt) if followed_by_dot => Some("artigos"),
            ("art", _) if followed_by_dot || next_is_number => Some("artículo"),
            ("arts", _) if followed_by_dot => Some("artículos"),
            ("inc", _) if followed_by_dot => Some("inciso"),
            _ => None,
        };
        out.push(LegalToken {
            text: expanded.map_or_else(|| word.to_string(), str::to_string),
            start,
            end,
        });
    }
    out
}

fn is_ordinal_mark(s: &str) -> bool {
    matches!(s, "º" | "ª" | "o")
}

fn strip_ordinal(word: &str) -> Option<&str> {
    let digits_end = word.find(|c: char| !c.is_ascii_digit())?;
    if digits_end == 0 {
        return None;
    }
    is_ordinal_mark(&word[digits_end..]).then(|| &word[..digits_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str, lang: Language) -> Vec<String> {
        legal_tokens(s, lang)
            .into_iter()
            .map(|t| t.text.to_lowercase())
            .collect()
    }

    #[test]
    fn law_numbers_meet() {
        let a = texts("Ley N° 19.628", Language::Es);
        assert_eq!(a, ["ley", "19628"]);
        assert_eq!(texts("ley 19628", Language::Es), a);
        assert_eq!(texts("Ley Nº19.628", Language::Es), a);
        assert_eq!(texts("LEY NÚM. 21.180", Language::Es), ["ley", "21180"]);
    }

    #[test]
    fn article_references_meet() {
        assert_eq!(texts("art. 5º", Language::Es), ["artículo", "5"]);
        assert_eq!(texts("artículo 5", Language::Es), ["artículo", "5"]);
        assert_eq!(texts("Artículo 1o.", Language::Es), ["artículo", "1"]);
        assert_eq!(
            texts("Art. 5º, § 1º", Language::Pt),
            ["artigo", "5", "parágrafo", "1"]
        );
    }

    #[test]
    fn offsets_point_into_the_original() {
        let s = "Ley N° 19.628 sobre";
        let toks = legal_tokens(s, Language::Es);
        assert_eq!(&s[toks[1].start..toks[1].end], "19.628");
        assert_eq!(&s[toks[2].start..toks[2].end], "sobre");
    }

    #[test]
    fn ordinary_words_and_decimals_untouched() {
        assert_eq!(
            texts("no hay 3.5 veces", Language::Es),
            ["no", "hay", "3", "5", "veces"]
        );
        assert_eq!(texts("arte", Language::Es), ["arte"]);
        assert_eq!(texts("12.así", Language::Es), ["12", "así"]);
        assert_eq!(texts("Ley 19.628º", Language::Es), ["ley", "19628"]);
    }
}
