//! Who is calling: bearer JWTs (HS256 with a shared secret for development; RS256/ES256
//! against a JWKS from a file or an OIDC issuer, cached and refreshed when keys rotate) and
//! partners' API keys (looked up by SHA-256 in the registry). The result is a
//! [`Principal`]; without credentials a caller is an anonymous citizen, where the deployment
//! allows that.
//!
//! Rejected: `alg: none` and any algorithm not configured, an HMAC token where only public
//! keys are trusted (algorithm confusion), a JWK whose type or `alg` does not fit the
//! token's, unknown `kid`s, bad signatures, expired or not-yet-valid tokens, a wrong `iss` or
//! `aud`, and revoked or unknown API keys.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use backon::{ExponentialBuilder, Retryable};
use cabildo_core::{AccessLevel, AccessRole, Principal};
use cabildo_store::{ClientRecord, Registry};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// API keys start with this, so a bearer credential is told apart from a JWT at a glance.
pub const API_KEY_PREFIX: &str = "cab_";

/// Where the identity provider's public keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS file, read at start.
    File(PathBuf),
    /// A JWKS URL (an OIDC issuer's `jwks_uri`), fetched at start and refreshed.
    Url(String),
}

/// How callers authenticate.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Callers without credentials are served as anonymous citizens (public documents only);
    /// otherwise they get 401.
    pub allow_anonymous: bool,
    /// Shared secret for HS256 tokens (development); HMAC tokens are refused without it.
    pub hs256_secret: Option<Vec<u8>>,
    /// Public keys for RS256/ES256 tokens.
    pub jwks: Option<JwksSource>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// How long fetched keys are trusted before they are fetched again.
    pub jwks_ttl: Duration,
    /// A token naming a key we do not have makes us fetch the JWKS again (the provider
    /// rotated keys), but not more often than this.
    pub jwks_refetch_after: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_anonymous: true,
            hs256_secret: None,
            jwks: None,
            issuer: None,
            audience: None,
            leeway: 30,
            jwks_ttl: Duration::from_secs(600),
            jwks_refetch_after: Duration::from_secs(30),
        }
    }
}

impl AuthConfig {
    /// From `[auth]` (already checked: a secret of 32+ characters, not both a JWKS and an
    /// issuer). A JWKS given as an http(s) URL is fetched; an OIDC issuer's keys are found
    /// through its discovery document.
    pub fn from_settings(s: &cabildo_core::settings::AuthSettings) -> AuthConfig {
        let jwks = match (&s.jwks, &s.oidc_issuer) {
            (Some(j), _) if j.starts_with("https://") || j.starts_with("http://") => {
                Some(JwksSource::Url(j.clone()))
            }
            (Some(j), _) => Some(JwksSource::File(j.into())),
            (None, Some(issuer)) => Some(JwksSource::Url(format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ))),
            (None, None) => None,
        };
        let secret = s.jwt_secret.as_deref().filter(|s| !s.is_empty());
        AuthConfig {
            allow_anonymous: s.anonymous,
            hs256_secret: secret.map(|s| s.as_bytes().to_vec()),
            jwks,
            issuer: s.jwt_issuer.clone().or_else(|| s.oidc_issuer.clone()),
            audience: s.jwt_audience.clone(),
            ..AuthConfig::default()
        }
    }
}

/// Why a caller was not authenticated. The message is safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials where they are required.
    #[error("this API needs a bearer token or an API key")]
    Missing,
    /// The credentials were refused.
    #[error("{0}")]
    Invalid(String),
    /// The keys or the registry could not be reached.
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// The claims Cabildo reads; anything else in the token is ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    clearance: Option<String>,
}

struct KeyCache {
    keys: JwkSet,
    /// When the keys were last fetched successfully (URL sources only).
    fetched: Option<Instant>,
    /// When a fetch was last tried.
    tried: Option<Instant>,
}

/// Turns request headers into a principal.
pub struct Authenticator {
    config: AuthConfig,
    registry: Registry,
    keys: Mutex<KeyCache>,
}

/// The SHA-256 (hex) under which an API key is stored.
pub fn key_hash(key: &str) -> String {
    cabildo_text::content_hash(key.as_bytes())
}

