//! OpenAI-compatible endpoints served by the loaded model: `/v1/models`, `/v1/completions`,
//! `/v1/chat/completions` (both streamed as server-sent events with a final `[DONE]`, or not)
//! and `/v1/embeddings`.
//!
//! Every generation runs in the engine's batch ([`crate::engine`]): `model.max_concurrent`
//! at once, up to `model.queue` more waiting in order; a request beyond that is answered 429
//! at once (counted in [`ServeMetrics::generations_rejected`](crate::ServeMetrics::generations_rejected)). One whose client disconnects
//! leaves the batch at the next step (counted in [`ServeMetrics::generations_cancelled`](crate::ServeMetrics::generations_cancelled) and
//! logged).

mod chat;
mod generation;
mod native;
mod props;
mod request;
mod response;
mod sse;
mod tokens;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub use request::{
    ApplyTemplateRequest, ChatRequest, CompletionRequest, Content, EmbeddingsRequest,
    EncodingFormat, FormatKind, JsonSchemaFormat, Message, OneOrMany, ResponseFormat, Sampling,
    StreamOptions,
};
pub use response::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatLogprobs, ChatTokenLogprob, Completion,
    CompletionChoice, CompletionLogprobs, Embedding, EmbeddingItem, EmbeddingList, EmbeddingUsage,
    FunctionCall, ModelCard, ModelList, ModelMeta, ToolCall, TopLogprob, Usage,
};

use crate::llm::Llm;
use crate::metrics::EndpointLabel;
use crate::state::ModelState;
use crate::{ApiError, AppState, ErrorBody};
use chat::render;
use generation::{
    collect_all, gen_request, spawn_choices, summary_of, take_slot, Delivery, PromptInput, NEXT_ID,
};
pub use native::{__path_completion, completion, NativeCompletionRequest};
pub use props::{
    __path_props, __path_slot_action, __path_slots, props, slot_action, slots, Slot,
    SlotActionQuery, SlotFileRequest,
};
use response::{chat_logprobs, completion_logprobs, timings, usage};
use sse::{sse_response, Ending, Step, UsageChunk};
use tokens::ModelOnlyErrors;
pub use tokens::{
    __path_detokenize, __path_tokenize, detokenize, tokenize, DetokenizeRequest,
    DetokenizeResponse, TokenEntry, TokenizeRequest, TokenizeResponse,
};

/// `system_fingerprint` of every completion: which server build answered (llama-server's is
/// `b<build>-<commit>`).
pub(crate) const SYSTEM_FINGERPRINT: &str = concat!("b", env!("CARGO_PKG_VERSION"), "-ember-serve");

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn need_model(state: &AppState) -> Result<Arc<Llm>, ApiError> {
    state.llm().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_not_loaded",
            format!(
                "no model is loaded ({}): {}",
                state.model_state().name(),
                state.no_model_hint
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
    /// Every sequence is running and the queue is full.
    #[response(status = 429)]
    Busy(ErrorBody),
    /// The generation failed (see the daemon's log).
    #[response(status = 500)]
    Failed(ErrorBody),
    /// No model is loaded.
    #[response(status = 503)]
    NoModel(ErrorBody),
}

/// `/health`'s answer while the model serves.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HealthOk {
    /// `ok`.
    status: &'static str,
}

/// `GET /health` (also `/v1/health`): llama-server's probe, which its clients poll before
/// they send work: 200 once the model is loaded, or when none is configured (as llama-server's
/// router mode without a model: the server is up and serves what it has; generations then
/// answer 503), else 503 in llama-server's error type (`unavailable_error`) with the reason
/// (loading, failed). No token needed, as for `/healthz`.
#[utoipa::path(get, path = "/health", tag = "openai", responses(
    (status = 200, description = "the model is loaded and serves, or no model is configured", body = HealthOk),
    (status = 503, description = "the model is loading or failed to load", body = ErrorBody)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let why = match state.model_state() {
        ModelState::Ready(_) | ModelState::None => {
            return Json(HealthOk { status: "ok" }).into_response()
        }
        ModelState::Loading(path) => format!("Loading model {}", path.display()),
        ModelState::Failed { path, error } => {
            format!("model {} failed to load: {error}", path.display())
        }
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", why).into_response()
}

