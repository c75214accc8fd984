//! `/alerts`: the kept alerts.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::alerts::Alert;
use crate::http::{AppState, ErrorBody};

/// `/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Active alerts.
    active: usize,
    /// Kept alerts, newest first.
    alerts: Vec<Alert>,
}

/// `GET /alerts`: kept alerts, newest first.
#[utoipa::path(get, path = "/alerts", tag = "ops", responses(
    (status = 200, description = "kept alerts, newest first", body = AlertList),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn alerts(State(state): State<AppState>) -> Json<AlertList> {
    let store = state.alerts.lock().unwrap_or_else(|e| e.into_inner());
    Json(AlertList {
        active: store.active_count(),
        alerts: store.all().rev().cloned().collect(),
    })
}
