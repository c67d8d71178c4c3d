//! Versions of a norm arriving in any order, in separate jobs, down to its repeal: the
//! records, what a day's search sees, and the registry's lineage. Small LeyChile-style files
//! written here; lexical only (the vector side is covered by `crates/cli/tests/versions.rs`).

use std::path::Path;

use cabildo_core::Filters;
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::retrieve::{HybridParams, Method};
use cabildo_engine::{Engine, IngestDefaults};
use chrono::NaiveDate;

fn version(dir: &Path, day: &str, repealed: bool, articles: &[&str]) -> std::path::PathBuf {
    let body: Vec<String> = articles
        .iter()
        .enumerate()
        .map(|(i, text)| format!("Artículo {}°.- {text}\n", i + 1))
        .collect();
    let file = dir.join(format!("{day}.md"));
    std::fs::write(
        &file,
        format!(
            "---\nsource_url: https://nuevo.leychile.cl/servicios/Navegar/get_norma_json?idNorma=990100&idVersion={day}\n\
             id_norma: 990100\nversion_date: {day}\ntitulo_norma: \"LEY DE PRUEBA SOBRE MERCADOS\"\n\
             compuesto: LEY-1\nfecha_publicacion_original: 2010-01-01\nderogada: {repealed}\n---\n\n\
             # LEY DE PRUEBA SOBRE MERCADOS\n\n{}",
            body.join("\n")
        ),
    )
    .expect("write");
    file
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// The texts a search in force on `on` finds ("" : no date, the law as it stands).
async fn texts_on(engine: &Engine, on: &str) -> Vec<String> {
    let filters = Filters {
        in_force_on: (!on.is_empty()).then(|| day(on)),
        ..Filters::operator()
    };
    let hits = engine
        .search(
            "mercado puestos",
            &filters,
            10,
            Method::Lexical,
            &HybridParams::default(),
        )
        .await
        .expect("search");
    let mut texts: Vec<String> = hits.into_iter().map(|h| h.passage.text).collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn versions_in_any_order_keep_each_days_text_until_the_repeal() {
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path();
    let v2015 = version(
        dir,
        "2015-01-01",
        false,
        &[
            "El mercado abre a las ocho.",
            "Los puestos pagan patente anual.",
        ],
    );
    let v2010 = version(
        dir,
        "2010-01-01",
        false,
        &[
            "El mercado abre a las ocho.",
            "Los puestos pagan patente mensual.",
        ],
    );
    version(
        dir,
        "2020-01-01",
        true,
        &[
            "El mercado abre a las ocho.",
            "Los puestos pagan patente anual.",
        ],
    );
    let data = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(data.path()).await.expect("open");
    // The later version first, then the earlier, each in its own job.
    for file in [&v2015, &v2010] {
        engine
            .ingest(
                std::slice::from_ref(file),
                &IngestDefaults::default(),
                &mut NoProgress,
            )
            .await
            .expect("ingest");
    }
    let norm = "cl-leychile-990100";
    let records = engine.index().passages_of(norm).expect("records");
    let mut ranges: Vec<(String, Option<NaiveDate>, Option<NaiveDate>)> = records
        .iter()
        .map(|r| (r.id.clone(), r.valid_from, r.valid_to))
        .collect();
    ranges.sort();
    assert_eq!(
        ranges,
        [
            (format!("{norm}/articulo-1"), Some(day("2010-01-01")), None),
            (
                format!("{norm}/articulo-2"),
                Some(day("2010-01-01")),
                Some(day("2015-01-01"))
            ),
            (
                format!("{norm}/articulo-2@2015-01-01"),
                Some(day("2015-01-01")),
                None
            ),
        ],
        "one record per provision per stretch of unchanged text"
    );
    assert_eq!(
        texts_on(&engine, "2012-06-01").await,
        [
            "Artículo 1°.- El mercado abre a las ocho.",
            "Artículo 2°.- Los puestos pagan patente mensual."
        ]
    );
    assert!(texts_on(&engine, "2016-06-01").await[1].ends_with("patente anual."));
    assert!(texts_on(&engine, "2009-12-31").await.is_empty());
    assert_eq!(
        texts_on(&engine, "").await,
        texts_on(&engine, "2016-06-01").await,
        "without a date: today's text only, not every version"
    );

    // The registry keeps the lineage; the norm's row is its latest version's.
    let versions = engine.registry().versions(norm).await.expect("versions");
    let days: Vec<NaiveDate> = versions.iter().map(|v| v.effective).collect();
    assert_eq!(days, [day("2010-01-01"), day("2015-01-01")]);
    let (row, passages) = engine
        .registry()
        .norm(norm)
        .await
        .expect("norm")
        .expect("row");
    assert_eq!(passages, 3);
    assert_eq!(row.valid_from, Some(day("2010-01-01")));
    assert_eq!(row.version_date, Some(day("2015-01-01")));

    // An unchanged file is skipped; the repeal closes every provision.
    let again = engine
        .ingest(
            &[dir.to_path_buf()],
            &IngestDefaults::default(),
            &mut NoProgress,
        )
        .await
        .expect("ingest");
    assert_eq!(again.summary.unchanged, 2, "{again:?}");
    assert_eq!(texts_on(&engine, "2019-12-31").await.len(), 2);
    assert!(
        texts_on(&engine, "2020-01-01").await.is_empty(),
        "repealed from 2020-01-01"
    );
    assert!(
        texts_on(&engine, "2026-06-01").await.is_empty() && texts_on(&engine, "").await.is_empty(),
        "nor found today"
    );
    let (row, _) = engine
        .registry()
        .norm(norm)
        .await
        .expect("norm")
        .expect("row");
    assert_eq!(row.valid_to, Some(day("2020-01-01")));
    let check = engine.check().await.expect("check");
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}
