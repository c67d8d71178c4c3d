//! Errors as RFC 7807 `application/problem+json`, titled in the request's language
//! (`Accept-Language`: es, pt, en; Spanish when absent), and the JSON extractor that turns
//! malformed, oversized or unknown-field bodies into such problems.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cabildo_core::Language;
use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of problem the API reports. Each has a stable `type` URI
/// (`/problems/{slug}`, documented in docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The body is not valid JSON or does not match the schema.
    BadRequest,
    /// The body is over the limit.
    TooLarge,
    /// Not JSON / not multipart.
    UnsupportedMedia,
    /// No such resource (or not visible to the caller).
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// No credentials, or credentials refused.
    Unauthorized,
    /// The caller may not use this endpoint.
    Forbidden,
    /// A rate limit or the daily quota was reached.
    TooManyRequests,
    /// The generation queue is full.
    Busy,
    /// The request took too long.
    Timeout,
    /// Something failed inside.
    Internal,
}

impl Kind {
    fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad-request",
            Kind::TooLarge => "too-large",
            Kind::UnsupportedMedia => "unsupported-media-type",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::TooManyRequests => "too-many-requests",
            Kind::Busy => "busy",
            Kind::Timeout => "timeout",
            Kind::Internal => "internal",
        }
    }

    fn title(self, lang: Language) -> &'static str {
        use Language::*;
        match (self, lang) {
            (Kind::BadRequest, Es) => "La solicitud no es válida",
            (Kind::BadRequest, Pt) => "A requisição não é válida",
            (Kind::BadRequest, En) => "The request is not valid",
            (Kind::TooLarge, Es) => "La solicitud es demasiado grande",
            (Kind::TooLarge, Pt) => "A requisição é grande demais",
            (Kind::TooLarge, En) => "The request is too large",
            (Kind::UnsupportedMedia, Es) => "Tipo de contenido no admitido",
            (Kind::UnsupportedMedia, Pt) => "Tipo de conteúdo não suportado",
            (Kind::UnsupportedMedia, En) => "Unsupported content type",
            (Kind::NotFound, Es) => "No encontrado",
            (Kind::NotFound, Pt) => "Não encontrado",
            (Kind::NotFound, En) => "Not found",
            (Kind::MethodNotAllowed, Es) => "Método no permitido",
            (Kind::MethodNotAllowed, Pt) => "Método não permitido",
            (Kind::MethodNotAllowed, En) => "Method not allowed",
            (Kind::Unauthorized, Es) => "Se requiere autenticación",
            (Kind::Unauthorized, Pt) => "Autenticação necessária",
            (Kind::Unauthorized, En) => "Authentication required",
            (Kind::Forbidden, Es) => "Acceso denegado",
            (Kind::Forbidden, Pt) => "Acesso negado",
            (Kind::Forbidden, En) => "Access denied",
            (Kind::TooManyRequests, Es) => "Demasiadas solicitudes; intente más tarde",
            (Kind::TooManyRequests, Pt) => "Requisições demais; tente mais tarde",
            (Kind::TooManyRequests, En) => "Too many requests; try again later",
            (Kind::Busy, Es) => "El servicio está ocupado; intente de nuevo en unos segundos",
            (Kind::Busy, Pt) => "O serviço está ocupado; tente novamente em alguns segundos",
            (Kind::Busy, En) => "The service is busy; try again in a few seconds",
            (Kind::Timeout, Es) => "La solicitud tardó demasiado",
            (Kind::Timeout, Pt) => "A requisição demorou demais",
            (Kind::Timeout, En) => "The request took too long",
            (Kind::Internal, Es) => "Error interno del servicio",
            (Kind::Internal, Pt) => "Erro interno do serviço",
            (Kind::Internal, En) => "Internal service error",
        }
    }
}

/// An RFC 7807 problem.
#[derive(Debug)]
pub struct Problem {
    /// What kind.
    pub kind: Kind,
    /// The language of the title.
    pub lang: Language,
    /// What exactly (technical, English: a field name, a limit).
    pub detail: String,
    /// Seconds after which to retry (503, 429).
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub www_authenticate: Option<&'static str>,
}

