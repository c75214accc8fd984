//! Liveness, readiness and version: `/healthz`, `/readyz`, `/version`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::state::{ModelState, VERSION};

/// `GET /healthz`: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "the process serves", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Why the daemon is not ready, or `None` when it is.
pub fn not_ready(state: &AppState) -> Option<String> {
    let t = state.telemetry();
    if !t.running {
        return Some(
            t.error
                .unwrap_or_else(|| "telemetry is not running yet".into()),
        );
    }
    // /processes answers from the first table sample: ready means it can answer.
    if t.table.is_none() {
        return Some("the process table is not sampled yet".into());
    }
    match state.model_state() {
        ModelState::Loading(p) => Some(format!("model {} is loading", p.display())),
        ModelState::Failed { path, error } => {
            Some(format!("model {} failed to load: {error}", path.display()))
        }
        ModelState::None | ModelState::Ready(_) => None,
    }
}

/// `GET /readyz`: 200 once telemetry runs (with a first process table sample) and the model,
/// if configured, is loaded; else 503 with the reason.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "ready", body = String, content_type = "text/plain"),
    (status = 503, description = "not ready, and why", body = String, content_type = "text/plain")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready(&state) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// `/version`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    /// `insightd`.
    name: &'static str,
    /// The crate version.
    version: &'static str,
}

/// `GET /version`.
#[utoipa::path(get, path = "/version", tag = "ops",
    responses((status = 200, description = "name and version", body = VersionInfo)))]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "insightd",
        version: VERSION,
    })
}
