//! Whitespace and Unicode tidying shared by every format, and content hashes.

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// NFC-normalises, replaces no-break and odd spaces by plain spaces, drops soft hyphens and
/// control characters, collapses runs of spaces and trims each line; keeps line breaks
/// (they mark incisos) but collapses three or more into one blank line.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for raw_line in text.nfc().collect::<String>().lines() {
        let mut line = String::with_capacity(raw_line.len());
        let mut last_space = true;
        for c in raw_line.chars() {
            let c = match c {
                '\u{00A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' | '\u{200A}' | '\t' => ' ',
                '\u{00AD}' | '\u{200B}' | '\u{FEFF}' => continue,
                c if c.is_control() => continue,
                c => c,
            };
            if c == ' ' {
                if !last_space {
                    line.push(' ');
                }
                last_space = true;
            } else {
                line.push(c);
                last_space = false;
            }
        }
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !out.is_empty() {
                out.push('\n');
            }
            continue;
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

/// Hex SHA-256 of some bytes: the identity of a source file's content.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A lower-case ASCII slug for ids: accents folded, anything else becomes `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        if ('\u{300}'..='\u{36f}').contains(&c) {
            continue; // combining accents left by the decomposition
        } else if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_collapses_spaces_and_blank_runs() {
        let t = tidy("  Artículo\u{00A0}1°.-  La  ley\r\n\n\n\nInciso\tdos  \n");
        assert_eq!(t, "Artículo 1°.- La ley\n\nInciso dos");
    }

    #[test]
    fn slug_folds_accents() {
        assert_eq!(slug("Título I / Capítulo Único"), "titulo-i-capitulo-unico");
        assert_eq!(slug("Art. 5º"), "art-5o");
    }
}

static ROMAN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^m{0,3}(c[md]|d?c{0,3})(x[cl]|l?x{0,3})(i[xv]|v?i{0,3})$").expect("regex")
});

/// Accents that upper-case official titles drop ("CONSTITUCION POLITICA").
const ACCENTED: &[(&str, &str)] = &[
    ("constitucion", "constitución"),
    ("politica", "política"),
    ("republica", "república"),
    ("codigo", "código"),
    ("mineria", "minería"),
    ("organico", "orgánico"),
    ("aeronautico", "aeronáutico"),
    ("transformacion", "transformación"),
    ("nacion", "nación"),
    ("informacion", "información"),
    ("proteccion", "protección"),
    ("publica", "pública"),
    ("publico", "público"),
    ("administracion", "administración"),
    ("economico", "económico"),
    ("region", "región"),
];
const SMALL_WORDS: &[&str] = &[
    "de", "del", "la", "las", "el", "los", "y", "e", "o", "u", "a", "en", "para", "por", "sobre",
    "que", "con", "da", "do", "das", "dos", "al",
];

/// Title-cases an all-capitals official title, restoring common accents:
/// "CONSTITUCION POLITICA DE LA REPUBLICA DE CHILE" →
/// "Constitución Política de la República de Chile". Mixed-case titles are returned as they are.
pub fn title_case(title: &str) -> String {
    let letters: Vec<char> = title.chars().filter(|c| c.is_alphabetic()).collect();
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    if letters.is_empty() || upper * 10 < letters.len() * 8 {
        return title.trim().to_string();
    }
    let mut out = Vec::new();
    for (i, word) in title.split_whitespace().enumerate() {
        let lower = word.to_lowercase();
        let core: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
        let fixed = ACCENTED
            .iter()
            .find(|(plain, _)| *plain == core)
            .map(|(plain, accented)| lower.replacen(plain, accented, 1))
            .unwrap_or(lower);
        let is_roman = !core.is_empty() && ROMAN.is_match(&core);
        if is_roman && i > 0 {
            out.push(fixed.to_uppercase());
        } else if i > 0 && SMALL_WORDS.contains(&fixed.as_str()) {
            out.push(fixed);
        } else {
            let mut cs = fixed.chars();
            let first = cs
                .next()
                .map(|c| c.to_uppercase().collect::<String>())
                .unwrap_or_default();
            out.push(first + cs.as_str());
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod title_tests {
    use super::title_case;

    #[test]
    fn restores_case_and_accents() {
        assert_eq!(
            title_case("CONSTITUCION POLITICA DE LA REPUBLICA DE CHILE"),
            "Constitución Política de la República de Chile"
        );
        assert_eq!(title_case("CODIGO DE MINERIA"), "Código de Minería");
        assert_eq!(title_case("CODIGO CIVIL"), "Código Civil");
        assert_eq!(title_case("TITULO XIV DE LA LEY"), "Titulo XIV de la Ley");
        assert_eq!(title_case("Lei Geral de Proteção"), "Lei Geral de Proteção");
    }
}
