//! The ingest job queue of the cluster profile: API replicas enqueue uploads with their
//! files; `cabildo worker` processes claim them one at a time under a lease they renew
//! while they work. A job whose lease ran out (its worker died) is claimed again by another.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{Backend, Registry, Result};

/// Jobs claimed this many times without finishing are failed instead of tried again.
pub const MAX_ATTEMPTS: i64 = 3;

/// A queued job a worker now holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: i64,
    /// Its ingest defaults, as the replica that queued it wrote them (JSON).
    pub defaults: String,
    /// How many times it has been claimed, this time included.
    pub attempts: i64,
}

/// Times as stored for leases: UTC, fixed width, so that text order is time order.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Registry {
    /// Queues an ingest job with its files; returns its id.
    pub async fn enqueue_job(&self, defaults: &str, files: &[(String, Vec<u8>)]) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ingest_jobs (started_at, status, defaults) VALUES ($1, 'queued', $2)
             RETURNING id",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(defaults)
        .fetch_one(&mut *tx)
        .await?;
        for (name, content) in files {
            sqlx::query("INSERT INTO job_files (job_id, name, content) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(content.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Claims the oldest queued job, or one whose worker's lease ran out, for `worker`
    /// until `now + lease`. Concurrent workers never claim the same job.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: std::time::Duration,
    ) -> Result<Option<ClaimedJob>> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        // PostgreSQL: rows another worker is claiming are skipped, not waited for. SQLite
        // has one writer at a time anyway.
        let sql = match self.backend {
            Backend::Postgres => {
                "UPDATE ingest_jobs SET status = 'running', worker = $1, lease_until = $2,
                     attempts = attempts + 1
                 WHERE id = (SELECT id FROM ingest_jobs
                             WHERE status = 'queued' OR (status = 'running' AND lease_until < $3)
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, defaults, attempts"
            }
            Backend::Sqlite => {
                "UPDATE ingest_jobs SET status = 'running', worker = $1, lease_until = $2,
                     attempts = attempts + 1
                 WHERE id = (SELECT id FROM ingest_jobs
                             WHERE status = 'queued' OR (status = 'running' AND lease_until < $3)
                             ORDER BY id LIMIT 1)
                 RETURNING id, defaults, attempts"
            }
        };
        let row = sqlx::query(sql)
            .bind(worker)
            .bind(stamp(until))
            .bind(stamp(now))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ClaimedJob {
            id: r.get(0),
            defaults: r.get::<Option<String>, _>(1).unwrap_or_default(),
            attempts: r.get(2),
        }))
    }

    /// Extends `worker`'s lease on a running job; false when the job is no longer its own
    /// (its lease ran out and another worker took it, or it ended).
    pub async fn renew_lease(
        &self,
        job: i64,
        worker: &str,
        lease: std::time::Duration,
    ) -> Result<bool> {
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let done = sqlx::query(
            "UPDATE ingest_jobs SET lease_until = $1
             WHERE id = $2 AND worker = $3 AND status = 'running'",
        )
        .bind(stamp(until))
        .bind(job)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The files of a queued job, by name.
    pub async fn job_files(&self, job: i64) -> Result<Vec<(String, Vec<u8>)>> {
        let rows =
            sqlx::query("SELECT name, content FROM job_files WHERE job_id = $1 ORDER BY name")
                .bind(job)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Drops a finished job's files (the worker keeps its copy under its uploads folder).
    pub async fn drop_job_files(&self, job: i64) -> Result<()> {
        sqlx::query("DELETE FROM job_files WHERE job_id = $1")
            .bind(job)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Which worker holds (or last held) a job, and how many times it was claimed.
    pub async fn job_claims(&self, job: i64) -> Result<Option<(Option<String>, i64)>> {
        let row = sqlx::query("SELECT worker, attempts FROM ingest_jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}
