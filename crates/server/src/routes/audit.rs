//! `GET /v1/audit`: the audit log as JSON lines, for admins.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cabildo_core::Principal;
use chrono::NaiveDate;
use serde::Deserialize;

use super::page_limit;
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, require_admin};
use crate::problem::ProblemBody;
use crate::{AppState, Kind, Lang, Problem};

/// Days to export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// First UTC day (YYYY-MM-DD); default today.
    pub from: Option<NaiveDate>,
    /// Last UTC day, included; default `from`.
    pub to: Option<NaiveDate>,
    /// Only records whose sequence number is above this one (the `Link` header's next page).
    pub after: Option<i64>,
    /// Records per page: 1 to 10,000; default 1,000.
    pub limit: Option<u32>,
}

/// Records an export page holds unless it asks for another size, and at most.
const PAGE: u32 = 1_000;
const MAX_PAGE: u32 = 10_000;

/// Audit records from `from` to `to` as `application/x-ndjson`, one record a line, oldest
/// first, each with its sequence number and chain hashes, a page at a time: when more
/// records follow, a `Link: <…>; rel="next"` header gives the next page's URL. The export
/// is itself audited.
#[utoipa::path(get, path = "/v1/audit", tag = "documents", params(AuditQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One JSON record per line", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "Bad date or range", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let Query(q) = query.map_err(|e| Problem::new(Kind::BadRequest, lang, e.body_text()))?;
    let from = q.from.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let to = q.to.unwrap_or(from);
    if to < from {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            "`to` is before `from`",
        ));
    }
    let limit = page_limit(q.limit, PAGE, MAX_PAGE, lang)?;
    let after = q.after.unwrap_or(0);
    let entries = state
        .engine
        .registry()
        .audit_page(from, to, after, Some(limit))
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    let next = entries
        .last()
        .filter(|_| entries.len() == limit as usize)
        .map(|last| {
            format!(
                "</v1/audit?from={from}&to={to}&after={}&limit={limit}>; rel=\"next\"",
                last.seq
            )
        });
    let mut body = String::new();
    for e in &entries {
        body.push_str(&serde_json::to_string(e).map_err(|e| Problem::internal(lang, &e))?);
        body.push('\n');
    }
    let visit = Visit {
        principal,
        route: "/v1/audit",
        started,
        question: Some(format!("export {from}..{to}")),
        filters: None,
    };
    audit(&state, &visit, Outcome::status(200), lang).await?;
    let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    if let Some(link) = next.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}
