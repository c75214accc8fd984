//! llama-server's `GET /props` (the loaded model and the defaults of a generation, as its
//! clients and its web UI read them before they send work), `GET /slots` and the slot
//! actions `POST /slots/{id_slot}?action=save|restore|erase`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::{need_model, SYSTEM_FINGERPRINT};
use crate::engine::{SlotAction, SlotReply};
use crate::llm::Llm;
use crate::{ApiError, AppState, ErrorBody};

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

/// `GET /slots` (with `model.slots`): one entry per sequence the engine runs for the API
/// (`model.max_concurrent`), busy while a generation runs in it. A request is not bound to a
/// slot: the engine places it where the longest prefix of its prompt is cached. Without
/// `model.slots`, 501 as llama-server without `--slots`.
#[utoipa::path(get, path = "/slots", tag = "openai", responses(
    (status = 200, description = "the engine's API sequences, each busy while a generation runs in it", body = Vec<Slot>),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 501, description = "`model.slots` is off", body = ErrorBody),
    (status = 503, description = "no model is loaded", body = ErrorBody)))]
pub async fn slots(State(state): State<AppState>) -> Result<Json<Vec<Slot>>, ApiError> {
    if !state.config.slots {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_error",
            "the /slots endpoint is off: set model.slots = true in the config file",
        ));
    }
    let llm = need_model(&state)?;
    let cfg = llm.config();
    let SlotReply::List(states) = run_slot_action(&llm, SlotAction::List, "")
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the engine gave no slot list",
            )
        })?
    else {
        unreachable!("a list action answers with a list")
    };
    Ok(Json(
        states
            .iter()
            .take(cfg.max_concurrent)
            .enumerate()
            .map(|(id, state)| Slot {
                id,
                n_ctx: cfg.ctx_size,
                is_processing: state.running.is_some(),
            })
            .collect(),
    ))
}

/// `POST /slots/{id_slot}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlotActionQuery {
    /// `save`, `restore` or `erase`.
    action: Option<String>,
}

/// `POST /slots/{id_slot}?action=save|restore` body (none for `erase`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SlotFileRequest {
    /// A file name in `model.slot_save_path` (no folders).
    filename: String,
}

/// `POST /slots/{id_slot}?action=save|restore|erase` (llama-server's, with
/// `model.slot_save_path`): writes the slot's cache (its KV and tokens) to
/// `model.slot_save_path/filename`, replaces it with such a file (a prompt that starts with
/// its tokens then decodes only the rest), or empties it. An action on a slot a generation
/// holds waits until that ends. Without `model.slot_save_path`, 501 as llama-server without
/// `--slot-save-path`.
#[utoipa::path(post, path = "/slots/{id_slot}", tag = "openai",
    params(("id_slot" = String, Path, description = "0 to model.max_concurrent - 1"), SlotActionQuery),
    request_body(content = Option<SlotFileRequest>, description = "`{\"filename\"}` for save and restore"),
    responses(
        (status = 200, description = "save: `{id_slot, filename, n_saved, n_written, timings: {save_ms}}`; restore: `{id_slot, filename, n_restored, n_read, timings: {restore_ms}}`; erase: `{id_slot, n_erased}`", body = Object),
        (status = 400, description = "no such slot or action, a file name that is not one plain name, or a file that is not a saved slot of this model and context", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 500, description = "the file could not be written", body = ErrorBody),
        (status = 501, description = "`model.slot_save_path` is not set", body = ErrorBody),
        (status = 503, description = "no model is loaded", body = ErrorBody)))]
