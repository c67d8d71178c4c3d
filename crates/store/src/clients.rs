//! Partner systems' API keys (kept as SHA-256 hashes only) and per-principal daily request
//! counts for quotas.

use cabildo_core::{AccessLevel, AccessRole};
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::{parse, Registry, Result};

/// A registered API client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientRecord {
    /// Its id (the principal is `key:<id>`).
    pub id: i64,
    /// A unique name chosen by the operator.
    pub name: String,
    /// The role its key grants.
    pub role: AccessRole,
    /// Its tenant, if any.
    pub tenant: Option<String>,
    /// Its clearance.
    pub clearance: AccessLevel,
    /// Requests allowed per UTC day; `None`: the deployment's default.
    pub daily_quota: Option<u64>,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When its key was revoked.
    pub revoked_at: Option<String>,
}

/// What a new client is granted.
#[derive(Debug, Clone)]
pub struct NewClient<'a> {
    /// A unique name.
    pub name: &'a str,
    /// SHA-256 (hex) of its key.
    pub key_hash: &'a str,
    /// Its role.
    pub role: AccessRole,
    /// Its tenant.
    pub tenant: Option<&'a str>,
    /// Its clearance.
    pub clearance: AccessLevel,
    /// Requests per UTC day.
    pub daily_quota: Option<u64>,
}

/// The columns `client_from_row` reads, in its order.
macro_rules! client_columns {
    () => {
        "id, name, role, tenant, clearance, daily_quota, created_at, revoked_at"
    };
}

fn client_from_row(r: sqlx::any::AnyRow) -> Result<ClientRecord> {
    Ok(ClientRecord {
        id: r.get(0),
        name: r.get(1),
        role: parse("role", &r.get::<String, _>(2))?,
        tenant: r.get(3),
        clearance: parse("clearance", &r.get::<String, _>(4))?,
        daily_quota: r.get::<Option<i64>, _>(5).map(|q| q.max(0) as u64),
        created_at: r.get(6),
        revoked_at: r.get(7),
    })
}

impl Registry {
    /// Registers a client; fails if the name is taken.
    pub async fn add_client(&self, c: &NewClient<'_>) -> Result<ClientRecord> {
        let row = sqlx::query(concat!(
            "INSERT INTO api_clients (name, key_hash, role, tenant, clearance, daily_quota, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            client_columns!()
        ))
        .bind(c.name)
        .bind(c.key_hash)
        .bind(c.role.as_str())
        .bind(c.tenant)
        .bind(c.clearance.as_str())
        .bind(c.daily_quota.map(|q| q.min(i64::MAX as u64) as i64))
        .bind(Utc::now().to_rfc3339())
        .fetch_one(&self.pool)
        .await?;
        client_from_row(row)
    }

    /// The live (not revoked) client whose key hashes to `key_hash`.
    pub async fn client_by_key_hash(&self, key_hash: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM api_clients WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(client_from_row).transpose()
    }

    /// Every client, revoked ones included, by name.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM api_clients ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(client_from_row).collect()
    }

    /// Revokes a client's key; false if there is no live client by that name.
    pub async fn revoke_client(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_clients SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Counts one request by `principal` on `day` and returns that day's count so far.
    pub async fn count_request(&self, principal: &str, day: NaiveDate) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO api_usage (principal, day, requests) VALUES ($1, $2, 1)
             ON CONFLICT (principal, day) DO UPDATE SET requests = api_usage.requests + 1
             RETURNING requests",
        )
        .bind(principal)
        .bind(day.format("%Y-%m-%d").to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }
}
