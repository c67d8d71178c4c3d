//! Authentication, rate limits, quotas and the audit log over real HTTP: a server on
//! loopback over a small lexical index, called with tokens signed in the test (HS256 with a
//! shared secret, RS256 with the test RSA key in tests/keys, ES256 with a P-256 key made
//! here) and with API keys registered in the real registry.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::answer::Writer;
use cabildo_engine::ingest::NoProgress;
use cabildo_engine::{Engine, IngestDefaults};
use cabildo_server::{AuthConfig, Config, JwksSource, Limits};
use common::{add_key, agent, json_of, read, start};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a-development-secret-of-32-bytes!!";
const ISSUER: &str = "https://claveunica.test";
const AUDIENCE: &str = "cabildo";

fn keys_dir() -> std::path::PathBuf {
    cabildo_core::fixtures::workspace_root().join("tests/keys")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a valid token for `role`, overridable field by field.
fn claims(role: &str, tenant: Option<&str>) -> Value {
    json!({
        "sub": format!("{role}-1"), "iss": ISSUER, "aud": AUDIENCE,
        "exp": now() + 600, "nbf": now() - 10, "iat": now() - 10,
        "role": role, "tenant": tenant, "clearance": "internal",
    })
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign")
}

fn rs256(claims: &Value, kid: &str) -> String {
    let pem = std::fs::read(keys_dir().join("rsa-test.pem")).expect("test key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
    )
    .expect("sign")
}

/// A fresh P-256 key: its signing key and its public JWK under `kid`.
fn p256(kid: &str) -> (EncodingKey, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key pair");
    let public = pair.public_key().as_ref(); // 0x04 ‖ x ‖ y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&public[1..33]), "y": b64(&public[33..65]),
    });
    (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

fn es256(key: &EncodingKey, claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, claims, key).expect("sign")
}

/// A token assembled by hand (for headers no signing library will write).
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    runtime: tokio::runtime::Runtime,
}

/// A lexical index of two small documents: a public one, and an internal one of tenant
/// "sii".
fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = runtime.block_on(async {
        let public = dir.path().join("public");
        let internal = dir.path().join("internal");
        std::fs::create_dir_all(&public).expect("mkdir");
        std::fs::create_dir_all(&internal).expect("mkdir");
        std::fs::write(
            public.join("reglamento-bibliotecas.md"),
            "# Reglamento de bibliotecas\n\nArtículo 1.- Las bibliotecas municipales abrirán los domingos.\n",
        )
        .expect("write");
        std::fs::write(
            internal.join("instructivo-fiscalizacion.md"),
            "# Instructivo interno de fiscalización\n\nArtículo 1.- Los fiscalizadores revisarán las bibliotecas de empresas con prioridad.\n",
        )
        .expect("write");
        let engine = Engine::open(&dir.path().join("data")).await.expect("engine");
        let mut defaults = IngestDefaults {
            jurisdiction: Some("CL".into()),
            ..IngestDefaults::default()
        };
        engine
            .ingest(&[public], &defaults, &mut NoProgress)
            .await
            .expect("ingest");
        defaults.access = AccessLevel::Internal;
        defaults.tenant = Some("sii".into());
        engine
            .ingest(&[internal], &defaults, &mut NoProgress)
            .await
            .expect("ingest");
        Arc::new(engine)
    });
    Fixture {
        _dir: dir,
        engine,
        runtime,
    }
}

impl Fixture {
    fn serve(&self, auth: AuthConfig, limits: Limits) -> String {
        let config = Config {
            auth,
            limits,
            ..Config::default()
        };
        self.runtime
            .block_on(start(self.engine.clone(), Writer::Extractive, config))
    }

    fn add_client(
        &self,
        name: &str,
        role: AccessRole,
        tenant: Option<&str>,
        quota: Option<u64>,
    ) -> String {
        self.runtime.block_on(add_key(
            &self.engine,
            name,
            role,
            tenant,
            AccessLevel::Internal,
            quota,
        ))
    }
}

fn generous() -> Limits {
    Limits {
        per_ip_per_minute: 10_000,
        per_principal_per_minute: 10_000,
        partner_daily_quota: None,
    }
}