pub async fn slot_action(
    State(state): State<AppState>,
    Path(id_slot): Path<String>,
    Query(query): Query<SlotActionQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(folder) = state.config.slot_save_path.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_error",
            "slot actions are off: set model.slot_save_path (llama-server's --slot-save-path) in the config file",
        ));
    };
    let llm = need_model(&state)?;
    let slot = id_slot
        .parse::<usize>()
        .ok()
        .filter(|&slot| slot < llm.config().max_concurrent)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid slot ID {id_slot:?}: slots are 0 to {}",
                llm.config().max_concurrent.saturating_sub(1)
            ))
        })?;
    let action = query.action.unwrap_or_default();
    let filename = || -> Result<String, ApiError> {
        let body: SlotFileRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body must be {{\"filename\": \"NAME\"}}: {e}"))
        })?;
        if !plain_file_name(&body.filename) {
            return Err(ApiError::bad_request(format!(
                "Invalid filename {:?}: one plain file name (no folders, no leading dot, no control or reserved characters, at most 255 bytes)",
                body.filename
            )));
        }
        Ok(body.filename)
    };
    let (action, file) = match action.as_str() {
        "save" => {
            let file = filename()?;
            (
                SlotAction::Save {
                    slot,
                    path: folder.join(&file),
                },
                file,
            )
        }
        "restore" => {
            let file = filename()?;
            (
                SlotAction::Restore {
                    slot,
                    path: folder.join(&file),
                },
                file,
            )
        }
        "erase" => (SlotAction::Erase { slot }, String::new()),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid action {other:?}: save, restore or erase"
            )))
        }
    };
    let reply = run_slot_action(&llm, action, &file).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the engine gave no answer",
        )
    })?;
    Ok(Json(match reply {
        SlotReply::Saved(f, time) => json!({"id_slot": slot, "filename": file, "n_saved": f.tokens,
            "n_written": f.bytes, "timings": {"save_ms": time.as_secs_f64() * 1e3}}),
        SlotReply::Restored(f, time) => json!({"id_slot": slot, "filename": file,
            "n_restored": f.tokens, "n_read": f.bytes,
            "timings": {"restore_ms": time.as_secs_f64() * 1e3}}),
        SlotReply::Erased(n) => json!({"id_slot": slot, "n_erased": n}),
        SlotReply::List(_) => unreachable!("only GET /slots lists"),
    }))
}

/// Runs a slot action on the engine; its failures as llama-server answers them (the
/// server's folder is logged, not sent).
async fn run_slot_action(
    llm: &Llm,
    action: SlotAction,
    file: &str,
) -> Result<Option<SlotReply>, ApiError> {
    let what = match &action {
        SlotAction::List => "list the slots",
        SlotAction::Save { .. } => "save the slot",
        SlotAction::Restore { .. } => "restore the slot",
        SlotAction::Erase { .. } => "erase the slot",
    };
    let result = llm.slot(action).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("{e:#}"),
        )
    })?;
    match result {
        Ok(reply) => Ok(Some(reply)),
        Err(e) => {
            log::warn!("/slots: cannot {what}: {e}");
            Err(match e {
                ember_llama::Error::SequenceState {
                    action: "write",
                    reason,
                    ..
                } => ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    format!("Unable to save slot to {file:?}: {reason}"),
                ),
                ember_llama::Error::SequenceState { reason, .. } => {
                    ApiError::bad_request(format!("Unable to restore slot from {file:?}: {reason}"))
                }
                other => ApiError::bad_request(format!("cannot {what}: {other}")),
            })
        }
    }
}

/// One plain file name, as llama-server's `fs_validate_filename` would take it: no folder
/// parts, no leading dot (hidden files, `..`), no control or reserved characters, no
/// trailing space or dot, at most 255 bytes.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.ends_with([' ', '.'])
        && !name.starts_with(' ')
        && !name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
}

#[cfg(test)]
mod tests {
    use super::plain_file_name;

    #[test]
    fn only_plain_file_names_are_taken() {
        for good in ["slot0.bin", "a b.bin", "prompt-cache_1", "é.bin"] {
            assert!(plain_file_name(good), "{good}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "x.", " x", "a\nb", "c:x", "a\0b",
        ] {
            assert!(!plain_file_name(bad), "{bad:?}");
        }
        assert!(!plain_file_name(&"x".repeat(256)));
    }
}
