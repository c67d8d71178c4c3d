//! The embedded backend: shared behaviour, persistence across restarts, and a `kill -9`
//! in the middle of writing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cabildo_core::Filters;
use cabildo_vectors::{EdgeStore, SearchOptions, VectorStore};
use common::{passage, unit, DIM};

#[tokio::test]
async fn filters_never_leak() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open");
    common::filters_never_leak(&store).await;
}

#[tokio::test]
async fn in_force_on_a_date_returns_that_dates_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open");
    common::versions_by_date(&store).await;
}

#[tokio::test]
async fn a_norms_access_changes_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open");
    common::access_changes_in_place(&store).await;
}

#[tokio::test]
async fn hits_carry_their_vectors_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open");
    common::hits_carry_their_vectors_when_asked(&store).await;
}

#[tokio::test]
async fn vectors_survive_a_restart_and_another_dimension_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ps: Vec<_> = (0..50).map(|i| passage(&format!("p{i}"), "n")).collect();
    let refs: Vec<_> = ps.iter().collect();
    let vs: Vec<_> = (0..50).map(|i| unit(i, i as f32 / 100.0)).collect();
    {
        let store = EdgeStore::open(dir.path(), DIM).expect("open");
        store.upsert(&refs, &vs).await.expect("upsert");
        // Re-upserting the same passages replaces them.
        store.upsert(&refs, &vs).await.expect("upsert again");
    }
    let store = EdgeStore::open(dir.path(), DIM).expect("reopen");
    assert_eq!(store.count().await.expect("count"), 50);
    let hit = &store
        .search(
            &vs[7],
            &Filters::operator(),
            1,
            SearchOptions {
                exact: true,
                ..SearchOptions::default()
            },
        )
        .await
        .expect("search")[0];
    assert_eq!(hit.passage_id, "p7");
    drop(store);
    let err = EdgeStore::open(dir.path(), DIM * 2)
        .err()
        .expect("a store of another dimension is refused");
    assert!(err.to_string().contains("delete that folder"), "{err}");
}

/// Run by `a_kill_9_keeps_every_acknowledged_vector` in a child process: writes batches and
/// prints each acknowledged one until killed.
#[tokio::test]
async fn crash_writer() {
    let Some(dir) = std::env::var_os("CABILDO_CRASH_WRITER_DIR") else {
        return;
    };
    let store = EdgeStore::open(std::path::Path::new(&dir), DIM).expect("open");
    for batch in 0..100_000 {
        let ps: Vec<_> = (0..20)
            .map(|i| passage(&format!("b{batch}-{i}"), &format!("n{batch}")))
            .collect();
        let refs: Vec<_> = ps.iter().collect();
        let vs: Vec<_> = (0..20)
            .map(|i| unit(i, (batch % 97) as f32 / 97.0))
            .collect();
        store.upsert(&refs, &vs).await.expect("upsert");
        println!("acked {batch}");
    }
}

#[tokio::test]
async fn a_kill_9_keeps_every_acknowledged_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_writer", "--nocapture", "--test-threads=1"])
        .env("CABILDO_CRASH_WRITER_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("acked ") {
            acked = Some(n.parse::<usize>().expect("batch number"));
            if acked >= Some(30) {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush.
    child.kill().expect("kill");
    child.wait().expect("wait");
    let acked = acked.expect("the writer acknowledged batches");

    let store = EdgeStore::open(dir.path(), DIM).expect("reopen after kill");
    let n = store.count().await.expect("count");
    assert!(
        n >= (acked + 1) * 20,
        "{n} vectors after {} acked batches",
        acked + 1
    );
    for batch in 0..=acked {
        let f = Filters::operator();
        let hits = store
            .search(
                &unit(3, (batch % 97) as f32 / 97.0),
                &f,
                1_000_000,
                SearchOptions {
                    exact: true,
                    ..SearchOptions::default()
                },
            )
            .await
            .expect("search");
        let id = format!("b{batch}-3");
        assert!(
            hits.iter().any(|h| h.passage_id == id),
            "acknowledged passage {id} lost"
        );
    }
}