/// A new random API key (`cab_` + 43 base64url characters: 256 bits).
pub fn new_api_key() -> Result<String, AuthError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Unavailable(e.to_string()))?;
    Ok(format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

impl Authenticator {
    /// An authenticator; a JWKS file is read, and a JWKS URL fetched, now.
    pub async fn new(config: AuthConfig, registry: Registry) -> Result<Self, AuthError> {
        let keys = match &config.jwks {
            None => JwkSet { keys: Vec::new() },
            Some(JwksSource::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    AuthError::Unavailable(format!("cannot read JWKS {}: {e}", path.display()))
                })?;
                parse_jwks(&text)?
            }
            // An identity provider that is briefly down at start is tried three times.
            Some(JwksSource::Url(url)) => {
                (|| fetch_jwks(url.clone()))
                    .retry(
                        ExponentialBuilder::default()
                            .with_min_delay(Duration::from_millis(500))
                            .with_max_times(2),
                    )
                    .when(|e| matches!(e, AuthError::Unavailable(_)))
                    .await?
            }
        };
        let fetched = matches!(config.jwks, Some(JwksSource::Url(_))).then(Instant::now);
        Ok(Authenticator {
            config,
            registry,
            keys: Mutex::new(KeyCache {
                keys,
                fetched,
                tried: fetched,
            }),
        })
    }

    /// The caller of a request, with the API client record when it used a key (for its quota).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Principal, Option<ClientRecord>), AuthError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        match (bearer, api_key) {
            (Some(key), _) | (None, Some(key)) if key.starts_with(API_KEY_PREFIX) => {
                self.api_key(key).await
            }
            (Some(token), _) => Ok((self.jwt(token).await?, None)),
            (None, Some(_)) => Err(AuthError::Invalid("unknown API key".into())),
            (None, None) if self.config.allow_anonymous => Ok((Principal::anonymous(), None)),
            (None, None) => Err(AuthError::Missing),
        }
    }

    async fn api_key(&self, key: &str) -> Result<(Principal, Option<ClientRecord>), AuthError> {
        let client = self
            .registry
            .client_by_key_hash(&key_hash(key))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))?;
        let principal = Principal::new(
            format!("key:{}", client.id),
            client.role,
            client.tenant.clone(),
            client.clearance,
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok((principal, Some(client)))
    }

    async fn jwt(&self, token: &str) -> Result<Principal, AuthError> {
        // decode_header refuses `alg: none` and unknown algorithms outright.
        let head = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed token: {e}")))?;
        let key = match head.alg {
            Algorithm::HS256 => {
                let secret = self.config.hs256_secret.as_ref().ok_or_else(|| {
                    AuthError::Invalid("HS256 tokens are not accepted here".into())
                })?;
                DecodingKey::from_secret(secret)
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = head
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
                let jwk = self.jwk(kid).await?;
                if !fits(&jwk, head.alg) {
                    return Err(AuthError::Invalid(format!(
                        "key {kid} is not a {:?} key",
                        head.alg
                    )));
                }
                DecodingKey::from_jwk(&jwk)
                    .map_err(|e| AuthError::Invalid(format!("key {kid} is unusable: {e}")))?
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "{other:?} tokens are not accepted here"
                )))
            }
        };
        let mut validation = Validation::new(head.alg);
        validation.leeway = self.config.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthError::Invalid(
                match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet (nbf)",
                    K::InvalidIssuer => "the token's issuer is not trusted",
                    K::InvalidAudience => "the token is for another audience",
                    K::InvalidSignature => "the token's signature is invalid",
                    K::InvalidAlgorithm => "the token's algorithm does not match its key",
                    K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
                    _ => "the token is invalid",
                }
                .to_string(),
            )
        })?;
        principal_from(data.claims)
    }

    /// The key `kid`, fetching the JWKS again when it is stale or the key is new to us (an
    /// identity provider that rotated keys). Fetches are tried at most every
    /// `jwks_refetch_after`, so a provider that is down does not stall every request.
    async fn jwk(&self, kid: &str) -> Result<Jwk, AuthError> {
        let unknown = || AuthError::Invalid(format!("unknown key id {kid:?}"));
        let url = {
            let mut cache = self.keys.lock().await;
            let known = cache.keys.find(kid).cloned();
            let Some(JwksSource::Url(url)) = &self.config.jwks else {
                return known.ok_or_else(unknown);
            };
            let stale = cache
                .fetched
                .is_none_or(|at| at.elapsed() > self.config.jwks_ttl);
            let may_try = cache
                .tried
                .is_none_or(|at| at.elapsed() >= self.config.jwks_refetch_after);
            if !((stale || known.is_none()) && may_try) {
                return known.ok_or_else(unknown);
            }
            cache.tried = Some(Instant::now());
            url.clone()
        };
        // Fetched without holding the cache: only this request waits on the provider; the
        // others go on with the keys we have (and do not try again until
        // `jwks_refetch_after` has passed).
        match fetch_jwks(url).await {
            Ok(keys) => {
                let mut cache = self.keys.lock().await;
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
            }
            // Keep serving with the keys we have; the provider may be briefly down.
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
        }
        self.keys
            .lock()
            .await
            .keys
            .find(kid)
            .cloned()
            .ok_or_else(unknown)
    }
}

