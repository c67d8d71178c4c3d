//! The registry's suite, run against every backend this machine has: SQLite always, and
//! PostgreSQL when `CABILDO_TEST_POSTGRES` names a server (see `cabildo_store::fixtures`;
//! each test gets a database of its own).
//!
//! The audit log's hash chain is checked against someone who edits the database behind the
//! registry's back (dropping the append-only triggers first, as such a person would).

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_store::{AuditRecord, Backend, NewClient, Registry};
use sqlx::{AnyConnection, Connection};

/// One database for one test.
struct Db {
    registry: Registry,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn name(&self) -> &'static str {
        match self.registry.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// A second handle on the same database, as another replica would hold.
    async fn replica(&self) -> Registry {
        Registry::connect(&self.url)
            .await
            .expect("second connection")
    }

    /// A plain connection that bypasses the registry.
    async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url)
            .await
            .expect("raw connection")
    }
}

/// A fresh, empty registry on each backend.
async fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let sqlite = Db {
        registry: Registry::open(&path).await.unwrap(),
        url: format!("sqlite://{}", path.display()),
        _dir: Some(dir),
    };
    let mut all = vec![sqlite];
    if let Some(url) = cabildo_store::fixtures::postgres_database().await {
        all.push(Db {
            registry: Registry::connect(&url).await.unwrap(),
            url,
            _dir: None,
        });
    }
    all
}

fn record(n: usize) -> AuditRecord {
    AuditRecord {
        at: format!("2026-11-{:02}T10:00:00.000Z", 20 + n % 5),
        principal: format!("p-{n}"),
        role: "citizen".into(),
        route: "/v1/ask".into(),
        status: 200,
        question: Some(format!("¿pregunta {n} de [RUT]?")),
        filters: Some(r#"{"max_access":"public"}"#.into()),
        passages: vec![format!("cl-ley-{n}#art-1")],
        answer_hash: Some("ab".repeat(32)),
        model: Some("qwen2.5-0.5b".into()),
        prompt_version: Some("p1".into()),
        latency_ms: 12.5 + n as f64,
        answer_id: n.is_multiple_of(2).then(|| format!("ans_{n}")),
        feedback_id: None,
    }
}

/// Each backend's database with `n` audit records, and a connection that bypasses the
/// registry, with the append-only triggers dropped.
async fn filled(n: usize) -> Vec<(Db, AnyConnection)> {
    let mut out = Vec::new();
    for db in databases().await {
        for i in 1..=n {
            let e = db.registry.append_audit(&record(i)).await.unwrap();
            assert_eq!(e.seq, i as i64, "{}", db.name());
        }
        let mut raw = db.raw().await;
        // Through SQL the log is append-only…
        for sql in [
            "UPDATE audit_log SET status = 500 WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 2",
        ] {
            assert!(
                sqlx::query(sql).execute(&mut raw).await.is_err(),
                "{}: {sql}",
                db.name()
            );
        }
        // …until someone with the database drops the triggers.
        let drops: &[&str] = match db.registry.backend() {
            Backend::Sqlite => &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ],
            Backend::Postgres => &[
                "DROP TRIGGER audit_log_no_update ON audit_log",
                "DROP TRIGGER audit_log_no_truncate ON audit_log",
            ],
        };
        for sql in drops {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&mut raw)
                .await
                .unwrap();
        }
        out.push((db, raw));
    }
    out
}

#[tokio::test]
async fn an_untouched_chain_verifies() {
    for (db, _raw) in filled(6).await {
        let v = db.registry.verify_audit().await.unwrap();
        assert!(v.intact(), "{}: {:?}", db.name(), v.problems);
        assert_eq!(v.records, 6);
        let days = db
            .registry
            .audit_between("2026-11-21".parse().unwrap(), "2026-11-22".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            days.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 6],
            "{}: records of the 21st and 22nd",
            db.name()
        );
        assert_eq!(days[0].record, record(1));
        let page = db
            .registry
            .audit_page(
                "2026-11-20".parse().unwrap(),
                "2026-11-24".parse().unwrap(),
                2,
                Some(2),
            )
            .await
            .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    }
}

