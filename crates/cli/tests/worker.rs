//! `cabildo worker` processes on one PostgreSQL registry: a job queued with the fifteen
//! Chilean codes is claimed by a first worker, which is killed with SIGKILL half-way; a second
//! worker takes the job over once the first one's lease runs out and completes it, with every
//! norm recorded once and its data folder consistent. Skips without a PostgreSQL test server
//! (`cabildo_store::fixtures`) or without `../shared/corpus`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cabildo_engine::worker::encode_defaults;
use cabildo_engine::IngestDefaults;
use cabildo_store::Registry;

fn worker(data: &Path, registry: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(data)
        .arg("--models")
        .arg(cabildo_core::fixtures::models_dir())
        .args(["worker", "--lease", "3", "--poll", "0.2"])
        .env("CABILDO__DATA__REGISTRY", registry)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cabildo worker")
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

#[test]
fn a_job_whose_worker_is_killed_is_completed_by_another() {
    let Some(codes) = cabildo_core::fixtures::shared("corpus/cl/leychile-md/codigos") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(url) = rt.block_on(cabildo_store::fixtures::postgres_database()) else {
        return;
    };
    let registry = rt.block_on(Registry::connect(&url)).expect("registry");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&codes).expect("codes") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        files.push((name, std::fs::read(&path).expect("read")));
    }
    let defaults = IngestDefaults {
        jurisdiction: Some("CL".into()),
        ..IngestDefaults::default()
    };
    let job = rt
        .block_on(registry.enqueue_job(&encode_defaults(&defaults), &files))
        .expect("enqueue");
    let job_status = |rt: &tokio::runtime::Runtime| {
        rt.block_on(registry.job(job))
            .expect("job")
            .expect("the job exists")
    };
    assert_eq!(job_status(&rt).status, "queued");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = worker(&dir.path().join("first"), &url);
    // Killed once it has committed part of the job.
    wait_for(
        "the first worker commits part of the job",
        Duration::from_secs(300),
        || rt.block_on(registry.norm_count()).unwrap_or(0) >= 1,
    );
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    let killed = job_status(&rt);
    assert_eq!(killed.status, "running", "killed half-way: {killed:?}");
    let norms_at_kill = rt.block_on(registry.norm_count()).expect("count");
    assert!(
        (norms_at_kill as usize) < files.len(),
        "the job was not finished when its worker died ({norms_at_kill} norms)"
    );

    let second_dir = dir.path().join("second");
    let mut second = worker(&second_dir, &url);
    let took = wait_for(
        "the second worker completes the job",
        Duration::from_secs(600),
        || job_status(&rt).status != "running",
    );
    second.kill().expect("stop the second worker");
    second.wait().expect("reap");
    let done = job_status(&rt);
    assert_eq!(done.status, "done", "{done:?}");
    assert_eq!(done.summary.failures, 0, "{done:?}");
    let (by, attempts) = rt
        .block_on(registry.job_claims(job))
        .expect("claims")
        .expect("job");
    assert_eq!(
        attempts, 2,
        "claimed by the first worker, then taken over once"
    );
    assert!(by.is_some());
    eprintln!(
        "the second worker completed the job {:.1} s after starting ({norms_at_kill} of {} norms were in when the first was killed)",
        took.as_secs_f64(),
        files.len()
    );

    // Every code once: in the registry, in the norm log, and in the second worker's index.
    assert_eq!(
        rt.block_on(registry.norm_count()).expect("count") as usize,
        files.len()
    );
    let log = rt
        .block_on(registry.norm_log_after(0, 1000))
        .expect("norm log");
    let mut logged: Vec<&str> = log.iter().map(|e| e.norm_id.as_str()).collect();
    logged.sort_unstable();
    logged.dedup();
    assert_eq!(logged.len(), log.len(), "one entry per norm");
    assert_eq!(log.len(), files.len());
    let status = Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(&second_dir)
        .args(["status", "--check", "--json"])
        .env("CABILDO__DATA__REGISTRY", &url)
        .output()
        .expect("status");
    assert!(
        status.status.success(),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(s["passages_indexed"], s["passages_registered"], "{s}");
}
