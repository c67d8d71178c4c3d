//! Answers over the Peruvian Constitution in `samples/` (CC0, in the repository), with
//! e5-small vectors as the quickstart ingests it: what a new user sees after it.

use std::path::Path;
use std::sync::Arc;

use cabildo_core::Filters;
use cabildo_engine::answer::{compose, Answer, AskOptions, Question, Register, Writer};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{Dense, EdgeStore, Engine, IngestDefaults};
use cabildo_models::TextEmbedder;

/// Two chapters of it (political rights; the State, whose capital is Lima) in the sample's
/// own layout (its folders say the country and the norm), with vectors.
async fn peru(data: &Path) -> Engine {
    let sample = cabildo_core::fixtures::workspace_root().join("samples");
    let docs = data.join("docs");
    for rel in [
        "README_source.md",
        "md/README.md",
        "md/titulo-i/README.md",
        "md/titulo-i/capitulo-iii.md",
        "md/titulo-ii/README.md",
        "md/titulo-ii/capitulo-i.md",
    ] {
        let rel = Path::new("pe/constitucion-1993").join(rel);
        let to = docs.join(&rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(sample.join(&rel), to).expect("copy");
    }
    let models = cabildo_core::fixtures::workspace_root().join("models/e5-small");
    let embedder =
        Arc::new(TextEmbedder::e5_small(&models).expect("e5-small (scripts/setup-models.sh)"));
    let store =
        Arc::new(EdgeStore::open(&Engine::vectors_dir(&data.join("data")), 384).expect("store"));
    let engine = Engine::open(&data.join("data"))
        .await
        .expect("open")
        .with_dense(Dense { embedder, store });
    let report = engine
        .ingest(&[docs], &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
    engine
}

async fn ask(engine: &Engine, question: &str) -> Answer {
    let options = AskOptions::default();
    let sources = engine
        .gather(
            &Question {
                text: question.into(),
                filters: Filters::operator(),
                language: None,
                register: Register::Usted,
                history: Vec::new(),
            },
            &options,
        )
        .await
        .expect("gather");
    compose(
        &sources,
        &Writer::Extractive,
        &options,
        &mut |_| true,
        &|| true,
    )
    .expect("compose")
}

#[tokio::test]
async fn an_extractive_answer_quotes_only_what_answers_and_names_a_missing_country() {
    let data = tempfile::tempdir().expect("tempdir");
    let engine = peru(data.path()).await;

    let a = ask(&engine, "¿Quiénes son ciudadanos en el Perú?").await;
    assert!(!a.abstained, "{}", a.answer);
    let labels: Vec<&str> = a.citations.iter().map(|c| c.label.as_str()).collect();
    assert!(labels[0].ends_with("Artículo 30"), "{labels:?}");
    assert!(
        a.citations[0]
            .quote
            .contains("Son ciudadanos los peruanos mayores de dieciocho años"),
        "{:?}",
        a.citations[0]
    );
    // Article 49 (the capital is Lima) shares only the country's name with the question.
    assert!(!a.answer.contains("Lima"), "{}", a.answer);

    let a = ask(&engine, "¿desde qué edad se puede votar en Chile?").await;
    assert!(a.abstained, "{}", a.answer);
    assert!(
        a.answer
            .starts_with("No tengo documentos de Chile entre las fuentes disponibles."),
        "{}",
        a.answer
    );
    // The closest provisions are still listed, so the asker sees what there is.
    assert!(!a.citations.is_empty());
}
