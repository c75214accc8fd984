//! `/insights`: the kept insights, or why there are none.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{AppState, ErrorBody};
use crate::insights::Insight;
use crate::state::ModelState;

/// `/insights`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightList {
    /// Kept insights, newest first.
    insights: Vec<Insight>,
    /// Why there are none, when there are none.
    reason: Option<String>,
}

/// `GET /insights`: kept insights, newest first; says why there are none.
#[utoipa::path(get, path = "/insights", tag = "ops", responses(
    (status = 200, description = "kept insights, newest first", body = InsightList),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn insights(State(state): State<AppState>) -> Json<InsightList> {
    let store = state.insights.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Insight> = store.all().rev().cloned().collect();
    let reason = if !list.is_empty() {
        None
    } else if !state.config.insights.enabled {
        Some("insights are disabled (insights.enabled = false)".to_string())
    } else {
        Some(match state.model_state() {
            ModelState::None => "no model loaded: start insightd with --model <GGUF> (or model.path) to get insights".into(),
            ModelState::Loading(_) => "the model is loading".into(),
            ModelState::Failed { error, .. } => format!("the model failed to load: {error}"),
            ModelState::Ready(_) => "no alert has fired yet".into(),
        })
    };
    Json(InsightList {
        insights: list,
        reason,
    })
}
