//! The audit log: append-only and hash-chained. Each record's hash is SHA-256 over the
//! previous record's hash and the record's own fields (as JSON, in a fixed order), so
//! editing a field, deleting a record or removing the newest ones breaks the chain.

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Backend, Registry, Result, StoreError};

/// The PostgreSQL advisory lock that serialises audit appends across processes ("cabildo").
const AUDIT_LOCK_KEY: i64 = 0x0063_6162_696c_646f;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one request leaves in the audit log. Callers redact and pseudonymise before this
/// point: the registry stores what it is given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The principal's pseudonym (never its subject in clear).
    pub principal: String,
    /// Its role.
    pub role: String,
    /// The route (`/v1/ask`), not the URL with its query string.
    pub route: String,
    /// HTTP status returned.
    pub status: u16,
    /// The question or query, personal data redacted.
    pub question: Option<String>,
    /// The filters the retrieval ran with (JSON).
    pub filters: Option<String>,
    /// Ids of the passages whose text was returned.
    pub passages: Vec<String>,
    /// SHA-256 of the answer text.
    pub answer_hash: Option<String>,
    /// The model that wrote it.
    pub model: Option<String>,
    /// The prompt templates' version.
    pub prompt_version: Option<String>,
    /// Time to the response, in milliseconds.
    pub latency_ms: f64,
    /// The answer delivered (or rated, on `/v1/feedback`). Absent from the hashed JSON when
    /// `None`, so records written before the field existed keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_id: Option<String>,
    /// The feedback stored (`/v1/feedback`). Absent from the hashed JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_id: Option<i64>,
}

/// A record as stored: with its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Position in the log (1, 2, …; never reused).
    pub seq: i64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditVerification {
    /// Records read.
    pub records: u64,
    /// The last record's hash (publish it elsewhere to anchor the chain).
    pub head: String,
    /// Every break found, first first; empty when the chain is intact.
    pub problems: Vec<String>,
}

