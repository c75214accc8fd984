//! Running one generation: taking an admission permit, turning a request's sampling fields
//! into a [`GenRequest`], queueing it in the engine and collecting its text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::request::{OneOrMany, Sampling};
use crate::engine::Priority;
use crate::http::{ApiError, AppState};
use crate::llm::{GenEvent, GenRequest, GenSummary, Llm, TokenLogprobs};
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
    logprobs: Option<usize>,
) -> Result<(GenRequest, bool), ApiError> {
    if logprobs.is_some_and(|n| n > 20) {
        return Err(ApiError::bad_request(
            "at most 20 alternatives per token (logprobs, top_logprobs)",
        ));
    }
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported"));
    }
    // OpenAI's ranges. Beyond them the sampler's arithmetic breaks: a huge temperature
    // turns a grammar's excluded tokens (-inf / inf) into NaN.
    let temperature = s.temperature.unwrap_or(0.8);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request("temperature must be 0..=2"));
    }
    let top_p = s.top_p.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&top_p) {
        return Err(ApiError::bad_request("top_p must be 0..=1"));
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
    // Tokenized once, here: the engine decodes these tokens.
    let tokens = llm
        .model()
        .tokenize(&prompt, true, true)
        .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))?;
    if tokens.is_empty() || tokens.len() >= cfg.ctx_size as usize {
        return Err(ApiError::bad_request(format!(
            "the prompt has {} tokens; the context holds {} (model.ctx_size)",
            tokens.len(),
            cfg.ctx_size
        )));
    }
    let grammar = match &s.response_format {
        None => None,
        Some(format) => format
            .grammar()
            .map_err(|e| ApiError::bad_request(format!("response_format: {e}")))?,
    };
    if let Some(g) = &grammar {
        llm.check_grammar(g).map_err(|e| {
            ApiError::bad_request(format!(
                "response_format: llama.cpp rejects the grammar made of this schema: {e:#}"
            ))
        })?;
    }
    let stops = s.stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop strings"));
    }
    let req = GenRequest {
        prompt,
        prompt_tokens: Some(tokens),
        max_tokens,
        stops,
        temperature,
        top_p,
        seed: s
            .seed
            .unwrap_or_else(|| NEXT_ID.load(Ordering::Relaxed) as u32),
        grammar,
        logprobs,
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
            let last = !matches!(event, GenEvent::Text(_) | GenEvent::Token(_));
            match &event {
                GenEvent::Text(_) | GenEvent::Token(_) => {}
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

/// A whole generation.
pub(super) struct Collected {
    pub(super) text: String,
    pub(super) summary: GenSummary,
    /// With `logprobs`, one per token.
    pub(super) tokens: Vec<TokenLogprobs>,
}

pub(super) async fn collect(
    mut rx: mpsc::UnboundedReceiver<GenEvent>,
) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text(t) => text.push_str(&t),
            GenEvent::Token(t) => tokens.push(t),
            GenEvent::Done(summary) => {
                return Ok(Collected {
                    text,
                    summary,
                    tokens,
                })
            }
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