/// Whether a JWK may verify tokens of `alg`: its type must match, and its own `alg`, if set.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let declared = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => KeyAlgorithm::RS256,
        (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256) => KeyAlgorithm::ES256,
        _ => return false,
    };
    jwk.common.key_algorithm.is_none_or(|a| a == declared)
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    let invalid = |e: cabildo_core::Error| AuthError::Invalid(e.to_string());
    // A person signed in through a national identity provider is a citizen unless the
    // token says otherwise.
    let role = match claims.role.as_deref() {
        None => AccessRole::Citizen,
        Some(r) => r.parse::<AccessRole>().map_err(invalid)?,
    };
    if role == AccessRole::Anonymous {
        return Err(AuthError::Invalid(
            "a token cannot make its holder anonymous".into(),
        ));
    }
    let clearance = match claims.clearance.as_deref() {
        None => AccessLevel::Public,
        Some(c) => c.parse::<AccessLevel>().map_err(invalid)?,
    };
    let subject = format!("{}|{}", claims.iss.unwrap_or_default(), claims.sub);
    Principal::new(subject, role, claims.tenant, clearance).map_err(invalid)
}

/// Only public keys: a JWKS with a symmetric (`oct`) key would let anyone who reads it sign.
fn parse_jwks(text: &str) -> Result<JwkSet, AuthError> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| AuthError::Unavailable(format!("JWKS is not valid: {e}")))?;
    let keys = set
        .keys
        .into_iter()
        .filter(|k| {
            matches!(
                k.algorithm,
                AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
            )
        })
        .collect();
    Ok(JwkSet { keys })
}

/// Fetches a JWKS URL, or an OIDC issuer's (`…/.well-known/openid-configuration` names it).
async fn fetch_jwks(url: String) -> Result<JwkSet, AuthError> {
    let text = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .timeout_connect(Some(Duration::from_secs(3)))
            .build()
            .into();
        let get = |u: &str| -> Result<String, String> {
            agent
                .get(u)
                .call()
                .map_err(|e| format!("{u}: {e}"))?
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{u}: {e}"))
        };
        if let Some(issuer) = url.strip_suffix("/.well-known/openid-configuration") {
            #[derive(Deserialize)]
            struct Discovery {
                issuer: String,
                jwks_uri: String,
            }
            let d: Discovery =
                serde_json::from_str(&get(&url)?).map_err(|e| format!("{url}: {e}"))?;
            // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was
            // fetched for, or its keys could be another provider's.
            if d.issuer.trim_end_matches('/') != issuer {
                return Err(format!(
                    "{url}: the discovery document names the issuer {:?}, not {issuer:?}",
                    d.issuer
                ));
            }
            get(&d.jwks_uri)
        } else {
            get(&url)
        }
    })
    .await
    .map_err(|e| AuthError::Unavailable(e.to_string()))?
    .map_err(|e| AuthError::Unavailable(format!("cannot fetch JWKS from {e}")))?;
    parse_jwks(&text)
}
