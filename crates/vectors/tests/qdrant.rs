//! The server backend against a real Qdrant when `QDRANT_URL` is set (its gRPC address, e.g.
//! http://localhost:6334); skipped otherwise. Each test uses its own throw-away collection.

mod common;

use cabildo_vectors::{Layout, QdrantStore};
use common::DIM;

async fn store(test: &str) -> Option<QdrantStore> {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("skipped: QDRANT_URL not set");
        return None;
    };
    let collection = format!("cabildo-test-{test}-{}", std::process::id());
    Some(
        QdrantStore::connect(
            &url,
            std::env::var("QDRANT_API_KEY").ok(),
            &collection,
            DIM,
            Layout::default(),
        )
        .await
        .expect("connect to Qdrant"),
    )
}

#[tokio::test]
async fn filters_never_leak() {
    if let Some(s) = store("filters").await {
        common::filters_never_leak(&s).await;
    }
}

#[tokio::test]
async fn in_force_on_a_date_returns_that_dates_version() {
    if let Some(s) = store("versions").await {
        common::versions_by_date(&s).await;
    }
}

#[tokio::test]
async fn a_norms_access_changes_in_place() {
    if let Some(s) = store("access").await {
        common::access_changes_in_place(&s).await;
    }
}

#[tokio::test]
async fn hits_carry_their_vectors_when_asked() {
    if let Some(s) = store("with-vectors").await {
        common::hits_carry_their_vectors_when_asked(&s).await;
    }
}
