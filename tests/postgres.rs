//! The registry on PostgreSQL, end to end: a data folder whose registry is a PostgreSQL
//! database (`[data] registry`), documents ingested into it, and two API replicas started
//! from the same settings that share it: an answer delivered by one is rated through the
//! other, a partner's daily quota counts requests to both, and the audit log both write is
//! one intact chain. Skips without a test server (`cabildo_store::fixtures`).

mod common;

use std::sync::Arc;

use cabildo_core::settings::GeneratorKind;
use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{DenseMode, Engine, IngestDefaults, Settings};
use cabildo_server::AppState;
use cabildo_store::Registry;
use common::{json_of, post, root};
use serde_json::json;

async fn replica(settings: &Settings) -> String {
    let state = AppState::from_settings(settings).await.expect("replica");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(cabildo_server::serve(
        listener,
        Arc::new(state),
        std::future::pending(),
    ));
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_postgres_registry() {
    let Some(url) = cabildo_store::fixtures::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.data.dir = dir.path().join("data");
    settings.data.models = cabildo_core::fixtures::models_dir();
    settings.data.registry = Some(url.clone());
    settings.answer.generator = GeneratorKind::Extractive;

    let engine = Engine::from_settings(&settings, DenseMode::Off)
        .await
        .expect("engine");
    let report = engine
        .ingest(
            &[root().join("samples")],
            &IngestDefaults::default(),
            &mut NoProgress,
        )
        .await
        .expect("ingest");
    assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
    assert!(
        !settings.data.dir.join("registry.sqlite").exists(),
        "the registry is the PostgreSQL database, not a file in the data folder"
    );
    let key = common::add_key(
        &engine,
        "portal-municipal",
        AccessRole::Partner,
        None,
        AccessLevel::Public,
        Some(3),
    )
    .await;
    drop(engine);

    let (a, b) = (replica(&settings).await, replica(&settings).await);
    let bearer = format!("Bearer {key}");
    let auth = [("Authorization", bearer.as_str())];
    let ask = json!({"question": "¿A qué edad se es ciudadano en el Perú?"});
    let (status, _, body) = post(&format!("{a}/v1/ask"), &ask, &auth);
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["abstained"], false, "{body}");
    assert!(
        answer["citations"][0]["norm_id"]
            .as_str()
            .is_some_and(|n| n.starts_with("pe-")),
        "cites the ingested Constitution: {body}"
    );
    let id = answer["id"].as_str().expect("answer id");

    // The answer A delivered is known to B.
    let rating = json!({"answer_id": id, "rating": "useful"});
    let (status, _, body) = post(&format!("{b}/v1/feedback"), &rating, &auth);
    assert_eq!(status, 201, "{body}");

    // A quota of three a day, counted across both replicas.
    let search = json!({"query": "ciudadanía"});
    let (status, _, body) = post(&format!("{b}/v1/search"), &search, &auth);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&format!("{a}/v1/search"), &search, &auth);
    assert_eq!(
        status, 429,
        "the fourth request of a three-a-day key: {body}"
    );

    let registry = Registry::connect(&url).await.expect("registry");
    let v = registry.verify_audit().await.expect("verify");
    assert!(v.intact(), "{:?}", v.problems);
    assert!(v.records >= 3, "{v:?}");
    let rated = registry
        .feedback_between(None, None)
        .await
        .expect("feedback");
    assert_eq!(rated.len(), 1);
    assert_eq!(rated[0].answer.id, id);
    assert!(registry.norm_count().await.expect("norms") >= 1);
}
