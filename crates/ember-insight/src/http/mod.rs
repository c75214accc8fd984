//! The HTTP API (axum): operations endpoints ([`ops`]), the OpenAI-compatible ones
//! ([`openai`]) and the dashboard ([`ui`]), behind a bearer-token check and a body size limit.

pub mod cors;
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
use axum::routing::get;
use axum::Router;
pub use ember_serve::{openai, openai_errors, ApiError, ErrorBody};

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
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(state.clone())
        .merge(ember_serve::router(state.serve.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn(openai_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::layer,
        ))
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
