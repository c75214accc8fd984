//! `/metrics`: the Prometheus or OpenMetrics exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::{AppState, ErrorBody};

/// `GET /metrics`: OpenMetrics text when the scraper asks for it (`Accept:
/// application/openmetrics-text`), else the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics when asked for",
     content((String = "text/plain"), (String = "application/openmetrics-text"))),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let text = state.metrics_text();
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    } else {
        // llama-server's header: when the process started (its counters' origin).
        let started = std::time::SystemTime::now()
            .checked_sub(state.started.elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8".to_string(),
                ),
                (
                    header::HeaderName::from_static("process-start-time-unix"),
                    started.to_string(),
                ),
            ],
            crate::metrics::to_prometheus_text(&text)
                + &if state.config.model.llama_server_metrics {
                    state.metrics.serve.llama_server_text()
                } else {
                    String::new()
                },
        )
            .into_response()
    }
}