/// Fills a log of five records on each backend, runs `sql` (with `bind`, if any) behind the
/// registry's back, and returns what verification reports, by backend.
async fn problems_after(
    sql: &'static str,
    bind: Option<String>,
) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for (db, mut raw) in filled(5).await {
        let mut q = sqlx::query(sql);
        if let Some(b) = &bind {
            q = q.bind(b.clone());
        }
        q.execute(&mut raw).await.unwrap();
        let v = db.registry.verify_audit().await.unwrap();
        assert_eq!(v.intact(), v.problems.is_empty());
        out.push((db.name(), v.problems));
    }
    out
}

fn assert_reported(problems: &[(&str, Vec<String>)], what: &str) {
    for (backend, problems) in problems {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "{backend}: {what}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn an_edited_record_is_caught() {
    let problems = problems_after("UPDATE audit_log SET passages = '[]' WHERE seq = 3", None).await;
    assert_reported(&problems, "record 3 was changed");
}

#[tokio::test]
async fn an_edit_that_recomputes_its_own_hash_still_breaks_the_next_link() {
    // Record 3 as it was written, with its passages removed and its hash made to match.
    let mut forged = record(3);
    forged.passages.clear();
    let prev = {
        let mut prev = cabildo_store::GENESIS.to_string();
        for n in 1..=2 {
            prev = cabildo_store::chain_hash(&prev, &record(n));
        }
        prev
    };
    let hash = cabildo_store::chain_hash(&prev, &forged);
    let problems = problems_after(
        "UPDATE audit_log SET passages = '[]', hash = $1 WHERE seq = 3",
        Some(hash),
    )
    .await;
    assert!(
        !problems
            .iter()
            .any(|(_, ps)| ps.iter().any(|p| p.contains("record 3 was changed"))),
        "its own hash matches: {problems:?}"
    );
    assert_reported(&problems, "record 4 does not follow");
}

#[tokio::test]
async fn a_deleted_record_is_caught() {
    let problems = problems_after("DELETE FROM audit_log WHERE seq = 2", None).await;
    assert_reported(&problems, "records 2..2 are missing");
}

#[tokio::test]
async fn removing_the_newest_records_is_caught() {
    let problems = problems_after("DELETE FROM audit_log WHERE seq >= 4", None).await;
    assert_reported(&problems, "records 4..5 were removed from the end");
}

#[tokio::test]
async fn api_clients_and_daily_counts() {
    for db in databases().await {
        api_clients_and_daily_counts_on(&db.registry).await;
    }
}

async fn api_clients_and_daily_counts_on(registry: &Registry) {
    let added = registry
        .add_client(&NewClient {
            name: "portal-municipal",
            key_hash: "h1",
            role: AccessRole::Partner,
            tenant: Some("muni"),
            clearance: AccessLevel::Internal,
            daily_quota: Some(100),
        })
        .await
        .unwrap();
    assert_eq!(added.role, AccessRole::Partner);
    let found = registry.client_by_key_hash("h1").await.unwrap().unwrap();
    assert_eq!(found, added);
    assert!(registry.client_by_key_hash("h2").await.unwrap().is_none());
    let dup = NewClient {
        name: "portal-municipal",
        key_hash: "h3",
        role: AccessRole::Partner,
        tenant: None,
        clearance: AccessLevel::Public,
        daily_quota: None,
    };
    assert!(registry.add_client(&dup).await.is_err(), "names are unique");
    assert!(registry.revoke_client("portal-municipal").await.unwrap());
    assert!(registry.client_by_key_hash("h1").await.unwrap().is_none());
    assert!(!registry.revoke_client("portal-municipal").await.unwrap());

    let day = "2026-11-29".parse().unwrap();
    assert_eq!(registry.count_request("key:1", day).await.unwrap(), 1);
    assert_eq!(registry.count_request("key:1", day).await.unwrap(), 2);
    assert_eq!(
        registry
            .count_request("key:1", "2026-11-30".parse().unwrap())
            .await
            .unwrap(),
        1,
        "a new day starts from zero"
    );
}

#[tokio::test]
async fn feedback_is_kept_with_its_answer_and_a_second_rating_replaces_the_first() {
    for db in databases().await {
        feedback_on(&db.registry).await;
    }
}

async fn feedback_on(registry: &Registry) {
    use cabildo_store::{AnswerRecord, Rating};
    let answer = AnswerRecord {
        id: "ans_1".into(),
        at: "2026-12-01T10:00:00.000Z".into(),
        principal: "anonymous".into(),
        route: "/v1/ask".into(),
        question: "¿Desde qué edad se puede votar?".into(),
        answer: "Desde los 18 años [1].".into(),
        citations: serde_json::json!([{"n": 1, "label": "Artículo 13"}]),
        abstained: false,
        model: "extractive".into(),
    };
    registry.put_answer(&answer).await.unwrap();
    assert_eq!(
        registry.answer_recipient("ans_1").await.unwrap().as_deref(),
        Some("anonymous")
    );
    assert_eq!(registry.answer_recipient("ans_2").await.unwrap(), None);
    let first = registry
        .put_feedback("ans_1", "2026-12-01T10:01:00.000Z", Rating::NotUseful, None)
        .await
        .unwrap();
    let second = registry
        .put_feedback(
            "ans_1",
            "2026-12-02T09:00:00.000Z",
            Rating::Useful,
            Some("clara"),
        )
        .await
        .unwrap();
    assert_eq!(first, second, "one feedback per answer");
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d);
    let all = registry.feedback_between(None, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].rating, Rating::Useful);
    assert_eq!(all[0].comment.as_deref(), Some("clara"));
    assert_eq!(all[0].answer, answer);
    assert!(registry
        .feedback_between(day(1), day(1))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        registry.feedback_between(day(2), None).await.unwrap().len(),
        1
    );
}

