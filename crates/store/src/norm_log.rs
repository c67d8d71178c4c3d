//! The norm log: what API replicas that share a PostgreSQL registry read to keep their own
//! lexical index in step. Each entry is one norm with all its passages as the writer's index
//! held them after a commit (none: deleted); applying an entry replaces the norm, so applying
//! entries again, or only the newest of each norm, gives the same index.

use chrono::Utc;
use sqlx::Row;

use crate::{Backend, Registry, Result};

/// The PostgreSQL advisory lock that serialises log appends across processes ("normlog").
const LOG_LOCK_KEY: i64 = 0x006e_6f72_6d6c_6f67;

/// One entry of the norm log.
#[derive(Debug, Clone, PartialEq)]
pub struct NormLogEntry {
    /// Its position: entries are applied in this order.
    pub seq: i64,
    /// The norm.
    pub norm_id: String,
    /// Its passages (a JSON array of `Passage`); `[]` when the norm was deleted.
    pub passages: String,
}

impl Registry {
    /// At most `limit` entries after position `after`, oldest first.
    pub async fn norm_log_after(&self, after: i64, limit: u32) -> Result<Vec<NormLogEntry>> {
        let rows = sqlx::query(
            "SELECT seq, norm_id, passages FROM norm_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| NormLogEntry {
                seq: r.get(0),
                norm_id: r.get(1),
                passages: r.get(2),
            })
            .collect())
    }

    /// The newest position in the log (0 when empty).
    pub async fn norm_log_head(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM norm_log")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Appends entries within `tx` (a registry write that must land with them, or none).
pub(crate) async fn append_log(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    entries: &[(String, String)],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        // Appenders take turns until commit, so a reader that has seen entry N has seen
        // every entry below it.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK_KEY)
            .execute(&mut **tx)
            .await?;
    }
    let last: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM norm_log")
            .fetch_one(&mut **tx)
            .await?;
    let now = Utc::now().to_rfc3339();
    for (i, (norm_id, passages)) in entries.iter().enumerate() {
        sqlx::query("DELETE FROM norm_log WHERE norm_id = $1")
            .bind(norm_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO norm_log (seq, norm_id, passages, at) VALUES ($1, $2, $3, $4)")
            .bind(last + 1 + i as i64)
            .bind(norm_id)
            .bind(passages)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
