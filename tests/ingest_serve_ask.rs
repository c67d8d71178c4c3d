//! The main path end to end, assembled as `cabildo serve --config FILE` assembles it: settings
//! read from a configuration file, the engine built from them, real constitutions ingested
//! with e5-small embeddings into the embedded vector store, the server started from the same
//! settings on a free loopback port, and questions asked over HTTP.
//!
//! The bundled CC0 Peruvian Constitution (samples/) is always there; the Chilean one comes
//! from `../shared/corpus` when present.

mod common;

use std::sync::Arc;

use cabildo_core::settings::Layers;
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{DenseMode, Engine, IngestDefaults, Settings};
use cabildo_server::AppState;
use common::{json_of, post, root};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_ingested_then_served_answer_with_their_articles() {
    if cabildo_core::fixtures::installed_model("e5-small/e5-small-q4.bin").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let models = cabildo_core::fixtures::models_dir();
    let file = dir.path().join("cabildo.toml");
    let config = format!(
        "[data]\ndir = {:?}\nmodels = {:?}\n\n[answer]\ngenerator = \"extractive\"\n\n[server]\naddr = \"127.0.0.1:0\"\n",
        data.display().to_string(),
        models.display().to_string(),
    );
    std::fs::write(&file, config).expect("write the configuration");
    let settings = Settings::load(&Layers {
        file: Some(file),
        ..Layers::default()
    })
    .expect("settings");

    let mut paths = vec![root().join("samples")];
    let chile = cabildo_core::fixtures::shared("corpus/cl/leychile-md/constitucion");
    paths.extend(chile.clone());
    {
        let engine = Engine::from_settings(&settings, DenseMode::Required)
            .await
            .expect("engine");
        let report = engine
            .ingest(&paths, &IngestDefaults::default(), &mut NoProgress)
            .await
            .expect("ingest");
        assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
        assert!(report.summary.passages > 100, "{:?}", report.summary);
    }

    // The server finds the vectors ingest wrote and answers over them.
    let state = AppState::from_settings(&settings)
        .await
        .expect("server state");
    assert!(state.engine().dense().is_some(), "the vectors were found");
    let listener = tokio::net::TcpListener::bind(settings.server.addr)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(cabildo_server::serve(
        listener,
        Arc::new(state),
        std::future::pending(),
    ));

    let mut questions = vec![(
        "¿A qué edad se es ciudadano en el Perú?",
        "articulo 30",
        "dieciocho",
    )];
    if chile.is_some() {
        questions.push((
            "¿desde qué edad se puede votar en Chile?",
            "articulo 13",
            "dieciocho",
        ));
    }
    for (question, article, words) in questions {
        let url = format!("{base}/v1/ask");
        let body = json!({ "question": question });
        let (status, _, answer) = tokio::task::spawn_blocking(move || post(&url, &body, &[]))
            .await
            .expect("request");
        assert_eq!(status, 200, "{answer}");
        let answer = json_of(&answer);
        assert_eq!(answer["abstained"], false, "{question}: {answer}");
        let cited: Vec<&str> = answer["citations"]
            .as_array()
            .expect("citations")
            .iter()
            .filter_map(|c| c["label"].as_str())
            .collect();
        // Labels keep the source's spelling ("Artículo 13", "ARTICULO 30").
        let plain = |label: &str| label.to_lowercase().replace('í', "i");
        assert!(
            cited.iter().any(|label| plain(label).contains(article)),
            "{question}: cites {cited:?}, not {article}"
        );
        assert!(
            answer["answer"].as_str().expect("text").contains(words),
            "{question}: {answer}"
        );
    }
}
