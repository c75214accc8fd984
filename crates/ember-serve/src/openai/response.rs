//! The response bodies of the OpenAI-compatible endpoints (not streamed), with their
//! OpenAPI schemas.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::llm::{GenSummary, TokenLogprobs, TokenText};

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
    /// [`Server::owned_by`](crate::Server::owned_by) (`ember-serve`; insightd says `insightd`).
    pub(super) owned_by: String,
    /// What the server knows of it.
    pub(super) meta: ModelMeta,
    /// Other names requests may give it (model.aliases, llama-server's `--alias a,b`).
    pub(super) aliases: Vec<String>,
    /// Labels for clients that choose models (model.tags, llama-server's `--tags`).
    pub(super) tags: Vec<String>,
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
    /// The server's build (`b<ember-serve version>-ember-serve`), as llama-server reports its own.
    pub(super) system_fingerprint: &'static str,
    /// One choice.
    pub(super) choices: Vec<CompletionChoice>,
    /// Token counts.
    pub(super) usage: Usage,
    /// Where the time went (llama-server's `timings`).
    pub(super) timings: Timings,
}

/// A completion's text.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    /// The generated text.
    pub(super) text: String,
    /// 0.
    pub(super) index: u32,
    /// With `logprobs`: each token's log-probability and alternatives; null without.
    pub(super) logprobs: Option<CompletionLogprobs>,
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
    /// The server's build (`b<ember-serve version>-ember-serve`), as llama-server reports its own.
    pub(super) system_fingerprint: &'static str,
    /// One choice.
    pub(super) choices: Vec<ChatChoice>,
    /// Token counts.
    pub(super) usage: Usage,
    /// Where the time went (llama-server's `timings`).
    pub(super) timings: Timings,
    /// With `verbose`: the rendered `prompt` (llama-server's debugging field).
    #[serde(rename = "__verbose", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(super) verbose: Option<serde_json::Value>,
}

/// A chat completion's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    /// 0.
    pub(super) index: u32,
    /// The assistant's message.
    pub(super) message: AssistantMessage,
    /// With `logprobs`: each token's log-probability and alternatives; null without.
    pub(super) logprobs: Option<ChatLogprobs>,
    /// `stop` or `length`.
    pub(super) finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    pub(super) role: &'static str,
    /// Its text (null when it only calls tools).
    pub(super) content: Option<String>,
    /// A reasoning model's thinking (model.reasoning_format), when there was any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<String>,
    /// The functions it calls, when it calls any (then `finish_reason` is `tool_calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_calls: Option<Vec<ToolCall>>,
}

/// One call of a function the request offered in `tools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCall {
    /// Its id, which the `tool` message with its result names.
    pub(super) id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    /// The function and its arguments.
    pub(super) function: FunctionCall,
}

/// A function call's name and arguments.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionCall {
    /// The function's name.
    pub(super) name: String,
    /// Its arguments: a JSON object as text.
    pub(super) arguments: String,
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
    pub(super) embedding: Embedding,
}

/// A vector as the request's `encoding_format` asked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Embedding {
    /// `float`: the numbers.
    Float(Vec<f32>),
    /// `base64`: the little-endian f32 bytes in base64.
    Base64(String),
}

