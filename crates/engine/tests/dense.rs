//! Dense and hybrid retrieval end to end: real e5-small embeddings of real articles in the
//! embedded Qdrant store, under the same filters as the lexical index. Reads an excerpt of
//! the Chilean Labour Code from `../shared/corpus` (skips when absent); the model files are
//! installed by `scripts/setup-models.sh`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cabildo_core::{AccessLevel, Filters, SearchHit};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::retrieve::{HybridParams, Method};
use cabildo_engine::{Dense, EdgeStore, Engine, IngestDefaults};
use cabildo_models::{Embedder, TextEmbedder};

/// The Labour Code's front matter, its preliminary title and the maternity-protection title
/// of Book II (articles 194–208), as a file in `dir`.
fn labour_code_excerpt(dir: &Path, with_front_matter: bool) -> Option<PathBuf> {
    let source =
        cabildo_core::fixtures::shared("corpus/cl/leychile-md/codigos/codigo-del-trabajo.md")?;
    let text = std::fs::read_to_string(&source).expect("readable");
    let lines: Vec<&str> = text.lines().collect();
    let find = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    let (Some(prelim), Some(book1), Some(book2), Some(book3)) = (
        find("## TITULO PRELIMINAR"),
        find("## LIBRO I"),
        find("## LIBRO II"),
        find("## LIBRO III"),
    ) else {
        panic!("the Labour Code no longer has the expected books");
    };
    let head_end = if with_front_matter { prelim } else { 0 };
    let mut excerpt: Vec<&str> = lines[..head_end].to_vec();
    if !with_front_matter {
        excerpt.push("# Código del Trabajo (extracto)");
    }
    excerpt.extend(&lines[prelim..book1]);
    excerpt.extend(&lines[book2..book3]);
    let path = dir.join("codigo-del-trabajo.md");
    std::fs::write(&path, excerpt.join("\n")).expect("write excerpt");
    Some(path)
}

fn e5() -> Arc<dyn Embedder> {
    let dir = cabildo_core::fixtures::workspace_root().join("models/e5-small");
    Arc::new(TextEmbedder::e5_small(&dir).expect("e5-small (scripts/setup-models.sh)"))
}

async fn search(engine: &Engine, q: &str, f: &Filters, method: Method) -> Vec<SearchHit> {
    engine
        .search(q, f, 10, method, &HybridParams::default())
        .await
        .expect("search")
}

fn provisions(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.passage.provision.as_str()).collect()
}

