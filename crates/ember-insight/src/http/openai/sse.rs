//! Streamed answers: generation events as server-sent events, ending with `[DONE]`.

use std::convert::Infallible;

use axum::http::header;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::llm::{GenEvent, GenSummary, TokenLogprobs};

/// What the stream has still to send after the current event.
enum Next {
    Events,
    /// The usage chunk (`stream_options.include_usage`), then `[DONE]`.
    Usage(Value),
    Done,
    End,
}

/// Makes the last chunk, with `usage`, from the generation's summary.
pub(super) type UsageChunk = Box<dyn FnOnce(&GenSummary) -> Value + Send>;

/// Turns generation events into SSE chunks, `make(text, finish, tokens)` (`tokens`: the
/// log-probabilities of the tokens since the last chunk, when asked for), then the chunk of
/// `usage` when given, then `[DONE]`. Dropping the stream (the client went away) drops `rx`,
/// which ends the generation.
pub(super) fn sse_response(
    rx: mpsc::UnboundedReceiver<GenEvent>,
    first: Option<Value>,
    make: impl FnMut(Option<&str>, Option<&str>, &[TokenLogprobs]) -> Value + Send + 'static,
    usage: Option<UsageChunk>,
) -> Response {
    let stream = futures_util::stream::unfold(
        (rx, first, make, usage, Next::Events),
        |(mut rx, mut first, mut make, mut usage, next)| async move {
            let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
            match next {
                Next::End => return None,
                Next::Usage(v) => return Some((data(v), (rx, None, make, None, Next::Done))),
                Next::Done => {
                    let done = Ok(SseEvent::default().data("[DONE]"));
                    return Some((done, (rx, None, make, None, Next::End)));
                }
                Next::Events => {}
            }
            if let Some(v) = first.take() {
                return Some((data(v), (rx, None, make, usage, Next::Events)));
            }
            let mut tokens = Vec::new();
            let (event, next) = loop {
                match rx.recv().await? {
                    GenEvent::Token(t) => tokens.push(t),
                    GenEvent::Text(t) => break (make(Some(&t), None, &tokens), Next::Events),
                    GenEvent::Done(s) => {
                        let next = match usage.take() {
                            Some(chunk) => Next::Usage(chunk(&s)),
                            None => Next::Done,
                        };
                        break (make(None, Some(s.finish_reason), &tokens), next);
                    }
                    GenEvent::Failed(e) => {
                        let err = json!({"error": {"message": format!("generation failed: {e}"), "type": "server_error"}});
                        break (err, Next::End);
                    }
                }
            };
            Some((data(event), (rx, None, make, usage, next)))
        },
    );
    let mut resp = Sse::new(stream).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}
