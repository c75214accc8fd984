//! OpenAI-compatible endpoints served by the loaded model: `/v1/models`, `/v1/completions`,
//! `/v1/chat/completions` (both streamed as server-sent events with a final `[DONE]`, or not)
//! and `/v1/embeddings`.
//!
//! Each generation holds one of `model.max_concurrent` slots; a request that finds none free
//! is answered 429 at once (counted in `insightd_generations_rejected_total`). Generations run
//! on blocking threads; one whose client disconnects stops at the next token (counted in
//! `insightd_generations_cancelled_total` and logged).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ember_llama::ChatMessage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody};
use crate::llm::{GenEvent, GenRequest, GenSummary, Llm};
use crate::metrics::EndpointLabel;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A string or a list of strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Sampling fields shared by both generation endpoints.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Sampling {
    /// Tokens to generate at most: 1 to `model.max_tokens` (default `model.default_max_tokens`).
    #[schema(minimum = 1)]
    max_tokens: Option<usize>,
    /// The same as `max_tokens` (OpenAI's newer name).
    #[schema(minimum = 1)]
    max_completion_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy (default 0.8).
    temperature: Option<f32>,
    /// Nucleus sampling mass, clamped to 0..1 (default 1).
    top_p: Option<f32>,
    /// Seed of the sampler.
    seed: Option<u32>,
    /// Up to 4 strings that end the generation.
    stop: Option<OneOrMany>,
    /// Server-sent events, one chunk per piece of text, then `[DONE]`.
    #[serde(default)]
    stream: bool,
    /// Choices: only 1.
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
}

/// `POST /v1/completions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompletionRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// The prompt: one string (or a list of exactly one).
    prompt: OneOrMany,
    #[serde(flatten)]
    sampling: Sampling,
}

/// Message content: a string, or a list of parts of which the text ones are used.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (`{"type": "text", "text": ...}`).
    #[schema(value_type = Vec<Object>)]
    Parts(Vec<Value>),
}

/// Who speaks (in the document; the handler names a wrong one in its 400).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum Role {
    System,
    Developer,
    User,
    Assistant,
}

/// A chat message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Message {
    /// `system`, `developer` (taken as system), `user` or `assistant`.
    #[schema(value_type = Role)]
    role: String,
    /// Its text.
    content: Option<Content>,
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// The conversation, at least one message.
    #[schema(min_items = 1)]
    messages: Vec<Message>,
    #[serde(flatten)]
    sampling: Sampling,
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// One to 64 non-empty strings.
    #[schema(value_type = EmbeddingInput)]
    input: OneOrMany,
}

/// What `/v1/embeddings` embeds, in the document: a non-empty string, or 1 to 64 of them
/// (the handler checks the same).
struct EmbeddingInput;

impl utoipa::PartialSchema for EmbeddingInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
        };
        OneOfBuilder::new()
            .item(text())
            .item(
                ArrayBuilder::new()
                    .items(text())
                    .min_items(Some(1))
                    .max_items(Some(64)),
            )
            .into()
    }
}

impl ToSchema for EmbeddingInput {}

/// `/v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    object: &'static str,
    /// The loaded model, if one is.
    data: Vec<ModelCard>,
}

/// One model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCard {
    /// Its name (the file name).
    id: String,
    /// `model`.
    object: &'static str,
    /// Always 0.
    created: u64,
    /// `insightd`.
    owned_by: &'static str,
    /// What insightd knows of it.
    meta: ModelMeta,
}

/// A model's details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMeta {
    /// llama.cpp's description.
    description: String,
    /// Context size per generation.
    n_ctx: u32,
}

/// Token counts of a generation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Prompt tokens.
    prompt_tokens: usize,
    /// Generated tokens.
    completion_tokens: usize,
    /// Both.
    total_tokens: usize,
}

/// `/v1/completions` (not streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct Completion {
    /// `cmpl-N`.
    id: String,
    /// `text_completion`.
    object: &'static str,
    /// Unix time.
    created: u64,
    /// The model's name.
    model: String,
    /// One choice.
    choices: Vec<CompletionChoice>,
    /// Token counts.
    usage: Usage,
}

/// A completion's text.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    /// The generated text.
    text: String,
    /// 0.
    index: u32,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    logprobs: Option<()>,
    /// `stop` or `length`.
    finish_reason: &'static str,
}

