//! The handlers, one file per area.

pub mod answer;
pub mod audit;
pub mod documents;
pub mod ops;
pub mod search;

use cabildo_core::Language;
use cabildo_engine::EngineError;

use crate::{Kind, Problem};

/// An engine error as a problem: what the caller asked for that is not available is their
/// error (400); anything else is ours (500, logged).
pub fn engine_problem(lang: Language, e: EngineError) -> Problem {
    match e {
        EngineError::Unavailable(why) => Problem::new(Kind::BadRequest, lang, why),
        other => Problem::internal(lang, &other),
    }
}

/// Rejects a blank or overlong question.
pub fn check_question(lang: Language, text: &str, what: &str) -> Result<(), Problem> {
    const MAX_CHARS: usize = 2_000;
    if text.trim().is_empty() {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("{what} is empty"),
        ));
    }
    if text.chars().count() > MAX_CHARS {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("{what} is longer than {MAX_CHARS} characters"),
        ));
    }
    Ok(())
}
