//! The response bodies of the OpenAI-compatible endpoints (not streamed), with their
//! OpenAPI schemas.

use serde::Serialize;
use utoipa::ToSchema;

use crate::llm::GenSummary;

/// `/v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub(super) object: &'static str,
    /// The loaded model, if one is.
    pub(super) data: Vec<ModelCard>,
}

/// One model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCard {
    /// Its name (the file name).
    pub(super) id: String,
    /// `model`.
    pub(super) object: &'static str,
    /// Always 0.
    pub(super) created: u64,
    /// `insightd`.
    pub(super) owned_by: &'static str,
    /// What insightd knows of it.
    pub(super) meta: ModelMeta,
}

/// A model's details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMeta {
    /// llama.cpp's description.
    pub(super) description: String,
    /// Context size per generation.
    pub(super) n_ctx: u32,
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
    /// What the prompt's tokens cost.
    prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens reused from the KV cache (a prefix shared with an earlier request)
    /// instead of decoded.
    cached_tokens: usize,
}

/// `/v1/completions` (not streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct Completion {
    /// `cmpl-N`.
    pub(super) id: String,
    /// `text_completion`.
    pub(super) object: &'static str,
    /// Unix time.
    pub(super) created: u64,
    /// The model's name.
    pub(super) model: String,
    /// One choice.
    pub(super) choices: Vec<CompletionChoice>,
    /// Token counts.
    pub(super) usage: Usage,
}

/// A completion's text.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    /// The generated text.
    pub(super) text: String,
    /// 0.
    pub(super) index: u32,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub(super) logprobs: Option<()>,
    /// `stop` or `length`.
    pub(super) finish_reason: &'static str,
}

/// `/v1/chat/completions` (not streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-N`.
    pub(super) id: String,
    /// `chat.completion`.
    pub(super) object: &'static str,
    /// Unix time.
    pub(super) created: u64,
    /// The model's name.
    pub(super) model: String,
    /// One choice.
    pub(super) choices: Vec<ChatChoice>,
    /// Token counts.
    pub(super) usage: Usage,
}

/// A chat completion's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    /// 0.
    pub(super) index: u32,
    /// The assistant's message.
    pub(super) message: AssistantMessage,
    /// `stop` or `length`.
    pub(super) finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    pub(super) role: &'static str,
    /// Its text.
    pub(super) content: String,
}

/// `/v1/embeddings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingList {
    /// `list`.
    pub(super) object: &'static str,
    /// One vector per input, in order.
    pub(super) data: Vec<EmbeddingItem>,
    /// The model's name.
    pub(super) model: String,
    /// Token counts.
    pub(super) usage: EmbeddingUsage,
}

/// One embedding.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingItem {
    /// `embedding`.
    pub(super) object: &'static str,
    /// The input's index.
    pub(super) index: usize,
    /// The vector, L2-normalised.
    pub(super) embedding: Vec<f32>,
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub(super) prompt_tokens: usize,
    /// The same.
    pub(super) total_tokens: usize,
}

pub(super) fn usage(s: &GenSummary) -> Usage {
    Usage {
        prompt_tokens: s.prompt_tokens,
        completion_tokens: s.completion_tokens,
        total_tokens: s.prompt_tokens + s.completion_tokens,
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: s.cached_tokens,
        },
    }
}
