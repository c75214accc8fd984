//! Streamed answers: generation events as server-sent events, ending with `[DONE]`.

use std::convert::Infallible;

use axum::http::header;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::llm::{GenEvent, GenSummary, TokenLogprobs};
use ember_llama::Token;

/// What one chunk of a stream carries.
pub(super) struct Step<'a> {
    /// Text released since the last chunk; `None` in the last one.
    pub(super) text: Option<&'a str>,
    /// In the last chunk: how the generation ended.
    pub(super) done: Option<&'a GenSummary>,
    /// With `logprobs`: the log-probabilities of the tokens since the last chunk.
    pub(super) logprobs: &'a [TokenLogprobs],
    /// With `token_ids`: the tokens since the last chunk.
    pub(super) ids: &'a [Token],
}

/// How a stream ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// `data: [DONE]` (OpenAI's streams).
    Done,
    /// Nothing after the last chunk (llama-server's own `/completion`, whose last chunk says
    /// `"stop": true`).
    LastChunk,
}

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

/// Turns generation events into SSE chunks, `make(step)` per piece of text (none when it
/// returns null) and once at the end, then the chunk of `usage` when given, then `[DONE]` unless `ending` says otherwise.
/// Dropping the stream (the client went away) drops `rx`, which ends the generation.
pub(super) fn sse_response(
    rx: mpsc::UnboundedReceiver<GenEvent>,
    first: Option<Value>,
    make: impl FnMut(Step<'_>) -> Value + Send + 'static,
    usage: Option<UsageChunk>,
    ending: Ending,
) -> Response {
    let stream = futures_util::stream::unfold(
        (rx, first, make, usage, Next::Events),
        move |(mut rx, mut first, mut make, mut usage, next)| async move {
            let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
            match next {
                Next::End => return None,
                Next::Usage(v) => return Some((data(v), (rx, None, make, None, Next::Done))),
                Next::Done if ending == Ending::LastChunk => return None,
                Next::Done => {
                    let done = Ok(SseEvent::default().data("[DONE]"));
                    return Some((done, (rx, None, make, None, Next::End)));
                }
                Next::Events => {}
            }
            if let Some(v) = first.take() {
                return Some((data(v), (rx, None, make, usage, Next::Events)));
            }
            let (mut logprobs, mut ids) = (Vec::new(), Vec::new());
            let (event, next) = loop {
                match rx.recv().await? {
                    GenEvent::Token(t) => logprobs.push(t),
                    GenEvent::Id(id) => ids.push(id),
                    GenEvent::Text(t) => {
                        let step = Step {
                            text: Some(&t),
                            done: None,
                            logprobs: &logprobs,
                            ids: &ids,
                        };
                        let chunk = make(step);
                        if chunk.is_null() {
                            // Nothing to send yet (a parser holds the text back); the tokens'
                            // log-probabilities go with the next chunk.
                            continue;
                        }
                        break (chunk, Next::Events);
                    }
                    GenEvent::Done(s) => {
                        let next = match usage.take() {
                            Some(chunk) => Next::Usage(chunk(&s)),
                            None => Next::Done,
                        };
                        let step = Step {
                            text: None,
                            done: Some(&s),
                            logprobs: &logprobs,
                            ids: &ids,
                        };
                        break (make(step), next);
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
