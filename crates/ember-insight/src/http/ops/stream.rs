//! `/stream`: telemetry, alert and insight events as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;

use crate::http::{ApiError, AppState, ErrorBody};

/// `GET /stream`: server-sent events (`exec`, `fork`, `exit`, `oom`, `tcp`, `alert`,
/// `insight`). Each client has a bounded queue; one that falls behind is dropped.
#[utoipa::path(get, path = "/stream", tag = "ops", responses(
    (status = 200, description = "server-sent events, one JSON object per event", body = String, content_type = "text/event-stream"),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 503, description = "too many /stream clients (limits.sse_clients)", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let rx = state.hub.subscribe().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} /stream clients are connected (limits.sse_clients)",
                state.config.limits.sse_clients
            ),
        )
    })?;
    state.metrics.sse_clients.inc();
    let guard = GaugeGuard(state.clone());
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let msg = rx.recv().await?;
        let event = SseEvent::default().event(msg.kind).data(&*msg.data);
        Some((Ok(event), (rx, guard)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Decrements the stream gauge when the stream ends (client gone, dropped, or shutdown).
struct GaugeGuard(AppState);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
        crate::metrics::raise_to(&self.0.metrics.sse_clients_dropped, self.0.hub.dropped());
    }
}