impl Embedding {
    /// `vector` in `format`.
    pub(super) fn new(vector: Vec<f32>, format: super::EncodingFormat) -> Embedding {
        use base64::Engine as _;
        match format {
            super::EncodingFormat::Float => Embedding::Float(vector),
            super::EncodingFormat::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub(super) prompt_tokens: usize,
    /// The same.
    pub(super) total_tokens: usize,
}

/// A generation's timings, with llama-server's field names.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timings {
    /// Prompt tokens reused from the KV cache.
    cache_n: usize,
    /// Prompt tokens decoded.
    prompt_n: usize,
    /// Milliseconds from admission to the first token (waiting in the batch included).
    prompt_ms: f64,
    /// Milliseconds per decoded prompt token.
    prompt_per_token_ms: f64,
    /// Decoded prompt tokens per second.
    prompt_per_second: f64,
    /// Tokens generated.
    predicted_n: usize,
    /// Milliseconds from the first token to the last.
    predicted_ms: f64,
    /// Milliseconds per generated token.
    predicted_per_token_ms: f64,
    /// Generated tokens per second.
    predicted_per_second: f64,
}

fn per_token_ms(n: usize, ms: f64) -> f64 {
    if n > 0 {
        ms / n as f64
    } else {
        0.0
    }
}

fn per_second(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}

pub(super) fn timings(s: &GenSummary) -> Timings {
    let prompt_n = s.prompt_tokens.saturating_sub(s.cached_tokens);
    Timings {
        cache_n: s.cached_tokens,
        prompt_n,
        prompt_ms: s.prompt_ms,
        prompt_per_token_ms: per_token_ms(prompt_n, s.prompt_ms),
        prompt_per_second: per_second(prompt_n, s.prompt_ms),
        predicted_n: s.completion_tokens,
        predicted_ms: s.generation_ms,
        // The first token comes from the prompt's last decode: the generation time covers
        // the steps after it (llama-server's rates).
        predicted_per_token_ms: per_token_ms(
            s.completion_tokens.saturating_sub(1),
            s.generation_ms,
        ),
        predicted_per_second: per_second(s.completion_tokens.saturating_sub(1), s.generation_ms),
    }
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

/// `choices[].logprobs` of a completion (OpenAI's completions shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionLogprobs {
    /// Each generated token's text.
    tokens: Vec<String>,
    /// Each one's natural-log probability under the model.
    token_logprobs: Vec<f32>,
    /// Per token, the most likely tokens' text and log-probability, most likely first.
    #[schema(value_type = Vec<Object>)]
    top_logprobs: Vec<Value>,
    /// Each token's offset in characters in the text.
    text_offset: Vec<usize>,
}

/// `choices[].logprobs` of a chat completion (or of a streamed chunk).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatLogprobs {
    /// One per generated token.
    content: Vec<ChatTokenLogprob>,
}

/// A generated token of a chat completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatTokenLogprob {
    /// Its text.
    token: String,
    /// Its natural-log probability under the model.
    logprob: f32,
    /// Its bytes (a character can span tokens).
    bytes: Vec<u8>,
    /// The most likely tokens at this step, most likely first (`top_logprobs` of them).
    top_logprobs: Vec<TopLogprob>,
}

/// One of the most likely tokens at a step.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopLogprob {
    /// Its text.
    token: String,
    /// Its natural-log probability.
    logprob: f32,
    /// Its bytes.
    bytes: Vec<u8>,
}

pub(super) fn chat_logprobs(tokens: &[TokenLogprobs]) -> ChatLogprobs {
    let top = |t: &TokenText| TopLogprob {
        token: t.text.clone(),
        logprob: t.logprob,
        bytes: t.bytes.clone(),
    };
    ChatLogprobs {
        content: tokens
            .iter()
            .map(|t| ChatTokenLogprob {
                token: t.sampled.text.clone(),
                logprob: t.sampled.logprob,
                bytes: t.sampled.bytes.clone(),
                top_logprobs: t.top.iter().map(top).collect(),
            })
            .collect(),
    }
}

/// `offset`: characters of text before the first of `tokens`.
pub(super) fn completion_logprobs(
    tokens: &[TokenLogprobs],
    mut offset: usize,
) -> CompletionLogprobs {
    let mut text_offset = Vec::with_capacity(tokens.len());
    for t in tokens {
        text_offset.push(offset);
        offset += t.sampled.text.chars().count();
    }
    CompletionLogprobs {
        tokens: tokens.iter().map(|t| t.sampled.text.clone()).collect(),
        token_logprobs: tokens.iter().map(|t| t.sampled.logprob).collect(),
        top_logprobs: tokens
            .iter()
            .map(|t| {
                let mut top = serde_json::Map::new();
                for alt in &t.top {
                    top.entry(alt.text.clone()).or_insert(alt.logprob.into());
                }
                Value::Object(top)
            })
            .collect(),
        text_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::Embedding;
    use crate::openai::EncodingFormat;

    #[test]
    fn base64_embeddings_are_the_little_endian_f32_bytes() {
        let v = vec![1.0f32, -2.5];
        let Embedding::Base64(text) = Embedding::new(v.clone(), EncodingFormat::Base64) else {
            panic!("base64 asked, numbers given");
        };
        // 1.0 = 00 00 80 3f, -2.5 = 00 00 20 c0.
        assert_eq!(text, "AACAPwAAIMA=");
        assert!(matches!(
            Embedding::new(v.clone(), EncodingFormat::Float),
            Embedding::Float(f) if f == v
        ));
        assert_eq!(
            serde_json::to_string(&Embedding::new(v, EncodingFormat::Float)).unwrap(),
            "[1.0,-2.5]"
        );
    }
}
