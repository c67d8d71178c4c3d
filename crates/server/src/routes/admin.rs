//! Who the caller is (`GET /v1/me`, for pages that show what a principal may do), and the
//! admin's views: ingest jobs, API clients and their revocation, the audit chain's check.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cabildo_core::Principal;

use super::documents::job_info;
use crate::api::{AuditCheck, ClientInfo, ClientList, JobList, Me};
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, audit_read, require_admin};
use crate::problem::ProblemBody;
use crate::{AppState, Kind, Lang, Problem};

/// Ingest jobs `GET /v1/jobs` lists.
const RECENT_JOBS: u32 = 20;

/// The caller as the server sees it: role, tenant, clearance and whether it is an admin.
#[utoipa::path(get, path = "/v1/me", tag = "documents",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Bad credentials, or anonymous callers not allowed", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn me(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
) -> Result<Json<Me>, Problem> {
    let me = Me {
        admin: principal.is_admin(),
        role: principal.role.to_string(),
        clearance: principal.clearance.to_string(),
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
    };
    audit_read(
        &state,
        principal,
        "/v1/me",
        Instant::now(),
        Vec::new(),
        lang,
    )
    .await?;
    Ok(Json(me))
}

/// The newest ingest jobs (20), newest first, with their counts and failures.
#[utoipa::path(get, path = "/v1/jobs", tag = "documents",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The jobs", body = JobList),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn jobs(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
) -> Result<Json<JobList>, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let jobs = state
        .engine
        .registry()
        .recent_jobs(RECENT_JOBS)
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    let read = jobs.iter().map(|j| format!("job:{}", j.id)).collect();
    audit_read(&state, principal, "/v1/jobs", started, read, lang).await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(job_info).collect(),
    }))
}

/// Every API client, revoked ones included; never their keys.
#[utoipa::path(get, path = "/v1/clients", tag = "documents",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The clients, by name", body = ClientList),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn clients(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
) -> Result<Json<ClientList>, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let clients = state
        .engine
        .registry()
        .clients()
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    let read = clients
        .iter()
        .map(|c| format!("client:{}", c.name))
        .collect();
    audit_read(&state, principal, "/v1/clients", started, read, lang).await?;
    Ok(Json(ClientList {
        clients: clients
            .into_iter()
            .map(|c| ClientInfo {
                name: c.name,
                role: c.role.to_string(),
                tenant: c.tenant,
                clearance: c.clearance.to_string(),
                daily_quota: c.daily_quota,
                created_at: c.created_at,
                revoked_at: c.revoked_at,
            })
            .collect(),
    }))
}

/// Revokes a client's key at once (its next request is refused). Audited.
#[utoipa::path(delete, path = "/v1/clients/{name}", tag = "documents",
    params(("name" = String, Path, description = "The client's name")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No live client by that name", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn revoke_client(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let revoked = state
        .engine
        .registry()
        .revoke_client(&name)
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    let status = if revoked {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    let visit = Visit {
        principal,
        route: "/v1/clients",
        started,
        question: Some(format!("revoke {name}")),
        filters: None,
    };
    audit(&state, &visit, Outcome::status(status.as_u16()), lang).await?;
    if !revoked {
        return Err(Problem::new(
            Kind::NotFound,
            lang,
            format!("no live client named {name:?}"),
        ));
    }
    Ok(status.into_response())
}

/// Walks the audit chain: every record's hash recomputed, every link and sequence checked.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "documents",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What the walk found", body = AuditCheck),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn verify_audit(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
) -> Result<Json<AuditCheck>, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let v = state
        .engine
        .registry()
        .verify_audit()
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    audit_read(
        &state,
        principal,
        "/v1/audit/verify",
        started,
        Vec::new(),
        lang,
    )
    .await?;
    Ok(Json(AuditCheck {
        intact: v.intact(),
        records: v.records,
        head: v.head,
        problems: v.problems,
    }))
}
