//! llama-server's `GET /props` (the loaded model and the defaults of a generation, as its
//! clients and its web UI read them before they send work) and `GET /slots`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{need_model, SYSTEM_FINGERPRINT};
use crate::http::{ApiError, AppState, ErrorBody};

/// `GET /props`: `default_generation_settings` (`n_ctx` per sequence, `params`: the sampling
/// a request without fields gets), `total_slots` (`model.max_concurrent`), `model_alias`,
/// `model_path`, `modalities`, `chat_template` (a built-in name or the model's own text),
/// `bos_token`/`eos_token` and `build_info`. Setting them (`POST /props`) is not offered.
#[utoipa::path(get, path = "/props", tag = "openai", responses(
    (status = 200, description = "llama-server's properties of the loaded model", body = Object),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 503, description = "no model is loaded", body = ErrorBody)))]
pub async fn props(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let llm = need_model(&state)?;
    let cfg = llm.config();
    let model = llm.model();
    let special = model.special_tokens();
    let piece = |t: Option<ember_llama::Token>| {
        t.and_then(|t| model.token_to_piece(t, true).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    // llama-server writes a random seed as LLAMA_DEFAULT_SEED (u32::MAX).
    let seed = cfg.seed.unwrap_or(u32::MAX);
    let params = json!({
        "seed": seed,
        "temperature": cfg.temperature,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_last_n": 64,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_tokens": cfg.default_max_tokens,
        "n_predict": cfg.default_max_tokens,
        "stream": false,
        "n_probs": 0,
    });
    Ok(Json(json!({
        "default_generation_settings": {
            "n_ctx": cfg.ctx_size,
            "params": params,
        },
        "total_slots": cfg.max_concurrent,
        "model_alias": llm.name(),
        "model_path": model.path().display().to_string(),
        "modalities": {"vision": false, "audio": false},
        "chat_template": llm.template(),
        "bos_token": piece(special.bos),
        "eos_token": piece(special.eos),
        "build_info": SYSTEM_FINGERPRINT,
        "endpoint_slots": cfg.slots,
        "endpoint_props": false,
        "endpoint_metrics": true,
    })))
}

/// One entry of `/slots`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Slot {
    /// 0 to `model.max_concurrent` - 1.
    id: usize,
    /// Tokens one sequence holds at most (`model.ctx_size`).
    n_ctx: u32,
    /// Whether a generation runs in it.
    is_processing: bool,
}

/// `GET /slots` (with `model.slots`): one entry per sequence the engine runs at once
/// (`model.max_concurrent`). insightd's generations are not bound to slots: the first N
/// entries are busy while N generations run (admitted, not waiting in the queue). Without
/// `model.slots`, 501 as llama-server without `--slots`.
#[utoipa::path(get, path = "/slots", tag = "openai", responses(
    (status = 200, description = "the engine's sequences, the first N busy while N generations run", body = Vec<Slot>),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 501, description = "`model.slots` is off", body = ErrorBody),
    (status = 503, description = "no model is loaded", body = ErrorBody)))]
pub async fn slots(State(state): State<AppState>) -> Result<Json<Vec<Slot>>, ApiError> {
    if !state.config.model.slots {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_error",
            "the /slots endpoint is off: set model.slots = true in the config file",
        ));
    }
    let llm = need_model(&state)?;
    let cfg = llm.config();
    let m = &state.metrics;
    let running = m.generations_running.get() - m.engine.queue.get();
    let busy = usize::try_from(running.max(0)).unwrap_or(0);
    Ok(Json(
        (0..cfg.max_concurrent)
            .map(|id| Slot {
                id,
                n_ctx: cfg.ctx_size,
                is_processing: id < busy,
            })
            .collect(),
    ))
}
