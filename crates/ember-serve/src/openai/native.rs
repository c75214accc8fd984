//! llama-server's own completion API, `POST /completion` (also `/completions`, as llama-server
//! routes it): its request fields (`n_predict`, `n_probs`, `ignore_eos`, `return_tokens`,
//! `response_fields`, prompts as token ids) and its answer
//! (`content`, `tokens`, `stop`, `stop_type`, `generation_settings`, `timings`,
//! `completion_probabilities`), streamed as chunks of the same shape ending with one whose
//! `stop` is true, with no `[DONE]`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ember_llama::Token;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::generation::{collect, gen_request, prompt_tokens, spawn_all, PromptInput, NEXT_ID};
use super::request::Sampling;
use super::response::timings;
use super::sse::{sse_response, Ending, Step};
use super::{need_model, GenerationErrors};
use crate::llm::{GenRequest, GenSummary, Llm, TokenLogprobs, TokenText};
use crate::{ApiError, AppState};

/// At most this many prompts in one request (each is its own generation).
const MAX_PROMPTS: usize = 16;

/// `POST /completion` body: llama-server's fields, and every sampling field of
/// `/v1/completions`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NativeCompletionRequest {
    /// The prompt: a text, a list of token ids (texts may be mixed in: they are tokenized in
    /// place), `{"prompt_string": text}`, or a list of those, each answered in a list.
    #[schema(value_type = Value)]
    prompt: Value,
    /// Tokens to generate at most: -1 (default) is `model.default_max_tokens`; more than
    /// `model.max_tokens` is that bound, as llama-server caps by its `--n-predict`.
    #[schema(minimum = -1)]
    n_predict: Option<i64>,
    /// With each generated token, its log-probability and this many most likely
    /// alternatives (0 to 20) in `completion_probabilities`.
    #[schema(minimum = 0, maximum = 20)]
    n_probs: Option<usize>,
    /// llama-server's probabilities after the sampler chain: not offered (refused when
    /// true); `n_probs` reports the model's own distribution.
    #[serde(default)]
    post_sampling_probs: bool,
    /// Ban the end-of-generation tokens: the text runs to `n_predict` (listed in
    /// `generation_settings.logit_bias`).
    #[serde(default)]
    ignore_eos: bool,
    /// Return the generated token ids in `tokens`.
    #[serde(default)]
    return_tokens: bool,
    /// Answer only these fields (`a/b` reaches into objects), each under its path.
    #[serde(default)]
    response_fields: Vec<String>,
    /// Accepted: a prompt's prefix shared with earlier ones is always reused from the KV cache.
    #[allow(dead_code)]
    cache_prompt: Option<bool>,
    /// Accepted: the engine's sequences are not bound to slots.
    #[allow(dead_code)]
    id_slot: Option<i64>,
    #[serde(flatten)]
    sampling: Sampling,
}

/// `POST /completion` (also `/completions`): llama-server's completion API.
#[utoipa::path(post, path = "/completion", tag = "openai", request_body = NativeCompletionRequest, responses(
    (status = 200, description = "llama-server's answer (a list of them for a list of prompts); with `stream`, server-sent chunks of `content` and `tokens`, the last with `stop: true` and the rest of the answer",
     content((Value = "application/json"), (String = "text/event-stream"))),
    GenerationErrors))]
