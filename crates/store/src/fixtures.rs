//! For the workspace's tests: a fresh PostgreSQL database on the server the tests are given.
//!
//! `CABILDO_TEST_POSTGRES` names the server (`postgres://user@host:port/database`, as
//! scripts/test.sh starts one with scripts/postgres.sh). Without it the PostgreSQL tests skip,
//! unless `CABILDO_REQUIRE_POSTGRES=1` (as in CI), which makes them fail instead.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AnyConnection, Connection};

/// The address of a new, empty database on the test server, or `None` (with a message)
/// when no server was given. Panics when one is required but absent, or unreachable.
pub async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("CABILDO_TEST_POSTGRES") else {
        if std::env::var("CABILDO_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("CABILDO_REQUIRE_POSTGRES=1 but CABILDO_TEST_POSTGRES is not set");
        }
        eprintln!("PostgreSQL skipped: CABILDO_TEST_POSTGRES is not set (scripts/postgres.sh)");
        return None;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "cabildo_test_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL server in CABILDO_TEST_POSTGRES: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let mut url = url::Url::parse(&admin).expect("CABILDO_TEST_POSTGRES is a URL");
    url.set_path(&name);
    Some(url.to_string())
}