fn dev_auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.to_vec()),
        jwks: Some(JwksSource::File(keys_dir().join("rsa-test.jwks.json"))),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..AuthConfig::default()
    }
}

/// Searches as the bearer of `token` (or anonymously); returns status, headers of interest
/// and body.
fn search(base: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = agent().post(format!("{base}/v1/search"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut r = req
        .send_json(json!({"query": "bibliotecas", "method": "lexical"}))
        .expect("request");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (status, _, body) = read(&mut r);
    (status, challenge, body)
}

fn norm_ids(body: &str) -> Vec<String> {
    let mut ids: Vec<String> = json_of(body)["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| h["norm_id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn valid_tokens_map_roles_and_tenants_to_what_can_be_read() {
    let f = fixture();
    let base = f.serve(dev_auth(), generous());
    let (status, _, body) = search(&base, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(norm_ids(&body).len(), 1, "anonymous: public only: {body}");

    let citizen = hs256(&claims("citizen", Some("sii")));
    let (_, _, body) = search(&base, Some(&citizen));
    assert_eq!(
        norm_ids(&body).len(),
        1,
        "a citizen's tenant claim gives nothing: {body}"
    );

    let own = rs256(&claims("caseworker", Some("sii")), "rsa-1");
    let (status, _, body) = search(&base, Some(&own));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        norm_ids(&body).len(),
        2,
        "own tenant's internal norm: {body}"
    );

    let other = hs256(&claims("caseworker", Some("dt")));
    let (_, _, body) = search(&base, Some(&other));
    assert_eq!(
        norm_ids(&body).len(),
        1,
        "another tenant's caseworker: {body}"
    );

    let mut no_tenant = claims("caseworker", None);
    no_tenant["tenant"] = Value::Null;
    assert_eq!(
        search(&base, Some(&hs256(&no_tenant))).0,
        401,
        "caseworker without tenant"
    );
    let mut unknown = claims("citizen", None);
    unknown["role"] = json!("superuser");
    assert_eq!(search(&base, Some(&hs256(&unknown))).0, 401, "unknown role");
}

#[test]
fn every_kind_of_bad_token_is_refused_with_401() {
    let f = fixture();
    let base = f.serve(dev_auth(), generous());
    let good = claims("citizen", None);
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let rsa_public = std::fs::read(keys_dir().join("rsa-test.pub.pem")).expect("public key");
    let confused = {
        // HS256 "signed" with the RSA public key, naming the RSA key: the classic confusion.
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"});
        let unsigned = raw_token(&header, &good, b"");
        let signing_input = unsigned.trim_end_matches('.');
        let sig = hmac_sha256(&rsa_public, signing_input.as_bytes());
        raw_token(&header, &good, &sig)
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", hs256(&with("exp", json!(now() - 3600)))),
        ("not yet valid", hs256(&with("nbf", json!(now() + 3600)))),
        (
            "wrong issuer",
            hs256(&with("iss", json!("https://evil.test"))),
        ),
        ("wrong audience", hs256(&with("aud", json!("someone-else")))),
        ("no exp", hs256(&no_exp)),
        (
            "wrong secret",
            encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
            )
            .expect("sign"),
        ),
        (
            "alg none",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &good, b""),
        ),
        ("alg confusion (HS256 with the RSA public key)", confused),
        ("unknown kid", rs256(&good, "rsa-2")),
        ("no kid", {
            let pem = std::fs::read(keys_dir().join("rsa-test.pem")).expect("key");
            encode(
                &Header::new(Algorithm::RS256),
                &good,
                &EncodingKey::from_rsa_pem(&pem).expect("key"),
            )
            .expect("sign")
        }),
        ("RS384 (not accepted)", {
            let pem = std::fs::read(keys_dir().join("rsa-test.pem")).expect("key");
            let mut h = Header::new(Algorithm::RS384);
            h.kid = Some("rsa-1".into());
            encode(&h, &good, &EncodingKey::from_rsa_pem(&pem).expect("key")).expect("sign")
        }),
        ("tampered payload", {
            let t = hs256(&good);
            let parts: Vec<&str> = t.split('.').collect();
            let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(with("role", json!("admin")).to_string());
            format!("{}.{}.{}", parts[0], forged, parts[2])
        }),
        ("garbage", "not.a.token".to_string()),
        ("unknown API key", format!("cab_{}", "A".repeat(43))),
    ];
    for (what, token) in &cases {
        let (status, challenge, body) = search(&base, Some(token));
        assert_eq!(status, 401, "{what}: {body}");
        assert!(challenge.starts_with("Bearer"), "{what}: WWW-Authenticate");
        assert_eq!(json_of(&body)["type"], "/problems/unauthorized", "{what}");
    }

    // Where only public keys are trusted, no HMAC token is accepted at all.
    let jwks_only = f.serve(
        AuthConfig {
            hs256_secret: None,
            ..dev_auth()
        },
        generous(),
    );
    let (status, _, body) = search(&jwks_only, Some(&hs256(&good)));
    assert_eq!(status, 401);
    assert!(body.contains("HS256 tokens are not accepted"), "{body}");
    assert_eq!(search(&jwks_only, Some(&rs256(&good, "rsa-1"))).0, 200);
}

/// An OIDC discovery document naming the server it is fetched from as the issuer: right
/// at `/.well-known/…`, wrong for an issuer with a path (`/impostor/.well-known/…`).
async fn discovery(headers: axum::http::HeaderMap) -> axum::Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    axum::Json(json!({
        "issuer": format!("http://{host}"),
        "jwks_uri": format!("http://{host}/jwks.json"),
    }))
}

#[test]
fn es256_keys_rotate_through_a_jwks_url() {
    let f = fixture();
    let (key1, jwk1) = p256("ec-1");
    let (key2, jwk2) = p256("ec-2");
    let served = Arc::new(std::sync::Mutex::new(json!({ "keys": [jwk1] })));
    let jwks_url = f.runtime.block_on(async {
        let keys = served.clone();
        let app = axum::Router::new().route(
            "/.well-known/openid-configuration",
            axum::routing::get(discovery),
        );
        // The same document for an issuer with a path: it names another issuer.
        let app = app.route(
            "/impostor/.well-known/openid-configuration",
            axum::routing::get(discovery),
        );
        let app = app.route(
            "/jwks.json",
            axum::routing::get(move || {
                let keys = keys.clone();
                async move { axum::Json(keys.lock().expect("lock").clone()) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/.well-known/openid-configuration")
    });
    let base = f.serve(
        AuthConfig {
            jwks: Some(JwksSource::Url(jwks_url.clone())),
            jwks_refetch_after: Duration::ZERO,
            ..dev_auth()
        },
        generous(),
    );
    let good = claims("citizen", None);
    assert_eq!(search(&base, Some(&es256(&key1, &good, "ec-1"))).0, 200);
    let rotated = es256(&key2, &good, "ec-2");
    assert_eq!(
        search(&base, Some(&rotated)).0,
        401,
        "ec-2 not published yet"
    );
    *served.lock().expect("lock") = json!({ "keys": [jwk2.clone()] });
    assert_eq!(
        search(&base, Some(&rotated)).0,
        200,
        "picked up after rotation"
    );
    // An RS256 token naming the EC key: the key's type does not fit the algorithm.
    assert_eq!(search(&base, Some(&rs256(&good, "ec-2"))).0, 401);

    // A discovery document that names another issuer is refused at start.
    let impostor = jwks_url.replace(
        "/.well-known/openid-configuration",
        "/impostor/.well-known/openid-configuration",
    );
    let refused = f.runtime.block_on(cabildo_server::Authenticator::new(
        AuthConfig {
            jwks: Some(JwksSource::Url(impostor)),
            ..dev_auth()
        },
        f.engine.registry().clone(),
    ));
    match refused {
        Ok(_) => panic!("keys accepted from a discovery document naming another issuer"),
        Err(e) => assert!(e.to_string().contains("names the issuer"), "{e}"),
    }
}

#[test]
fn api_keys_anonymous_access_and_admin_routes() {
    let f = fixture();
    let base = f.serve(dev_auth(), generous());
    let partner = f.add_client("portal", AccessRole::Partner, Some("sii"), None);
    let (status, _, body) = search(&base, Some(&partner));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        norm_ids(&body).len(),
        2,
        "a partner key with tenant and clearance"
    );
    let mut r = agent()
        .post(format!("{base}/v1/search"))
        .header("X-Api-Key", &partner)
        .send_json(json!({"query": "bibliotecas"}))
        .expect("request");
    assert_eq!(read(&mut r).0, 200, "X-Api-Key header");
    f.runtime
        .block_on(f.engine.registry().revoke_client("portal"))
        .expect("revoke");
    assert_eq!(search(&base, Some(&partner)).0, 401, "revoked key");

    // Admin-only routes: 401 anonymous, 403 for anyone else, 200 for an admin.
    let citizen = hs256(&claims("citizen", None));
    let admin = f.add_client("ops", AccessRole::Admin, None, None);
    let audit = |token: Option<&str>| {
        let mut req = agent().get(format!("{base}/v1/audit"));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        read(&mut req.call().expect("request"))
    };
    assert_eq!(audit(None).0, 401);
    assert_eq!(audit(Some(&citizen)).0, 403);
    let (status, ct, _) = audit(Some(&admin));
    assert_eq!(status, 200);
    assert_eq!(ct, "application/x-ndjson");

    let closed = f.serve(
        AuthConfig {
            allow_anonymous: false,
            ..dev_auth()
        },
        generous(),
    );
    assert_eq!(search(&closed, None).0, 401, "no anonymous callers here");
    assert_eq!(search(&closed, Some(&citizen)).0, 200);
    let (status, _, _) = common::get(&format!("{closed}/healthz"));
    assert_eq!(status, 200, "health stays open");
}

#[test]
fn rate_limits_and_daily_quotas_answer_429_with_retry_after() {
    let f = fixture();
    let per_caller = f.serve(
        dev_auth(),
        Limits {
            per_ip_per_minute: 10_000,
            per_principal_per_minute: 3,
            partner_daily_quota: None,
        },
    );
    let token = hs256(&claims("citizen", None));
    for _ in 0..3 {
        assert_eq!(search(&per_caller, Some(&token)).0, 200);
    }
    let mut r = agent()
        .post(format!("{per_caller}/v1/search"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(json!({"query": "bibliotecas"}))
        .expect("request");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    let (status, _, body) = read(&mut r);
    assert_eq!(status, 429, "{body}");
    assert!((1..=60).contains(&retry), "{retry}");
    let other =
        hs256(&json!({"sub": "someone-else", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}));
    assert_eq!(
        search(&per_caller, Some(&other)).0,
        200,
        "another caller has its own bucket"
    );

    let per_ip = f.serve(
        dev_auth(),
        Limits {
            per_ip_per_minute: 4,
            per_principal_per_minute: 10_000,
            partner_daily_quota: None,
        },
    );
    let statuses: Vec<u16> = (0..6).map(|_| search(&per_ip, None).0).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "anonymous callers share their IP's bucket"
    );

    let quota = f.serve(
        dev_auth(),
        Limits {
            partner_daily_quota: Some(100),
            ..generous()
        },
    );
    let partner = f.add_client("small-partner", AccessRole::Partner, None, Some(2));
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut r = agent()
            .post(format!("{quota}/v1/search"))
            .header("Authorization", format!("Bearer {partner}"))
            .send_json(json!({"query": "bibliotecas"}))
            .expect("request");
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        got.push((read(&mut r).0, retry));
    }
    assert_eq!(got[0], (200, None));
    assert_eq!(got[1], (200, None));
    assert_eq!(got[2].0, 429, "third request of a two-a-day key");
    assert!(
        got[2].1.is_some_and(|s| (1..=86_400).contains(&s)),
        "retry at midnight UTC: {got:?}"
    );
}

#[test]
fn answers_are_audited_with_pseudonyms_and_redacted_questions() {
    let f = fixture();
    let base = f.serve(dev_auth(), generous());
    let token = hs256(&claims("citizen", None));
    let question = "Soy RUT 12.345.678-5, ¿abren las bibliotecas municipales los domingos?";
    let mut r = agent()
        .post(format!("{base}/v1/ask"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(json!({ "question": question }))
        .expect("request");
    let (status, _, answer) = read(&mut r);
    assert_eq!(status, 200, "{answer}");
    let answer = json_of(&answer);
    // Reads that ask no question are audited too: a norm's page with the passages it showed,
    // the norm list, and an admin's job list.
    let norm_id = answer["citations"][0]["norm_id"]
        .as_str()
        .expect("a cited norm")
        .to_string();
    let mut r = agent()
        .get(format!("{base}/v1/norms/{norm_id}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("request");
    let (status, _, page) = read(&mut r);
    assert_eq!(status, 200, "{page}");
    let shown: Vec<Value> = json_of(&page)["passages"]
        .as_array()
        .expect("passages")
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert!(!shown.is_empty());
    assert_eq!(
        read(
            &mut agent()
                .get(format!("{base}/v1/norms"))
                .call()
                .expect("request")
        )
        .0,
        200
    );
    let admin = f.add_client("auditor", AccessRole::Admin, None, None);
    let mut r = agent()
        .get(format!("{base}/v1/jobs"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .expect("request");
    assert_eq!(read(&mut r).0, 200);
    let mut r = agent()
        .get(format!("{base}/v1/audit"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .expect("request");
    let (_, _, lines) = read(&mut r);
    let records: Vec<Value> = lines.lines().map(json_of).collect();
    let page_read = records
        .iter()
        .find(|r| r["route"] == "/v1/norms/{id}")
        .unwrap_or_else(|| panic!("the norm's page was audited: {lines}"));
    assert_eq!(page_read["passages"], json!(shown));
    assert_eq!(page_read["role"], "citizen");
    for route in ["/v1/norms", "/v1/jobs"] {
        assert!(
            records.iter().any(|r| r["route"] == route),
            "{route} not audited: {lines}"
        );
    }
    // The export comes a page at a time, the next page named by a Link header.
    let mut r = agent()
        .get(format!("{base}/v1/audit?limit=2"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .expect("request");
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (_, _, page) = read(&mut r);
    let page: Vec<Value> = page.lines().map(json_of).collect();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["seq"], records[0]["seq"]);
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once(">; rel=\"next\""))
        .map(|(url, _)| url.to_string())
        .unwrap_or_else(|| panic!("a next link: {link:?}"));
    let mut r = agent()
        .get(format!("{base}{next}"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .expect("request");
    let (_, _, page) = read(&mut r);
    let first_of_next: Value = page.lines().next().map(json_of).expect("a record");
    assert_eq!(first_of_next["seq"], records[2]["seq"]);
    let asked = records
        .iter()
        .find(|r| r["route"] == "/v1/ask")
        .unwrap_or_else(|| panic!("the question was audited: {lines}"));
    assert_eq!(
        asked["question"],
        "Soy RUT [RUT], ¿abren las bibliotecas municipales los domingos?"
    );
    assert!(
        !lines.contains("12.345.678-5"),
        "no national id in the audit log"
    );
    assert!(
        !lines.contains("citizen-1"),
        "the subject is pseudonymised: {lines}"
    );
    assert!(asked["principal"].as_str().unwrap_or("").starts_with("p-"));
    assert_eq!(asked["role"], "citizen");
    let cited: Vec<&str> = answer["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .filter_map(|c| c["passage_id"].as_str())
        .collect();
    assert!(!cited.is_empty());
    assert_eq!(asked["passages"], json!(cited));
    assert_eq!(asked["answer_hash"].as_str().map(str::len), Some(64));
    assert_eq!(asked["model"], "extractive");
    assert!(asked["prompt_version"]
        .as_str()
        .unwrap_or("")
        .starts_with("prompt-"));
    let verified = f
        .runtime
        .block_on(f.engine.registry().verify_audit())
        .expect("verify");
    assert!(verified.intact(), "{:?}", verified.problems);
    assert!(verified.records >= 2, "the ask and the export itself");
}