/// `/v1/chat/completions` (not streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-N`.
    id: String,
    /// `chat.completion`.
    object: &'static str,
    /// Unix time.
    created: u64,
    /// The model's name.
    model: String,
    /// One choice.
    choices: Vec<ChatChoice>,
    /// Token counts.
    usage: Usage,
}

/// A chat completion's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    /// 0.
    index: u32,
    /// The assistant's message.
    message: AssistantMessage,
    /// `stop` or `length`.
    finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    role: &'static str,
    /// Its text.
    content: String,
}

/// `/v1/embeddings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingList {
    /// `list`.
    object: &'static str,
    /// One vector per input, in order.
    data: Vec<EmbeddingItem>,
    /// The model's name.
    model: String,
    /// Token counts.
    usage: EmbeddingUsage,
}

/// One embedding.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingItem {
    /// `embedding`.
    object: &'static str,
    /// The input's index.
    index: usize,
    /// The vector, L2-normalised.
    embedding: Vec<f32>,
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Input tokens.
    prompt_tokens: usize,
    /// The same.
    total_tokens: usize,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn need_model(state: &AppState) -> Result<Arc<Llm>, ApiError> {
    state.llm().ok_or_else(|| {
        let why = super::ops::model_status(state);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_not_loaded",
            format!(
                "no model is loaded ({}): start insightd with --model <GGUF>",
                why.name()
            ),
        )
    })
}

fn take_slot(state: &AppState, endpoint: &str) -> Result<OwnedSemaphorePermit, ApiError> {
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
                "all {} generation slots are busy: retry later",
                state.config.model.max_concurrent
            ),
        )
    })
}

/// The errors every model endpoint can answer, in the document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum GenerationErrors {
    /// A malformed or out-of-range request.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// A missing or wrong bearer token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A body over `limits.body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Every generation slot is busy.
    #[response(status = 429)]
    Busy(ErrorBody),
    /// The generation failed (see the daemon's log).
    #[response(status = 500)]
    Failed(ErrorBody),
    /// No model is loaded.
    #[response(status = 503)]
    NoModel(ErrorBody),
}

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses(
    (status = 200, description = "the loaded model, if one is", body = ModelList),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .llm()
        .map(|llm| ModelCard {
            id: llm.name().to_string(),
            object: "model",
            created: 0,
            owned_by: "insightd",
            meta: ModelMeta {
                description: llm.model().description(),
                n_ctx: llm.config().ctx_size,
            },
        })
        .into_iter()
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

fn gen_request(
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

/// Starts a generation on a blocking thread; its text arrives on the returned receiver.
fn spawn_generation(
    state: &AppState,
    llm: Arc<Llm>,
    req: GenRequest,
    permit: OwnedSemaphorePermit,
    endpoint: &'static str,
    id: String,
) -> mpsc::Receiver<GenEvent> {
    let (tx, rx) = mpsc::channel(16);
    let state = state.clone();
    state
        .metrics
        .generations
        .get_or_create(&EndpointLabel {
            endpoint: endpoint.into(),
        })
        .inc();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let m = &state.metrics;
        m.generations_running.inc();
        let result = llm.generate_pooled(&req, &tx);
        m.generations_running.dec();
        match result {
            Ok(summary) => {
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
            Err(e) => {
                log::error!("generation {id} failed: {e:#}");
                let _ = tx.blocking_send(GenEvent::Failed(format!("{e}")));
            }
        }
    });
    rx
}

async fn collect(mut rx: mpsc::Receiver<GenEvent>) -> Result<(String, GenSummary), ApiError> {
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

fn usage(s: &GenSummary) -> Usage {
    Usage {
        prompt_tokens: s.prompt_tokens,
        completion_tokens: s.completion_tokens,
        total_tokens: s.prompt_tokens + s.completion_tokens,
    }
}

/// Turns generation events into SSE chunks (`make(text, finish)`), then `[DONE]`.
fn sse_response(
    rx: mpsc::Receiver<GenEvent>,
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
                    let (tx, rx2) = mpsc::channel(1);
                    let _ = tx.try_send(GenEvent::Failed(String::new()));
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

/// `POST /v1/completions`.
#[utoipa::path(post, path = "/v1/completions", tag = "openai", request_body = CompletionRequest, responses(
    (status = 200, description = "the completion; with `stream`, server-sent events of the same shape without `usage`, then `[DONE]`",
     content((Completion = "application/json"), (String = "text/event-stream"))),
    GenerationErrors))]
