//! Conversations: a follow-up question ("¿y cuánto dura?", "e se o titular for menor?") is
//! searched with the subject of the turns before it, and the answer's prompt sees those
//! turns. Stateless: the client sends the earlier turns with every question.
//!
//! The standalone question is made deterministically, for every writer: when the follow-up
//! is short or opens like a continuation ("y…", "e…", "and…"), the rarest words of the
//! earlier questions (those few passages hold: the subject, the norm; first those the last
//! answer also holds) and of the last answer are added to it.
//! Measured in docs/evaluation.md ("Follow-up questions").

use std::collections::HashSet;

use cabildo_core::Language;
use cabildo_index::analysis::analyze;
use cabildo_index::LexicalIndex;
use serde::{Deserialize, Serialize};

/// Earlier turns kept: beyond this many, the oldest are dropped.
pub const MAX_TURNS: usize = 20;

/// Characters of one earlier turn that the answer's prompt sees.
pub const PROMPT_TURN_CHARS: usize = 600;

/// Characters of earlier turns, all together, that the answer's prompt sees (newest first).
pub const PROMPT_HISTORY_CHARS: usize = 1_800;

/// A follow-up with at most this many content terms of its own borrows the subject.
const SHORT_FOLLOW_UP: usize = 5;

/// Words borrowed from the earlier questions, at most.
const BORROWED_WORDS: usize = 3;

/// Words borrowed from the last answer, at most.
const ANSWER_WORDS: usize = 1;

/// Shorter words are not borrowed (abbreviations: "art", "inc").
const MIN_WORD_CHARS: usize = 4;

/// Earlier questions the subject is looked for in, newest first.
const SUBJECT_TURNS: usize = 2;

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The asker.
    User,
    /// Cabildo.
    Assistant,
}

/// One earlier turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Turn {
    /// user or assistant.
    pub role: Speaker,
    /// What was said.
    pub content: String,
}

impl Turn {
    /// A turn of the asker.
    pub fn user(content: impl Into<String>) -> Self {
        Turn {
            role: Speaker::User,
            content: content.into(),
        }
    }

    /// A turn of Cabildo.
    pub fn assistant(content: impl Into<String>) -> Self {
        Turn {
            role: Speaker::Assistant,
            content: content.into(),
        }
    }
}

/// The newest [`MAX_TURNS`] of `history`.
pub fn bounded(history: &[Turn]) -> &[Turn] {
    &history[history.len().saturating_sub(MAX_TURNS)..]
}

/// Words that open a follow-up: "y", "e", "and", "pero", "mas", "ou", "también"…
/// ("o" is left out: in Portuguese it is the article of "O que é…?").
const CONTINUATIONS: &[&str] = &[
    "y", "e", "and", "ou", "or", "pero", "mas", "but", "también", "tambien", "também", "entonces",
    "então", "entao",
];

/// The question to search for `question` asked after `history`: the question itself when it
/// stands on its own, else the question followed by words borrowed from before it that it
/// does not already hold: the rarest words of the earlier questions (their subject), then
/// those of the last answer (what the subject turned out to be: a question "¿cómo se llama
/// quien…?" names its subject only in the answer).
pub fn standalone(
    index: &LexicalIndex,
    history: &[Turn],
    question: &str,
    language: Language,
) -> String {
    let history = bounded(history);
    let asked: Vec<&str> = history
        .iter()
        .rev()
        .filter(|t| t.role == Speaker::User)
        .take(SUBJECT_TURNS)
        .map(|t| t.content.as_str())
        .collect();
    let answered = history
        .iter()
        .rev()
        .find(|t| t.role == Speaker::Assistant)
        .map(|t| t.content.as_str());
    if (asked.is_empty() && answered.is_none()) || !follows_up(question, language) {
        return question.to_string();
    }
    // Question words, numbers and abbreviations are rare in laws, not subjects.
    let mut taken: HashSet<String> = analyze(language, question)
        .into_iter()
        .chain(analyze(language, super::INTERROGATIVES))
        .collect();
    // The answer's terms: a question's words that its answer also holds are its subject
    // (an exam item's rarest words may be a distractor's).
    let answer_terms: HashSet<String> = answered
        .map(|a| analyze(language, a).into_iter().collect())
        .unwrap_or_default();
    let mut borrowed: Vec<String> = Vec::new();
    // Up to `most` more of `text`'s rarest words that the query does not hold yet, those the
    // answer holds first.
    let mut borrow = |text: &str, most: usize, borrowed: &mut Vec<String>| {
        let until = borrowed.len() + most;
        let mut words: Vec<(String, String, u64)> = index
            .specific_words(text, language)
            .into_iter()
            .filter(|(w, _, _)| {
                w.chars().count() >= MIN_WORD_CHARS && !w.chars().any(|c| c.is_numeric())
            })
            .collect();
        words.sort_by_key(|(_, term, _)| !answer_terms.contains(term));
        for (word, term, _) in words {
            if borrowed.len() >= until {
                break;
            }
            if taken.insert(term) {
                borrowed.push(word);
            }
        }
    };
    for turn in &asked {
        let left = BORROWED_WORDS.saturating_sub(borrowed.len());
        borrow(turn, left, &mut borrowed);
    }
    if let Some(answer) = answered {
        borrow(answer, ANSWER_WORDS, &mut borrowed);
    }
    if borrowed.is_empty() {
        return question.to_string();
    }
    format!("{} {}", question.trim_end(), borrowed.join(" "))
}

