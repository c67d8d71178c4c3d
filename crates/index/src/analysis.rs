//! The analysers: the legal tokenizer from `cabildo-text`, then lower-casing, stop words
//! (questions only), accent folding and Snowball stemming, one chain per language. Accents
//! are folded before stemming so that "constitucion" typed without accents meets
//! "Constitución".

use cabildo_core::Language;
use cabildo_text::legal_tokens;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language as StemLanguage, LowerCaser, Stemmer, StopWordFilter,
    TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// Version of the analysis the index runs over passages: raised whenever a change makes
/// passages index to other terms, so that an index folder written before is re-analysed
/// when opened. 2: stop words kept in passages, Portuguese nasal plurals.
pub const VERSION: &str = "2";

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
    /// The analyser the index runs over one language's passages.
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

    /// The terms of a question (or any text read for its content words) with their
    /// positions: the index's analysis less the stop words, which leave gaps.
    pub fn terms(self, language: Language, text: &str) -> Vec<(usize, String)> {
        let mut analyzer = match self {
            Analysis::Legal => legal_query_analyzer(language),
            Analysis::Plain => self.analyzer(language),
        };
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.position, t.text.clone()));
        }
        out
    }
}

/// The legal analyser for one language, as the index runs it over passages: every word is
/// kept, stop words too, so that a passage's length is its real length for BM25 and phrases
/// match across "de" and "a". Questions drop stop words ([`legal_query_analyzer`]).
pub fn legal_analyzer(language: Language) -> TextAnalyzer {
    legal_chain(language, StopWordFilter::remove([]))
}

/// The legal analyser for questions: the index's, less the stop words of the language.
/// Measured on lgpd-pt, bcn-es and juristcu-pt (docs/evaluation.md), dropping them from
/// passages as well shortened every passage by its function words and cost each set.
pub fn legal_query_analyzer(language: Language) -> TextAnalyzer {
    legal_chain(
        language,
        StopWordFilter::new(stem_language(language)).unwrap_or_else(|| StopWordFilter::remove([])),
    )
}

fn legal_chain(language: Language, stop: StopWordFilter) -> TextAnalyzer {
    let stem = Stemmer::new(stem_language(language));
    let builder = TextAnalyzer::builder(LegalTokenizer::new(language))
        .filter(LowerCaser)
        .filter(stop)
        .filter(AsciiFoldingFilter);
    match language {
        // Portuguese's Snowball stemmer reads the nasal endings with their accents: folded
        // first (so that a word typed without accents meets its accented form), "licitação"
        // and "licitações" stem apart ("licitaca", "licitaco"), and even accented it keeps
        // "sanção" and "sanções" apart.
        Language::Pt => builder.filter(NasalPlurals).filter(stem).build(),
        Language::Es | Language::En => builder.filter(stem).build(),
    }
}

/// For folded Portuguese words: a plural in -oes or -aos becomes the singular in -ao
/// ("licitacoes" → "licitacao", "orgaos" → "orgao"). Giving the singular back its accent
/// for the stemmer as well ("licitação" → "licit", as "licitar") was tried and cost
/// lgpd-pt 0.006 nDCG@10.
#[derive(Clone, Copy)]
struct NasalPlurals;

impl NasalPlurals {
    fn rewrite(word: &mut String) {
        if word.len() > 4 && (word.ends_with("oes") || word.ends_with("aos")) {
            word.truncate(word.len() - 3);
            word.push_str("ao");
        }
    }
}

impl TokenFilter for NasalPlurals {
    type Tokenizer<T: Tokenizer> = NasalPluralsFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> NasalPluralsFilter<T> {
        NasalPluralsFilter(tokenizer)
    }
}

#[derive(Clone)]
struct NasalPluralsFilter<T>(T);

impl<T: Tokenizer> Tokenizer for NasalPluralsFilter<T> {
    type TokenStream<'a> = NasalPluralsStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        NasalPluralsStream(self.0.token_stream(text))
    }
}

struct NasalPluralsStream<S>(S);

impl<S: TokenStream> TokenStream for NasalPluralsStream<S> {
    fn advance(&mut self) -> bool {
        if !self.0.advance() {
            return false;
        }
        NasalPlurals::rewrite(&mut self.0.token_mut().text);
        true
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
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

    #[test]
    fn portuguese_plurals_and_unaccented_nasal_endings_meet() {
        for (a, b) in [
            ("licitação", "licitações"),
            ("licitações", "licitacoes"),
            ("sanção", "sanções"),
            ("órgão", "orgaos"),
            ("informações", "informacao"),
        ] {
            assert_eq!(
                analyze(Language::Pt, a),
                analyze(Language::Pt, b),
                "{a} / {b}"
            );
        }
        assert_ne!(
            analyze(Language::Pt, "licitação"),
            analyze(Language::Pt, "sanção")
        );
    }

    #[test]
    fn passages_keep_stop_words_and_questions_drop_them() {
        let mut indexed = Vec::new();
        let mut analyzer = Analysis::Legal.analyzer(Language::Pt);
        let mut stream = analyzer.token_stream("agentes de tratamento");
        while stream.advance() {
            indexed.push((stream.token().position, stream.token().text.clone()));
        }
        assert_eq!(indexed.len(), 3);
        let asked = Analysis::Legal.terms(Language::Pt, "agentes de tratamento");
        assert_eq!(asked, vec![indexed[0].clone(), indexed[2].clone()]);
    }
}