/// `GET /v1/models` (also `/models`, llama-server's alias).
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
            owned_by: state.owned_by.clone(),
            meta: ModelMeta {
                description: llm.model().description(),
                n_ctx: llm.config().ctx_size,
            },
            aliases: llm.config().aliases.clone(),
            tags: llm.config().tags.clone(),
        })
        .into_iter()
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

/// The last chunk of a stream with `stream_options.include_usage`: OpenAI's shape, no
/// choices and the request's `usage`, with llama-server's `timings`.
fn usage_chunk(
    delivery: Delivery,
    id: &str,
    object: &'static str,
    created: u64,
    model: &str,
) -> Option<UsageChunk> {
    if !delivery.include_usage {
        return None;
    }
    let (id, model) = (id.to_string(), model.to_string());
    Some(Box::new(move |summary| {
        json!({"id": id, "object": object, "created": created, "model": model,
               "system_fingerprint": SYSTEM_FINGERPRINT,
               "choices": [], "usage": usage(summary), "timings": timings(summary)})
    }))
}

/// `POST /v1/completions`.
#[utoipa::path(post, path = "/v1/completions", tag = "openai", request_body = CompletionRequest, responses(
    (status = 200, description = "the completion (`n` choices); with `stream`, server-sent events of the same shape without `usage` (with `stream_options.include_usage`, a last one with only `usage`), then `[DONE]`",
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
    let logprobs = body.logprobs.map(|n| n as usize);
    let (req, delivery) = gen_request(
        &state,
        &llm,
        PromptInput::Text(prompt),
        body.sampling,
        logprobs,
    )?;
    let id = format!("cmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = now_secs();
    let model = llm.name().to_string();
    let mut choices = spawn_choices(&state, &llm, req, delivery.n, "completions", &id)?;
    if delivery.stream {
        let usage_chunk = usage_chunk(delivery, &id, "text_completion", created, &model);
        let mut offset = 0;
        return Ok(sse_response(
            choices.remove(0),
            None,
            move |step: Step<'_>| {
                let lp = logprobs.map(|_| completion_logprobs(step.logprobs, offset));
                offset += step.text.map_or(0, |t| t.chars().count());
                let finish = step.done.map(|s| s.finish_reason);
                json!({"id": id, "object": "text_completion", "created": created, "model": model,
                   "system_fingerprint": SYSTEM_FINGERPRINT,
                   "choices": [{"text": step.text.unwrap_or(""), "index": 0, "logprobs": lp, "finish_reason": finish}]})
            },
            usage_chunk,
            Ending::Done,
        ));
    }
    let outs = collect_all(choices).await?;
    let summary = summary_of(&outs);
    Ok(Json(Completion {
        id,
        object: "text_completion",
        created,
        model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: outs
            .into_iter()
            .zip(0..)
            .map(|(out, index)| CompletionChoice {
                index,
                logprobs: logprobs.map(|_| completion_logprobs(&out.tokens, 0)),
                text: out.text,
                finish_reason: out.summary.finish_reason,
            })
            .collect(),
        usage: usage(&summary),
        timings: timings(&summary),
    })
    .into_response())
}

