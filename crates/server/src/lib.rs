//! The HTTP API: `cabildo serve`. Search, cited answers (JSON, server-sent events and an
//! OpenAI-compatible endpoint), documents and ingest jobs, health, Prometheus metrics and an
//! OpenAPI document generated from this code.
//!
//! Service behaviour for a public portal: request bodies are capped, requests time out,
//! answers wait in a bounded queue (503 + Retry-After when full), a client that disconnects
//! cancels its generation, shutdown finishes in-flight answers, every request gets an id
//! (`x-request-id`) carried by its log lines, and every error is `application/problem+json`
//! titled in the caller's language.
//!
//! Every `/v1` request is authenticated (JWT or API key; anonymous citizens where allowed),
//! rate-limited per IP and per principal, and audited; what it may read is decided by its
//! principal inside retrieval and checked again before any passage text leaves.
#![deny(missing_docs)]

pub mod api;
mod audit;
pub mod auth;
mod guard;
mod listen;
mod metrics;
pub mod openapi;
mod pages;
mod problem;
mod queue;
mod routes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Request};
use axum::{BoxError, Router};
use cabildo_engine::answer::{AskOptions, Writer};
use cabildo_engine::{DenseMode, Engine, Settings};

use crate::audit::Auditor;
use crate::guard::RateLimits;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{AuthConfig, AuthError, Authenticator, JwksSource};
pub use guard::Limits;
pub use listen::{TlsError, TlsFiles};
pub use metrics::Metrics;
pub use problem::{Kind, Lang, Problem};
pub use queue::GenerationQueue;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest JSON body accepted, in bytes.
    pub body_limit: usize,
    /// Largest document upload accepted, in bytes.
    pub upload_limit: usize,
    /// A request that has not produced its response head by then gets 504.
    pub request_timeout: Duration,
    /// Answers generated at once.
    pub generation_workers: usize,
    /// Answers that may wait for a slot; more are refused with 503.
    pub queue_capacity: usize,
    /// Retry-After, in seconds, of a 503.
    pub retry_after: u64,
    /// Who may call, and how they prove it.
    pub auth: AuthConfig,
    /// Request rates and daily quotas.
    pub limits: Limits,
    /// How answers are made.
    pub ask: AskOptions,
    /// Origins whose pages may call the API from a browser and frame `/embed`.
    pub cors_origins: Vec<String>,
    /// A client that has not sent its request head by then is disconnected.
    pub header_timeout: Duration,
    /// API requests served at once; more get 503 with Retry-After at once.
    pub max_in_flight: usize,
    /// Serve HTTPS (and send Strict-Transport-Security) with this certificate.
    pub tls: Option<TlsFiles>,
    /// Key of callers' pseudonyms, shared by replicas (`[auth] pseudonym_key`); `None`: the
    /// data folder's own.
    pub pseudonym_key: Option<String>,
    /// Queue uploads for `cabildo worker` instead of ingesting them here.
    pub queue_uploads: bool,
}

impl Default for Config {
    /// The defaults of `config/cabildo.toml`.
    fn default() -> Self {
        Config::from_settings(&Settings::default())
    }
}