/// The body of a problem response.
#[derive(Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A URI reference naming the kind of problem (`/problems/bad-request`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary in the request's language.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly went wrong.
    pub detail: String,
    /// The request's id (also in the `X-Request-Id` header), to match a report with the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem of `kind` with a detail.
    pub fn new(kind: Kind, lang: Language, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            lang,
            detail: detail.into(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// An internal error: logged in full, reported without internals.
    pub fn internal(lang: Language, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Problem::new(
            Kind::Internal,
            lang,
            "the error was logged with this request's id",
        )
    }

    /// The problem's status code.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = ProblemBody {
            kind: format!("/problems/{}", self.kind.slug()),
            title: self.kind.title(self.lang).to_string(),
            status: status.as_u16(),
            detail: self.detail,
            request_id: None,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        // For the outermost layer, which adds the request id, or answers the same problem
        // in OpenAI's shape on the OpenAI routes.
        response.extensions_mut().insert(Reported {
            kind: self.kind,
            body,
        });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(self.lang.code()),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// What a problem response reported, kept in its extensions.
#[derive(Clone)]
struct Reported {
    kind: Kind,
    body: ProblemBody,
}

/// An error in OpenAI's shape, which OpenAI client libraries parse.
#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    /// The error.
    pub error: OpenAiError,
}

/// OpenAI's error object.
#[derive(Serialize, ToSchema)]
pub struct OpenAiError {
    /// What went wrong.
    pub message: String,
    /// invalid_request_error, authentication_error, permission_error, not_found_error,
    /// rate_limit_error or server_error.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// invalid_api_key, rate_limit_exceeded, model_not_found, overloaded, timeout; or null.
    pub code: Option<&'static str>,
    /// Always null (OpenAI names the offending parameter here).
    pub param: Option<String>,
}

impl Kind {
    fn openai(self) -> (&'static str, Option<&'static str>) {
        match self {
            Kind::BadRequest | Kind::TooLarge | Kind::UnsupportedMedia | Kind::MethodNotAllowed => {
                ("invalid_request_error", None)
            }
            Kind::Unauthorized => ("authentication_error", Some("invalid_api_key")),
            Kind::Forbidden => ("permission_error", None),
            Kind::NotFound => ("not_found_error", None),
            Kind::TooManyRequests => ("rate_limit_error", Some("rate_limit_exceeded")),
            Kind::Busy => ("server_error", Some("overloaded")),
            Kind::Timeout => ("server_error", Some("timeout")),
            Kind::Internal => ("server_error", None),
        }
    }
}

/// Whether `path` is one of the routes OpenAI clients call.
fn openai_route(path: &str) -> bool {
    path == "/v1/chat/completions" || path == "/v1/models" || path.starts_with("/v1/models/")
}

/// Middleware, outermost: every problem (from the guard, an extractor, a handler or a
/// timeout) gets the request's id in its body; on the OpenAI-shaped routes it is answered as
/// `{"error": {"message", "type", "code", "param"}}` instead, with the same status and
/// headers (Retry-After, WWW-Authenticate), which is what OpenAI clients parse.
pub async fn finish_problems(request: Request, next: axum::middleware::Next) -> Response {
    let openai = openai_route(request.uri().path());
    let mut response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is not read, so the connection cannot carry another request:
        // say so, or a client would reuse it and find it closed (seen in the soak).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let Some(reported) = response.extensions().get::<Reported>().cloned() else {
        return response;
    };
    let json = if openai {
        let (kind, code) = reported.kind.openai();
        serde_json::to_vec(&OpenAiErrorBody {
            error: OpenAiError {
                message: reported.body.detail,
                kind,
                code,
                param: None,
            },
        })
    } else {
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        serde_json::to_vec(&ProblemBody {
            request_id,
            ..reported.body
        })
    };
    let (mut parts, _) = response.into_parts();
    if openai {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(json.unwrap_or_default()))
}

/// The language the caller reads: of es, pt and en, the one `Accept-Language` prefers (the
/// highest `q`, the first listed among equals; `q=0` means "not this one"); Spanish when
/// none of them is acceptable.
#[derive(Debug, Clone, Copy)]
pub struct Lang(pub Language);

impl Lang {
    /// From request headers.
    pub fn of(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(f32, Language)> = None;
        for part in accept.split(',') {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim();
            let Some(lang) = tag
                .split('-')
                .next()
                .and_then(|l| l.parse::<Language>().ok())
            else {
                continue;
            };
            let q = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        Lang(best.map_or(Language::Es, |(_, lang)| lang))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

/// `Json<T>` whose rejections are problems in the request's language.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Lang(lang) = Lang::of(req.headers());
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection, lang)),
        }
    }
}

fn json_problem(rejection: JsonRejection, lang: Language) -> Problem {
    let kind = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Kind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Kind::UnsupportedMedia,
        _ => Kind::BadRequest,
    };
    Problem::new(kind, lang, rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(accept: &str) -> Language {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept).expect("header"),
        );
        Lang::of(&headers).0
    }

    #[test]
    fn accept_language_takes_the_preferred_of_the_languages_served() {
        assert_eq!(lang("pt-BR,pt;q=0.9,en;q=0.8"), Language::Pt);
        assert_eq!(lang("en;q=0.5, pt;q=0.9"), Language::Pt);
        assert_eq!(lang("fr-FR, en-US;q=0.7, es;q=0.3"), Language::En);
        assert_eq!(lang("en, pt"), Language::En); // equal q: the first listed
        assert_eq!(lang("pt;q=0, en;q=0.1"), Language::En);
        assert_eq!(lang("de, fr;q=0.5"), Language::Es);
        assert_eq!(lang(""), Language::Es);
    }
}
