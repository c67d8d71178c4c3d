//! Versions of a law over time, as a user meets them: the 58 official versions of the
//! Chilean Constitution (`../shared/versions/cl/constitucion`) ingested with vectors, then
//! asked about on a given day over the CLI and the HTTP API, with its history and a word
//! diff. Skips when the versions are absent.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NORM: &str = "cl-leychile-242302";
const QUESTION: &str = "¿Es obligatorio votar en Chile?";

fn cabildo(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(data)
        .arg("--models")
        .arg(cabildo_core::fixtures::models_dir())
        .args(args)
        .output()
        .expect("run cabildo")
}

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json on stdout")
}

/// The data folder is one embedded store, which one process opens at a time: the tests take
/// turns.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// One data folder with all 58 versions, ingested once for the whole file.
fn data() -> Option<&'static Path> {
    static DATA: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    DATA.get_or_init(|| {
        let versions = cabildo_core::fixtures::shared("versions/cl/constitucion")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let report = json_out(&cabildo(
            dir.path(),
            &["ingest", versions.to_str().expect("path"), "--json"],
        ));
        eprintln!(
            "58 versions ingested with vectors in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(report["files"], 58, "{report}");
        assert_eq!(report["failures"], 0, "{report}");
        assert_eq!(report["norms"], 1, "58 versions of one norm: {report}");
        Some((dir, versions))
    })
    .as_ref()
    .map(|(d, _)| d.path())
}

/// The citation of Artículo 15 in an answer.
fn article_15(answer: &Value) -> &Value {
    answer["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .find(|c| {
            c["label"]
                .as_str()
                .is_some_and(|l| l.ends_with("Artículo 15"))
        })
        .unwrap_or_else(|| panic!("Artículo 15 is cited: {answer:#}"))
}

