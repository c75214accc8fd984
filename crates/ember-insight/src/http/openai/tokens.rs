//! `/tokenize` and `/detokenize` (as llama-server names them): the loaded model's
//! tokenizer, for clients that count or build prompts in tokens.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::need_model;
use crate::http::{ApiError, AppState, ErrorBody};

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
}

/// `/tokenize` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenizeResponse {
    /// Token ids.
    tokens: Vec<i32>,
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

/// `POST /tokenize`.
#[utoipa::path(post, path = "/tokenize", tag = "openai", request_body = TokenizeRequest, responses(
    (status = 200, description = "the text's tokens", body = TokenizeResponse),
    (status = 400, description = "text the tokenizer refuses", body = ErrorBody),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 413, description = "a body over limits.body_bytes", body = ErrorBody),
    (status = 503, description = "no model is loaded", body = ErrorBody)))]
pub async fn tokenize(
    State(state): State<AppState>,
    Json(body): Json<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let llm = need_model(&state)?;
    let tokens = llm
        .model()
        .tokenize(&body.content, body.add_special, body.parse_special)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(TokenizeResponse {
        tokens: tokens.iter().map(|t| t.0).collect(),
    }))
}

/// `POST /detokenize`.
#[utoipa::path(post, path = "/detokenize", tag = "openai", request_body = DetokenizeRequest, responses(
    (status = 200, description = "the tokens' text", body = DetokenizeResponse),
    (status = 400, description = "a token outside the vocabulary, or bytes that are not UTF-8", body = ErrorBody),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 413, description = "a body over limits.body_bytes", body = ErrorBody),
    (status = 503, description = "no model is loaded", body = ErrorBody)))]
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
