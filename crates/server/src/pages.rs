//! The pages Cabildo serves to people, compiled into the binary (nothing is fetched at run
//! time, so a ministry intranet without internet works):
//! - `/widget.js`: the citizens' chat widget a portal adds with one `<script>` tag; it draws
//!   itself in a Shadow DOM and calls the API of the server it was loaded from;
//! - `/embed`: the same widget as a page, for portals that frame it instead;
//! - `/console`: the caseworkers' console (search, ask, norms; for admins uploads, clients,
//!   the audit chain);
//! - `/docs`: the API reference.
//!
//! Every response carries a Content-Security-Policy (scripts, styles and requests from this
//! server only; framing only by `server.cors_origins`, and only of `/embed`), and browsers
//! may call the API from another origin only when it is in that allow-list (CORS). The API
//! sets no cookies: credentials travel in headers the console or the portal sets.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;

/// A page's script with the server-sent-events reader it shares, in a function scope of
/// its own (nothing leaks into a portal's page).
macro_rules! script {
    ($file:literal) => {
        concat!(
            "(() => {\n'use strict';\n",
            include_str!("pages/sse.js"),
            include_str!($file),
            "})();\n"
        )
    };
}

/// A file of a page: its path, media type and text.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    text: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/widget.js",
        media_type: "text/javascript; charset=utf-8",
        text: script!("pages/widget.js"),
    },
    Asset {
        path: "/embed",
        media_type: "text/html; charset=utf-8",
        text: include_str!("pages/embed.html"),
    },
    Asset {
        path: "/console",
        media_type: "text/html; charset=utf-8",
        text: include_str!("pages/console.html"),
    },
    Asset {
        path: "/console.js",
        media_type: "text/javascript; charset=utf-8",
        text: script!("pages/console.js"),
    },
    Asset {
        path: "/console.css",
        media_type: "text/css; charset=utf-8",
        text: include_str!("pages/console.css"),
    },
    Asset {
        path: "/docs",
        media_type: "text/html; charset=utf-8",
        text: include_str!("pages/docs.html"),
    },
    Asset {
        path: "/docs.js",
        media_type: "text/javascript; charset=utf-8",
        text: include_str!("pages/docs.js"),
    },
    Asset {
        path: "/docs.css",
        media_type: "text/css; charset=utf-8",
        text: include_str!("pages/docs.css"),
    },
];

/// The pages' routes, gzip-compressed for browsers that accept it.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for asset in ASSETS {
        let (media_type, text) = (asset.media_type, asset.text);
        router = router.route(
            asset.path,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, media_type),
                        // Short, so that a new release reaches portals within minutes.
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    text,
                )
                    .into_response()
            }),
        );
    }
    router.layer(CompressionLayer::new())
}

/// What every response's security headers say.
#[derive(Clone)]
pub struct Policy {
    /// For every response but `/embed`: nothing may frame it.
    page: HeaderValue,
    /// For `/embed`: this server and the allowed portals may frame it.
    embed: HeaderValue,
    /// Served over TLS: browsers are told to use HTTPS only.
    hsts: bool,
}

impl Policy {
    /// The policy for a server whose pages may be framed by `origins` (already checked to
    /// be origins by the settings), served over TLS when `hsts`.
    pub fn new(origins: &[String], hsts: bool) -> Policy {
        let csp = |frame_ancestors: &str| {
            let value = format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors {frame_ancestors}"
            );
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("default-src 'none'"))
        };
        let mut framers = vec!["'self'".to_string()];
        framers.extend(origins.iter().cloned());
        Policy {
            page: csp("'none'"),
            embed: csp(&framers.join(" ")),
            hsts,
        }
    }
}

/// Adds the Content-Security-Policy and the other security headers to every response.
pub async fn security_headers(
    State(policy): State<Arc<Policy>>,
    request: Request,
    next: Next,
) -> Response {
    let embed = request.uri().path() == "/embed";
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = if embed { &policy.embed } else { &policy.page };
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Citizens' questions can sit in a URL; official links opened from a page get no referrer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if policy.hsts {
        // A year, as browsers' preload lists ask; subdomains are the portal's own business.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Cross-origin calls from the allowed portals' pages: the API's methods and the headers
/// the widget and partners send; no cookies (`allow_credentials` stays off). Any other
/// origin gets no CORS headers, so browsers refuse it.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}
