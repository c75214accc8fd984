//! `/tokenize` and `/detokenize` (as llama-server names them): the loaded model's
//! tokenizer, for clients that count or build prompts in tokens.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::need_model;
use crate::{ApiError, AppState, ErrorBody};

/// `POST /tokenize` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenizeRequest {
    /// The text.
    content: String,
    /// Add the model's BOS/EOS as a prompt gets them (default false).
    #[serde(default)]
    add_special: bool,
    /// Turn special-token text such as `<start_of_turn>` into those tokens (default false).
    #[serde(default)]
    parse_special: bool,
    /// Answer each token as `{"id", "piece"}` (default false: ids only).
    #[serde(default)]
    with_pieces: bool,
}

/// `/tokenize` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenizeResponse {
    /// Token ids, or with `with_pieces` each token's id and text.
    tokens: Vec<TokenEntry>,
}

/// One token of a `/tokenize` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenEntry {
    /// Its id.
    Id(i32),
    /// With `with_pieces`: its id and text.
    Piece {
        /// Its id.
        id: i32,
        /// Its text, or its bytes when they are not UTF-8 on their own (part of a character).
        #[schema(value_type = Value)]
        piece: serde_json::Value,
    },
}

/// `POST /detokenize` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DetokenizeRequest {
    /// Token ids, each in the vocabulary.
    tokens: Vec<i32>,
}

/// `/detokenize` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetokenizeResponse {
    /// The text (special tokens rendered as their text).
    content: String,
}

/// The errors of the endpoints that use the model without generating (the tokenizer's, and
/// those that render a chat: `/apply-template`, `/chat/completions/input_tokens`), in the
/// document, as `GenerationErrors` is for the generation endpoints: no queue or generation,
/// so no 429 or 500.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum ModelOnlyErrors {
    /// What the tokenizer or the chat template refuses: text it cannot tokenize, a token
    /// outside the vocabulary, tokens whose bytes are not UTF-8, a malformed chat.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// A missing or wrong bearer token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A body over `limits.body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// No model is loaded.
    #[response(status = 503)]
    NoModel(ErrorBody),
}

/// `POST /tokenize`.
#[utoipa::path(post, path = "/tokenize", tag = "openai", request_body = TokenizeRequest, responses(
    (status = 200, description = "the text's tokens", body = TokenizeResponse),
    ModelOnlyErrors))]
pub async fn tokenize(
    State(state): State<AppState>,
    Json(body): Json<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let llm = need_model(&state)?;
    let tokens = llm
        .model()
        .tokenize(&body.content, body.add_special, body.parse_special)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let model = llm.model();
    let tokens = tokens
        .iter()
        .map(|&t| {
            if !body.with_pieces {
                return TokenEntry::Id(t.0);
            }
            let bytes = model.token_to_piece(t, true).unwrap_or_default();
            let piece = match String::from_utf8(bytes) {
                Ok(text) => serde_json::Value::String(text),
                Err(e) => e.into_bytes().into(),
            };
            TokenEntry::Piece { id: t.0, piece }
        })
        .collect();
    Ok(Json(TokenizeResponse { tokens }))
}

/// `POST /detokenize`.
#[utoipa::path(post, path = "/detokenize", tag = "openai", request_body = DetokenizeRequest, responses(
    (status = 200, description = "the tokens' text", body = DetokenizeResponse),
    ModelOnlyErrors))]
pub async fn detokenize(
    State(state): State<AppState>,
    Json(body): Json<DetokenizeRequest>,
) -> Result<Json<DetokenizeResponse>, ApiError> {
    let llm = need_model(&state)?;
    let tokens: Vec<ember_llama::Token> = body.tokens.into_iter().map(ember_llama::Token).collect();
    let content = llm
        .model()
        .detokenize(&tokens, false, true)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(DetokenizeResponse { content }))
}