/// `POST /v1/chat/completions` (also `/chat/completions`, llama-server's alias).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatRequest, responses(
    (status = 200, description = "the answer (`n` choices); with `stream`, server-sent `chat.completion.chunk` events (with `stream_options.include_usage`, a last one with only `usage` and `timings`), then `[DONE]`",
     content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
    GenerationErrors))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let llm = need_model(&state)?;
    let rendered = render(&llm, &body.messages, body.end, &body.chat)?;
    let logprobs = match (body.logprobs.unwrap_or(false), body.top_logprobs) {
        (true, top) => Some(top.unwrap_or(0) as usize),
        (false, None) => None,
        (false, Some(_)) => return Err(ApiError::bad_request("top_logprobs needs logprobs: true")),
    };
    let verbose =
        (body.verbose || state.config.verbose).then(|| json!({"prompt": rendered.prompt}));
    let (mut req, delivery) = gen_request(
        &state,
        &llm,
        PromptInput::Text(rendered.prompt.clone()),
        body.sampling,
        logprobs,
    )?;
    rendered.apply_to(&mut req)?;
    let id = format!("chatcmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = now_secs();
    let model = llm.name().to_string();
    let mut choices = spawn_choices(&state, &llm, req, delivery.n, "chat_completions", &id)?;
    if delivery.stream {
        let usage_chunk = usage_chunk(delivery, &id, "chat.completion.chunk", created, &model);
        // As llama-server: the first chunk opens the assistant's message with no content yet.
        let first = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": null}, "finish_reason": null}]});
        let mut reader = rendered.reader();
        let mut called = false;
        return Ok(sse_response(
            choices.remove(0),
            Some(first),
            move |step: Step<'_>| {
                let delta = match (&mut reader, step.text) {
                    (Some(reader), text) => {
                        let delta = reader.delta(text);
                        called |= delta.contains_key("tool_calls");
                        if delta.is_empty() && text.is_some() {
                            // The parser holds this text back (a tag begun): as llama-server,
                            // no chunk.
                            return Value::Null;
                        }
                        Value::Object(delta)
                    }
                    (None, Some(t)) => json!({"content": t}),
                    (None, None) => json!({}),
                };
                let lp = logprobs.map(|_| chat_logprobs(step.logprobs));
                let finish = step.done.map(|s| finish_reason(s.finish_reason, called));
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": SYSTEM_FINGERPRINT,
                   "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}]})
            },
            usage_chunk,
            Ending::Done,
        ));
    }
    let outs = collect_all(choices).await?;
    let summary = summary_of(&outs);
    Ok(Json(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: outs
            .into_iter()
            .zip(0..)
            .map(|(out, index)| {
                let message = assistant_message(rendered.reader(), out.text);
                let called = message.tool_calls.is_some();
                ChatChoice {
                    index,
                    logprobs: logprobs.map(|_| chat_logprobs(&out.tokens)),
                    message,
                    finish_reason: finish_reason(out.summary.finish_reason, called),
                }
            })
            .collect(),
        usage: usage(&summary),
        timings: timings(&summary),
        verbose,
    })
    .into_response())
}

/// OpenAI's `tool_calls` when the answer called a tool and the model ended it itself.
fn finish_reason(reason: &'static str, called: bool) -> &'static str {
    if called && reason == "stop" {
        "tool_calls"
    } else {
        reason
    }
}

/// The assistant's message of a complete text, read by the template's parser when it has one.
fn assistant_message(reader: Option<chat::AnswerReader>, text: String) -> AssistantMessage {
    let Some(reader) = reader else {
        return AssistantMessage {
            role: "assistant",
            content: Some(text),
            reasoning_content: None,
            tool_calls: None,
        };
    };
    let (answer, ids) = reader.read_all(&text);
    let calls: Vec<ToolCall> = answer
        .calls
        .into_iter()
        .zip(ids)
        .map(|((name, arguments), id)| ToolCall {
            id,
            kind: "function",
            function: FunctionCall { name, arguments },
        })
        .collect();
    AssistantMessage {
        role: "assistant",
        content: (calls.is_empty() || !answer.content.is_empty()).then_some(answer.content),
        reasoning_content: (!answer.reasoning.is_empty()).then_some(answer.reasoning),
        tool_calls: (!calls.is_empty()).then_some(calls),
    }
}

/// `/apply-template` answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AppliedTemplate {
    /// The chat rendered by the model's template: the prompt a chat completion decodes.
    prompt: String,
}

/// `POST /apply-template` (llama-server's): the prompt the chat template makes of `messages`,
/// without generating.
#[utoipa::path(post, path = "/apply-template", tag = "openai", request_body = ApplyTemplateRequest, responses(
    (status = 200, description = "the rendered prompt", body = AppliedTemplate),
    ModelOnlyErrors))]
