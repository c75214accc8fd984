//! Running one generation: taking an admission permit, turning a request's sampling fields
//! into a [`GenRequest`], queueing it in the engine and collecting its text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::request::{OneOrMany, Sampling};
use crate::engine::Priority;
use crate::{ApiError, AppState};
use ember_llama::Token;
use serde_json::Value;

use crate::llm::{GenEvent, GenRequest, GenSummary, Llm, Penalties, SamplingStages, TokenLogprobs};
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
                state.config.max_concurrent, state.config.queue
            ),
        )
    })
}

/// A prompt as a request gives it.
pub(super) enum PromptInput {
    /// Text, tokenized with the model's BOS and its special-token texts parsed.
    Text(String),
    /// Token ids (llama-server's `/completion`), each checked against the vocabulary.
    Tokens(Vec<Token>),
}

/// How a generation's answer is sent.
#[derive(Clone, Copy)]
pub(super) struct Delivery {
    /// Server-sent events.
    pub(super) stream: bool,
    /// With `stream`: a last chunk with `usage`.
    pub(super) include_usage: bool,
    /// Choices (`n`): 1, or more when not streamed.
    pub(super) n: u32,
}

/// Most choices (`n`) of one request.
pub(super) const MAX_CHOICES: u32 = 8;

pub(super) fn gen_request(
    state: &AppState,
    llm: &Llm,
    prompt: PromptInput,
    mut s: Sampling,
    logprobs: Option<usize>,
) -> Result<(GenRequest, Delivery), ApiError> {
    if logprobs.is_some_and(|n| n > 20) {
        return Err(ApiError::bad_request(
            "at most 20 alternatives per token (logprobs, top_logprobs)",
        ));
    }
    let n = s.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "n must be 1..={MAX_CHOICES}"
        )));
    }
    if n > 1 && s.stream {
        return Err(ApiError::bad_request(
            "n above 1 is not streamed: drop stream, or send n requests",
        ));
    }
    // OpenAI's ranges. Beyond them the sampler's arithmetic breaks: a huge temperature
    // turns a grammar's excluded tokens (-inf / inf) into NaN.
    let cfg = &state.config;
    let temperature = s.temperature.unwrap_or(cfg.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request("temperature must be 0..=2"));
    }
    let top_p = s.top_p.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&top_p) {
        return Err(ApiError::bad_request("top_p must be 0..=1"));
    }
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
    let (prompt, tokens) = prompt_tokens(state, llm, prompt)?;
    let given = [
        s.response_format.is_some(),
        s.json_schema.is_some(),
        s.grammar.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(ApiError::bad_request(
            "give one of response_format, json_schema and grammar",
        ));
    }
    let (grammar, source) = match (&s.response_format, &s.json_schema, s.grammar.take()) {
        (Some(format), _, _) => (
            format
                .grammar()
                .map_err(|e| ApiError::bad_request(format!("response_format: {e}")))?,
            "response_format: llama.cpp rejects the grammar made of this schema",
        ),
        (_, Some(schema), _) => (
            Some(
                super::request::schema_grammar(schema)
                    .map_err(|e| ApiError::bad_request(format!("json_schema: {e}")))?,
            ),
            "json_schema: llama.cpp rejects the grammar made of this schema",
        ),
        (_, _, grammar) => (grammar, "grammar: llama.cpp rejects it"),
    };
    if let Some(g) = &grammar {
        llm.check_grammar(g)
            .map_err(|e| ApiError::bad_request(format!("{source}: {e:#}")))?;
    }
    let stops = s.stop.take().map(OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop strings"));
    }
    let stages = SamplingStages {
        logit_bias: match &s.logit_bias {
            None => Vec::new(),
            Some(v) => logit_bias(llm, v)?,
        },
        penalties: penalties(&s, cfg.ctx_size)?,
        top_k: match s.top_k {
            None | Some(0) => None,
            Some(k) if k > 0 => Some(k),
            Some(_) => return Err(ApiError::bad_request("top_k must be 0 (off) or more")),
        },
        typical_p: unit_range("typical_p", s.typical_p)?.filter(|&p| p < 1.0),
        min_p: unit_range("min_p", s.min_p)?.filter(|&p| p > 0.0),
    };
    let delivery = Delivery {
        stream: s.stream,
        include_usage: s.stream_options.is_some_and(|o| o.include_usage),
        n,
    };
    let req = GenRequest {
        prompt,
        prompt_tokens: Some(tokens),
        max_tokens,
        stops,
        temperature,
        top_p,
        seed: s
            .seed
            .or(cfg.seed)
            .unwrap_or_else(|| NEXT_ID.load(Ordering::Relaxed) as u32),
        stages,
        grammar,
        chat_grammar: None,
        logprobs,
        token_ids: false,
    };
    Ok((req, delivery))
}

