//! The cluster profile's registry and replicas, end to end: two API replicas, each with its
//! own data folder (its own lexical index), sharing one PostgreSQL registry (`[data]
//! registry`) and, when e5-small is installed, one collection in a three-node Qdrant cluster
//! (three shards, two copies each) that the test starts from `../shared/bin/qdrant` (or a
//! single server given as `QDRANT_URL` when the binary is absent). A document uploaded
//! through replica A is queued, ingested by a worker with a third data folder, and found
//! through replica B, lexically and densely, with the same ranking as through A; a Qdrant
//! node killed while B answers searches costs no search and changes no ranking; a deletion
//! through B (with that node still down) reaches A; an answer
//! delivered by one is rated through the other; a partner's daily quota counts requests to
//! both; and the audit log both write is one intact chain. Skips without a PostgreSQL test
//! server (`cabildo_store::fixtures`).

mod common;

use std::time::{Duration, Instant};

use cabildo_core::settings::{GeneratorKind, VectorBackend};
use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{DenseMode, Engine, IngestDefaults, Settings};
use cabildo_server::AppState;
use cabildo_store::Registry;
use cabildo_vectors::fixtures::QdrantCluster;
use common::{agent, json_of, on_own_runtime, post, read, root};
use serde_json::{json, Value};

struct Cluster {
    a: String,
    b: String,
    worker: Settings,
    admin: String,
    partner: String,
    registry: String,
    dense: bool,
    /// The three-node Qdrant cluster, when the test started one.
    qdrant: Option<QdrantCluster>,
}

async fn replica(settings: &Settings) -> String {
    let state = AppState::from_settings(settings).await.expect("replica");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(cabildo_server::serve(
        listener,
        std::sync::Arc::new(state),
        std::future::pending(),
    ));
    base
}

