//! Errors in OpenAI's shape: [`ApiError`] (what a handler returns), [`ErrorBody`] (its JSON)
//! and [`openai_errors`], the middleware that gives every other error answer that shape.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

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
pub async fn openai_errors(req: Request, next: Next) -> Response {
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
