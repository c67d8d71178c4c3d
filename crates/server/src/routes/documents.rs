//! Documents: upload (an ingest job), jobs, norms. Uploading, deleting and reading jobs are
//! for admins; the norm list and a norm's passages show each caller what it may read.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use cabildo_core::{AccessLevel, Jurisdiction, Language, Principal};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::worker::encode_defaults;
use cabildo_engine::IngestDefaults;
use serde::Deserialize;

use super::{engine_problem, page_limit};
use crate::api::{
    DiffQuery, DiffResult, JobAccepted, JobFailure, JobInfo, NormDay, NormDetail, NormInfo,
    NormList, PassageInfo, VersionList, VersionsQuery,
};
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, audit_read, require_admin, visible_passages};
use crate::problem::ProblemBody;
use crate::{AppState, Kind, Lang, Problem};

/// A safe file name from an uploaded one: its last path component, odd characters replaced.
fn safe_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?.trim();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!cleaned.is_empty() && !cleaned.starts_with('.')).then_some(cleaned)
}

/// Upload files (multipart field `file`, repeatable; optional fields `jurisdiction`,
/// `access`, `tenant`, `redact_pii`) and ingest them as a job. Answers 202 with the job's id at once.
#[utoipa::path(post, path = "/v1/documents", tag = "documents",
    request_body(content_type = "multipart/form-data", description = "`file` parts (repeatable); optional `jurisdiction` (ISO alpha-2), `access` (public|internal|restricted), `tenant`, `redact_pii` (true: replace national ids, e-mails, phones with placeholders)"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Ingest job started", body = JobAccepted),
        (status = 400, description = "No files, or a bad field", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Upload over the limit", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let mut multipart =
        multipart.map_err(|e| Problem::new(Kind::UnsupportedMedia, lang, e.body_text()))?;
    let dir = state
        .uploads_dir()
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).map_err(|e| Problem::internal(lang, &e))?;
    let received = receive(&mut multipart, &dir, lang).await;
    let (files, defaults) = match received {
        Ok(r) if !r.0.is_empty() => r,
        other => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(other.err().unwrap_or_else(|| {
                Problem::new(Kind::BadRequest, lang, "no `file` part in the upload")
            }));
        }
    };
    let (job, status) = if state.config.queue_uploads {
        // For a worker: the files go into the registry with the job, for whichever worker
        // claims it.
        let mut contents = Vec::with_capacity(files.len());
        for name in &files {
            let bytes = std::fs::read(dir.join(name)).map_err(|e| Problem::internal(lang, &e))?;
            contents.push((name.clone(), bytes));
        }
        let _ = std::fs::remove_dir_all(&dir);
        let job = state
            .engine
            .registry()
            .enqueue_job(&encode_defaults(&defaults), &contents)
            .await
            .map_err(|e| Problem::internal(lang, &e))?;
        (job, "queued")
    } else {
        let job = state
            .engine
            .registry()
            .start_job()
            .await
            .map_err(|e| Problem::internal(lang, &e))?;
        spawn_ingest(&state, job, dir, files.clone(), defaults);
        (job, "running")
    };
    let visit = Visit {
        principal,
        route: "/v1/documents",
        started,
        question: None,
        filters: None,
    };
    let outcome = Outcome {
        status: StatusCode::ACCEPTED.as_u16(),
        passages: files.clone(),
        ..Outcome::default()
    };
    audit(&state, &visit, outcome, lang).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(JobAccepted {
            job_id: job,
            status: status.into(),
            files,
        }),
    )
        .into_response();
    if let Ok(location) = format!("/v1/jobs/{job}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Reads the multipart fields: files into `dir`, the rest into ingest defaults.
async fn receive(
    multipart: &mut Multipart,
    dir: &FsPath,
    lang: Language,
) -> Result<(Vec<String>, IngestDefaults), Problem> {
    let field_problem = |e: axum::extract::multipart::MultipartError| {
        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Kind::TooLarge
        } else {
            Kind::BadRequest
        };
        Problem::new(kind, lang, e.body_text())
    };
    let bad = |detail: String| Problem::new(Kind::BadRequest, lang, detail);
    let mut files = Vec::new();
    let mut defaults = IngestDefaults::default();
    while let Some(mut field) = multipart.next_field().await.map_err(field_problem)? {
        match field.name().unwrap_or("") {
            "file" => {
                let name = field
                    .file_name()
                    .and_then(safe_name)
                    .ok_or_else(|| bad("a `file` part has no usable file name".into()))?;
                let name = if files.contains(&name) {
                    format!("{}-{name}", files.len())
                } else {
                    name
                };
                let mut out = std::fs::File::create(dir.join(&name))
                    .map_err(|e| Problem::internal(lang, &e))?;
                while let Some(chunk) = field.chunk().await.map_err(field_problem)? {
                    out.write_all(&chunk)
                        .map_err(|e| Problem::internal(lang, &e))?;
                }
                files.push(name);
            }
            "jurisdiction" => {
                let j = field
                    .text()
                    .await
                    .map_err(field_problem)?
                    .trim()
                    .to_uppercase();
                if !Jurisdiction::is_country_code(&j) {
                    return Err(bad(format!(
                        "jurisdiction {j:?} is not an ISO 3166-1 alpha-2 code"
                    )));
                }
                defaults.jurisdiction = Some(j);
            }
            "access" => {
                let a = field.text().await.map_err(field_problem)?;
                defaults.access = a.parse::<AccessLevel>().map_err(|e| bad(e.to_string()))?;
            }
            "tenant" => {
                let t = field
                    .text()
                    .await
                    .map_err(field_problem)?
                    .trim()
                    .to_string();
                defaults.tenant = (!t.is_empty()).then_some(t);
            }
            "redact_pii" => {
                let v = field.text().await.map_err(field_problem)?;
                defaults.redact_pii = match v.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    other => {
                        return Err(bad(format!(
                            "redact_pii must be true or false, not {other:?}"
                        )))
                    }
                };
            }
            other => return Err(bad(format!("unknown multipart field {other:?}"))),
        }
    }
    Ok((files, defaults.checked().map_err(bad)?))
}