/// A prompt's text (empty when given as tokens) and tokens, checked: not empty, each token in
/// the vocabulary, and shorter than the context (llama-server's `exceed_context_size_error`).
pub(super) fn prompt_tokens(
    state: &AppState,
    llm: &Llm,
    prompt: PromptInput,
) -> Result<(String, Vec<Token>), ApiError> {
    let cfg = &state.config;
    let (text, tokens) = match prompt {
        PromptInput::Text(text) => {
            let tokens = llm
                .model()
                .tokenize(&text, true, true)
                .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))?;
            (text, tokens)
        }
        PromptInput::Tokens(tokens) => {
            for &t in &tokens {
                llm.model()
                    .check_token(t)
                    .map_err(|e| ApiError::bad_request(format!("prompt: {e}")))?;
            }
            (String::new(), tokens)
        }
    };
    if tokens.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    if tokens.len() >= cfg.ctx_size as usize {
        // llama-server's error type and fields for the same refusal, which its clients read.
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "exceed_context_size_error",
            format!(
                "the prompt has {} tokens; the context holds {} (model.ctx_size)",
                tokens.len(),
                cfg.ctx_size
            ),
        )
        .with("n_prompt_tokens", tokens.len())
        .with("n_ctx", cfg.ctx_size));
    }
    Ok((text, tokens))
}

/// A probability mass or ratio: 0 to 1.
fn unit_range(name: &str, value: Option<f32>) -> Result<Option<f32>, ApiError> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(ApiError::bad_request(format!("{name} must be 0..=1")))
        }
        v => Ok(v),
    }
}

/// The penalties stage, when any of its fields is given (llama-server's defaults for the
/// others: repeat 1, frequency and presence 0, the last 64 tokens). The window is at most the
/// context (`-1` means all of it): llama.cpp sizes the stage's history by it.
fn penalties(s: &Sampling, ctx_size: u32) -> Result<Option<Penalties>, ApiError> {
    if s.repeat_penalty.is_none()
        && s.repeat_last_n.is_none()
        && s.presence_penalty.is_none()
        && s.frequency_penalty.is_none()
    {
        return Ok(None);
    }
    let p = Penalties {
        last_n: s.repeat_last_n.unwrap_or(64),
        repeat: s.repeat_penalty.unwrap_or(1.0),
        frequency: s.frequency_penalty.unwrap_or(0.0),
        presence: s.presence_penalty.unwrap_or(0.0),
    };
    let ctx = i32::try_from(ctx_size).unwrap_or(i32::MAX);
    let p = Penalties {
        last_n: match p.last_n {
            -1 => ctx,
            n if n < -1 => {
                return Err(ApiError::bad_request(
                    "repeat_last_n must be -1 (the whole context) or more",
                ))
            }
            n => n.min(ctx),
        },
        ..p
    };
    // Finite: a number too large for f32 arrives as infinity.
    if !(p.repeat > 0.0 && p.repeat.is_finite()) {
        return Err(ApiError::bad_request("repeat_penalty must be above 0"));
    }
    for (name, v) in [
        ("presence_penalty", p.presence),
        ("frequency_penalty", p.frequency),
    ] {
        if !(-2.0..=2.0).contains(&v) {
            return Err(ApiError::bad_request(format!("{name} must be -2..=2")));
        }
    }
    Ok(Some(p))
}

/// At most this many biased tokens.
const MAX_LOGIT_BIAS: usize = 1024;

/// `logit_bias`: OpenAI's object from token id to bias, where llama-server also takes a text
/// as the key (each of its tokens gets the bias), `false` as the bias (banned), and a list
/// of `[key, bias]` pairs.
fn logit_bias(llm: &Llm, value: &Value) -> Result<Vec<(Token, f32)>, ApiError> {
    let n_vocab = llm.model().n_vocab();
    let mut out = Vec::new();
    let mut add = |key: Key<'_>, bias: &Value| -> Result<(), ApiError> {
        let bias = match bias {
            Value::Bool(false) => f32::NEG_INFINITY,
            Value::Number(n) => match n.as_f64() {
                Some(b) if (-100.0..=100.0).contains(&b) => b as f32,
                _ => {
                    return Err(ApiError::bad_request(
                        "logit_bias: a bias must be -100..=100 or false",
                    ))
                }
            },
            _ => {
                return Err(ApiError::bad_request(
                    "logit_bias: a bias must be -100..=100 or false",
                ))
            }
        };
        let tokens = match key {
            Key::Id(id) => {
                if !(0..i64::from(n_vocab)).contains(&id) {
                    return Err(ApiError::bad_request(format!(
                        "logit_bias: token {id} is not in the vocabulary (0..{n_vocab})"
                    )));
                }
                vec![Token(id as i32)]
            }
            Key::Text(text) => llm.model().tokenize(text, false, false).map_err(|e| {
                ApiError::bad_request(format!("logit_bias: cannot tokenize {text:?}: {e}"))
            })?,
        };
        for token in tokens {
            out.push((token, bias));
        }
        if out.len() > MAX_LOGIT_BIAS {
            return Err(ApiError::bad_request(format!(
                "logit_bias: at most {MAX_LOGIT_BIAS} tokens"
            )));
        }
        Ok(())
    };
    match value {
        Value::Object(map) => {
            for (key, bias) in map {
                add(Key::of_str(key), bias)?;
            }
        }
        Value::Array(pairs) => {
            for pair in pairs {
                let (key, bias) = match pair.as_array().map(Vec::as_slice) {
                    Some([Value::Number(n), bias]) => match n.as_i64() {
                        Some(id) => (Key::Id(id), bias),
                        None => {
                            return Err(ApiError::bad_request(
                                "logit_bias: a token id is an integer",
                            ))
                        }
                    },
                    Some([Value::String(text), bias]) => (Key::Text(text), bias),
                    _ => {
                        return Err(ApiError::bad_request(
                            "logit_bias: a list holds [token id or text, bias] pairs",
                        ))
                    }
                };
                add(key, bias)?;
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "logit_bias: an object from token id to bias, or a list of [token, bias] pairs",
            ))
        }
    }
    Ok(out)
}

