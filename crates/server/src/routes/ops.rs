//! Operations: liveness, readiness, metrics, the OpenAPI document and its docs page, and
//! the problem answers for unknown routes and methods.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::Health;
use crate::{AppState, Kind, Lang, Problem};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        model: None,
        embedder: None,
        reason: None,
    })
}

/// Models are loaded and the indexes and registry answer. Reports readiness, never counts:
/// it answers without credentials, and how much text the server holds would tell an
/// outsider that hidden documents exist.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to answer", body = Health),
        (status = 503, description = "Not ready", body = Health),
    ))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let engine = &state.engine;
    let mut health = Health {
        status: "ready",
        model: Some(state.writer.name()),
        embedder: engine.dense().map(|d| d.embedder.name().to_string()),
        reason: None,
    };
    if let Err(e) = engine.registry().norm_count().await {
        health.status = "not-ready";
        health.reason = Some(format!("registry: {e}"));
        return (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response();
    }
    Json(health).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.queue_depth.set(state.queue.waiting() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}

/// Unknown route.
pub async fn not_found(Lang(lang): Lang) -> Problem {
    Problem::new(Kind::NotFound, lang, "no such endpoint: see /docs")
}

/// Known route, other method.
pub async fn method_not_allowed(Lang(lang): Lang) -> Problem {
    Problem::new(
        Kind::MethodNotAllowed,
        lang,
        "this endpoint does not take this method: see /docs",
    )
}
