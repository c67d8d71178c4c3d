//! The server's own listener: HTTPS with a certificate from the settings (and
//! Strict-Transport-Security on every response), a clear refusal of a bad certificate, and
//! clients that trickle their request head are disconnected. Needs no corpus: an empty
//! data folder, lexical only. Certificates are made with the `openssl` command.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cabildo_engine::answer::Writer;
use cabildo_engine::{DenseMode, Engine, Settings};
use cabildo_server::{Config, StartError, TlsFiles};

/// A self-signed certificate for 127.0.0.1 and localhost (an end-entity certificate, as
/// webpki requires), and its key; in `dir` as `{name}.crt` and `{name}.key`.
fn certificate(dir: &Path, name: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    files
}

async fn empty_engine(dir: &Path) -> Arc<Engine> {
    let mut settings = Settings::default();
    settings.data.dir = dir.join("data");
    Arc::new(
        Engine::from_settings(&settings, DenseMode::Off)
            .await
            .expect("engine"),
    )
}

/// Serves with `config` on a free loopback port; returns the port.
async fn serve(engine: Arc<Engine>, config: Config) -> Result<u16, StartError> {
    let addr = common::try_start(engine, Writer::Extractive, config).await?;
    Ok(addr.port())
}

fn trusting(cert: &Path) -> ureq::Agent {
    let pem = std::fs::read(cert).expect("cert");
    let cert = ureq::tls::Certificate::from_pem(&pem).expect("pem");
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_is_served_with_strict_transport_security() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = certificate(dir.path(), "server");
    let engine = empty_engine(dir.path()).await;
    let config = Config {
        tls: Some(files.clone()),
        ..Config::default()
    };
    let port = serve(engine, config).await.expect("serves");
    let cert = files.cert.clone();
    tokio::task::spawn_blocking(move || {
        let agent = trusting(&cert);
        let mut r = agent
            .get(format!("https://localhost:{port}/healthz"))
            .call()
            .expect("HTTPS request");
        assert_eq!(r.status().as_u16(), 200);
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            header("strict-transport-security").as_deref(),
            Some("max-age=31536000")
        );
        assert!(header("content-security-policy").is_some());
        assert!(r.body_mut().read_to_string().is_ok());
        // A search over HTTPS, as a partner would call it.
        let r = agent
            .post(format!("https://127.0.0.1:{port}/v1/search"))
            .send_json(serde_json::json!({"query": "protección de datos"}))
            .expect("HTTPS search");
        assert_eq!(r.status().as_u16(), 200);
        // Plain HTTP on the HTTPS port gets no HTTP answer.
        let plain = common::agent()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .call();
        assert!(
            !matches!(plain, Ok(ref r) if r.status().as_u16() == 200),
            "plain HTTP was served on the TLS port"
        );
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_has_no_strict_transport_security() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = serve(empty_engine(dir.path()).await, Config::default())
        .await
        .expect("serves");
    tokio::task::spawn_blocking(move || {
        let r = common::agent()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().get("strict-transport-security").is_none());
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_does_not_match_its_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = certificate(dir.path(), "one");
    let other = certificate(dir.path(), "other");
    let engine = empty_engine(dir.path()).await;
    let mismatched = Config {
        tls: Some(TlsFiles {
            cert: one.cert.clone(),
            key: other.key,
        }),
        ..Config::default()
    };
    let e = serve(engine.clone(), mismatched)
        .await
        .expect_err("a key of another certificate");
    assert!(matches!(e, StartError::Tls(_)), "{e}");
    let missing = Config {
        tls: Some(TlsFiles {
            cert: one.cert,
            key: dir.path().join("nowhere.key"),
        }),
        ..Config::default()
    };
    let e = serve(engine, missing).await.expect_err("no key file");
    assert!(e.to_string().contains("nowhere.key"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_trickles_its_request_head_is_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        header_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let port = serve(empty_engine(dir.path()).await, config)
        .await
        .expect("serves");
    tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            .expect("head");
        let started = Instant::now();
        let mut writer = slow.try_clone().expect("clone");
        let trickle = std::thread::spawn(move || {
            // One header line every 500 ms, never the blank line that ends the head.
            for i in 0..40 {
                std::thread::sleep(Duration::from_millis(500));
                if writer
                    .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        let _ = slow.read_to_end(&mut answer);
        let took = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "the trickling client got: {answer:?}"
        );
        assert!(
            took < Duration::from_secs(6),
            "held for {took:?} with a 2 s header timeout"
        );
        // Meanwhile the server serves others.
        let r = common::agent()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        let _ = trickle.join();
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_in_flight_requests_are_refused_at_once_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_in_flight: 1,
        ..Config::default()
    };
    let port = serve(empty_engine(dir.path()).await, config)
        .await
        .expect("serves");
    tokio::task::spawn_blocking(move || {
        // One search holds the only slot: its body is still on its way.
        let mut holder = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        holder
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let body = br#"{"query": "voto"}"#;
        write!(
            holder,
            "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
            body.len()
        )
        .expect("head");
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let r = common::agent()
            .post(format!("http://127.0.0.1:{port}/v1/search"))
            .send_json(serde_json::json!({"query": "voto"}))
            .expect("request");
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("2")
        );
        assert!(started.elapsed() < Duration::from_secs(2), "refused at once");
        // Health is not counted.
        let r = common::agent()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .expect("health");
        assert_eq!(r.status().as_u16(), 200);
        // The held search finishes normally, and the slot is free again.
        holder.write_all(&body[1..]).expect("rest of the body");
        let mut answer = String::new();
        let _ = holder.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        let r = common::agent()
            .post(format!("http://127.0.0.1:{port}/v1/search"))
            .send_json(serde_json::json!({"query": "voto"}))
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
    })
    .await
    .expect("client");
}
