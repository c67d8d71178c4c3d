//! The OpenAPI document, generated from the handlers and types (utoipa) as the route table
//! registers them. A copy is checked in at docs/openapi.json; a test fails when it is stale.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::problem::ProblemBody;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cabildo API",
        description = "Answers about laws, regulations and agency documents, each sentence citing the article it rests on."
    ),
    components(schemas(
        ProblemBody,
        api::RequestFilters,
        api::SearchRequest,
        api::SearchResponse,
        api::Hit,
        api::AskRequest,
        api::ChatCompletionRequest,
        api::ChatCompletion,
        api::NormList,
        api::NormDetail,
        api::JobAccepted,
        api::JobInfo,
        api::Health,
    )),
    modifiers(&Credentials),
    security((), ("bearer" = []), ("api_key" = [])),
    tags(
        (name = "search", description = "Passages by keywords and meaning"),
        (name = "answers", description = "Cited answers: JSON, server-sent events, OpenAI-compatible"),
        (name = "documents", description = "Uploads, ingest jobs, norms"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// A JWT from the identity provider, or a partner's API key as a bearer token or in
/// `X-Api-Key`; anonymous calls where the deployment allows them.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT or cab_… API key")
                        .build(),
                ),
            );
            components.add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
            );
        }
    }
}

/// The OpenAPI document as pretty JSON: the shared parts above, and each route's entry from
/// the route table (`routes::table`), where handler and path are registered together.
pub fn json() -> String {
    let (v1, operations) = routes::table(0);
    let mut doc = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(operations)
        .into_openapi();
    // The crate's version, not a build-time date: the checked-in copy must be reproducible.
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising the OpenAPI document");
        "{}".into()
    })
}