pub async fn apply_template(
    State(state): State<AppState>,
    Json(body): Json<ApplyTemplateRequest>,
) -> Result<Json<AppliedTemplate>, ApiError> {
    let llm = need_model(&state)?;
    let prompt = render(&llm, &body.messages, body.end, &body.chat)?.prompt;
    Ok(Json(AppliedTemplate { prompt }))
}

/// `/chat/completions/input_tokens` answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InputTokens {
    /// Tokens of the chat's prompt.
    input_tokens: usize,
}

/// `POST /chat/completions/input_tokens` (llama-server's; also under `/v1`): how many tokens
/// the prompt of this chat request holds, without generating.
#[utoipa::path(post, path = "/v1/chat/completions/input_tokens", tag = "openai", request_body = ChatRequest, responses(
    (status = 200, description = "the prompt's token count", body = InputTokens),
    ModelOnlyErrors))]
pub async fn input_tokens(
    State(state): State<AppState>,
    Json(body): Json<ChatRequest>,
) -> Result<Json<InputTokens>, ApiError> {
    let llm = need_model(&state)?;
    let prompt = render(&llm, &body.messages, body.end, &body.chat)?.prompt;
    let tokens = llm
        .model()
        .tokenize(&prompt, true, true)
        .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))?;
    Ok(Json(InputTokens {
        input_tokens: tokens.len(),
    }))
}

/// `POST /v1/embeddings` (also `/embeddings`, llama-server's alias).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest, responses(
    (status = 200, description = "one vector per input", body = EmbeddingList),
    GenerationErrors))]
pub async fn embeddings(
    State(state): State<AppState>,
    Json(body): Json<EmbeddingsRequest>,
) -> Result<Json<EmbeddingList>, ApiError> {
    let format = body.encoding_format;
    let (vectors, tokens, model) = embed(&state, body.input.into_vec()).await?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: Embedding::new(vector, format),
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

/// `POST /embedding` body (llama-server's own embeddings).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct NativeEmbeddingRequest {
    /// The text, or 1 to 64 texts (OpenAI's field).
    input: Option<OneOrMany>,
    /// The same, llama-server's field.
    content: Option<OneOrMany>,
}

/// One text's vector, llama-server's shape: the pooled vector as the one row of `embedding`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NativeEmbedding {
    /// Which input.
    index: usize,
    /// One row: the pooled, normalised vector.
    embedding: Vec<Vec<f32>>,
}

/// `POST /embedding` (also `/embeddings`, as llama-server routes them): one entry per input.
#[utoipa::path(post, path = "/embedding", tag = "openai", request_body = NativeEmbeddingRequest, responses(
    (status = 200, description = "one vector per input", body = Vec<NativeEmbedding>),
    GenerationErrors))]
pub async fn native_embeddings(
    State(state): State<AppState>,
    Json(body): Json<NativeEmbeddingRequest>,
) -> Result<Json<Vec<NativeEmbedding>>, ApiError> {
    let input = match (body.input, body.content) {
        (Some(i), None) | (None, Some(i)) => i.into_vec(),
        _ => return Err(ApiError::bad_request("give input or content (one of them)")),
    };
    let (vectors, _, _) = embed(&state, input).await?;
    Ok(Json(
        vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| NativeEmbedding {
                index,
                embedding: vec![v],
            })
            .collect(),
    ))
}

/// Embeds each input: the vectors, the tokens read, the model's name.
async fn embed(
    state: &AppState,
    input: Vec<String>,
) -> Result<(Vec<Vec<f32>>, usize, String), ApiError> {
    let llm = need_model(state)?;
    if input.is_empty() || input.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("input must hold non-empty strings"));
    }
    if input.len() > 64 {
        return Err(ApiError::bad_request("at most 64 inputs per request"));
    }
    let permit = take_slot(state, "embeddings")?;
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
    Ok((vectors, tokens, model))
}
