//! What the server's test files share: a server on loopback, and a blocking HTTP client
//! that reads any status (problems are answers too).
#![allow(dead_code)] // each test file uses its own share of these

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::Writer;
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{DenseMode, Engine, IngestDefaults, JobSummary, Settings};
use cabildo_server::{AppState, Config, StartError};
use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    cabildo_core::fixtures::workspace_root()
}

/// What a test file's shared servers need: `setup` runs once on a Tokio runtime of its own
/// thread, with a scratch folder, and what it returns is handed back; the runtime, its
/// servers and the folder then live as long as the test process. `None` from `setup` (the
/// corpus is absent) is handed back as is, so the file's tests skip.
pub fn on_own_runtime<T, F, Fut>(setup: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<T>>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let made = setup(dir.path().to_path_buf()).await;
            let serving = made.is_some();
            let _ = tx.send(made);
            if serving {
                std::future::pending::<()>().await;
            }
        });
    });
    rx.recv().expect("server thread")
}

/// The installed Qwen2.5 0.5B model on Cabildo's own engine (the local writer).
pub fn qwen() -> cabildo_models::LocalGenerator {
    cabildo_models::LocalGenerator::from_folder(&root().join("models/qwen2.5-0.5b"))
        .expect("Qwen2.5 0.5B (scripts/setup-models.sh)")
}

/// `request` through `g`, reading every streamed piece: the result and the pieces.
pub fn streamed(
    g: &dyn cabildo_core::Generator,
    request: &cabildo_core::GenerationRequest,
) -> (
    Result<cabildo_core::Generation, cabildo_core::ModelError>,
    Vec<String>,
) {
    let mut pieces = Vec::new();
    let out = g.generate(request, &mut |t| {
        pieces.push(t.to_string());
        true
    });
    (out, pieces)
}

/// Serves `engine` on a free loopback port; returns its base URL.
pub async fn start(engine: Arc<Engine>, writer: Writer, config: Config) -> String {
    let addr = try_start(engine, writer, config).await.expect("state");
    format!("http://{addr}")
}

/// Serves `engine` on a free loopback port; returns its address, or why the server could
/// not start.
pub async fn try_start(
    engine: Arc<Engine>,
    writer: Writer,
    config: Config,
) -> Result<SocketAddr, StartError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(AppState::new(engine, writer, config).await?);
    tokio::spawn(cabildo_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Ok(addr)
}

/// Registers an API client in `engine`'s registry and returns its key (only the hash is
/// kept).
pub async fn add_key(
    engine: &Engine,
    name: &str,
    role: AccessRole,
    tenant: Option<&str>,
    clearance: AccessLevel,
    daily_quota: Option<u64>,
) -> String {
    let key = cabildo_server::auth::new_api_key().expect("key");
    engine
        .registry()
        .add_client(&cabildo_store::NewClient {
            name,
            key_hash: &cabildo_server::auth::key_hash(&key),
            role,
            tenant,
            clearance,
            daily_quota,
        })
        .await
        .unwrap_or_else(|e| panic!("client {name}: {e}"));
    key
}

/// The [`excerpts`] ingested under `dir` by an engine assembled as `cabildo serve`
/// assembles it, from settings, with e5-small vectors; `None` without `../shared/corpus`.
pub async fn excerpt_engine(dir: &Path) -> Option<Arc<Engine>> {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    excerpts(&docs)?;
    let (engine, _) = dense_engine_over(dir, docs).await;
    Some(Arc::new(engine))
}

/// An engine in `dir/data` assembled as `cabildo serve` assembles it, from settings, with
/// e5-small vectors, and the files under `docs` ingested as public (none may fail); with
/// the ingest's summary.
pub async fn dense_engine_over(dir: &Path, docs: PathBuf) -> (Engine, JobSummary) {
    let mut settings = Settings::default();
    settings.data.dir = dir.join("data");
    settings.data.models = cabildo_core::fixtures::models_dir();
    let engine = Engine::from_settings(&settings, DenseMode::Required)
        .await
        .expect("engine with e5-small (scripts/setup-models.sh)");
    let report = engine
        .ingest(&[docs], &IngestDefaults::default(), &mut NoProgress)
        .await
        .expect("ingest");
    assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
    (engine, report.summary)
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// POSTs JSON; returns status, content type and body.
pub fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send_json(body).expect("request");
    read(&mut r)
}

pub fn read(r: &mut ureq::http::Response<ureq::Body>) -> (u16, String, String) {
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), ct, body)
}

pub fn get(url: &str) -> (u16, String, String) {
    let mut r = agent().get(url).call().expect("request");
    read(&mut r)
}

pub fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Server-sent events as (event name, data) pairs.
pub fn events(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = String::from("message");
    for line in body.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            out.push((name.clone(), d.trim_start().to_string()));
            name = "message".into();
        }
    }
    out
}

/// Articles 1–18 of the Constitution and articles 1–7 of the LGPD, as files in `dir`.
pub fn excerpts(dir: &Path) -> Option<()> {
    let corpus = cabildo_core::fixtures::shared("corpus")?;
    let constitution = corpus
        .join("cl/leychile-md/constitucion/constitucion-politica-de-la-republica-de-chile.md");
    let lgpd = corpus.join("br/legislacao-chunks/lei_13709_20180814.csv");
    let cl = std::fs::read_to_string(&constitution).expect("the Constitution");
    let br = std::fs::read_to_string(&lgpd).expect("the LGPD");
    let cut = cl
        .find("\nArtículo 19.-")
        .expect("the Constitution has an article 19");
    std::fs::write(
        dir.join("constitucion-politica-de-la-republica-de-chile.md"),
        &cl[..cut],
    )
    .expect("write");
    let keep = lgpd_articles_1_to_7(&br);
    std::fs::write(dir.join("lei_13709_20180814.csv"), keep).expect("write");
    Some(())
}

/// The CSV's header and the rows of articles 1–7.
fn lgpd_articles_1_to_7(csv: &str) -> String {
    let mut lines = csv.lines();
    let mut out = vec![lines.next().unwrap_or("").to_string()];
    for line in lines {
        let early = (1..=7).any(|n| {
            line.contains(&format!("!art{n}_")) || line.trim_end().ends_with(&format!("!art{n}"))
        });
        if early {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}
