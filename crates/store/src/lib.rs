//! The SQL registry: norms and their versions, the source files they came from (by content
//! hash, so re-ingesting an unchanged file is a no-op), and ingest jobs with their per-file
//! failures; the hash-chained audit log; API clients and their daily usage; answers as
//! delivered and the feedback on them. SQLite under the data folder; the schema lives in
//! `migrations/`.
//!
//! Only this crate knows SQL.
#![deny(missing_docs)]

mod audit;
mod clients;
mod feedback;
#[cfg(feature = "test-fixtures")]
pub mod fixtures;
mod norm_log;
mod queue;

pub use audit::{chain_hash, AuditEntry, AuditRecord, AuditVerification, GENESIS};
pub use clients::{ClientRecord, NewClient};
pub use feedback::{AnswerRecord, FeedbackRecord, Rating};
pub use norm_log::NormLogEntry;
pub use queue::{ClaimedJob, MAX_ATTEMPTS};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use cabildo_core::{Jurisdiction, Norm};
use chrono::{NaiveDate, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row};

/// The columns `norm_from_row` reads, in its order (a macro so queries stay `&'static str`).
macro_rules! norm_columns {
    () => {
        "id, jurisdiction, subdivision, kind, number, title, issuing_body, language,
         official_url, publication_date, version_date, valid_from, valid_to, access, tenant,
         content_hash, format, source_path"
    };
}

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("registry database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("registry migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse.
    #[error("registry holds an invalid value: {0}")]
    Invalid(String),
    /// The file that serialises migrations could not be opened or locked.
    #[error("registry lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What an ingest run did, as kept in `ingest_jobs`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobSummary {
    /// Files looked at (metadata files excluded).
    pub files: u64,
    /// Files skipped because their content hash was already indexed.
    pub unchanged: u64,
    /// Norms written (new, replaced or given a version), each counted once.
    pub norms: u64,
    /// Passages read from the files written (a version's provisions, before those
    /// unchanged since an earlier version are folded into it).
    pub passages: u64,
    /// Files that failed.
    pub failures: u64,
    /// Passages whose text reads like instructions to the model.
    pub flagged: u64,
    /// Wall time.
    pub seconds: f64,
}

/// What was last ingested from a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The file's content hash then.
    pub content_hash: String,
    /// The norm it yielded.
    pub norm_id: String,
    /// The model its passages were embedded with, if they were.
    pub embedder: Option<String>,
}

/// One version of a norm: its text as in force from `effective` until the next version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The day this version took effect.
    pub effective: NaiveDate,
    /// The source's own version date.
    pub version_date: Option<NaiveDate>,
    /// The day the norm was repealed, when this version says it was.
    pub repealed: Option<NaiveDate>,
    /// The norm's title in this version.
    pub title: String,
    /// The official URL of this version.
    pub official_url: Option<String>,
    /// SHA-256 of the file it came from.
    pub content_hash: String,
    /// The file it came from.
    pub source_path: String,
    /// Passages in this version.
    pub provisions: u64,
}

/// What an ingest writes for one norm after the index commit that made it visible.
#[derive(Debug, Clone)]
pub struct Written {
    /// The norm as it now stands (the latest version's metadata, validity over all
    /// versions).
    pub norm: Norm,
    /// Passages the index holds for it, every version together.
    pub passages: usize,
    /// The version the file yielded, when it is dated.
    pub version: Option<VersionRecord>,
}

/// An ingest job as the registry keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: i64,
    /// `queued` (waiting for a worker), `running`, `done` or `failed`.
    pub status: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Totals so far (filled in when the job ends).
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Why the job failed as a whole.
    pub error: Option<String>,
    /// Files that could not be ingested, with reasons.
    pub failures: Vec<FailureRecord>,
}

/// A file an ingest job could not ingest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailureRecord {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The database engine behind a registry. Queries are written once, in the SQL both read
/// (`$1` parameters, `ON CONFLICT`, `RETURNING`); the few places that differ ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: one data folder, one process writing (the embedded profile).
    Sqlite,
    /// A PostgreSQL server shared by several API replicas and workers (the cluster profile).
    Postgres,
}