impl AuditVerification {
    /// Whether the chain is intact.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The chain's hash of one record after `prev_hash`.
pub fn chain_hash(prev_hash: &str, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    // Field order is the struct's, so the JSON is the same every time it is recomputed.
    h.update(serde_json::to_vec(record).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The columns `entry_from_row` reads, in its order (a macro so queries stay `&'static str`).
macro_rules! audit_columns {
    () => {
        "seq, at, principal, role, route, status, question, filters, passages, answer_hash,
         model, prompt_version, latency_ms, prev_hash, hash, answer_id, feedback_id"
    };
}

fn entry_from_row(r: AnyRow) -> Result<AuditEntry> {
    let passages: String = r.get(8);
    Ok(AuditEntry {
        seq: r.get(0),
        record: AuditRecord {
            at: r.get(1),
            principal: r.get(2),
            role: r.get(3),
            route: r.get(4),
            status: r.get::<i64, _>(5).try_into().unwrap_or(0),
            question: r.get(6),
            filters: r.get(7),
            passages: serde_json::from_str(&passages)
                .map_err(|e| StoreError::Invalid(format!("audit passages {passages:?}: {e}")))?,
            answer_hash: r.get(9),
            model: r.get(10),
            prompt_version: r.get(11),
            latency_ms: r.get(12),
            answer_id: r.get(15),
            feedback_id: r.get(16),
        },
        prev_hash: r.get(13),
        hash: r.get(14),
    })
}

impl Registry {
    /// Appends a record to the audit log, chained to the newest one. Appends are serialised
    /// (one writer at a time), so the chain never forks.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<AuditEntry> {
        let _one_writer = self.audit_lock.lock().await;
        let mut tx = match self.backend {
            // IMMEDIATE: the transaction reads the newest hash and then writes. A deferred
            // one would take its read snapshot first and then fail at once (SQLITE_BUSY,
            // which the busy timeout does not wait out) if an ingest or a feedback wrote in
            // between.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            // Several replicas append to one database: a lock held until this transaction
            // ends makes them take turns, so each reads the head the previous one wrote.
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(AUDIT_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        let (last_seq, prev_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or_else(|| (0, GENESIS.to_string()));
        let hash = chain_hash(&prev_hash, record);
        let passages = serde_json::to_string(&record.passages).unwrap_or_else(|_| "[]".into());
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, principal, role, route, status, question, filters,
                 passages, answer_hash, model, prompt_version, latency_ms, prev_hash, hash,
                 answer_id, feedback_id, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             RETURNING seq",
        )
        .bind(&record.at)
        .bind(&record.principal)
        .bind(&record.role)
        .bind(&record.route)
        .bind(i64::from(record.status))
        .bind(&record.question)
        .bind(&record.filters)
        .bind(passages)
        .bind(&record.answer_hash)
        .bind(&record.model)
        .bind(&record.prompt_version)
        .bind(record.latency_ms)
        .bind(&prev_hash)
        .bind(&hash)
        .bind(&record.answer_id)
        .bind(record.feedback_id)
        // The next number, not the database's counter: a PostgreSQL sequence skips the
        // numbers of rolled-back appends, which would read as removed records.
        .bind(last_seq + 1)
        .fetch_one(&mut *tx)
        .await?;
        if self.backend == Backend::Postgres {
            // The highest number ever issued, kept where removing rows does not lower it
            // (SQLite's AUTOINCREMENT keeps it in sqlite_sequence).
            sqlx::query("UPDATE audit_head SET seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(AuditEntry {
            seq,
            record: record.clone(),
            prev_hash,
            hash,
        })
    }

    /// Records from `from` to `to` (UTC days, both included), oldest first.
    pub async fn audit_between(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<AuditEntry>> {
        self.audit_page(from, to, 0, None).await
    }

    /// At most `limit` records (`None`: all) from `from` to `to` (UTC days, both included)
    /// whose sequence number is above `after`, oldest first: one page of an export.
    pub async fn audit_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: i64,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        let until = to.succ_opt().unwrap_or(to);
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE at >= $1 AND at < $2 AND seq > $3 ORDER BY seq LIMIT $4"
        ))
        .bind(from.format("%Y-%m-%d").to_string())
        .bind(until.format("%Y-%m-%d").to_string())
        .bind(after)
        .bind(limit.map_or(i64::MAX, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_from_row).collect()
    }

    /// Walks the whole chain: every record's hash recomputed, every link and sequence number
    /// checked, and the newest record compared with the highest sequence ever issued.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let mut report = AuditVerification {
            records: 0,
            head: GENESIS.to_string(),
            problems: Vec::new(),
        };
        let mut last_seq = 0i64;
        // In pages by sequence number: the log outgrows memory long before it outgrows disk.
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 10000"
            ))
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            for row in rows {
                check_link(row, &mut report, &mut last_seq);
            }
        }
        let issued: Option<i64> = sqlx::query_scalar(match self.backend {
            Backend::Sqlite => "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'",
            Backend::Postgres => "SELECT seq FROM audit_head",
        })
        .fetch_optional(&self.pool)
        .await?;
        if let Some(issued) = issued.filter(|&n| n > last_seq) {
            report.problems.push(format!(
                "records {}..{issued} were removed from the end",
                last_seq + 1
            ));
        }
        Ok(report)
    }
}

/// Checks one stored record against the chain so far: its sequence number follows, its
/// `prev_hash` is the previous record's hash, and its own hash matches its fields.
fn check_link(row: AnyRow, report: &mut AuditVerification, last_seq: &mut i64) {
    let seq: i64 = row.get(0);
    let e = match entry_from_row(row) {
        Ok(e) => e,
        Err(err) => {
            report.problems.push(format!("record {seq}: {err}"));
            *last_seq = seq;
            return;
        }
    };
    if e.seq != *last_seq + 1 {
        report.problems.push(format!(
            "records {}..{} are missing",
            *last_seq + 1,
            e.seq - 1
        ));
    }
    if e.prev_hash != report.head {
        report.problems.push(format!(
            "record {} does not follow record {} (its prev_hash differs)",
            e.seq, *last_seq
        ));
    }
    if chain_hash(&e.prev_hash, &e.record) != e.hash {
        report.problems.push(format!(
            "record {} was changed after it was written (its hash does not match)",
            e.seq
        ));
    }
    report.records += 1;
    report.head = e.hash;
    *last_seq = e.seq;
}
