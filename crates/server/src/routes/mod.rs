//! The handlers, one file per area.

pub mod admin;
pub mod answer;
pub mod audit;
pub mod documents;
pub mod feedback;
pub mod models;
pub mod ops;
pub mod search;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use cabildo_core::{Filters, Language, Principal};
use cabildo_engine::retrieve::Method;
use cabildo_engine::EngineError;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::api::RequestFilters;
use crate::{AppState, Kind, Problem};

/// Every route, registered once with its handler and its OpenAPI entry (the handler's
/// `#[utoipa::path]`): the `/v1` routes, which pass the guard (rate limits, authentication,
/// quotas, audit), and the operational ones. `upload_limit` caps document uploads.
pub fn table(upload_limit: usize) -> (OpenApiRouter<Arc<AppState>>, OpenApiRouter<Arc<AppState>>) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(search::search))
        .routes(routes!(answer::ask))
        .routes(routes!(answer::chat))
        .routes(routes!(models::list))
        .routes(routes!(models::one))
        .routes(routes!(feedback::give))
        .routes(routes!(documents::upload).layer(DefaultBodyLimit::max(upload_limit)))
        .routes(routes!(documents::job))
        .routes(routes!(documents::norms))
        .routes(routes!(documents::norm, documents::delete_norm))
        .routes(routes!(documents::versions))
        .routes(routes!(documents::diff))
        .routes(routes!(audit::export))
        .routes(routes!(admin::me))
        .routes(routes!(admin::jobs))
        .routes(routes!(admin::clients))
        .routes(routes!(admin::revoke_client))
        .routes(routes!(admin::verify_audit));
    let operations = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi));
    (v1, operations)
}

/// An engine error as a problem: what the caller asked for that is not available is their
/// error (400); anything else is ours (500, logged).
pub fn engine_problem(lang: Language, e: EngineError) -> Problem {
    match e {
        EngineError::Unavailable(why) => Problem::new(Kind::BadRequest, lang, why),
        other => Problem::internal(lang, &other),
    }
}

/// The engine's filters for what `principal` may read, narrowed by the request's own; an
/// unknown kind or jurisdiction is a 400 naming it.
pub fn filters_for(
    requested: Option<RequestFilters>,
    principal: &Principal,
    lang: Language,
) -> Result<Filters, Problem> {
    requested
        .unwrap_or_default()
        .within(principal)
        .map_err(|e| Problem::new(Kind::BadRequest, lang, e))
}

/// The retrieval method a request names, if it names one; an unknown one is a 400.
pub fn method_of(requested: Option<&str>, lang: Language) -> Result<Option<Method>, Problem> {
    requested
        .map(|m| m.parse::<Method>())
        .transpose()
        .map_err(|e| Problem::new(Kind::BadRequest, lang, e))
}

/// A page size from a request's `limit`: `default` when it gives none, a 400 outside
/// 1..=`max`.
pub fn page_limit<N>(requested: Option<N>, default: N, max: N, lang: Language) -> Result<N, Problem>
where
    N: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    let limit = requested.unwrap_or(default);
    if limit < N::from(1) || limit > max {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("limit must be between 1 and {max}"),
        ));
    }
    Ok(limit)
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