/// Runs the ingest job on a thread of its own (parsing and embedding are CPU work), one
/// job at a time.
fn spawn_ingest(
    state: &Arc<AppState>,
    job: i64,
    staging: PathBuf,
    files: Vec<String>,
    defaults: IngestDefaults,
) {
    let engine = state.engine.clone();
    let writes = state.writes.clone();
    let runtime = state.runtime.clone();
    let uploads = state.uploads_dir();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let _one_at_a_time = writes.lock().await;
            let mut paths = Vec::with_capacity(files.len());
            for name in &files {
                let to = uploads.join(name);
                if let Err(e) = std::fs::rename(staging.join(name), &to) {
                    let why = format!("moving the upload {name} into place: {e}");
                    tracing::error!(job, error = %why, "ingest job failed");
                    let _ = engine.registry().fail_job(job, &why).await;
                    return;
                }
                paths.push(to);
            }
            let _ = std::fs::remove_dir(&staging);
            match engine
                .ingest_job(job, &paths, &defaults, &mut NoProgress)
                .await
            {
                Ok(r) => tracing::info!(
                    job,
                    norms = r.summary.norms,
                    passages = r.summary.passages,
                    failures = r.summary.failures,
                    "ingest job done"
                ),
                Err(e) => tracing::error!(job, error = %e, "ingest job failed"),
            }
        });
    });
}