#[tokio::test]
async fn a_paraphrase_finds_the_article_and_filters_hold_in_every_method() {
    let src = tempfile::tempdir().expect("tempdir");
    let Some(code) = labour_code_excerpt(src.path(), true) else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let embedder = e5();
    let store = Arc::new(
        EdgeStore::open(&Engine::vectors_dir(data.path()), embedder.dimension()).expect("store"),
    );

    // A lexical-only ingest first: switching dense on later embeds the unchanged file.
    let lexical_only = Engine::open(data.path()).await.expect("open");
    let first = lexical_only
        .ingest(
            std::slice::from_ref(&code),
            &IngestDefaults::default(),
            &mut NoProgress,
        )
        .await
        .expect("ingest");
    assert_eq!(first.embedded, 0);
    drop(lexical_only);

    let engine = Engine::open(data.path())
        .await
        .expect("open")
        .with_dense(Dense {
            embedder: embedder.clone(),
            store: store.clone(),
        });
    // The excerpt ingested again by the dense engine, with these defaults.
    let ingest_code = async |defaults: &IngestDefaults| {
        engine
            .ingest(std::slice::from_ref(&code), defaults, &mut NoProgress)
            .await
            .expect("ingest")
    };
    let report = ingest_code(&IngestDefaults::default()).await;
    assert_eq!(report.summary.unchanged, 0, "not embedded yet, so redone");
    assert!(report.embedded > 40, "{report:?}");
    assert_eq!(report.embedded, report.summary.passages);
    let again = ingest_code(&IngestDefaults::default()).await;
    assert_eq!(
        (again.summary.unchanged, again.embedded),
        (1, 0),
        "nothing unchanged is re-embedded"
    );

    // The citizen's words share no term with "fuero" or "artículo 174": the article is
    // among the first ten by meaning, and stays there once fused with the lexical ranking.
    let question = "¿me pueden despedir estando embarazada?";
    let everyone = Filters::default();
    for method in [Method::Dense, Method::Hybrid] {
        let hits = search(&engine, question, &everyone, method).await;
        assert!(
            provisions(&hits)
                .iter()
                .any(|p| p.starts_with("Artículo 201")),
            "{}: {:?}",
            method.name(),
            provisions(&hits)
        );
        assert!(hits.iter().all(|h| !h.snippet.is_empty()));
    }

    // The unchanged file ingested again as an agency's restricted document: relabelled in
    // both indexes (and the registry) without re-embedding, so citizens no longer find it in
    // any method and the agency does; ingested as public again, it is public again.
    let sealed = IngestDefaults {
        access: AccessLevel::Restricted,
        tenant: Some("dt".into()),
        ..IngestDefaults::default()
    };
    let relabelled = ingest_code(&sealed).await;
    assert_eq!(
        (
            relabelled.summary.unchanged,
            relabelled.summary.norms,
            relabelled.embedded
        ),
        (0, 1, 0),
        "{relabelled:?}"
    );
    let agency = Filters {
        tenant: Some("dt".into()),
        max_access: AccessLevel::Restricted,
        ..Filters::default()
    };
    for method in [Method::Lexical, Method::Dense, Method::Hybrid] {
        let seen = search(&engine, question, &everyone, method).await;
        assert!(
            seen.is_empty(),
            "{}: {:?}",
            method.name(),
            provisions(&seen)
        );
        let owner = search(&engine, question, &agency, method).await;
        assert!(
            !owner.is_empty(),
            "{}: the owning agency finds it",
            method.name()
        );
        assert!(owner
            .iter()
            .all(|h| h.passage.access == AccessLevel::Restricted));
    }
    let norms = engine.registry().norms().await.expect("norms");
    assert!(norms
        .iter()
        .all(|n| n.access == AccessLevel::Restricted && n.tenant.as_deref() == Some("dt")));
    let reopened = ingest_code(&IngestDefaults::default()).await;
    assert_eq!(
        (reopened.summary.norms, reopened.embedded),
        (1, 0),
        "{reopened:?}"
    );
    for method in [Method::Lexical, Method::Dense, Method::Hybrid] {
        assert!(
            !search(&engine, question, &everyone, method)
                .await
                .is_empty(),
            "{}",
            method.name()
        );
    }

    // The same text ingested as an agency's restricted copy (another norm id, no front
    // matter) is invisible to citizens and to other agencies in every method.
    let restricted_src = tempfile::tempdir().expect("tempdir");
    let restricted = labour_code_excerpt(restricted_src.path(), false).expect("excerpt");
    let defaults = IngestDefaults {
        jurisdiction: Some("CL".into()),
        access: AccessLevel::Restricted,
        tenant: Some("dt".into()),
        ..IngestDefaults::default()
    };
    let r = engine
        .ingest(&[restricted], &defaults, &mut NoProgress)
        .await
        .expect("ingest restricted");
    assert_eq!(r.summary.failures, 0, "{r:?}");
    let other_agency = Filters {
        tenant: Some("sii".into()),
        max_access: AccessLevel::Restricted,
        ..Filters::default()
    };
    let owner = Filters {
        tenant: Some("dt".into()),
        max_access: AccessLevel::Restricted,
        ..Filters::default()
    };
    for method in [Method::Lexical, Method::Dense, Method::Hybrid] {
        for f in [&everyone, &other_agency] {
            let hits = search(&engine, question, f, method).await;
            assert!(!hits.is_empty());
            assert!(
                hits.iter().all(|h| h.passage.access == AccessLevel::Public),
                "{}: a restricted passage leaked",
                method.name()
            );
        }
        let hits = engine
            .search(question, &owner, 50, method, &HybridParams::default())
            .await
            .expect("search");
        assert!(
            hits.iter()
                .any(|h| h.passage.access == AccessLevel::Restricted),
            "{}: the owning agency sees its copy",
            method.name()
        );
    }
}