#[test]
fn records_without_the_newer_fields_hash_as_before() {
    // The JSON the chain hashed before `answer_id` and `feedback_id` existed.
    let mut r = record(1);
    assert!(r.answer_id.is_none());
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("answer_id") && !json.contains("feedback_id"),
        "{json}"
    );
    r.feedback_id = Some(3);
    assert!(serde_json::to_string(&r)
        .unwrap()
        .contains("\"feedback_id\":3"));
}

fn norm(id: &str, passages: usize) -> cabildo_store::Written {
    use cabildo_core::{Jurisdiction, Language, Norm, NormKind};
    cabildo_store::Written {
        norm: Norm {
            id: id.into(),
            jurisdiction: Jurisdiction::country("CL"),
            kind: NormKind::Ley,
            number: Some("19.628".into()),
            title: format!("Ley {id}"),
            issuing_body: Some("Congreso Nacional".into()),
            language: Language::Es,
            official_url: Some(format!("https://www.bcn.cl/leychile/{id}")),
            publication_date: "1999-08-28".parse().ok(),
            version_date: "2024-01-01".parse().ok(),
            valid_from: "2024-01-01".parse().ok(),
            valid_to: None,
            access: AccessLevel::Internal,
            tenant: Some("muni".into()),
            content_hash: format!("hash-{id}"),
            format: "leychile-xml".into(),
            source_path: format!("corpus/{id}.xml"),
            id_from_path: false,
        },
        passages,
        version: Some(cabildo_store::VersionRecord {
            effective: "2024-01-01".parse().unwrap(),
            version_date: "2024-01-01".parse().ok(),
            repealed: None,
            title: format!("Ley {id}"),
            official_url: None,
            content_hash: format!("hash-{id}"),
            source_path: format!("corpus/{id}.xml"),
            provisions: passages as u64,
        }),
    }
}

