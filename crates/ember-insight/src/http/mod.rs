//! The HTTP API (axum): operations endpoints ([`ops`]), the OpenAI-compatible ones
//! ([`openai`]) and the dashboard ([`ui`]), behind a bearer-token check and a body size limit.

pub mod cors;
pub mod openai;
pub mod openapi;
pub mod ops;
#[cfg(test)]
mod tests;
pub mod ui;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::state::Shared;

/// Handler state: the shared daemon state.
pub type AppState = Arc<Shared>;

/// The router with every endpoint; tests can call it without a socket.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.body_bytes;
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/auth.json", get(ui::auth))
        .route("/ui/{file}", get(ui::file))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/status", get(ops::status))
        .route("/version", get(ops::version))
        .route("/processes", get(ops::processes))
        .route("/processes/{pid}", get(ops::process))
        .route("/stream", get(ops::stream))
        .route("/alerts", get(ops::alerts))
        .route("/insights", get(ops::insights))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        // llama-server's spellings, which its clients (and its test suite) call.
        .route("/health", get(openai::health))
        .route("/v1/health", get(openai::health))
        .route("/models", get(openai::models))
        .route("/props", get(openai::props))
        .route("/slots", get(openai::slots))
        .route("/slots/{id_slot}", post(openai::slot_action))
        .route("/apply-template", post(openai::apply_template))
        .route("/chat/completions/input_tokens", post(openai::input_tokens))
        .route(
            "/v1/chat/completions/input_tokens",
            post(openai::input_tokens),
        )
        .route("/completion", post(openai::completion))
        .route("/completions", post(openai::completion))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/embedding", post(openai::native_embeddings))
        .route("/embeddings", post(openai::native_embeddings))
        .route("/tokenize", post(openai::tokenize))
        .route("/detokenize", post(openai::detokenize))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn(openai_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::layer,
        ))
        .with_state(state)
}

/// Most bytes of a plain-text error body kept as the message.
const ERROR_TEXT_BYTES: usize = 4096;

/// Every error answer in OpenAI's shape, whoever made it: axum's extractor rejections (JSON
/// syntax and data errors, a missing content type, a bad path or query), its 405 with an empty
/// body and the body limit's 413 are plain text; they become `{"error": {...}}` with the text
/// as the message, and the 422 of a body that does not match the request type becomes 400, as
/// OpenAI answers a malformed body. Headers such as `Allow` are kept.
///
/// An answer given without reading the request's body (401, 404, 405, 413) says
/// `Connection: close`: hyper closes such a connection after the answer, and a client that
/// pools connections must not send its next request down it.
async fn openai_errors(req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut resp = next.run(req).await;
    let unread = matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
    );
    if has_body && unread {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, ERROR_TEXT_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let (status, kind) = match status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        }
        StatusCode::NOT_FOUND => (status, "not_found"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method_not_allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "request_too_large"),
        s if s.is_server_error() => (s, "server_error"),
        s => (s, "invalid_request_error"),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, kind, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The paths a token never guards: the probes (`/healthz`, `/readyz`, llama-server's
/// `/health`) and the dashboard's page and files.
pub(crate) fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/health" | "/v1/health") || ui::is_page(path)
}

/// Checks `Authorization: Bearer <token>` (or `X-Api-Key: <token>`) when a token is
/// configured. `/healthz`, `/readyz`
/// and llama-server's `/health` stay open so that orchestrators and clients can probe without
/// the secret, and the dashboard's
/// page and assets (no data; the page asks for the token) so that a browser can load them.
async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.config.token.as_deref().filter(|t| !t.is_empty()) else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if is_open(path) {
        return next.run(req).await;
    }
    // `Authorization: Bearer`, or `X-Api-Key` as llama-server also takes it.
    let headers = req.headers();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return next.run(req).await;
    }
    state.metrics.unauthorized.inc();
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        // llama-server's type for it (OpenAI's clients read the status).
        "authentication_error",
        "missing or wrong bearer token: send `Authorization: Bearer <token>`",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body of every error answer: OpenAI's shape.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// For people: what happened and what to do.
    message: String,
    /// `invalid_request_error`, `authentication_error`, `not_found`, `rate_limit_exceeded`,
    /// `model_not_loaded`, `exceed_context_size_error`, ...
    #[serde(rename = "type")]
    kind: &'static str,
    /// Always null.
    param: Option<String>,
    /// The HTTP status.
    code: u16,
    /// What some errors add, as llama-server does (`n_prompt_tokens` and `n_ctx` of an
    /// `exceed_context_size_error`).
    #[serde(flatten)]
    #[schema(ignore)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// An error answer in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
/// Internal details are logged, not returned.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with this status, type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// The error with one more field beside `message` and `type`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 500; `err` goes to the log only.
    pub fn internal(what: &str, err: &anyhow::Error) -> ApiError {
        log::error!("{what}: {err:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("{what} failed; see the daemon's log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: self.kind,
                param: None,
                code: self.status.as_u16(),
                extra: self.extra,
            },
        });
        (self.status, body).into_response()
    }
}