pub async fn completion(
    State(state): State<AppState>,
    Json(mut body): Json<NativeCompletionRequest>,
) -> Result<Response, ApiError> {
    let llm = need_model(&state)?;
    if body.post_sampling_probs {
        return Err(ApiError::bad_request(
            "post_sampling_probs is not supported: n_probs reports the model's own log-probabilities",
        ));
    }
    if body.n_probs.is_some_and(|n| n > 20) {
        return Err(ApiError::bad_request("n_probs must be 0..=20"));
    }
    let cfg = &state.config;
    if body.sampling.max_tokens.is_none() {
        body.sampling.max_tokens = match body.n_predict {
            None | Some(-1) => None,
            Some(n) if n > 0 => Some((n as usize).min(cfg.max_tokens)),
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "n_predict must be -1 (model.default_max_tokens) or 1 and more, not {n}"
                )))
            }
        };
    }
    let prompts = prompts(&llm, &body.prompt)?;
    let many = matches!(prompts, Prompts::Many(_));
    let prompts = match prompts {
        Prompts::One(p) => vec![p],
        Prompts::Many(v) => v,
    };
    if many && body.sampling.stream {
        return Err(ApiError::bad_request(
            "stream takes one prompt: send one request per prompt",
        ));
    }
    let n_probs = body.n_probs.filter(|&n| n > 0);
    let stream = body.sampling.stream;
    // The sampling is checked and built once, with the first prompt; each other prompt is
    // only checked as a prompt.
    let mut prompts = prompts.into_iter();
    let first = prompts.next().expect("prompts() gives at least one");
    let (mut req, _) = gen_request(
        &state,
        &llm,
        PromptInput::Tokens(first),
        body.sampling,
        n_probs,
    )?;
    if body.ignore_eos {
        req.stages
            .logit_bias
            .extend(llm.eog_tokens().iter().map(|&t| (t, f32::NEG_INFINITY)));
    }
    req.token_ids = true;
    let settings = generation_settings(&req, n_probs, body.ignore_eos, stream);
    let mut reqs = vec![req.clone()];
    for tokens in prompts {
        let (_, tokens) = prompt_tokens(&state, &llm, PromptInput::Tokens(tokens))?;
        reqs.push(GenRequest {
            prompt_tokens: Some(tokens),
            ..req.clone()
        });
    }
    let model = llm.name().to_string();
    let finals: Vec<Final> = reqs
        .iter()
        .enumerate()
        .map(|(index, req)| {
            let tokens = req.prompt_tokens.as_deref().unwrap_or_default();
            Final {
                index,
                model: model.clone(),
                settings: settings.clone(),
                prompt: prompt_text(&llm, tokens),
                prompt_n: tokens.len(),
            }
        })
        .collect();
    let id = format!("cmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let rxs = spawn_all(&state, &llm, reqs, "completion", &id)?;
    let mut receivers: Vec<_> = rxs.into_iter().zip(finals).collect();
    let fields = body.response_fields;
    let return_tokens = body.return_tokens;
    if stream {
        let (rx, last) = receivers.remove(0);
        return Ok(sse_response(
            rx,
            None,
            move |step: Step<'_>| match step.done {
                None => {
                    let mut chunk = json!({
                        "index": last.index,
                        "content": step.text.unwrap_or(""),
                        "tokens": ids(step.ids),
                        "stop": false,
                        "tokens_evaluated": last.prompt_n,
                    });
                    if n_probs.is_some() {
                        chunk["completion_probabilities"] = probabilities(step.logprobs);
                    }
                    chunk
                }
                Some(summary) => {
                    let text = step.text.unwrap_or("");
                    let v = last.answer(text, step.ids, false, summary, None);
                    select(v, &fields)
                }
            },
            None,
            Ending::LastChunk,
        ));
    }
    let mut answers = Vec::with_capacity(receivers.len());
    for (rx, last) in receivers {
        let out = collect(rx).await?;
        let probs = n_probs.map(|_| probabilities(&out.tokens));
        let v = last.answer(&out.text, &out.ids, return_tokens, &out.summary, probs);
        answers.push(select(v, &fields));
    }
    let body = if many {
        Value::Array(answers)
    } else {
        answers.remove(0)
    };
    Ok(Json(body).into_response())
}

/// What the last answer of one prompt needs besides the generation.
struct Final {
    index: usize,
    model: String,
    settings: Value,
    prompt: String,
    prompt_n: usize,
}

impl Final {
    /// llama-server's final answer (`stop: true`).
    fn answer(
        &self,
        content: &str,
        tokens: &[Token],
        return_tokens: bool,
        summary: &GenSummary,
        probs: Option<Value>,
    ) -> Value {
        let mut v = json!({
            "index": self.index,
            "content": content,
            "tokens": if return_tokens { ids(tokens) } else { json!([]) },
            "stop": true,
            "model": self.model,
            "tokens_predicted": summary.completion_tokens,
            "tokens_evaluated": self.prompt_n,
            "generation_settings": self.settings,
            "prompt": self.prompt,
            "has_new_line": content.contains('\n'),
            // A prompt the context cannot hold is refused, never cut.
            "truncated": false,
            "stop_type": summary.stop_type,
            "stopping_word": "",
            "tokens_cached": summary.prompt_tokens + summary.completion_tokens,
            "timings": timings(summary),
        });
        if let Some(p) = probs {
            v["completion_probabilities"] = p;
        }
        v
    }
}

/// The answer reduced to `response_fields` (all of it when none are given).
fn select(v: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return v;
    }
    let mut out = Map::new();
    for path in fields {
        let mut current = &v;
        let found = path.split('/').all(|key| match current.get(key) {
            Some(next) => {
                current = next;
                true
            }
            None => false,
        });
        if found {
            out.insert(path.clone(), current.clone());
        }
    }
    Value::Object(out)
}

fn ids(tokens: &[Token]) -> Value {
    tokens.iter().map(|t| t.0).collect()
}

/// `completion_probabilities`: each token with its log-probability, bytes and alternatives.
fn probabilities(tokens: &[TokenLogprobs]) -> Value {
    let one = |t: &TokenText| json!({"id": t.id, "token": t.text, "logprob": t.logprob, "bytes": t.bytes});
    tokens
        .iter()
        .map(|t| {
            let mut v = one(&t.sampled);
            v["top_logprobs"] = t.top.iter().map(one).collect();
            v
        })
        .collect()
}

