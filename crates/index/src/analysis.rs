//! The analysers: the legal tokenizer from `cabildo-text`, then lower-casing, stop words,
//! accent folding and Snowball stemming, one chain per language. Accents are folded before
//! stemming so that "constitucion" typed without accents meets "Constitución".

use cabildo_core::Language;
use cabildo_text::legal_tokens;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language as StemLanguage, LowerCaser, Stemmer, StopWordFilter,
    TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The tokenizer of `cabildo-text` as a tantivy [`Tokenizer`].
#[derive(Clone)]
pub struct LegalTokenizer {
    language: Language,
}

impl LegalTokenizer {
    /// A tokenizer for one language (it decides how `art.` expands).
    pub fn new(language: Language) -> Self {
        LegalTokenizer { language }
    }
}

/// The tokens of one text.
pub struct LegalTokenStream<'a> {
    tokens: Vec<Token>,
    next: usize,
    _text: std::marker::PhantomData<&'a str>,
}

impl Tokenizer for LegalTokenizer {
    type TokenStream<'a> = LegalTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> LegalTokenStream<'a> {
        let tokens = legal_tokens(text, self.language)
            .into_iter()
            .enumerate()
            .map(|(position, t)| Token {
                offset_from: t.start,
                offset_to: t.end,
                position,
                text: t.text,
                position_length: 1,
            })
            .collect();
        LegalTokenStream {
            tokens,
            next: 0,
            _text: std::marker::PhantomData,
        }
    }
}

impl TokenStream for LegalTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn stem_language(language: Language) -> StemLanguage {
    match language {
        Language::Es => StemLanguage::Spanish,
        Language::Pt => StemLanguage::Portuguese,
        Language::En => StemLanguage::English,
    }
}

/// Which analysis an index uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Analysis {
    /// The legal analysers: reference normalisation, stop words, accent folding, stemming.
    #[default]
    Legal,
    /// The textbook baseline: split on non-alphanumerics, lower-case, Snowball stem. Kept to
    /// measure what the legal analysis adds, on the same machine and data.
    Plain,
}

impl Analysis {
    /// The analyser for one language.
    pub fn analyzer(self, language: Language) -> TextAnalyzer {
        match self {
            Analysis::Legal => legal_analyzer(language),
            Analysis::Plain => {
                TextAnalyzer::builder(tantivy::tokenizer::SimpleTokenizer::default())
                    .filter(LowerCaser)
                    .filter(Stemmer::new(stem_language(language)))
                    .build()
            }
        }
    }

    /// The index terms of `text` with their positions (stop words leave gaps).
    pub fn terms(self, language: Language, text: &str) -> Vec<(usize, String)> {
        let mut analyzer = self.analyzer(language);
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.position, t.text.clone()));
        }
        out
    }
}

/// The legal analyser for one language.
pub fn legal_analyzer(language: Language) -> TextAnalyzer {
    let stem = stem_language(language);
    let builder = TextAnalyzer::builder(LegalTokenizer::new(language)).filter(LowerCaser);
    match StopWordFilter::new(stem) {
        Some(stop) => builder
            .filter(stop)
            .filter(AsciiFoldingFilter)
            .filter(Stemmer::new(stem))
            .build(),
        None => builder
            .filter(AsciiFoldingFilter)
            .filter(Stemmer::new(stem))
            .build(),
    }
}

/// Name under which a language's analyser is registered.
pub fn analyzer_name(language: Language) -> &'static str {
    match language {
        Language::Es => "legal_es",
        Language::Pt => "legal_pt",
        Language::En => "legal_en",
    }
}

/// Runs a language's legal analyser over `text` and returns the index terms.
pub fn analyze(language: Language, text: &str) -> Vec<String> {
    Analysis::Legal
        .terms(language, text)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_references_meet_after_analysis() {
        let a = analyze(Language::Es, "Ley N° 19.628");
        assert_eq!(a, analyze(Language::Es, "ley 19628"));
        assert_eq!(a, analyze(Language::Es, "Ley Nº19.628"));
        assert_eq!(
            analyze(Language::Es, "art. 5º"),
            analyze(Language::Es, "artículo 5")
        );
    }

    #[test]
    fn accents_and_inflection_meet() {
        assert_eq!(
            analyze(Language::Es, "constitucion"),
            analyze(Language::Es, "Constitución")
        );
        assert_eq!(
            analyze(Language::Es, "derechos"),
            analyze(Language::Es, "derecho")
        );
        assert_eq!(
            analyze(Language::Pt, "proteção"),
            analyze(Language::Pt, "protecao")
        );
        assert!(analyze(Language::Es, "de la").is_empty());
    }
}