/// The registry.
#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
    backend: Backend,
    /// Audit appends one at a time within this process (across processes the database's
    /// own lock does it), so the hash chain never forks.
    audit_lock: Arc<tokio::sync::Mutex<()>>,
}

fn date(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

impl Registry {
    /// Opens (creating if needed) the SQLite registry at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        // Two processes opening a new data folder at once (an ingest, and `cabildo status`
        // beside it) both found migration 4 unapplied, and the second failed on the table
        // the first had just created: SQLite has no lock across a migration run, so a file
        // beside the database serialises them. It is released when the registry is open.
        let lock_path = path.with_extension("migrate-lock");
        let lock_error = |source| StoreError::Lock {
            path: lock_path.display().to_string(),
            source,
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_error)?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| lock_error(std::io::Error::other(e)))?
            .map_err(lock_error)?;
        let registry = Self::connect_url(url.as_str(), Backend::Sqlite).await;
        drop(lock);
        registry
    }

    /// Connects to the registry at `url` (`postgres://user:password@host/database`, or
    /// `sqlite://FILE`) and applies migrations. PostgreSQL's database must exist; its tables
    /// are created on first use.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Invalid(format!(
                "registry address {}: expected postgres://… or sqlite://…",
                cabildo_core::settings::redact_url(url)
            )));
        };
        Self::connect_url(url, backend).await
    }

    async fn connect_url(url: &str, backend: Backend) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        // One connection first, so that a server that is down or refuses the login says so
        // at once; the pool would retry for its whole acquire timeout and then report only
        // that it timed out.
        sqlx::AnyConnection::connect_with(&options)
            .await?
            .close()
            .await?;
        let pool = AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(10))
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait for the writer. The busy timeout makes a
                        // second writer (the CLI beside a running server) wait its turn.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Registry {
            pool,
            backend,
            audit_lock: Arc::default(),
        })
    }

    /// The database engine behind this registry.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What was last ingested from a source file.
    pub async fn source(&self, path: &str) -> Result<Option<SourceRecord>> {
        let row =
            sqlx::query("SELECT content_hash, norm_id, embedder FROM sources WHERE path = $1")
                .bind(path)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| SourceRecord {
            content_hash: r.get(0),
            norm_id: r.get(1),
            embedder: r.get(2),
        }))
    }

    /// A norm's versions, oldest first (none for a norm whose text is undated).
    pub async fn versions(&self, norm_id: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT effective, version_date, repealed, title, official_url, content_hash,
                    source_path, provisions
             FROM norm_versions WHERE norm_id = $1 ORDER BY effective",
        )
        .bind(norm_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(VersionRecord {
                    effective: date(r.get(0))
                        .ok_or_else(|| StoreError::Invalid(format!("version date of {norm_id}")))?,
                    version_date: date(r.get(1)),
                    repealed: date(r.get(2)),
                    title: r.get(3),
                    official_url: r.get(4),
                    content_hash: r.get(5),
                    source_path: r.get(6),
                    provisions: u64::try_from(r.get::<i64, _>(7)).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Records norms (with their passage counts, their versions) and their source files in
    /// one transaction, with the model their passages were embedded with (`None`: not
    /// embedded), and appends `log` (the norms' passages, for replicas; see
    /// [`Registry::log_norms`]) in the same transaction. Called after the index commit that
    /// made their passages visible.
    pub async fn record(
        &self,
        written: &[Written],
        embedder: Option<&str>,
        log: &[(String, String)],
    ) -> Result<()> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.pool.begin().await?;
        norm_log::append_log(&mut tx, self.backend, log).await?;
        for w in written {
            let (n, passages) = (&w.norm, &w.passages);
            sqlx::query(
                "INSERT INTO norms (id, jurisdiction, subdivision, kind, number, title, issuing_body,
                    language, official_url, publication_date, version_date, valid_from, valid_to,
                    access, tenant, content_hash, format, source_path, passages, ingested_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
                 ON CONFLICT (id) DO UPDATE SET
                    jurisdiction = excluded.jurisdiction, subdivision = excluded.subdivision,
                    kind = excluded.kind, number = excluded.number, title = excluded.title,
                    issuing_body = excluded.issuing_body, language = excluded.language,
                    official_url = excluded.official_url, publication_date = excluded.publication_date,
                    version_date = excluded.version_date, valid_from = excluded.valid_from,
                    valid_to = excluded.valid_to, access = excluded.access, tenant = excluded.tenant,
                    content_hash = excluded.content_hash, format = excluded.format,
                    source_path = excluded.source_path, passages = excluded.passages,
                    ingested_at = excluded.ingested_at",
            )
            .bind(&n.id)
            .bind(&n.jurisdiction.country)
            .bind(&n.jurisdiction.subdivision)
            .bind(n.kind.as_str())
            .bind(&n.number)
            .bind(&n.title)
            .bind(&n.issuing_body)
            .bind(n.language.code())
            .bind(&n.official_url)
            .bind(n.publication_date.map(|d| d.to_string()))
            .bind(n.version_date.map(|d| d.to_string()))
            .bind(n.valid_from.map(|d| d.to_string()))
            .bind(n.valid_to.map(|d| d.to_string()))
            .bind(n.access.as_str())
            .bind(&n.tenant)
            .bind(&n.content_hash)
            .bind(&n.format)
            .bind(&n.source_path)
            .bind(*passages as i64)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if let Some(v) = &w.version {
                sqlx::query(
                    "INSERT INTO norm_versions (norm_id, effective, version_date, repealed, title,
                        official_url, content_hash, source_path, provisions, ingested_at)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
                     ON CONFLICT (norm_id, effective) DO UPDATE SET
                        version_date = excluded.version_date, repealed = excluded.repealed,
                        title = excluded.title, official_url = excluded.official_url,
                        content_hash = excluded.content_hash, source_path = excluded.source_path,
                        provisions = excluded.provisions, ingested_at = excluded.ingested_at",
                )
                .bind(&n.id)
                .bind(v.effective.to_string())
                .bind(v.version_date.map(|d| d.to_string()))
                .bind(v.repealed.map(|d| d.to_string()))
                .bind(&v.title)
                .bind(&v.official_url)
                .bind(&v.content_hash)
                .bind(&v.source_path)
                .bind(v.provisions as i64)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            let (path, hash) = match &w.version {
                Some(v) => (&v.source_path, &v.content_hash),
                None => (&n.source_path, &n.content_hash),
            };
            sqlx::query(
                "INSERT INTO sources (path, content_hash, norm_id, ingested_at, embedder, version)
                 VALUES ($1,$2,$3,$4,$5,$6)
                 ON CONFLICT (path) DO UPDATE SET content_hash = excluded.content_hash,
                    norm_id = excluded.norm_id, ingested_at = excluded.ingested_at,
                    embedder = excluded.embedder,
                    version = COALESCE(excluded.version, sources.version)",
            )
            .bind(path)
            .bind(hash)
            .bind(&n.id)
            .bind(&now)
            .bind(embedder)
            .bind(w.version.as_ref().map(|v| v.effective.to_string()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a norm that no longer has a source (its file now yields another norm id).
    /// A shared registry also logs the removal for replicas.
    pub async fn forget_norm(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.log_removal(&mut tx, id).await?;
        for sql in [
            "DELETE FROM norm_versions WHERE norm_id = $1",
            "DELETE FROM norms WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// In a shared (PostgreSQL) registry, appends the removal of norm `id` to the norm log
    /// within `tx`, so that replicas drop it exactly when the registry does.
    async fn log_removal(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        norm_log::append_log(tx, self.backend, &[(id.to_string(), "[]".to_string())]).await
    }

    /// Opens an ingest job and returns its id.
    pub async fn start_job(&self) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO ingest_jobs (started_at, status) VALUES ($1, 'running') RETURNING id",
        )
        .bind(Utc::now().to_rfc3339())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Records a file that could not be ingested.
    pub async fn add_failure(&self, job: i64, path: &str, reason: &str) -> Result<()> {
        sqlx::query("INSERT INTO ingest_failures (job_id, path, reason) VALUES ($1,$2,$3)")
            .bind(job)
            .bind(path)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes an ingest job with its summary.
    pub async fn finish_job(&self, job: i64, s: &JobSummary, status: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_jobs SET finished_at = $1, status = $2, files = $3, unchanged = $4,
                norms = $5, passages = $6, failures = $7, flagged = $8, seconds = $9 WHERE id = $10",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(status)
        .bind(s.files as i64)
        .bind(s.unchanged as i64)
        .bind(s.norms as i64)
        .bind(s.passages as i64)
        .bind(s.failures as i64)
        .bind(s.flagged as i64)
        .bind(s.seconds)
        .bind(job)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a job failed as a whole, with the reason.
    pub async fn fail_job(&self, job: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_jobs SET finished_at = $1, status = 'failed', error = $2 WHERE id = $3",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(error)
        .bind(job)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `n` ingest jobs, newest first, each with its per-file failures.
    pub async fn recent_jobs(&self, n: u32) -> Result<Vec<JobRecord>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM ingest_jobs ORDER BY id DESC LIMIT $1")
                .bind(i64::from(n))
                .fetch_all(&self.pool)
                .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.extend(self.job(id).await?);
        }
        Ok(jobs)
    }

    /// An ingest job with its per-file failures.
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        let Some(r) = sqlx::query(
            "SELECT id, status, started_at, finished_at, files, unchanged, norms, passages,
                failures, COALESCE(seconds, 0.0), error, flagged
             FROM ingest_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let failures = sqlx::query("SELECT path, reason FROM ingest_failures WHERE job_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|f| {
                Ok(FailureRecord {
                    path: f.try_get(0)?,
                    reason: f.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let count = |i: usize| r.try_get::<i64, _>(i).map(|n| n as u64);
        Ok(Some(JobRecord {
            id: r.try_get(0)?,
            status: r.try_get(1)?,
            started_at: r.try_get(2)?,
            finished_at: r.try_get(3)?,
            summary: JobSummary {
                files: count(4)?,
                unchanged: count(5)?,
                norms: count(6)?,
                passages: count(7)?,
                failures: count(8)?,
                flagged: count(11)?,
                seconds: r.try_get(9)?,
            },
            error: r.try_get(10)?,
            failures,
        }))
    }

    /// One norm, with its passage count.
    pub async fn norm(&self, id: &str) -> Result<Option<(Norm, i64)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            norm_columns!(),
            ", passages FROM norms WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let passages = r.get(18);
            norm_from_row(r).map(|n| (n, passages))
        })
        .transpose()
    }

    /// Deletes a norm and the source records that yielded it, so re-ingesting its file
    /// brings it back. Returns whether it existed.
    pub async fn delete_norm(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        self.log_removal(&mut tx, id).await?;
        for sql in [
            "DELETE FROM sources WHERE norm_id = $1",
            "DELETE FROM norm_versions WHERE norm_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM norms WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Every norm's id with the number of passages recorded for it.
    pub async fn norm_passages(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, passages FROM norms")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// All norms, by jurisdiction and title.
    pub async fn norms(&self) -> Result<Vec<Norm>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            norm_columns!(),
            " FROM norms ORDER BY jurisdiction, title"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(norm_from_row).collect()
    }

    /// Number of norms recorded.
    pub async fn norm_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM norms")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    /// Total passages recorded.
    pub async fn passage_count(&self) -> Result<i64> {
        // SUM of a BIGINT is a NUMERIC in PostgreSQL: cast it back.
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(passages), 0) AS BIGINT) FROM norms")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }
}

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Invalid(format!("{what} {s:?}")))
}

fn norm_from_row(r: AnyRow) -> Result<Norm> {
    Ok(Norm {
        id: r.get(0),
        jurisdiction: Jurisdiction {
            country: r.get(1),
            subdivision: r.get(2),
        },
        kind: parse("kind", &r.get::<String, _>(3))?,
        number: r.get(4),
        title: r.get(5),
        issuing_body: r.get(6),
        language: parse("language", &r.get::<String, _>(7))?,
        official_url: r.get(8),
        publication_date: date(r.get(9)),
        version_date: date(r.get(10)),
        valid_from: date(r.get(11)),
        valid_to: date(r.get(12)),
        access: parse("access", &r.get::<String, _>(13))?,
        tenant: r.get(14),
        content_hash: r.get(15),
        format: r.get(16),
        source_path: r.get(17),
        id_from_path: false,
    })
}
