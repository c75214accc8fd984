//! Streamed answers: generation events as server-sent events, ending with `[DONE]`.

use std::convert::Infallible;

use axum::http::header;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::llm::GenEvent;

/// Turns generation events into SSE chunks (`make(text, finish)`), then `[DONE]`.
pub(super) fn sse_response(
    rx: mpsc::UnboundedReceiver<GenEvent>,
    first: Option<Value>,
    make: impl Fn(Option<&str>, Option<&str>) -> Value + Send + 'static,
) -> Response {
    let stream = futures_util::stream::unfold(
        (rx, first, make, false),
        |(mut rx, mut first, make, done)| async move {
            if done {
                return None;
            }
            if let Some(v) = first.take() {
                let ev = SseEvent::default().data(v.to_string());
                return Some((Ok::<_, Infallible>(ev), (rx, None, make, false)));
            }
            let (ev, done) = match rx.recv().await {
                Some(GenEvent::Text(t)) => (
                    SseEvent::default().data(make(Some(&t), None).to_string()),
                    false,
                ),
                Some(GenEvent::Done(s)) => {
                    let last = make(None, Some(s.finish_reason));
                    // The final chunk, then the [DONE] sentinel on the next poll.
                    let (tx, rx2) = mpsc::unbounded_channel();
                    let _ = tx.send(GenEvent::Failed(String::new()));
                    rx = rx2;
                    (SseEvent::default().data(last.to_string()), false)
                }
                Some(GenEvent::Failed(e)) if e.is_empty() => {
                    (SseEvent::default().data("[DONE]"), true)
                }
                Some(GenEvent::Failed(e)) => {
                    let err = json!({"error": {"message": format!("generation failed: {e}"), "type": "server_error"}});
                    (SseEvent::default().data(err.to_string()), true)
                }
                None => return None,
            };
            Some((Ok(ev), (rx, None, make, done)))
        },
    );
    let mut resp = Sse::new(stream).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}