pub async fn completions(
    State(state): State<AppState>,
    Json(body): Json<CompletionRequest>,
) -> Result<Response, ApiError> {
    let llm = need_model(&state)?;
    let mut prompts = body.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::bad_request("give exactly one prompt"));
    }
    let prompt = prompts.remove(0);
    let (req, stream) = gen_request(&state, &llm, prompt, body.sampling)?;
    let permit = take_slot(&state, "completions")?;
    let id = format!("cmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = now_secs();
    let model = llm.name().to_string();
    let rx = spawn_generation(&state, llm, req, permit, "completions", id.clone());
    if stream {
        return Ok(sse_response(rx, None, move |text, finish| {
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                   "choices": [{"text": text.unwrap_or(""), "index": 0, "logprobs": null, "finish_reason": finish}]})
        }));
    }
    let (text, summary) = collect(rx).await?;
    Ok(Json(Completion {
        id,
        object: "text_completion",
        created,
        model,
        choices: vec![CompletionChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason: summary.finish_reason,
        }],
        usage: usage(&summary),
    })
    .into_response())
}

fn chat_messages(messages: Vec<Message>) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    messages
        .into_iter()
        .map(|m| {
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            match m.role.as_str() {
                "system" | "user" | "assistant" | "developer" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported role {other:?}: use system, user or assistant"
                    )))
                }
            }
            let role = if m.role == "developer" {
                "system".to_string()
            } else {
                m.role
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatRequest, responses(
    (status = 200, description = "the answer; with `stream`, server-sent `chat.completion.chunk` events, then `[DONE]`",
     content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
    GenerationErrors))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let llm = need_model(&state)?;
    let messages = chat_messages(body.messages)?;
    let prompt = llm
        .chat_prompt(&messages)
        .map_err(|e| ApiError::bad_request(format!("cannot apply the chat template: {e:#}")))?;
    let (req, stream) = gen_request(&state, &llm, prompt, body.sampling)?;
    let permit = take_slot(&state, "chat_completions")?;
    let id = format!("chatcmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = now_secs();
    let model = llm.name().to_string();
    let rx = spawn_generation(&state, llm, req, permit, "chat_completions", id.clone());
    if stream {
        let first = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        return Ok(sse_response(rx, Some(first), move |text, finish| {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None => json!({}),
            };
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        }));
    }
    let (text, summary) = collect(rx).await?;
    Ok(Json(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: text,
            },
            finish_reason: summary.finish_reason,
        }],
        usage: usage(&summary),
    })
    .into_response())
}

/// `POST /v1/embeddings`.
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest, responses(
    (status = 200, description = "one vector per input", body = EmbeddingList),
    GenerationErrors))]
pub async fn embeddings(
    State(state): State<AppState>,
    Json(body): Json<EmbeddingsRequest>,
) -> Result<Json<EmbeddingList>, ApiError> {
    let llm = need_model(&state)?;
    let input = body.input.into_vec();
    if input.is_empty() || input.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("input must hold non-empty strings"));
    }
    if input.len() > 64 {
        return Err(ApiError::bad_request("at most 64 inputs per request"));
    }
    let permit = take_slot(&state, "embeddings")?;
    state
        .metrics
        .generations
        .get_or_create(&EndpointLabel {
            endpoint: "embeddings".into(),
        })
        .inc();
    let model = llm.name().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        llm.embed(&input)
    })
    .await
    .map_err(|e| ApiError::internal("embeddings", &anyhow::anyhow!("task failed: {e}")))?;
    let (vectors, tokens) = result.map_err(|e| {
        if matches!(
            e.downcast_ref::<ember_llama::Error>(),
            Some(ember_llama::Error::PromptTooLong { .. })
        ) {
            ApiError::bad_request(format!("an input is too long: {e}"))
        } else {
            ApiError::internal("embeddings", &e)
        }
    })?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| EmbeddingItem {
            object: "embedding",
            index,
            embedding,
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}
