//! A language guess for Spanish, Portuguese and English from function words: enough to pick
//! an analyser for a document whose source does not declare its language.

use cabildo_core::Language;

const ES: &[&str] = &[
    "el",
    "la",
    "los",
    "las",
    "del",
    "que",
    "en",
    "por",
    "con",
    "una",
    "para",
    "se",
    "su",
    "al",
    "lo",
    "como",
    "sus",
    "será",
    "podrá",
    "artículo",
    "ley",
];
const PT: &[&str] = &[
    "o", "os", "as", "da", "do", "das", "dos", "que", "em", "por", "com", "uma", "para", "se",
    "ao", "não", "são", "será", "poderá", "artigo", "lei", "na", "no", "à",
];
const EN: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "by", "with", "shall", "be", "this",
];

/// Guesses the language of `text` by counting function words; Spanish when unsure, since
/// most of the region's sources are Spanish.
pub fn guess_language(text: &str) -> Language {
    let (mut es, mut pt, mut en) = (0usize, 0usize, 0usize);
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(5000)
    {
        let w = word.to_lowercase();
        let w = w.as_str();
        es += ES.contains(&w) as usize;
        pt += PT.contains(&w) as usize;
        en += EN.contains(&w) as usize;
    }
    if pt > es && pt >= en {
        Language::Pt
    } else if en > es && en > pt {
        Language::En
    } else {
        Language::Es
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_three_apart() {
        assert_eq!(
            guess_language("Esta Lei dispõe sobre o tratamento de dados pessoais, inclusive nos meios digitais"),
            Language::Pt
        );
        assert_eq!(
            guess_language("El Estado está al servicio de la persona humana y su finalidad es promover el bien común"),
            Language::Es
        );
        assert_eq!(
            guess_language(
                "The State shall be at the service of the people and of the common good"
            ),
            Language::En
        );
    }
}