/// The language of `question` asked after `history`: a follow-up is short, so it is guessed
/// with the question before it.
pub fn language(history: &[Turn], question: &str) -> Language {
    match history.iter().rev().find(|t| t.role == Speaker::User) {
        Some(before) => super::guess_question_language(&format!("{} {question}", before.content)),
        None => super::guess_question_language(question),
    }
}

/// Whether `question` leans on what came before: few content terms of its own, or an
/// opening like "¿Y…", "E se…", "And…".
pub fn follows_up(question: &str, language: Language) -> bool {
    let opening = question
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    let continues = CONTINUATIONS.iter().any(|c| {
        opening
            .strip_prefix(c)
            .is_some_and(|rest| rest.starts_with(|ch: char| !ch.is_alphanumeric()))
    });
    continues || analyze(language, question).len() <= SHORT_FOLLOW_UP
}

/// The earlier turns as the answer's prompt sees them: the newest that fit
/// [`PROMPT_HISTORY_CHARS`], each cut to [`PROMPT_TURN_CHARS`], oldest first.
pub fn for_prompt(history: &[Turn]) -> Vec<Turn> {
    let mut kept = Vec::new();
    let mut left = PROMPT_HISTORY_CHARS;
    for turn in bounded(history).iter().rev() {
        let text = clip(turn.content.trim(), PROMPT_TURN_CHARS);
        let chars = text.chars().count();
        if chars == 0 {
            continue;
        }
        if chars > left {
            break;
        }
        left -= chars;
        kept.push(Turn {
            role: turn.role,
            content: text,
        });
    }
    kept.reverse();
    kept
}

/// `text` cut to `max` characters at a word boundary, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let end = cut.rfind(char::is_whitespace).unwrap_or(cut.len());
    format!("{}…", cut[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cabildo_core::fixtures::passage;
    use cabildo_index::Analysis;

    fn index() -> LexicalIndex {
        let index = LexicalIndex::in_memory(Analysis::Legal).expect("index");
        let mut batch = index.batch().expect("batch");
        let texts = [
            "La trabajadora gozará de fuero maternal durante el embarazo y hasta un año después de expirado el descanso de maternidad.",
            "El empleador no podrá poner término al contrato de trabajo sin autorización del juez.",
            "El contrato de trabajo es una convención por la cual el empleador y el trabajador se obligan.",
            "Todo trabajador tiene derecho a un descanso anual.",
        ];
        for (i, t) in texts.iter().enumerate() {
            let mut p = passage(&format!("p{i}"), "codigo-del-trabajo", t);
            p.language = Language::Es;
            batch.add(&p).expect("add");
        }
        batch.commit().expect("commit");
        index.refresh().expect("refresh");
        index
    }

    #[test]
    fn an_elliptical_follow_up_borrows_the_subject_of_the_question_before() {
        let index = index();
        let history = [
            Turn::user("¿Qué es el fuero maternal?"),
            Turn::assistant("La trabajadora goza de fuero maternal [1]."),
        ];
        let q = standalone(&index, &history, "¿Y cuánto dura?", Language::Es);
        assert!(q.starts_with("¿Y cuánto dura?"), "{q}");
        assert!(q.contains("fuero") && q.contains("maternal"), "{q}");
    }

    #[test]
    fn a_question_that_stands_on_its_own_is_searched_as_asked() {
        let index = index();
        let history = [Turn::user("¿Qué es el fuero maternal?")];
        let q = "¿Puede el empleador terminar el contrato de trabajo de un trabajador sin autorización judicial previa?";
        assert_eq!(standalone(&index, &history, q, Language::Es), q);
        assert_eq!(
            standalone(&index, &[], "¿Y cuánto dura?", Language::Es),
            "¿Y cuánto dura?"
        );
    }

    #[test]
    fn continuations_are_recognised_in_three_languages() {
        assert!(follows_up(
            "E se o titular for menor de idade e não tiver responsável legal conhecido?",
            Language::Pt
        ));
        assert!(follows_up(
            "¿Y si el contrato es a plazo fijo y la trabajadora está embarazada de tres meses?",
            Language::Es
        ));
        assert!(follows_up(
            "And what if the employer refuses to pay the overtime hours worked on Sunday?",
            Language::En
        ));
        assert!(!follows_up("¿Yo puedo votar si vivo en el extranjero y no estoy inscrito en el registro electoral?", Language::Es));
    }

    #[test]
    fn the_prompt_sees_the_newest_turns_within_its_budget() {
        let long = "palabra ".repeat(200);
        let history: Vec<Turn> = (0..30)
            .map(|i| {
                if i % 2 == 0 {
                    Turn::user(format!("pregunta {i}"))
                } else {
                    Turn::assistant(long.clone())
                }
            })
            .collect();
        let kept = for_prompt(&history);
        assert!(!kept.is_empty());
        assert_eq!(kept.last().map(|t| t.role), Some(Speaker::Assistant));
        let chars: usize = kept.iter().map(|t| t.content.chars().count()).sum();
        assert!(chars <= PROMPT_HISTORY_CHARS, "{chars}");
        assert!(kept
            .iter()
            .all(|t| t.content.chars().count() <= PROMPT_TURN_CHARS + 1));
        assert_eq!(bounded(&history).len(), MAX_TURNS);
    }
}