/// What both front doors must say about compulsory voting on each day.
fn check_voting(day: &str, answer: &Value) {
    let preface = match day {
        "2015-06-01" => "Según el texto vigente el 1 de junio de 2015",
        _ => "Según el texto vigente el 1 de junio de 2024",
    };
    let text = answer["answer"].as_str().expect("answer");
    assert!(text.starts_with(preface), "{text}");
    assert_eq!(answer["in_force_on"], day);
    let c = article_15(answer);
    let (word, since) = match day {
        "2015-06-01" => ("voluntario", "2009-04-04"),
        _ => ("obligatorio", "2023-01-04"),
    };
    assert!(
        c["quote"].as_str().is_some_and(|q| q.contains(word)),
        "{day}: the quote says {word}: {c:#}"
    );
    assert_eq!(c["in_force_from"], since, "{c:#}");
    assert!(
        c["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("idVersion={since}"))),
        "{c:#}"
    );
}

#[test]
fn asked_about_a_day_the_cli_cites_that_days_article_15() {
    let _turn = one_at_a_time();
    let Some(data) = data() else { return };
    for day in ["2015-06-01", "2024-06-01"] {
        let answer = json_out(&cabildo(
            data,
            &[
                "ask",
                QUESTION,
                "--in-force-on",
                day,
                "--generator",
                "extractive",
                "--json",
            ],
        ));
        check_voting(day, &answer);
    }
}

/// Whether a search in force on `day` finds Artículo 19 Nº 4 speaking of personal data.
fn data_protection_found(data: &Path, day: &str) -> bool {
    let hits = json_out(&cabildo(
        data,
        &[
            "search",
            "protección de los datos personales",
            "--in-force-on",
            day,
            "-k",
            "10",
            "--json",
        ],
    ));
    hits.as_array().expect("hits").iter().any(|h| {
        h["passage"]["provision"] == "Artículo 19, N° 4"
            && h["passage"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("datos personales"))
    })
}

#[test]
fn data_protection_is_in_the_constitution_from_2018_06_16() {
    let _turn = one_at_a_time();
    let Some(data) = data() else { return };
    assert!(!data_protection_found(data, "2018-06-15"));
    assert!(data_protection_found(data, "2018-06-16"));
    assert!(data_protection_found(data, "2026-06-01"));
}

#[test]
fn history_and_diff_show_the_2023_change_to_article_15() {
    let _turn = one_at_a_time();
    let Some(data) = data() else { return };
    let o = cabildo(data, &["history", NORM, "--article", "15"]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(listed.contains("58 versions"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("2023-01-04") && l.contains("changed Artículo 15")),
        "{listed}"
    );
    let diff = json_out(&cabildo(
        data,
        &[
            "history",
            NORM,
            "--article",
            "15",
            "--from",
            "2022-12-01",
            "--to",
            "2023-06-01",
            "--json",
        ],
    ));
    let changes = diff["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{diff:#}");
    assert_eq!(changes[0]["changed_on"], "2023-01-04");
    check_words(&changes[0]["words"]);

    let o = cabildo(data, &["history", "cl-leychile-1", "--article", "15"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no norm cl-leychile-1"));
    let o = cabildo(
        data,
        &[
            "history",
            NORM,
            "--from",
            "2024-01-01",
            "--to",
            "2023-01-01",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is after"));
}

/// A word diff of Artículo 15 across Ley 21.524: "voluntario" out, "obligatorio" in.
fn check_words(words: &Value) {
    let runs = words.as_array().expect("words");
    let has = |op: &str, w: &str| {
        runs.iter()
            .any(|r| r["op"] == op && r["text"].as_str().is_some_and(|t| t.contains(w)))
    };
    assert!(has("deleted", "voluntario"), "{words:#}");
    assert!(has("inserted", "obligatorio"), "{words:#}");
    assert!(has("same", "En las votaciones populares"), "{words:#}");
}

#[test]
fn an_unchanged_reingest_writes_nothing_and_the_folder_checks() {
    let _turn = one_at_a_time();
    let Some(data) = data() else { return };
    let versions = cabildo_core::fixtures::shared("versions/cl/constitucion").expect("versions");
    let report = json_out(&cabildo(
        data,
        &["ingest", versions.to_str().expect("path"), "--json"],
    ));
    assert_eq!(report["unchanged"], 58, "{report}");
    assert_eq!(report["embedded"], 0, "{report}");
    let o = cabildo(data, &["status", "--check", "--json"]);
    let found = json_out(&o);
    assert_eq!(found["problems"], json!([]), "{found:#}");
    // Many versions cost little more than one: a provision unchanged across versions is
    // one passage (the 2026 text alone has 416).
    let passages = found["passages"].as_u64().expect("passages");
    assert!(passages < 2 * 416, "{passages} passages for 58 versions");
}

/// `cabildo serve` on a free loopback port over the shared folder, stopped on drop.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_cabildo"))
        .arg("--data")
        .arg(data)
        .arg("--models")
        .arg(cabildo_core::fixtures::models_dir())
        .args(["serve", "--generator", "extractive"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cabildo serve");
    let server = Server(child, format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if get(&format!("{}/readyz", server.1)).0 == 200 {
            return server;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cabildo serve did not get ready in 120 s");
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

fn get(url: &str) -> (u16, Value) {
    match agent().get(url).call() {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&body).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let mut r = agent().post(url).send_json(body).expect("post");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn the_http_api_answers_for_a_day_and_shows_versions_and_diffs() {
    let _turn = one_at_a_time();
    let Some(data) = data() else { return };
    let server = serve(data);
    let base = &server.1;
    for day in ["2015-06-01", "2024-06-01"] {
        let (status, answer) = post(
            &format!("{base}/v1/ask"),
            &json!({"question": QUESTION, "filters": {"in_force_on": day}}),
        );
        assert_eq!(status, 200, "{answer}");
        check_voting(day, &answer);
    }

    // OpenAI-style chat takes the day among Cabildo's own options.
    let (status, chat) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "cabildo", "messages": [{"role": "user", "content": QUESTION}],
                "cabildo": {"filters": {"in_force_on": "2015-06-01"}}}),
    );
    assert_eq!(status, 200, "{chat}");
    let content = chat["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(
        content.starts_with("Según el texto vigente el 1 de junio de 2015")
            && content.contains("voluntario"),
        "{chat:#}"
    );

    // The norm as it stood on a day.
    let (status, norm) = get(&format!("{base}/v1/norms/{NORM}?in_force_on=2015-06-01"));
    assert_eq!(status, 200, "{norm}");
    let art15 = norm["passages"]
        .as_array()
        .expect("passages")
        .iter()
        .find(|p| {
            p["label"]
                .as_str()
                .is_some_and(|l| l.ends_with("Artículo 15"))
        })
        .expect("Artículo 15");
    assert!(art15["text"]
        .as_str()
        .is_some_and(|t| t.contains("voluntario")));
    assert_eq!(art15["in_force_until"], "2023-01-04");

    let (status, versions) = get(&format!("{base}/v1/norms/{NORM}/versions?article=15"));
    assert_eq!(status, 200, "{versions}");
    let list = versions["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 58);
    let v2023 = list
        .iter()
        .find(|v| v["valid_from"] == "2023-01-04")
        .expect("the 2023-01-04 version");
    assert_eq!(v2023["changed"], json!(["Artículo 15"]));
    assert_eq!(v2023["valid_to"], "2023-01-17");
    assert!(v2023["url"]
        .as_str()
        .is_some_and(|u| u.contains("idVersion=2023-01-04")));

    let (status, diff) = get(&format!(
        "{base}/v1/norms/{NORM}/diff?from=2022-12-01&to=2023-06-01&article=15"
    ));
    assert_eq!(status, 200, "{diff}");
    let changes = diff["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{diff:#}");
    assert_eq!(changes[0]["status"], "changed");
    check_words(&changes[0]["words"]);

    let (status, problem) = get(&format!(
        "{base}/v1/norms/{NORM}/diff?from=2024-01-01&to=2023-01-01"
    ));
    assert_eq!(status, 400, "{problem}");
    let (status, _) = get(&format!("{base}/v1/norms/{NORM}/diff?from=yesterday"));
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{base}/v1/norms/cl-leychile-1/versions"));
    assert_eq!(status, 404);

    // Searches honour the day in both indexes.
    for (day, found) in [("2018-06-15", false), ("2018-06-16", true)] {
        let (status, r) = post(
            &format!("{base}/v1/search"),
            &json!({"query": "protección de los datos personales", "k": 10,
                    "filters": {"in_force_on": day}}),
        );
        assert_eq!(status, 200, "{r}");
        let hit = r["hits"].as_array().expect("hits").iter().any(|h| {
            h["label"]
                .as_str()
                .is_some_and(|l| l.ends_with("Artículo 19, N° 4"))
                && h["in_force_from"] == "2018-06-16"
        });
        assert_eq!(hit, found, "{day}: {r:#}");
    }
}
