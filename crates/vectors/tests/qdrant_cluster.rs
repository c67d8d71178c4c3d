//! A three-node Qdrant cluster on loopback, from the server binary in `../shared/bin` (see its
//! README): a collection of three shards, each kept on two nodes. Searches sent while one
//! node is killed with SIGKILL keep answering, with the same results; writes made while it
//! is down succeed; the node restarts and catches up. Skipped without the binary.
//!
//! The figures it prints (searches, errors, latency before and during the loss, catch-up
//! time) are recorded in docs/benchmarks.md.

use std::time::{Duration, Instant};

use cabildo_core::{Filters, Passage};
use cabildo_vectors::fixtures::{local_points, wait_for, QdrantCluster};
use cabildo_vectors::{Layout, QdrantStore, SearchOptions, VectorStore};

const DIM: usize = 64;
const PASSAGES: usize = 3_000;

/// Deterministic pseudo-random unit vectors (xorshift), so every run searches the same data.
fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed.max(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..DIM).map(|_| next()).collect();
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.into_iter().map(|a| a / norm).collect()
        })
        .collect()
}

fn passages(range: std::ops::Range<usize>) -> Vec<Passage> {
    range
        .map(|i| {
            cabildo_core::fixtures::passage(
                &format!("p{i}"),
                &format!("n{}", i / 50),
                &format!("text {i}"),
            )
        })
        .collect()
}

async fn top_ids(store: &QdrantStore, q: &[f32]) -> Result<Vec<String>, String> {
    store
        .search(q, &Filters::default(), 10, SearchOptions::default())
        .await
        .map(|hits| hits.into_iter().map(|h| h.passage_id).collect())
        .map_err(|e| e.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_survive_the_loss_of_a_node_which_then_catches_up() {
    let Some(bin) = cabildo_core::fixtures::shared("bin/qdrant") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = QdrantCluster::start(&bin, dir.path(), 3);

    let collection = "cabildo-cluster-test";
    let layout = Layout {
        shards: 3,
        replicas: 2,
    };
    let store = QdrantStore::connect(&cluster.nodes[0].grpc_url(), None, collection, DIM, layout)
        .await
        .expect("collection on the cluster");
    let states = cluster.replica_states(collection);
    assert_eq!(states.len(), 6, "three shards, two copies each: {states:?}");
    let written = passages(0..PASSAGES);
    let refs: Vec<&Passage> = written.iter().collect();
    store
        .upsert(&refs, &vectors(PASSAGES, 7))
        .await
        .expect("upsert");
    assert_eq!(store.count().await.expect("count"), PASSAGES);

    let queries = vectors(40, 99);
    let mut expected = Vec::new();
    for q in &queries {
        expected.push(top_ids(&store, q).await.expect("search"));
    }

    // Searches, one after another as a busy replica sends them, while node 3 is killed.
    let store = std::sync::Arc::new(store);
    let searching = {
        let (store, queries, expected) = (store.clone(), queries.clone(), expected.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut log = Vec::new();
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(8) {
                let q = i % queries.len();
                let t = Instant::now();
                let got = top_ids(&store, &queries[q]).await;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                log.push((started.elapsed(), ms, got.map(|ids| ids == expected[q])));
                i += 1;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    cluster.nodes[2].kill();
    let log = searching.await.expect("search loop");
    let kill_offset = Duration::from_secs(8).saturating_sub(killed_at.elapsed());
    let (mut before, mut during) = (Vec::new(), Vec::new());
    let (mut errors, mut different) = (Vec::new(), 0);
    for (at, ms, outcome) in &log {
        if *at < kill_offset {
            before.push(*ms);
        } else {
            during.push(*ms);
        }
        match outcome {
            Ok(true) => {}
            Ok(false) => different += 1,
            Err(e) => errors.push(e.clone()),
        }
    }
    before.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    eprintln!(
        "searches: {} before the loss (p50 {:.1} ms, p99 {:.1} ms), {} after it (p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms); {} failed, {} answered differently",
        before.len(),
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.last().copied().unwrap_or(f64::NAN),
        errors.len(),
        different
    );
    assert!(errors.is_empty(), "searches failed: {errors:?}");
    assert_eq!(different, 0, "searches answered differently");
    assert!(!during.is_empty(), "searches were sent during the loss");

    // Writes while node 3 is down reach the surviving copies.
    let late = passages(PASSAGES..PASSAGES + 200);
    let refs: Vec<&Passage> = late.iter().collect();
    let t = Instant::now();
    store
        .upsert(&refs, &vectors(200, 1234))
        .await
        .expect("upsert with a node down");
    eprintln!(
        "200 passages written with a node down in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(store.count().await.expect("count"), PASSAGES + 200);

    let states = cluster.replica_states(collection);
    eprintln!("copies as node 1 sees them with node 3 down: {states:?}");

    // Node 3 restarts from its own storage and catches up: every copy active, and the
    // copies on all nodes together hold every point twice.
    let restarted = Instant::now();
    cluster.nodes[2].start(None);
    let ready = restarted.elapsed();
    let total = 2 * (PASSAGES + 200) as u64;
    wait_for("every copy active and complete again", || {
        let s = cluster.replica_states(collection);
        s.len() == 6
            && s.iter().all(|s| s == "Active")
            && cluster
                .nodes
                .iter()
                .map(|n| local_points(n.http, collection))
                .sum::<u64>()
                == total
    });
    eprintln!(
        "node 3 ready {:.2} s after its restart, caught up after {:.2} s; it holds {} points",
        ready.as_secs_f64(),
        restarted.elapsed().as_secs_f64(),
        local_points(cluster.nodes[2].http, collection)
    );
    assert!(local_points(cluster.nodes[2].http, collection) > 0);
    let via_node3 =
        QdrantStore::connect(&cluster.nodes[2].grpc_url(), None, collection, DIM, layout)
            .await
            .expect("connect through node 3");
    assert_eq!(via_node3.count().await.expect("count"), PASSAGES + 200);
    for q in vectors(20, 4321) {
        assert_eq!(
            top_ids(&via_node3, &q).await.expect("search via node 3"),
            top_ids(&store, &q).await.expect("search via node 1"),
        );
    }
}