/// `generation_settings`: the sampling this generation runs with, in llama-server's names
/// (a stage that is off shows its neutral value).
fn generation_settings(
    req: &GenRequest,
    n_probs: Option<usize>,
    ignore_eos: bool,
    stream: bool,
) -> Value {
    let st = &req.stages;
    let p = st.penalties;
    // JSON has no -inf: llama-server writes a banned token's bias as null.
    let bias: Vec<Value> = st
        .logit_bias
        .iter()
        .map(|&(t, b)| json!({"token": t.0, "bias": if b.is_finite() { json!(b) } else { Value::Null }}))
        .collect();
    json!({
        "seed": req.seed,
        "temperature": req.temperature,
        "top_k": st.top_k.unwrap_or(0),
        "top_p": req.top_p,
        "min_p": st.min_p.unwrap_or(0.0),
        "typical_p": st.typical_p.unwrap_or(1.0),
        "repeat_last_n": p.map_or(64, |p| p.last_n),
        "repeat_penalty": p.map_or(1.0, |p| p.repeat),
        "presence_penalty": p.map_or(0.0, |p| p.presence),
        "frequency_penalty": p.map_or(0.0, |p| p.frequency),
        "stop": req.stops,
        "max_tokens": req.max_tokens,
        "n_predict": req.max_tokens,
        "ignore_eos": ignore_eos,
        "stream": stream,
        "logit_bias": bias,
        "n_probs": n_probs.unwrap_or(0),
        "grammar": req.grammar.as_deref().unwrap_or(""),
    })
}

/// The prompt's text as llama-server answers it: the tokens rendered, special ones included.
fn prompt_text(llm: &Llm, tokens: &[Token]) -> String {
    llm.model()
        .detokenize(tokens, false, true)
        .unwrap_or_else(|_| {
            let bytes: Vec<u8> = tokens
                .iter()
                .flat_map(|&t| llm.model().token_to_piece(t, true).unwrap_or_default())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// One prompt, or a list answered in a list.
enum Prompts {
    One(Vec<Token>),
    Many(Vec<Vec<Token>>),
}

/// llama-server's prompt forms: a text; `{"prompt_string": text}` (its multimodal form,
/// without media here); a list of token ids with texts mixed in (one sequence: the first
/// element, when a text, gets the BOS); a list of any of those (several prompts).
fn prompts(llm: &Llm, prompt: &Value) -> Result<Prompts, ApiError> {
    match prompt {
        Value::Array(items)
            if items.iter().any(Value::is_number)
                && items.iter().all(|v| v.is_number() || v.is_string()) =>
        {
            Ok(Prompts::One(one_prompt(llm, prompt)?))
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("prompt: the list is empty"));
            }
            if items.len() > MAX_PROMPTS {
                return Err(ApiError::bad_request(format!(
                    "prompt: at most {MAX_PROMPTS} prompts per request"
                )));
            }
            let many = items
                .iter()
                .map(|p| one_prompt(llm, p))
                .collect::<Result<_, _>>()?;
            Ok(Prompts::Many(many))
        }
        _ => Ok(Prompts::One(one_prompt(llm, prompt)?)),
    }
}

fn one_prompt(llm: &Llm, prompt: &Value) -> Result<Vec<Token>, ApiError> {
    let model = llm.model();
    let text = |t: &str, first: bool| {
        model
            .tokenize(t, first, true)
            .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))
    };
    match prompt {
        Value::String(t) => text(t, true),
        Value::Object(o) => match o.get("prompt_string") {
            Some(Value::String(t)) if o.get("multimodal_data").is_none() => text(t, true),
            Some(Value::String(_)) => Err(ApiError::bad_request(
                "prompt: multimodal_data is not supported: the model takes text only",
            )),
            _ => Err(ApiError::bad_request(
                "prompt: an object prompt needs a prompt_string text",
            )),
        },
        Value::Array(items) => {
            let mut tokens = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Number(n) => {
                        let id = n
                            .as_i64()
                            .and_then(|id| i32::try_from(id).ok())
                            .ok_or_else(|| {
                                ApiError::bad_request(format!("prompt: {n} is not a token id"))
                            })?;
                        tokens.push(Token(id));
                    }
                    Value::String(t) => tokens.extend(text(t, i == 0)?),
                    _ => {
                        return Err(ApiError::bad_request(
                            "prompt: a token list holds token ids and texts",
                        ))
                    }
                }
            }
            Ok(tokens)
        }
        _ => Err(ApiError::bad_request(
            "prompt: a text, a list of token ids, or a list of prompts",
        )),
    }
}
