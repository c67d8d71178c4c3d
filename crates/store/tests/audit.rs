//! The audit log's hash chain against someone who edits the SQLite file behind the
//! registry's back (dropping the append-only triggers first, as such a person would).

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_store::{AuditRecord, NewClient, Registry};
use sqlx::{Connection, SqliteConnection};

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

async fn filled(n: usize) -> (tempfile::TempDir, Registry, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let registry = Registry::open(&path).await.unwrap();
    for i in 1..=n {
        let e = registry.append_audit(&record(i)).await.unwrap();
        assert_eq!(e.seq, i as i64);
    }
    let mut raw = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // Through SQL the log is append-only…
    assert!(
        sqlx::query("UPDATE audit_log SET status = 500 WHERE seq = 2")
            .execute(&mut raw)
            .await
            .is_err()
    );
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&mut raw)
        .await
        .is_err());
    // …until someone with the file drops the triggers.
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(&mut raw)
        .await
        .unwrap();
    (dir, registry, raw)
}

#[tokio::test]
async fn an_untouched_chain_verifies() {
    let (_dir, registry, _raw) = filled(6).await;
    let v = registry.verify_audit().await.unwrap();
    assert!(v.intact(), "{:?}", v.problems);
    assert_eq!(v.records, 6);
    let days = registry
        .audit_between("2026-11-21".parse().unwrap(), "2026-11-22".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 6],
        "records of the 21st and 22nd"
    );
    assert_eq!(days[0].record, record(1));
}

/// Fills a log of five records, runs `sql` (with `bind`, if any) behind the registry's back,
/// and returns what verification reports.
async fn problems_after(sql: &'static str, bind: Option<String>) -> Vec<String> {
    let (_dir, registry, mut raw) = filled(5).await;
    let mut q = sqlx::query(sql);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    q.execute(&mut raw).await.unwrap();
    let v = registry.verify_audit().await.unwrap();
    assert_eq!(v.intact(), v.problems.is_empty());
    v.problems
}

fn assert_reported(problems: &[String], what: &str) {
    assert!(
        problems.iter().any(|p| p.contains(what)),
        "{what}: {problems:?}"
    );
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
        "UPDATE audit_log SET passages = '[]', hash = ? WHERE seq = 3",
        Some(hash),
    )
    .await;
    assert!(
        !problems.iter().any(|p| p.contains("record 3 was changed")),
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
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("r.sqlite")).await.unwrap();
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
    use cabildo_store::{AnswerRecord, Rating};
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("registry.sqlite"))
        .await
        .unwrap();
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