#[tokio::test]
async fn norms_versions_sources_and_jobs() {
    for db in databases().await {
        let r = &db.registry;
        let name = db.name();
        let job = r.start_job().await.unwrap();
        r.add_failure(job, "corpus/roto.pdf", "not a PDF")
            .await
            .unwrap();
        r.record(
            &[norm("cl-ley-1", 12), norm("cl-ley-2", 30)],
            Some("e5-small"),
            &[],
        )
        .await
        .unwrap();
        // A second ingest of the same norm replaces its row, and its version's.
        r.record(&[norm("cl-ley-1", 14)], Some("e5-small"), &[])
            .await
            .unwrap();
        let summary = cabildo_store::JobSummary {
            files: 3,
            unchanged: 0,
            norms: 2,
            passages: 44,
            failures: 1,
            flagged: 0,
            seconds: 1.5,
        };
        r.finish_job(job, &summary, "done").await.unwrap();
        let failed = r.start_job().await.unwrap();
        r.fail_job(failed, "the vector store is gone")
            .await
            .unwrap();

        let (n, passages) = r.norm("cl-ley-1").await.unwrap().unwrap();
        assert_eq!(
            (n.clone(), passages),
            (norm("cl-ley-1", 14).norm, 14),
            "{name}"
        );
        assert_eq!(r.norm_count().await.unwrap(), 2, "{name}");
        assert_eq!(r.passage_count().await.unwrap(), 44, "{name}");
        assert_eq!(r.norms().await.unwrap().len(), 2, "{name}");
        assert_eq!(r.norm_passages().await.unwrap()["cl-ley-2"], 30, "{name}");
        let versions = r.versions("cl-ley-1").await.unwrap();
        assert_eq!(versions.len(), 1, "{name}");
        assert_eq!(versions[0].provisions, 14, "{name}");
        let source = r.source("corpus/cl-ley-1.xml").await.unwrap().unwrap();
        assert_eq!(source.norm_id, "cl-ley-1", "{name}");
        assert_eq!(source.embedder.as_deref(), Some("e5-small"), "{name}");

        let jobs = r.recent_jobs(5).await.unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            [failed, job],
            "{name}"
        );
        assert_eq!(jobs[0].status, "failed");
        assert_eq!(jobs[0].error.as_deref(), Some("the vector store is gone"));
        assert_eq!(jobs[1].status, "done");
        assert_eq!(jobs[1].summary.passages, 44);
        assert_eq!(jobs[1].summary.seconds, 1.5);
        assert_eq!(jobs[1].failures[0].reason, "not a PDF", "{name}");

        assert!(r.delete_norm("cl-ley-1").await.unwrap(), "{name}");
        assert!(!r.delete_norm("cl-ley-1").await.unwrap(), "{name}");
        assert!(r.source("corpus/cl-ley-1.xml").await.unwrap().is_none());
        assert!(r.versions("cl-ley-1").await.unwrap().is_empty());
        r.forget_norm("cl-ley-2").await.unwrap();
        assert_eq!(r.norm_count().await.unwrap(), 0, "{name}");
    }
}

/// Two replicas append to one audit log and count one client's requests at the same time:
/// the chain stays one line and no request goes uncounted.
#[tokio::test]
async fn replicas_writing_at_once_keep_one_chain_and_one_count() {
    for db in databases().await {
        let replicas = [db.registry.clone(), db.replica().await];
        let day = "2026-12-03".parse().unwrap();
        let mut tasks = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            for n in 0..25 {
                let r = r.clone();
                tasks.push(tokio::spawn(async move {
                    r.append_audit(&record(i * 100 + n)).await.unwrap();
                    r.count_request("key:7", day).await.unwrap()
                }));
            }
        }
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=50).collect::<Vec<u64>>(), "{}", db.name());
        let v = db.replica().await.verify_audit().await.unwrap();
        assert!(v.intact(), "{}: {:?}", db.name(), v.problems);
        assert_eq!(v.records, 50, "{}", db.name());
    }
}

#[tokio::test]
async fn a_registry_address_that_is_not_postgres_or_sqlite_is_refused() {
    let err = Registry::connect("mysql://root:hunter2@db/cabildo")
        .await
        .err()
        .expect("refused");
    let shown = err.to_string();
    assert!(shown.contains("postgres://"), "{shown}");
    assert!(
        !shown.contains("hunter2"),
        "the password is not shown: {shown}"
    );
}

/// Processes that open a new data folder at once (an ingest and `cabildo status` beside it)
/// both bring its schema up to date without one failing on a table the other created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registries_opened_at_once_migrate_once() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.db");
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { Registry::open(&path).await })
            })
            .collect();
        for opened in opening {
            opened
                .await
                .expect("joined")
                .expect("opened beside the others");
        }
    }
}