impl Config {
    /// The server's behaviour from `[server]`, `[auth]`, `[limits]`, `[answer]` and
    /// `[retrieval]`.
    pub fn from_settings(settings: &Settings) -> Config {
        let s = &settings.server;
        Config {
            body_limit: s.body_limit,
            upload_limit: s.upload_limit,
            request_timeout: Duration::from_secs(s.request_timeout_s.max(1)),
            generation_workers: s.workers.max(1),
            queue_capacity: s.queue,
            retry_after: s.retry_after_s,
            auth: AuthConfig::from_settings(&settings.auth),
            pseudonym_key: settings.auth.pseudonym_key.clone(),
            limits: Limits::from_settings(&settings.limits),
            ask: AskOptions::from_settings(settings),
            cors_origins: s.cors_origins.clone(),
            header_timeout: Duration::from_secs(s.header_timeout_s.max(1)),
            max_in_flight: s.max_in_flight,
            tls: s
                .tls_cert
                .clone()
                .zip(s.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
            queue_uploads: s.queue_uploads,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The identity provider's keys could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The audit key could not be read or created.
    #[error("audit key: {0}")]
    AuditKey(#[from] std::io::Error),
    /// The engine or the answer writer could not be assembled.
    #[error(transparent)]
    Engine(#[from] cabildo_engine::EngineError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What every handler shares.
pub struct AppState {
    engine: Arc<Engine>,
    writer: Writer,
    config: Config,
    queue: GenerationQueue,
    metrics: Metrics,
    auth: Authenticator,
    auditor: Auditor,
    rate_limits: Arc<RateLimits>,
    /// Ingest jobs and deletions write the index one at a time.
    writes: Arc<tokio::sync::Mutex<()>>,
    runtime: tokio::runtime::Handle,
    /// When the server started (Unix seconds).
    started_at: i64,
    /// HTTPS, when the settings name a certificate.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// How often a replica applies what other replicas wrote to the shared registry's norm log:
/// the longest a document uploaded through one replica takes to be found lexically through
/// another (docs/operations.md).
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

/// Brings a replica's lexical index up to the norm log now, then every
/// [`CATCH_UP_EVERY`] for as long as the engine lives.
async fn keep_caught_up(engine: &Arc<Engine>) {
    if let Err(e) = engine.catch_up().await {
        tracing::warn!(error = %e, "could not catch up with the norm log at start; retrying");
    }
    let engine = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CATCH_UP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(engine) = engine.upgrade() else {
                break;
            };
            if let Err(e) = engine.catch_up().await {
                tracing::warn!(error = %e, "could not catch up with the norm log");
            }
        }
    });
}

impl AppState {
    /// State over an opened engine and an answer writer: reads (or fetches) the identity
    /// provider's keys and opens the audit log. Must be called inside the Tokio runtime that
    /// will serve (ingest jobs run on its handle from their own threads).
    pub async fn new(
        engine: Arc<Engine>,
        writer: Writer,
        config: Config,
    ) -> Result<Self, StartError> {
        // A bad certificate stops the start, before anything else is opened.
        let tls = config.tls.as_ref().map(listen::acceptor).transpose()?;
        let queue = GenerationQueue::new(config.generation_workers, config.queue_capacity);
        let registry = engine.registry().clone();
        let auth = Authenticator::new(config.auth.clone(), registry.clone()).await?;
        let auditor = Auditor::open(registry, engine.data_dir(), config.pseudonym_key.as_deref())?;
        if engine.is_replica() {
            keep_caught_up(&engine).await;
        }
        let rate_limits = Arc::new(RateLimits::new(&config.limits));
        let idle = Arc::downgrade(&rate_limits);
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            every_minute.tick().await;
            loop {
                every_minute.tick().await;
                // Ends with the state that owns the buckets.
                let Some(limits) = idle.upgrade() else { break };
                limits.forget_idle();
            }
        });
        Ok(AppState {
            engine,
            writer,
            queue,
            rate_limits,
            config,
            metrics: Metrics::default(),
            auth,
            auditor,
            writes: Arc::new(tokio::sync::Mutex::new(())),
            runtime: tokio::runtime::Handle::current(),
            started_at: chrono::Utc::now().timestamp(),
            tls,
        })
    }

    /// The whole service as `settings` describe it: the engine (dense retrieval when the
    /// data folder has vectors or a Qdrant server is configured), the answer writer and the
    /// server's behaviour. Must be called inside the Tokio runtime that will serve.
    pub async fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        let engine = Engine::from_settings(settings, DenseMode::IfPresent).await?;
        let writer = Writer::from_settings(settings)?;
        AppState::new(Arc::new(engine), writer, Config::from_settings(settings)).await
    }

    /// The engine it serves.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The answer writer.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    fn uploads_dir(&self) -> PathBuf {
        self.engine.data_dir().join("uploads")
    }
}

/// The API's routes and middleware.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.config.request_timeout;
    let policy = Arc::new(pages::Policy::new(
        &state.config.cors_origins,
        state.tls.is_some(),
    ));
    let cors = pages::cors(&state.config.cors_origins);
    let (v1, operations) = routes::table(state.config.upload_limit);
    // Past `max_in_flight` API requests at once, more are refused at once (503 +
    // Retry-After) instead of queueing until they time out; health, metrics and pages stay
    // answerable. One semaphore for all routes (route_layer clones the layer per route).
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_in_flight.max(1),
    ));
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(layer_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight));
    // Every /v1 route passes the guard: rate limits, authentication, quotas.
    let v1 = v1
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .route_layer(shed);
    let (api, _) = v1
        .merge(operations)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .split_for_parts();
    let api = api
        .merge(pages::routes())
        .fallback(routes::ops::not_found)
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state);
    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: query strings and bodies may carry personal data.
                    tracing::info_span!("request", id, method = %req.method(), path = req.uri().path())
                })
                // One line per request at the default level: status and latency.
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(HandleErrorLayer::new(layer_error))
            .timeout(timeout),
    )
    // Preflights are answered before the guard would ask them for credentials.
    .layer(cors)
    .layer(axum::middleware::from_fn_with_state(
        policy,
        pages::security_headers,
    ))
    // Outermost, so that problems from every layer inside carry the request id (set inside)
    // and reach OpenAI clients in their shape.
    .layer(axum::middleware::from_fn(problem::finish_problems))
}

/// Seconds a client refused for overload is asked to wait: a burst passes quickly.
const SHED_RETRY_AFTER_S: u64 = 2;

async fn layer_error(headers: HeaderMap, error: BoxError) -> Problem {
    let Lang(lang) = Lang::of(&headers);
    if error.is::<tower::timeout::error::Elapsed>() {
        Problem::new(Kind::Timeout, lang, "the answer was not ready in time")
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        let mut p = Problem::new(Kind::Busy, lang, "too many requests in progress");
        p.retry_after = Some(SHED_RETRY_AFTER_S);
        p
    } else {
        Problem::internal(lang, &error)
    }
}

/// Serves until `shutdown` completes, then stops accepting and finishes the requests in
/// flight (streams included).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let how = listen::Listening {
        header_timeout: state.config.header_timeout,
        tls: state.tls.clone(),
    };
    listen::run(listener, router(state), how, shutdown).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
