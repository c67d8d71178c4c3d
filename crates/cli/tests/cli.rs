//! The `cabildo` binary as a user runs it: clear errors on bad input, and an ingest killed
//! half-way leaves a consistent data folder that the next run completes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The model files `scripts/setup-models.sh` installed in the workspace.
fn models() -> PathBuf {
    cabildo_core::fixtures::models_dir()
}

fn cabildo(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(data)
        .arg("--models")
        .arg(models())
        .args(args)
        .output()
        .expect("run cabildo")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn corpus() -> Option<PathBuf> {
    cabildo_core::fixtures::shared("corpus")
}

fn status(data: &Path) -> serde_json::Value {
    let o = cabildo(data, &["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("status json")
}

#[test]
fn bad_input_gets_a_clear_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let o = cabildo(data.path(), &["ingest", "/no/such/folder"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/no/such/folder: no such file or folder"),
        "{}",
        stderr(&o)
    );

    let o = cabildo(data.path(), &["ingest", ".", "--jurisdiction", "CHL"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ISO 3166-1 alpha-2"), "{}", stderr(&o));

    let o = cabildo(data.path(), &["search", "derecho de propiedad"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is empty: run `cabildo ingest"),
        "{}",
        stderr(&o)
    );

    let o = cabildo(data.path(), &["search", "x", "--kind", "statute"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("constitucion"),
        "the valid kinds are listed: {}",
        stderr(&o)
    );
}

#[test]
fn sample_corpus_ingests_and_searches_with_json_output() {
    let data = tempfile::tempdir().expect("tempdir");
    let samples = cabildo_core::fixtures::workspace_root().join("samples");
    let o = cabildo(
        data.path(),
        &["ingest", samples.to_str().expect("path"), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["failures"], 0);
    assert!(report["passages"].as_u64().unwrap_or(0) > 100);
    assert_eq!(
        report["embedded"], report["passages"],
        "embedded by default"
    );
    assert_eq!(status(data.path())["passages_embedded"], report["passages"]);
    let o = cabildo(
        data.path(),
        &["ingest", samples.to_str().expect("path"), "--no-dense"],
    );
    assert!(!o.status.success(), "--no-dense on a folder with vectors");
    assert!(
        stderr(&o).contains("--no-dense is refused"),
        "{}",
        stderr(&o)
    );

    let o = cabildo(
        data.path(),
        &[
            "search",
            "derecho a la vida",
            "--k",
            "3",
            "--json",
            "--jurisdiction",
            "PE",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let hits = hits.as_array().expect("array");
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .any(|h| h["passage"]["label"] == "Constitución Política del Perú 1993, Artículo 2"));

    // Every method runs from the command line; rerank needs a reranker model.
    for method in ["lexical", "dense", "hybrid"] {
        let o = cabildo(
            data.path(),
            &["search", "¿puedo votar?", "--method", method, "--json"],
        );
        assert!(o.status.success(), "{method}: {}", stderr(&o));
    }
    let o = cabildo(data.path(), &["search", "votar", "--method", "rerank"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cross-encoder"), "{}", stderr(&o));
}

#[test]
fn dense_search_without_vectors_says_how_to_get_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let samples = cabildo_core::fixtures::workspace_root().join("samples");
    let o = cabildo(
        data.path(),
        &["ingest", samples.to_str().expect("path"), "--no-dense"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cabildo(data.path(), &["search", "vida", "--method", "dense"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has none"), "{}", stderr(&o));
    // The default method is lexical on such a folder.
    let o = cabildo(data.path(), &["search", "vida", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_ingest_killed_half_way_is_completed_by_the_next_run() {
    let Some(c) = corpus() else { return };
    let killed = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(killed.path())
        .args(["ingest", c.to_str().expect("path"), "--no-dense"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill (SIGKILL: no chance to clean up) once a first batch is committed.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if status(killed.path())["passages_indexed"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    // What is visible is whole: the registry never names passages the index lacks (it is
    // written after each commit, so it may lag by the last batch, which the rerun redoes).
    let mid = status(killed.path());
    let (reg, idx) = (
        mid["passages_registered"].as_u64().unwrap_or(0),
        mid["passages_indexed"].as_u64().unwrap_or(0),
    );
    assert!(reg <= idx, "{mid}");

    let o = cabildo(
        killed.path(),
        &["ingest", c.to_str().expect("path"), "--json", "--no-dense"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let after = status(killed.path());

    let clean = tempfile::tempdir().expect("tempdir");
    let o = cabildo(
        clean.path(),
        &["ingest", c.to_str().expect("path"), "--no-dense"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = status(clean.path());
    assert_eq!(after["norms"], reference["norms"]);
    assert_eq!(after["passages_indexed"], reference["passages_indexed"]);
    assert_eq!(after["passages_registered"], reference["passages_indexed"]);
}

#[test]
fn api_clients_get_a_key_once_and_can_be_revoked_and_the_audit_log_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let added = cabildo(
        &data,
        &[
            "clients",
            "add",
            "portal",
            "--role",
            "partner",
            "--tenant",
            "sii",
            "--clearance",
            "internal",
            "--daily-quota",
            "500",
        ],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let key = String::from_utf8_lossy(&added.stdout).trim().to_string();
    assert!(key.starts_with("cab_") && key.len() == 47, "{key}");
    let listed = cabildo(&data, &["clients", "list", "--json"]);
    let clients: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(clients[0]["name"], "portal");
    assert_eq!(clients[0]["daily_quota"], 500);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&key),
        "keys are never listed"
    );
    let taken = cabildo(&data, &["clients", "add", "portal"]);
    assert!(!taken.status.success());
    let citizen = cabildo(&data, &["clients", "add", "c", "--role", "citizen"]);
    assert!(
        stderr(&citizen).contains("not citizen"),
        "{}",
        stderr(&citizen)
    );
    assert!(cabildo(&data, &["clients", "revoke", "portal"])
        .status
        .success());
    assert!(!cabildo(&data, &["clients", "revoke", "portal"])
        .status
        .success());

    let verified = cabildo(&data, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("audit log intact: 0 records"));
    let elsewhere = cabildo(&dir.path().join("none"), &["audit", "verify"]);
    assert!(stderr(&elsewhere).contains("has no registry"));
}

/// `cabildo` with only the given arguments and `CABILDO__…` variables, from a folder without
/// a config/ of its own.
fn cabildo_with_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run cabildo")
}

#[test]
fn settings_layer_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    std::fs::write(
        &file,
        "[data]\ndir = \"from-file\"\n[vectors]\nembedder = \"file-model\"\n[answer]\nsources = 6\n",
    )
    .expect("write");
    let file = file.to_str().expect("path");
    let o = cabildo_with_env(
        dir.path(),
        &[
            ("CABILDO__DATA__DIR", "from-env"),
            ("CABILDO__VECTORS__EMBEDDER", "env-model"),
            ("CABILDO__ANSWER__OPENAI_API_KEY", "sk-do-not-print"),
        ],
        &[
            "--config",
            file,
            "--embedder",
            "flag-model",
            "config",
            "show",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    // The file's value stands where nothing overrides it; the environment beats the file; a
    // flag beats the environment; secrets never show.
    assert!(shown.contains("sources = 6"), "{shown}");
    assert!(shown.contains("dir = \"from-env\""), "{shown}");
    assert!(shown.contains("embedder = \"flag-model\""), "{shown}");
    assert!(!shown.contains("sk-do-not-print"), "{shown}");
    assert!(shown.contains("openai_api_key = \"********\""), "{shown}");
}

#[test]
fn a_bad_setting_stops_the_server_at_start_naming_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[retrieval]\ndense_weight = 1.5\n").expect("write");
    let file = file.to_str().expect("path");
    let o = cabildo_with_env(
        dir.path(),
        &[],
        &["--config", file, "serve", "--addr", "127.0.0.1:0"],
    );
    assert!(!o.status.success(), "a weight of 1.5 is refused");
    let err = stderr(&o);
    assert!(
        err.contains("retrieval.dense_weight") && err.contains("bad.toml"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
    let o = cabildo_with_env(
        dir.path(),
        &[("CABILDO__SERVER__WORKERS", "many")],
        &["serve", "--addr", "127.0.0.1:0"],
    );
    assert!(!o.status.success(), "workers must be a number");
    let err = stderr(&o);
    assert!(
        err.contains("server.workers") && err.contains("CABILDO__SERVER__WORKERS"),
        "{err}"
    );
    let o = cabildo_with_env(
        dir.path(),
        &[("CABILDO__ANSWER__SOURCS", "3")],
        &["config", "show"],
    );
    assert!(!o.status.success(), "a misspelt key is refused");
    assert!(stderr(&o).contains("sourcs"), "{}", stderr(&o));
}