fn start() -> Option<Cluster> {
    on_own_runtime(|dir| async move {
        let registry = cabildo_store::fixtures::postgres_database().await?;
        let mut settings = Settings::default();
        settings.data.models = cabildo_core::fixtures::models_dir();
        settings.data.registry = Some(registry.clone());
        settings.answer.generator = GeneratorKind::Extractive;
        settings.auth.pseudonym_key = Some("a-pseudonym-key-shared-by-replicas".into());
        settings.server.queue_uploads = true;
        // The node-loss check sends searches as fast as B answers them (hundreds a second
        // on a fast machine), far past the per-minute rates, whose own tests are elsewhere;
        // the daily quota checked below still applies.
        settings.limits.per_caller_per_minute = 0;
        settings.limits.per_ip_per_minute = 0;
        let e5 = cabildo_core::fixtures::installed_model("e5-small/e5-small-q4.bin");
        let mut cluster = None;
        let mut qdrant = None;
        if e5.is_some() {
            if let Some(bin) = cabildo_core::fixtures::shared("bin/qdrant") {
                let nodes = QdrantCluster::start(&bin, &dir.join("qdrant"), 3);
                qdrant = Some(nodes.nodes[0].grpc_url());
                settings.vectors.shards = 3;
                settings.vectors.replication_factor = 2;
                eprintln!("Qdrant: a three-node cluster, three shards of two copies");
                cluster = Some(nodes);
            } else {
                qdrant = std::env::var("QDRANT_URL").ok();
            }
        }
        let dense = qdrant.is_some();
        if dense {
            settings.vectors.backend = VectorBackend::Qdrant;
            settings.vectors.qdrant_url = qdrant;
            settings.vectors.collection = format!("cabildo-replicas-{}", std::process::id());
        } else {
            eprintln!(
                "dense half skipped: no Qdrant (../shared/bin/qdrant, QDRANT_URL) or no e5-small"
            );
        }
        let mut a = settings.clone();
        a.data.dir = dir.join("a");
        let mut b = settings.clone();
        b.data.dir = dir.join("b");
        let mut worker = settings;
        worker.data.dir = dir.join("worker");

        let engine = Engine::from_settings(&a, DenseMode::IfPresent)
            .await
            .expect("engine");
        let report = engine
            .ingest(
                &[root().join("samples")],
                &IngestDefaults::default(),
                &mut NoProgress,
            )
            .await
            .expect("ingest");
        assert_eq!(report.summary.failures, 0, "{:?}", report.failed);
        assert!(
            !a.data.dir.join("registry.sqlite").exists(),
            "the registry is the PostgreSQL database, not a file in the data folder"
        );
        let partner = common::add_key(
            &engine,
            "portal-municipal",
            AccessRole::Partner,
            None,
            AccessLevel::Public,
            Some(4),
        )
        .await;
        let admin = common::add_key(
            &engine,
            "operador",
            AccessRole::Admin,
            None,
            AccessLevel::Restricted,
            None,
        )
        .await;
        drop(engine);
        Some(Cluster {
            a: replica(&a).await,
            b: replica(&b).await,
            worker,
            admin,
            partner,
            registry,
            dense,
            qdrant: cluster,
        })
    })
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn search(base: &str, key: &str, query: &str, method: &str) -> Value {
    let (status, _, body) = post(
        &format!("{base}/v1/search"),
        &json!({"query": query, "method": method, "k": 5}),
        &[("Authorization", &bearer(key))],
    );
    assert_eq!(status, 200, "{body}");
    json_of(&body)
}

fn hit_ids(found: &Value) -> Vec<String> {
    found["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|h| h["passage_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `ok` every 50 ms for up to 30 s; returns how long it took.
fn within(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if ok() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within 30 s: {what}");
}

/// Uploads a document through `base`, which queues it; returns the job's URL.
fn upload(base: &str, admin: &str) -> String {
    let boundary = "cabildo-replicas";
    let file = "# Reglamento de ferias libres de Quillagua\n\nArtículo 1.- Los feriantes de Quillagua instalarán sus puestos los sábados desde las siete horas.\n";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"jurisdiction\"\r\n\r\nCL\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ferias.md\"\r\nContent-Type: text/markdown\r\n\r\n{file}\r\n\
         --{boundary}--\r\n"
    );
    let mut r = agent()
        .post(format!("{base}/v1/documents"))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Authorization", bearer(admin))
        .send(body.as_bytes())
        .expect("upload");
    let (status, _, body) = read(&mut r);
    assert_eq!(status, 202, "{body}");
    let accepted = json_of(&body);
    assert_eq!(accepted["status"], "queued", "{body}");
    format!("{base}/v1/jobs/{}", accepted["job_id"])
}

fn job_status(url: &str, admin: &str) -> Value {
    let mut r = agent()
        .get(url)
        .header("Authorization", bearer(admin))
        .call()
        .expect("job");
    json_of(&read(&mut r).2)
}

/// Runs the queued jobs as `cabildo worker --until-idle` does, with the worker's own data
/// folder.
fn run_worker(settings: &Settings) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = Engine::from_settings(settings, DenseMode::IfPresent)
            .await
            .expect("worker engine");
        let options = cabildo_engine::worker::WorkerOptions {
            name: "test-worker".into(),
            lease: Duration::from_secs(30),
        };
        engine
            .work(
                &options,
                Duration::from_millis(100),
                true,
                std::future::pending(),
            )
            .await
            .expect("worker");
    });
}

