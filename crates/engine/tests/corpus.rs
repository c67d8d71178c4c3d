//! Ingest and search over real documents from `../shared/corpus`; each test skips with a
//! message when the corpus is not there.

use std::path::PathBuf;

use cabildo_core::SearchHit;
use cabildo_core::{Filters, NormKind};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::retrieve::{HybridParams, Method};
use cabildo_engine::{Engine, IngestDefaults};

fn corpus() -> Option<PathBuf> {
    cabildo_core::fixtures::shared("corpus")
}

async fn ingest(
    paths: &[PathBuf],
) -> (
    tempfile::TempDir,
    Engine,
    cabildo_engine::ingest::IngestReport,
) {
    let data = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(data.path()).await.expect("open");
    let report = engine
        .ingest(paths, &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    (data, engine, report)
}

async fn lexical(engine: &Engine, query: &str, filters: &Filters, k: usize) -> Vec<SearchHit> {
    engine
        .search(query, filters, k, Method::Lexical, &HybridParams::default())
        .await
        .expect("search")
}

#[tokio::test]
async fn chilean_constitution_article_19_answers_derecho_de_propiedad() {
    let Some(c) = corpus() else { return };
    let (_d, engine, report) = ingest(&[c.join("cl/leychile-md/constitucion")]).await;
    assert_eq!(report.summary.failures, 0);
    let hits = lexical(&engine, "derecho de propiedad", &Filters::operator(), 5).await;
    let hit = hits
        .iter()
        .find(|h| h.passage.provision.starts_with("Artículo 19, N° 24"))
        .unwrap_or_else(|| {
            panic!(
                "Artículo 19 N° 24 not in top 5: {:?}",
                hits.iter().map(|h| &h.passage.label).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        hit.passage.label,
        "Constitución Política de la República de Chile, Artículo 19, N° 24"
    );
    assert!(hit
        .passage
        .text
        .starts_with("24º.- El derecho de propiedad"));
    assert_eq!(
        hit.passage.url.as_deref(),
        Some("https://www.bcn.cl/leychile/navegar?idNorma=242302&idVersion=2026-04-16"),
        "the official page of the version quoted"
    );
    assert!(hit
        .passage
        .breadcrumb
        .iter()
        .any(|b| b.starts_with("Capítulo III")));
    assert!(!hit.highlights.is_empty(), "matched terms are highlighted");
}

#[tokio::test]
async fn bcn_xml_cites_the_article_by_id_parte() {
    let Some(c) = corpus() else { return };
    let (_d, engine, _) = ingest(&[c.join("cl/bcn-xml/bcn-constitucion-242302.xml")]).await;
    let hits = lexical(
        &engine,
        "Son chilenos los nacidos en el territorio de Chile",
        &Filters::operator(),
        3,
    )
    .await;
    let p = &hits[0].passage;
    assert!(p.provision.starts_with("Artículo 10"), "{}", p.label);
    assert_eq!(p.anchor.as_deref(), Some("8563477"));
    assert!(p
        .url
        .as_deref()
        .unwrap_or("")
        .ends_with("idNorma=242302&idParte=8563477"));
    assert!(
        !p.text.contains("D.O."),
        "margin notes are removed: {}",
        p.text
    );
}

#[tokio::test]
async fn brazilian_constitution_inciso_cites_its_lexml_anchor() {
    let Some(c) = corpus() else { return };
    let (_d, engine, _) = ingest(&[c.join("br/lexml/constitution-1988")]).await;
    // The corpus has the 1988 text up to inciso LXXVIII (LXXIX came with EC 115/2022).
    let hits = lexical(
        &engine,
        "razoável duração do processo",
        &Filters::operator(),
        3,
    )
    .await;
    let p = &hits[0].passage;
    assert_eq!(p.anchor.as_deref(), Some("art5_cpt_inc78"));
    assert_eq!(p.provision, "Art. 5º, inciso LXXVIII");
    assert_eq!(
        p.url.as_deref(),
        Some("https://www.lexml.gov.br/urn/urn:lex:br:federal:constituicao:1988-10-05;1988!art5_cpt_inc78")
    );
    assert_eq!(
        p.id,
        "urn:lex:br:federal:constituicao:1988-10-05;1988/art5_cpt_inc78"
    );
}

#[tokio::test]
async fn infoleg_latin1_page_decodes_accents() {
    let Some(c) = corpus() else { return };
    let file = c.join("ar/infoleg-html/sample-constitucion-ley-24430-804-norma.htm");
    let bytes = std::fs::read(&file).expect("read");
    let parsed =
        cabildo_ingestors::parse_file(&file, &bytes, &IngestDefaults::default()).expect("parse");
    assert_eq!(parsed.norm.jurisdiction.country, "AR");
    let all: String = parsed.passages.iter().map(|p| p.text.as_str()).collect();
    assert!(all.contains("Nación Argentina"));
    assert!(all.contains("Constitución"));
    assert!(!all.contains('\u{FFFD}'), "no replacement characters");
    assert!(parsed.passages.iter().any(|p| p.provision == "Artículo 14"));
}

#[tokio::test]
async fn pdf_passages_report_their_page() {
    let Some(c) = corpus() else { return };
    let file = c.join("es/boe/BOE-A-1978-31229-consolidado.pdf");
    let bytes = std::fs::read(&file).expect("read");
    let parsed =
        cabildo_ingestors::parse_file(&file, &bytes, &IngestDefaults::default()).expect("parse");
    let page_of = |label: &str| {
        parsed
            .passages
            .iter()
            .find(|p| p.provision == label)
            .and_then(|p| p.page)
            .unwrap_or_else(|| panic!("{label} not found"))
    };
    // Pages checked against the PDF: Artículo 1 opens page 3, Artículo 14 is on page 5,
    // Artículo 169 (the last) on page 36 (pdftotext agrees).
    assert_eq!(page_of("Artículo 1"), 3);
    assert_eq!(page_of("Artículo 14"), 5);
    assert_eq!(page_of("Artículo 169"), 36);
}

#[tokio::test]
async fn truncated_pdf_fails_clearly_and_the_batch_goes_on() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let pdf = std::fs::read(c.join("es/boe/BOE-A-1978-31229-consolidado.pdf")).expect("read");
    std::fs::write(dir.path().join("broken.pdf"), &pdf[..pdf.len() / 3]).expect("write");
    std::fs::write(dir.path().join("empty.md"), "").expect("write");
    std::fs::copy(
        c.join("cl/leychile-md/normas/ley/LEY-21773.md"),
        dir.path().join("LEY-21773.md"),
    )
    .expect("copy");
    let (_d, engine, report) = ingest(&[dir.path().to_path_buf()]).await;
    assert_eq!(report.summary.norms, 1, "{report:?}");
    assert_eq!(report.summary.failures, 2);
    let broken = report
        .failed
        .iter()
        .find(|f| f.path.ends_with("broken.pdf"))
        .expect("broken.pdf reported");
    assert!(broken.reason.contains("PDF"), "{}", broken.reason);
    let empty = report
        .failed
        .iter()
        .find(|f| f.path.ends_with("empty.md"))
        .expect("empty.md reported");
    assert_eq!(empty.reason, "empty file");
    assert!(!engine.index().is_empty());
}

#[tokio::test]
async fn reingest_is_a_no_op_and_a_changed_file_replaces_its_version() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let law =
        std::fs::read_to_string(c.join("cl/leychile-md/normas/ley/LEY-21773.md")).expect("read");
    let file = dir.path().join("LEY-21773.md");
    std::fs::write(&file, &law).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(data.path()).await.expect("open");
    let paths = [dir.path().to_path_buf()];
    let first = engine
        .ingest(&paths, &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    let norm_id = "cl-leychile-1217272";
    let ids = engine.index().passage_ids_of(norm_id).expect("ids");
    assert!(!ids.is_empty(), "norm id is the BCN idNorma: {first:?}");
    let count = engine.index().len();

    let again = engine
        .ingest(&paths, &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(again.summary.unchanged, 1);
    assert_eq!(again.summary.passages, 0);
    assert_eq!(engine.index().len(), count);
    assert_eq!(engine.index().passage_ids_of(norm_id).expect("ids"), ids);

    std::fs::write(
        &file,
        law.replace(
            "Artículo 1",
            "Artículo 1.- Texto xilófono nuevo.\n\nArtículo 1 bis",
        ),
    )
    .expect("write");
    let changed = engine
        .ingest(&paths, &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(changed.summary.norms, 1);
    let hits = lexical(&engine, "xilófono", &Filters::operator(), 5).await;
    assert_eq!(hits.len(), 1, "the new version is searchable once");
    let total = engine.index().passage_ids_of(norm_id).expect("ids").len();
    assert_eq!(
        engine.index().len() as usize,
        total,
        "the old version is gone"
    );
}

#[tokio::test]
async fn the_whole_corpus_ingests_with_only_the_word_file_failing() {
    let Some(c) = corpus() else { return };
    let (_d, engine, report) = ingest(std::slice::from_ref(&c)).await;
    let failed: Vec<_> = report.failed.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].ends_with("CPEUM.doc"));
    assert!(report.failed[0].reason.contains(".doc"));
    assert!(report.summary.passages > 20_000);
    let norms = engine.registry().norms().await.expect("norms");
    assert_eq!(norms.len() as u64, report.summary.norms);
    for country in ["AR", "BR", "CL", "CO", "ES", "MX", "PE", "UY"] {
        assert!(
            norms.iter().any(|n| n.jurisdiction.country == country),
            "{country}"
        );
    }
    let filters = Filters {
        jurisdictions: vec!["UY".into()],
        kinds: vec![NormKind::Constitucion],
        ..Filters::operator()
    };
    let hits = lexical(&engine, "soberanía nación", &filters, 5).await;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(
        |h| h.passage.jurisdiction.country == "UY" && h.passage.kind == NormKind::Constitucion
    ));
}

/// Two different files whose ids come from the same folder and file name: the second is
/// refused with its reason, the first is kept whole (no silent replacement). A file that
/// names its own id, or one that moved, still replaces the old norm.
#[tokio::test]
async fn files_that_would_share_a_path_derived_id_are_refused_not_swapped() {
    let src = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let path = src.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    };
    let first = write(
        "municipio-a/avisos/ordenanza.md",
        "# Ordenanza de ferias\n\nArtículo 1.- Las ferias libres se instalan los martes.\n",
    );
    let second = write(
        "municipio-b/avisos/ordenanza.md",
        "# Ordenanza de ruidos\n\nArtículo 1.- Los ruidos molestos se denuncian al inspector.\n",
    );
    let (_data, engine, report) = ingest(std::slice::from_ref(&first)).await;
    assert_eq!(report.summary.norms, 1);
    let again = engine
        .ingest(&[second], &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(
        (again.summary.norms, again.summary.failures),
        (0, 1),
        "{again:?}"
    );
    assert!(
        again.failed[0].reason.contains("nothing was replaced"),
        "{:?}",
        again.failed
    );
    let kept = lexical(&engine, "ferias libres martes", &Filters::default(), 3).await;
    assert!(!kept.is_empty(), "the first file's norm is still there");
    assert!(lexical(&engine, "ruidos molestos", &Filters::default(), 3)
        .await
        .is_empty());

    // The first file moved: its norm is replaced by the one at the new place.
    let moved = write(
        "municipio-c/avisos/ordenanza.md",
        "# Ordenanza de ferias\n\nArtículo 1.- Las ferias libres se instalan los jueves.\n",
    );
    std::fs::remove_file(&first).expect("remove");
    let after_move = engine
        .ingest(&[moved], &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(
        (after_move.summary.norms, after_move.summary.failures),
        (1, 0),
        "{after_move:?}"
    );
}
