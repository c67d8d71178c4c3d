//! Conversations, the OpenAI-compatible surface and feedback, end to end: the real server on
//! loopback over excerpts of real corpus files (the Chilean Constitution, articles 1–18; the
//! LGPD, articles 1–7), answering extractively, called with a plain HTTP client and with the
//! official OpenAI client libraries for Python and npm (pinned in tests/clients, installed by
//! `scripts/setup-clients.sh`, which the test command runs). Skips when `../shared/corpus` is
//! absent; the client-library test skips when the libraries are not installed, unless
//! `CABILDO_REQUIRE_CLIENTS=1` (set by `scripts/test.sh`) makes that a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::Writer;
use cabildo_engine::Engine;
use cabildo_server::Config;
use cabildo_store::Rating;
use common::{add_key, events, excerpt_engine, get, json_of, on_own_runtime, post, root, start};
use serde_json::{json, Value};

struct Server {
    base: String,
    /// A partner's API key, no quota.
    partner: String,
    /// A partner's API key whose daily quota (one request) is used up.
    spent: String,
    engine: Arc<Engine>,
    runtime: tokio::runtime::Handle,
}

fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            on_own_runtime(|dir| async move {
                let engine = excerpt_engine(&dir).await?;
                let base = start(engine.clone(), Writer::Extractive, Config::default()).await;
                let partner = add_key(
                    &engine,
                    "partner",
                    AccessRole::Partner,
                    None,
                    AccessLevel::Public,
                    None,
                )
                .await;
                let spent = add_key(
                    &engine,
                    "spent",
                    AccessRole::Partner,
                    None,
                    AccessLevel::Public,
                    Some(1),
                )
                .await;
                Some(Server {
                    base,
                    partner,
                    spent,
                    engine,
                    runtime: tokio::runtime::Handle::current(),
                })
            })
        })
        .as_ref()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn labels(answer: &Value) -> Vec<String> {
    answer["citations"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["label"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_follow_up_is_searched_with_the_question_before_it() {
    let Some(s) = server() else { return };
    let ask = format!("{}/v1/ask", s.base);
    let first = "¿Desde qué edad se puede votar en Chile?";
    let (status, _, body) = post(&ask, &json!({ "question": first }), &[]);
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert!(
        answer["id"].as_str().unwrap_or("").starts_with("ans_"),
        "{answer:#}"
    );

    // On its own words the follow-up names no subject; with the conversation it is a
    // question on the right to vote, which articles 16–17 answer (suspended, lost).
    let follow = "¿Y quiénes pierden ese derecho?";
    let history = json!([
        {"role": "user", "content": first},
        {"role": "assistant", "content": answer["answer"]},
    ]);
    let (status, _, body) = post(
        &ask,
        &json!({ "question": follow, "history": history }),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let with_history = json_of(&body);
    let cited = labels(&with_history);
    assert!(
        !with_history["abstained"].as_bool().unwrap_or(true),
        "{with_history:#}"
    );
    assert!(
        cited
            .iter()
            .any(|l| l.ends_with("Artículo 16") || l.ends_with("Artículo 17")),
        "{cited:?}"
    );

    // A turn too long to be one is refused; too many turns are cut to the newest.
    let huge = json!([{"role": "user", "content": "a".repeat(8_001)}]);
    let (status, ct, body) = post(&ask, &json!({ "question": follow, "history": huge }), &[]);
    assert_eq!(status, 400, "{body}");
    assert!(ct.starts_with("application/problem+json"));
    assert!(body.contains("turn 1 of the history"), "{body}");
    // Beyond the newest 20 turns nothing is read, not even a turn too long to be one.
    let many: Vec<Value> =
        std::iter::once(json!({"role": "user", "content": "a".repeat(8_001)}))
            .chain((0..60).map(
                |i| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": first}),
            ))
            .collect();
    let (status, _, body) = post(&ask, &json!({ "question": follow, "history": many }), &[]);
    assert_eq!(status, 200, "{body}");
    let bad_role = json!([{"role": "system", "content": "x"}]);
    let (status, _, _) = post(
        &ask,
        &json!({ "question": follow, "history": bad_role }),
        &[],
    );
    assert_eq!(
        status, 400,
        "a role other than user or assistant is refused"
    );
}

#[test]
fn the_stream_of_an_answer_names_its_id_for_feedback() {
    let Some(s) = server() else { return };
    let (status, _, body) = post(
        &format!("{}/v1/ask", s.base),
        &json!({ "question": "¿Desde qué edad se puede votar en Chile?", "stream": true }),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let evs = events(&body);
    let done = evs.iter().find(|(n, _)| n == "done").expect("done event");
    let cited = evs
        .iter()
        .find(|(n, _)| n == "citations")
        .expect("citations");
    let id = json_of(&done.1)["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("ans_"));
    assert_eq!(json_of(&cited.1)["id"], id.as_str());
    // The answer is kept before `done` is sent: feedback right after the stream finds it.
    let (status, _, body) = post(
        &format!("{}/v1/feedback", s.base),
        &json!({"answer_id": id, "rating": "useful"}),
        &[],
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn feedback_reaches_the_registry_the_audit_log_and_the_metrics() {
    let Some(s) = server() else { return };
    let (_, _, body) = post(
        &format!("{}/v1/ask", s.base),
        &json!({ "question": "¿Desde qué edad se puede votar en Chile?" }),
        &[],
    );
    let id = json_of(&body)["id"].as_str().expect("id").to_string();
    let feedback = format!("{}/v1/feedback", s.base);
    // Only whoever received the answer may rate it: a partner cannot rate an anonymous one.
    let rating = json!({"answer_id": id, "rating": "not_useful",
        "comment": "No dice nada de mi caso, escríbanme a ana.perez@example.cl o al +56 9 8765 4321"});
    let (status, _, body) = post(
        &feedback,
        &rating,
        &[("Authorization", &bearer(&s.partner))],
    );
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = post(&feedback, &rating, &[]);
    assert_eq!(status, 201, "{body}");
    let receipt = json_of(&body);
    assert_eq!(receipt["answer_id"], id.as_str());
    let (status, _, body) = post(
        &feedback,
        &json!({"answer_id": id, "rating": "meh"}),
        &[("Accept-Language", "en")],
    );
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = post(
        &feedback,
        &json!({"answer_id": "ans_nope", "rating": "useful"}),
        &[],
    );
    assert_eq!(status, 404);
    let (status, _, _) = post(
        &feedback,
        &json!({"answer_id": id, "rating": "useful", "comment": "x".repeat(2_001)}),
        &[],
    );
    assert_eq!(status, 400);

    let registry = s.engine.registry().clone();
    let (stored, audit) = s.runtime.block_on(async move {
        let stored = registry
            .feedback_between(None, None)
            .await
            .expect("feedback");
        let today = chrono::Utc::now().date_naive();
        let audit = registry.audit_between(today, today).await.expect("audit");
        (stored, audit)
    });
    let mine = stored
        .iter()
        .find(|f| f.answer.id == id)
        .expect("the feedback is stored with its answer");
    assert_eq!(mine.rating, Rating::NotUseful);
    let comment = mine.comment.as_deref().unwrap_or("");
    assert!(comment.starts_with("No dice nada de mi caso"), "{comment}");
    assert!(
        !comment.contains("ana.perez@example.cl") && !comment.contains("8765"),
        "the comment is redacted: {comment}"
    );
    assert!(
        mine.answer.answer.contains("Artículo 13"),
        "{:?}",
        mine.answer
    );
    assert!(mine.answer.citations.to_string().contains("Artículo 13"));
    let delivered = audit
        .iter()
        .find(|e| e.record.route == "/v1/ask" && e.record.answer_id.as_deref() == Some(&id))
        .expect("the answer's audit record names it");
    let rated = audit
        .iter()
        .find(|e| e.record.route == "/v1/feedback" && e.record.status == 201)
        .expect("the feedback's audit record");
    assert!(delivered.seq < rated.seq);
    assert_eq!(rated.record.answer_id.as_deref(), Some(id.as_str()));
    assert_eq!(rated.record.feedback_id, Some(mine.id));

    let (_, _, metrics) = get(&format!("{}/metrics", s.base));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cabildo_answer_feedback_total{rating=\"not_useful\"}")),
        "{metrics}"
    );
}

#[test]
fn openai_routes_answer_errors_in_openai_shape() {
    let Some(s) = server() else { return };
    let (status, ct, body) = {
        let mut r = common::agent()
            .get(&format!("{}/v1/models", s.base))
            .header("Authorization", "Bearer cbk_not-a-key")
            .call()
            .expect("request");
        common::read(&mut r)
    };
    assert_eq!(status, 401);
    assert!(ct.starts_with("application/json"), "{ct}");
    let e = json_of(&body);
    assert_eq!(e["error"]["type"], "authentication_error", "{e:#}");
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(e["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));

    let chat = format!("{}/v1/chat/completions", s.base);
    let (status, _, body) = post(&chat, &json!({"messages": "hola"}), &[]);
    assert_eq!(status, 400);
    assert_eq!(
        json_of(&body)["error"]["type"],
        "invalid_request_error",
        "{body}"
    );
    let (status, _, body) = post(
        &chat,
        &json!({"messages": [{"role": "user", "content": "¿Quiénes pueden votar?"}], "top_p": 3}),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    // The other routes keep RFC 7807 problems.
    let (status, ct, _) = post(&format!("{}/v1/ask", s.base), &json!({"q": 1}), &[]);
    assert_eq!(status, 400);
    assert!(ct.starts_with("application/problem+json"));

    let (status, _, body) = get(&format!("{}/v1/models", s.base));
    assert_eq!(status, 200);
    let models = json_of(&body);
    assert_eq!(models["object"], "list");
    let id = models["data"][0]["id"]
        .as_str()
        .expect("a model")
        .to_string();
    assert_eq!(id, "cabildo-extractive");
    let (status, _, _) = get(&format!("{}/v1/models/{id}", s.base));
    assert_eq!(status, 200);
    let (status, _, body) = get(&format!("{}/v1/models/gpt-4o", s.base));
    assert_eq!(status, 404);
    assert_eq!(json_of(&body)["error"]["type"], "not_found_error");
}

/// A client library's test script, run against the server; its output is shown either way.
fn run_client(program: &PathBuf, script: &str, s: &Server) {
    // Use the spent key's one request first, so that the script sees it refused.
    let _ = post(
        &format!("{}/v1/search", s.base),
        &json!({"query": "voto"}),
        &[("Authorization", &bearer(&s.spent))],
    );
    let out = Command::new(program)
        .arg(root().join("tests/clients").join(script))
        .current_dir(root().join("tests/clients"))
        .env("CABILDO_BASE_URL", format!("{}/v1", s.base))
        .env("CABILDO_KEY", &s.partner)
        .env("CABILDO_QUOTA_KEY", &s.spent)
        .output()
        .expect("run the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{script} failed:\n{text}");
}

/// Where the client libraries are installed, or why the test does not run.
fn clients() -> Option<(PathBuf, PathBuf)> {
    let dir = root().join("tests/clients");
    let python = dir.join(".venv/bin/python");
    let installed = python.exists() && dir.join("node_modules/openai/package.json").exists();
    if !installed {
        let required = std::env::var("CABILDO_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "the OpenAI client libraries are not installed: run scripts/setup-clients.sh"
        );
        eprintln!(
            "skipped: the OpenAI client libraries are not installed (scripts/setup-clients.sh)"
        );
        return None;
    }
    Some((python, PathBuf::from("node")))
}

#[test]
fn the_official_openai_libraries_list_complete_stream_continue_and_fail_as_documented() {
    let Some(s) = server() else { return };
    let Some((python, node)) = clients() else {
        return;
    };
    run_client(&python, "openai_client.py", s);
    run_client(&node, "openai_client.mjs", s);
}