/// An ingest job's state, counts and per-file failures.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "documents",
    params(("id" = i64, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The job", body = JobInfo),
        (status = 404, description = "No such job", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn job(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(id): Path<String>,
) -> Result<Json<JobInfo>, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let not_found = || Problem::new(Kind::NotFound, lang, format!("no ingest job {id}"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let j = state
        .engine
        .registry()
        .job(n)
        .await
        .map_err(|e| Problem::internal(lang, &e))?
        .ok_or_else(not_found)?;
    let read = vec![format!("job:{}", j.id)];
    audit_read(&state, principal, "/v1/jobs/{id}", started, read, lang).await?;
    Ok(Json(job_info(j)))
}

/// A job as the API shows it.
pub fn job_info(j: cabildo_store::JobRecord) -> JobInfo {
    JobInfo {
        id: j.id,
        status: j.status,
        started_at: j.started_at,
        finished_at: j.finished_at,
        files: j.summary.files,
        unchanged: j.summary.unchanged,
        norms: j.summary.norms,
        passages: j.summary.passages,
        failures: j
            .failures
            .into_iter()
            .map(|f| JobFailure {
                file: f.path.rsplit('/').next().unwrap_or("").to_string(),
                reason: f.reason,
            })
            .collect(),
        flagged: j.summary.flagged,
        error: j.error,
    }
}

/// Filters of the norm list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NormQuery {
    /// Only this country (ISO 3166-1 alpha-2).
    pub jurisdiction: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Norms per page: 1 to 1,000; default 100.
    pub limit: Option<usize>,
    /// Norms to skip (the previous page's `next_offset`).
    pub offset: Option<usize>,
}

/// Norms a page holds unless it asks for another size, and at most.
const NORM_PAGE: usize = 100;
const MAX_NORM_PAGE: usize = 1_000;

/// The norms indexed that the caller may read, by jurisdiction and title, a page at a time.
#[utoipa::path(get, path = "/v1/norms", tag = "documents", params(NormQuery),
    responses(
        (status = 200, description = "Norms by jurisdiction and title", body = NormList),
        (status = 400, description = "Unknown query parameter", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn norms(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    query: Result<Query<NormQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NormList>, Problem> {
    let started = Instant::now();
    let Query(q) = query.map_err(|e| Problem::new(Kind::BadRequest, lang, e.body_text()))?;
    let limit = page_limit(q.limit, NORM_PAGE, MAX_NORM_PAGE, lang)?;
    let offset = q.offset.unwrap_or(0);
    let norms = state
        .engine
        .registry()
        .norms()
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    let norms: Vec<NormInfo> = norms
        .into_iter()
        .filter(|n| principal.may_read(n.access, n.tenant.as_deref()))
        .filter(|n| {
            q.jurisdiction
                .as_ref()
                .is_none_or(|j| n.jurisdiction.country.eq_ignore_ascii_case(j))
        })
        .filter(|n| q.kind.as_ref().is_none_or(|k| n.kind.as_str() == k))
        .map(NormInfo::from)
        .collect();
    let total = norms.len();
    let norms: Vec<NormInfo> = norms.into_iter().skip(offset).take(limit).collect();
    let next_offset = (offset + norms.len() < total).then_some(offset + norms.len());
    let listed = norms.iter().map(|n| n.id.clone()).collect();
    audit_read(&state, principal, "/v1/norms", started, listed, lang).await?;
    Ok(Json(NormList {
        norms,
        total,
        next_offset,
    }))
}

/// The norm `id` when the caller may read it; one the caller may not read is absent: its
/// existence is not the caller's to know.
async fn readable_norm(
    state: &AppState,
    principal: &Principal,
    id: &str,
    lang: Language,
) -> Result<cabildo_core::Norm, Problem> {
    let found = state
        .engine
        .registry()
        .norm(id)
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    found
        .map(|(n, _)| n)
        .filter(|n| principal.may_read(n.access, n.tenant.as_deref()))
        .ok_or_else(|| Problem::new(Kind::NotFound, lang, format!("no norm {id}")))
}

/// One norm the caller may read, with its passages in force on a day (default today) in
/// document order.
#[utoipa::path(get, path = "/v1/norms/{id}", tag = "documents",
    params(("id" = String, Path, description = "The norm's id"), NormDay),
    responses(
        (status = 200, description = "The norm", body = NormDetail),
        (status = 400, description = "A bad date or an unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such norm (or not one the caller may read)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn norm(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(id): Path<String>,
    query: Result<Query<NormDay>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NormDetail>, Problem> {
    let started = Instant::now();
    let Query(q) = query.map_err(|e| Problem::new(Kind::BadRequest, lang, e.body_text()))?;
    let norm = readable_norm(&state, &principal, &id, lang).await?;
    let (day, passages) = state
        .engine
        .passages_on(&id, q.in_force_on)
        .map_err(|e| engine_problem(lang, e))?;
    // Checked again, passage by passage, as search and answers are: the registry row may
    // lag the index (it is written after the index commits).
    let passages = visible_passages(&state, &principal, passages);
    let returned = passages.iter().map(|p| p.id.clone()).collect();
    audit_read(&state, principal, "/v1/norms/{id}", started, returned, lang).await?;
    Ok(Json(NormDetail {
        norm: norm.into(),
        in_force_on: day,
        passages: passages.into_iter().map(PassageInfo::from).collect(),
    }))
}

/// A norm's versions, oldest first, with the provisions each changed.
#[utoipa::path(get, path = "/v1/norms/{id}/versions", tag = "documents",
    params(("id" = String, Path, description = "The norm's id"), VersionsQuery),
    responses(
        (status = 200, description = "The versions", body = VersionList),
        (status = 400, description = "An unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such norm (or not one the caller may read)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn versions(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(id): Path<String>,
    query: Result<Query<VersionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<VersionList>, Problem> {
    let started = Instant::now();
    let Query(q) = query.map_err(|e| Problem::new(Kind::BadRequest, lang, e.body_text()))?;
    readable_norm(&state, &principal, &id, lang).await?;
    let versions = state
        .engine
        .versions(&id, q.article.as_deref())
        .await
        .map_err(|e| engine_problem(lang, e))?;
    audit_read(
        &state,
        principal,
        "/v1/norms/{id}/versions",
        started,
        vec![id.clone()],
        lang,
    )
    .await?;
    Ok(Json(VersionList {
        norm_id: id,
        versions,
    }))
}

/// What changed in a norm's provisions between the text in force on one day and on
/// another, word by word.
#[utoipa::path(get, path = "/v1/norms/{id}/diff", tag = "documents",
    params(("id" = String, Path, description = "The norm's id"), DiffQuery),
    responses(
        (status = 200, description = "The provisions that differ", body = DiffResult),
        (status = 400, description = "A bad or missing date, `from` after `to`, or an unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such norm (or not one the caller may read)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn diff(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DiffResult>, Problem> {
    let started = Instant::now();
    let Query(q) = query.map_err(|e| Problem::new(Kind::BadRequest, lang, e.body_text()))?;
    let to = q.to.unwrap_or_else(cabildo_core::today);
    if q.from > to {
        return Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!("from ({}) is after to ({to})", q.from),
        ));
    }
    readable_norm(&state, &principal, &id, lang).await?;
    let changes = state
        .engine
        .diff(&id, q.from, to, q.article.as_deref())
        .await
        .map_err(|e| engine_problem(lang, e))?;
    let returned = changes.iter().map(|c| c.provision_id.clone()).collect();
    audit_read(
        &state,
        principal,
        "/v1/norms/{id}/diff",
        started,
        returned,
        lang,
    )
    .await?;
    Ok(Json(DiffResult {
        norm_id: id,
        from: q.from,
        to,
        changes,
    }))
}

/// Deletes a norm from both indexes and the registry.
#[utoipa::path(delete, path = "/v1/norms/{id}", tag = "documents",
    params(("id" = String, Path, description = "The norm's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No credentials, or refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such norm", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete_norm(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    require_admin(&principal, lang)?;
    let started = Instant::now();
    let _one_at_a_time = state.writes.lock().await;
    let existed = state
        .engine
        .delete_norm(&id)
        .await
        .map_err(|e| engine_problem(lang, e))?;
    let visit = Visit {
        principal,
        route: "/v1/norms/{id}",
        started,
        question: None,
        filters: None,
    };
    let status = if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    let outcome = Outcome {
        status: status.as_u16(),
        passages: vec![id.clone()],
        ..Outcome::default()
    };
    audit(&state, &visit, outcome, lang).await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::new(Kind::NotFound, lang, format!("no norm {id}")))
    }
}
