//! `POST /v1/search`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::{Extension, Json};
use cabildo_core::Principal;
use cabildo_engine::retrieve::Method;

use super::{check_question, engine_problem, filters_for, method_of};
use crate::api::{SearchRequest, SearchResponse};
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, visible};
use crate::problem::{ApiJson, ProblemBody};
use crate::{AppState, Kind, Lang, Problem};

/// Most passages one search returns.
const MAX_K: usize = 50;

/// Hybrid (or lexical, dense) search with filters: passages with label, URL, snippet, score.
#[utoipa::path(post, path = "/v1/search", tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        (status = 400, description = "Bad JSON, unknown field or filter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, Problem> {
    let started = Instant::now();
    check_question(lang, &request.query, "query")?;
    let k = request.k.unwrap_or(10);
    if !(1..=MAX_K).contains(&k) {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("k must be between 1 and {MAX_K}"),
        ));
    }
    let filters = filters_for(request.filters, &principal, lang)?;
    let method = match method_of(request.method.as_deref(), lang)? {
        Some(m) => m,
        None if state.engine.dense().is_some() => Method::Hybrid,
        None => Method::Lexical,
    };
    let retrieval = Instant::now();
    let hits = state
        .engine
        .search(
            &request.query,
            &filters,
            k,
            method,
            &state.config.ask.params,
        )
        .await
        .map_err(|e| engine_problem(lang, e))?;
    let took = retrieval.elapsed().as_secs_f64();
    state.metrics.retrieval.observe(took);
    let hits = visible(&state, &principal, hits);
    let passages = hits.iter().map(|h| h.passage.id.clone()).collect();
    let visit = Visit {
        principal,
        route: "/v1/search",
        started,
        question: Some(request.query),
        filters: Some(filters),
    };
    let outcome = Outcome {
        status: 200,
        passages,
        ..Outcome::default()
    };
    audit(&state, &visit, outcome, lang).await?;
    Ok(Json(SearchResponse {
        method: method.name().to_string(),
        hits: hits.into_iter().map(Into::into).collect(),
        took_ms: took * 1000.0,
    }))
}
