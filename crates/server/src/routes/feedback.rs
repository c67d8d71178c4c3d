//! `POST /v1/feedback`: a rating of an answer by whoever received it, with an optional
//! comment (redacted before it is stored), referenced from the audit log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use cabildo_core::Principal;

use crate::api::{FeedbackReceipt, FeedbackRequest};
use crate::audit::{now, Outcome, Visit};
use crate::guard::audit;
use crate::problem::{ApiJson, ProblemBody};
use crate::{AppState, Kind, Lang, Problem};

/// Longest comment accepted, in characters.
const MAX_COMMENT_CHARS: usize = 2_000;

/// Rates an answer: useful or not, with an optional comment. Only the caller that received
/// the answer may rate it (anonymous visitors share one identity; answer ids are random).
/// A second rating of the same answer replaces the first.
#[utoipa::path(post, path = "/v1/feedback", tag = "answers",
    request_body = FeedbackRequest,
    responses(
        (status = 201, description = "Stored", body = FeedbackReceipt),
        (status = 400, description = "Bad JSON, unknown rating, comment too long", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No answer with this id was delivered to the caller", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "A rate limit; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn give(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<(StatusCode, Json<FeedbackReceipt>), Problem> {
    let started = Instant::now();
    let comment = request
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("the comment is longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let registry = state.engine.registry();
    let recipient = registry
        .answer_recipient(&request.answer_id)
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    if recipient.as_deref() != Some(state.auditor.pseudonym(&principal).as_str()) {
        return Err(Problem::new(
            Kind::NotFound,
            lang,
            format!(
                "no answer {:?} was delivered to this caller",
                request.answer_id
            ),
        ));
    }
    let comment = comment.map(|c| cabildo_text::redact_pii(c).into_owned());
    let id = registry
        .put_feedback(
            &request.answer_id,
            &now(),
            request.rating,
            comment.as_deref(),
        )
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    state.metrics.feedback(request.rating.as_str());
    let visit = Visit {
        principal,
        route: "/v1/feedback",
        started,
        question: None,
        filters: None,
    };
    let outcome = Outcome {
        status: StatusCode::CREATED.as_u16(),
        rated: Some(&request.answer_id),
        feedback_id: Some(id),
        ..Outcome::default()
    };
    audit(&state, &visit, outcome, lang).await?;
    Ok((
        StatusCode::CREATED,
        Json(FeedbackReceipt {
            id,
            answer_id: request.answer_id,
            rating: request.rating,
        }),
    ))
}
