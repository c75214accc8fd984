//! Running one generation: taking an admission permit, turning a request's sampling fields
//! into a [`GenRequest`], queueing it in the engine and collecting its text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::request::{OneOrMany, Sampling};
use crate::engine::Priority;
use crate::http::{ApiError, AppState};
use crate::llm::{GenEvent, GenRequest, GenSummary, Llm};
use crate::metrics::EndpointLabel;

pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(super) fn take_slot(
    state: &AppState,
    endpoint: &str,
) -> Result<OwnedSemaphorePermit, ApiError> {
    state.slots.clone().try_acquire_owned().map_err(|_| {
        state
            .metrics
            .generations_rejected
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.into(),
            })
            .inc();
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            format!(
                "{} generations are running and {} waiting (model.max_concurrent, model.queue): retry later",
                state.config.model.max_concurrent, state.config.model.queue
            ),
        )
    })
}

pub(super) fn gen_request(
    state: &AppState,
    llm: &Llm,
    prompt: String,
    s: Sampling,
) -> Result<(GenRequest, bool), ApiError> {
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported"));
    }
    let cfg = &state.config.model;
    let max_tokens = s
        .max_tokens
        .or(s.max_completion_tokens)
        .unwrap_or(cfg.default_max_tokens);
    if max_tokens == 0 || max_tokens > cfg.max_tokens {
        return Err(ApiError::bad_request(format!(
            "max_tokens must be 1..={} (model.max_tokens)",
            cfg.max_tokens
        )));
    }
    let prompt_tokens = llm.count_tokens(&prompt);
    if prompt_tokens == 0 || prompt_tokens >= cfg.ctx_size as usize {
        return Err(ApiError::bad_request(format!(
            "the prompt has {prompt_tokens} tokens; the context holds {} (model.ctx_size)",
            cfg.ctx_size
        )));
    }
    let stops = s.stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop strings"));
    }
    let req = GenRequest {
        prompt,
        prompt_tokens: None,
        max_tokens,
        stops,
        temperature: s.temperature.unwrap_or(0.8),
        top_p: s.top_p.unwrap_or(1.0).clamp(0.0, 1.0),
        seed: s
            .seed
            .unwrap_or_else(|| NEXT_ID.load(Ordering::Relaxed) as u32),
        grammar: None,
    };
    Ok((req, s.stream))
}

/// Queues a generation in the engine; its text arrives on the returned receiver. A task
/// holds the admission permit until it ends and keeps the metrics; when the client goes
/// away (the receiver is dropped) it drops the engine's receiver, which takes the sequence
/// out of the batch.
pub(super) fn spawn_generation(
    state: &AppState,
    llm: Arc<Llm>,
    req: GenRequest,
    permit: OwnedSemaphorePermit,
    endpoint: &'static str,
    id: String,
) -> mpsc::UnboundedReceiver<GenEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = state.clone();
    state
        .metrics
        .generations
        .get_or_create(&EndpointLabel {
            endpoint: endpoint.into(),
        })
        .inc();
    let (mut events, cancel) = llm.submit(req, Priority::Api);
    tokio::spawn(async move {
        let _permit = permit;
        let m = &state.metrics;
        m.generations_running.inc();
        let mut gone = false;
        loop {
            let event = if gone {
                events.recv().await
            } else {
                tokio::select! {
                    event = events.recv() => event,
                    () = tx.closed() => {
                        // The engine ends the sequence at its next step and says so.
                        cancel.cancel();
                        gone = true;
                        continue;
                    }
                }
            };
            let Some(event) = event else { break };
            let last = !matches!(event, GenEvent::Text(_));
            match &event {
                GenEvent::Text(_) => {}
                GenEvent::Done(summary) => {
                    m.prompt_tokens.inc_by(summary.prompt_tokens as u64);
                    m.generated_tokens.inc_by(summary.completion_tokens as u64);
                    if summary.client_gone {
                        m.generations_cancelled.inc();
                        log::info!(
                            "generation {id} stopped after {} tokens: the client disconnected",
                            summary.completion_tokens
                        );
                    }
                }
                GenEvent::Failed(e) => log::error!("generation {id} failed: {e}"),
            }
            if !gone {
                // A failed send means the client is gone: the next select sees it.
                let _ = tx.send(event);
            }
            if last {
                break;
            }
        }
        m.generations_running.dec();
    });
    rx
}

pub(super) async fn collect(
    mut rx: mpsc::UnboundedReceiver<GenEvent>,
) -> Result<(String, GenSummary), ApiError> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text(t) => text.push_str(&t),
            GenEvent::Done(summary) => return Ok((text, summary)),
            GenEvent::Failed(e) => {
                return Err(ApiError::internal("generation", &anyhow::anyhow!(e)));
            }
        }
    }
    Err(ApiError::internal(
        "generation",
        &anyhow::anyhow!("the generation thread ended without a result"),
    ))
}