/// A `logit_bias` key: a token id, or a text to tokenize.
enum Key<'a> {
    Id(i64),
    Text(&'a str),
}

impl<'a> Key<'a> {
    /// An object's key: a token id when it is a decimal integer (OpenAI), else a text.
    fn of_str(key: &'a str) -> Self {
        match key.parse::<i64>() {
            Ok(id) => Key::Id(id),
            Err(_) => Key::Text(key),
        }
    }
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
            let last = !matches!(
                event,
                GenEvent::Text(_) | GenEvent::Token(_) | GenEvent::Id(_)
            );
            match &event {
                GenEvent::Text(_) | GenEvent::Token(_) | GenEvent::Id(_) => {}
                GenEvent::Done(summary) => {
                    m.prompt_tokens.inc_by(summary.prompt_tokens as u64);
                    m.prompt_tokens_cached.inc_by(summary.cached_tokens as u64);
                    m.prompt_micros.inc_by((summary.prompt_ms * 1e3) as u64);
                    m.generation_micros
                        .inc_by((summary.generation_ms * 1e3) as u64);
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

/// Runs the `n` choices of `req`, seeded `seed`, `seed + 1`, ... (see [`spawn_all`]).
pub(super) fn spawn_choices(
    state: &AppState,
    llm: &Arc<Llm>,
    req: GenRequest,
    n: u32,
    endpoint: &'static str,
    id: &str,
) -> Result<Vec<mpsc::UnboundedReceiver<GenEvent>>, ApiError> {
    let choices = (0..n).map(|i| {
        let mut choice = req.clone();
        choice.seed = req.seed.wrapping_add(i);
        choice
    });
    spawn_all(state, llm, choices.collect(), endpoint, id)
}

/// Runs every generation of one request: every admission permit is taken first, so a
/// request that cannot run whole is refused (429) before any runs.
pub(super) fn spawn_all(
    state: &AppState,
    llm: &Arc<Llm>,
    reqs: Vec<GenRequest>,
    endpoint: &'static str,
    id: &str,
) -> Result<Vec<mpsc::UnboundedReceiver<GenEvent>>, ApiError> {
    let permits = reqs
        .iter()
        .map(|_| take_slot(state, endpoint))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reqs
        .into_iter()
        .zip(permits)
        .map(|(req, permit)| {
            spawn_generation(state, llm.clone(), req, permit, endpoint, id.to_string())
        })
        .collect())
}

/// Collects every choice, in order.
pub(super) async fn collect_all(
    receivers: Vec<mpsc::UnboundedReceiver<GenEvent>>,
) -> Result<Vec<Collected>, ApiError> {
    let mut out = Vec::with_capacity(receivers.len());
    for rx in receivers {
        out.push(collect(rx).await?);
    }
    Ok(out)
}

/// The summary of several choices of one prompt: the first's prompt and timings, every
/// choice's generated tokens.
pub(super) fn summary_of(choices: &[Collected]) -> GenSummary {
    let mut summary = choices[0].summary;
    summary.completion_tokens = choices.iter().map(|c| c.summary.completion_tokens).sum();
    summary
}

/// A whole generation.
pub(super) struct Collected {
    pub(super) text: String,
    pub(super) summary: GenSummary,
    /// With `logprobs`, one per token.
    pub(super) tokens: Vec<TokenLogprobs>,
    /// With `token_ids`, the generated tokens.
    pub(super) ids: Vec<Token>,
}

pub(super) async fn collect(
    mut rx: mpsc::UnboundedReceiver<GenEvent>,
) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text(t) => text.push_str(&t),
            GenEvent::Token(t) => tokens.push(t),
            GenEvent::Id(id) => ids.push(id),
            GenEvent::Done(summary) => {
                return Ok(Collected {
                    text,
                    summary,
                    tokens,
                    ids,
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