#[test]
fn two_replicas_on_one_postgres_registry_serve_the_same_documents() {
    let Some(mut c) = start() else { return };
    let query = "feriantes de Quillagua los sábados";
    assert!(
        hit_ids(&search(&c.b, &c.admin, query, "lexical")).is_empty(),
        "not there before the upload"
    );

    // Uploaded through A, queued, ingested by the worker, found through B.
    let job = upload(&c.a, &c.admin);
    assert_eq!(job_status(&job, &c.admin)["status"], "queued");
    let started = Instant::now();
    run_worker(&c.worker);
    let job_took = started.elapsed();
    let done = job_status(&job, &c.admin);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["norms"], 1, "{done}");
    let found = |base: &str| {
        hit_ids(&search(base, &c.admin, query, "lexical"))
            .first()
            .is_some_and(|id| id.contains("ferias"))
    };
    let caught_up = within("both replicas find the upload lexically", || {
        found(&c.a) && found(&c.b)
    });
    eprintln!(
        "upload through A: the worker ran its job in {:.0} ms; found lexically through both replicas {:.0} ms later",
        job_took.as_secs_f64() * 1e3,
        caught_up.as_secs_f64() * 1e3
    );
    let mut methods = vec!["lexical"];
    if c.dense {
        methods.extend(["dense", "hybrid"]);
    }
    for method in methods {
        for q in [query, "¿Quiénes son ciudadanos?", "libertad de expresión"] {
            let (on_a, on_b) = (
                search(&c.a, &c.admin, q, method),
                search(&c.b, &c.admin, q, method),
            );
            assert_eq!(
                hit_ids(&on_a),
                hit_ids(&on_b),
                "{method} {q}: same ranking on both"
            );
            assert!(!hit_ids(&on_b).is_empty(), "{method} {q}");
        }
    }

    // A Qdrant node killed while B answers dense and hybrid searches: none fails, none
    // ranks differently.
    if let Some(cluster) = c.qdrant.as_mut() {
        let questions = [query, "¿Quiénes son ciudadanos?", "libertad de expresión"];
        let expected: Vec<Vec<String>> = ["dense", "hybrid"]
            .iter()
            .flat_map(|m| {
                questions
                    .iter()
                    .map(|q| hit_ids(&search(&c.b, &c.admin, q, m)))
            })
            .collect();
        let searching = {
            let (b, admin) = (c.b.clone(), c.admin.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let (mut sent, mut failed, mut different) = (0, Vec::new(), 0);
                while started.elapsed() < Duration::from_secs(5) {
                    let (m, q) = (sent % 6 / 3, sent % 3);
                    let method = ["dense", "hybrid"][m];
                    let (status, _, body) = post(
                        &format!("{b}/v1/search"),
                        &json!({"query": questions[q], "method": method, "k": 5}),
                        &[("Authorization", &bearer(&admin))],
                    );
                    if status != 200 {
                        failed.push(format!("{status} {body}"));
                    } else if hit_ids(&json_of(&body)) != expected[m * 3 + q] {
                        different += 1;
                    }
                    sent += 1;
                }
                (sent, failed, different)
            })
        };
        std::thread::sleep(Duration::from_secs(1));
        cluster.nodes[2].kill();
        let (sent, failed, different) = searching.join().expect("searching thread");
        eprintln!(
            "Qdrant node 3 killed 1 s into 5 s of searches through B: {sent} sent, {} failed, {different} ranked differently",
            failed.len()
        );
        assert!(
            failed.is_empty(),
            "{} searches failed, the first: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        assert_eq!(different, 0, "searches ranked differently");
    }

    // Deleted through B, gone from A.
    let norm = hit_ids(&search(&c.b, &c.admin, query, "lexical"))[0]
        .split('/')
        .next()
        .expect("norm id")
        .to_string();
    let mut r = agent()
        .delete(format!("{}/v1/norms/{norm}", c.b))
        .header("Authorization", bearer(&c.admin))
        .call()
        .expect("delete");
    let (status, _, body) = read(&mut r);
    assert!(status == 200 || status == 204, "{status} {body}");
    within("replica A no longer finds it", || {
        !hit_ids(&search(&c.a, &c.admin, query, "lexical"))
            .iter()
            .any(|id| id.starts_with(&norm))
    });

    // An answer delivered by A is rated through B.
    let auth = bearer(&c.partner);
    let auth = [("Authorization", auth.as_str())];
    let ask = json!({"question": "¿A qué edad se es ciudadano en el Perú?"});
    let (status, _, body) = post(&format!("{}/v1/ask", c.a), &ask, &auth);
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["abstained"], false, "{body}");
    let id = answer["id"].as_str().expect("answer id").to_string();
    let rating = json!({"answer_id": id, "rating": "useful"});
    let (status, _, body) = post(&format!("{}/v1/feedback", c.b), &rating, &auth);
    assert_eq!(status, 201, "{body}");

    // A quota of four a day, counted across both replicas.
    let q = json!({"query": "ciudadanía"});
    for base in [&c.b, &c.a] {
        let (status, _, body) = post(&format!("{base}/v1/search"), &q, &auth);
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = post(&format!("{}/v1/search", c.b), &q, &auth);
    assert_eq!(status, 429, "the fifth request of a four-a-day key: {body}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let registry = Registry::connect(&c.registry).await.expect("registry");
        let v = registry.verify_audit().await.expect("verify");
        assert!(v.intact(), "{:?}", v.problems);
        assert!(v.records >= 8, "{v:?}");
        let rated = registry
            .feedback_between(None, None)
            .await
            .expect("feedback");
        assert_eq!(rated.len(), 1);
        assert_eq!(rated[0].answer.id, id);
    });
}
