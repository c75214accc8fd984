//! The request bodies of the OpenAI-compatible endpoints, as clients send them, with their
//! OpenAPI schemas.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Sampling fields shared by both generation endpoints.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Sampling {
    /// Tokens to generate at most: 1 to `model.max_tokens` (default `model.default_max_tokens`).
    #[schema(minimum = 1)]
    pub(super) max_tokens: Option<usize>,
    /// The same as `max_tokens` (OpenAI's newer name).
    #[schema(minimum = 1)]
    pub(super) max_completion_tokens: Option<usize>,
    /// Sampling temperature, 0 to 2; 0 is greedy (default `model.temperature`, 0.8).
    #[schema(minimum = 0, maximum = 2)]
    pub(super) temperature: Option<f32>,
    /// Nucleus sampling mass, 0 to 1 (default 1).
    #[schema(minimum = 0, maximum = 1)]
    pub(super) top_p: Option<f32>,
    /// Seed of the sampler (default `model.seed`, else one per request).
    pub(super) seed: Option<u32>,
    /// Up to 4 strings that end the generation.
    pub(super) stop: Option<OneOrMany>,
    /// Server-sent events, one chunk per piece of text, then `[DONE]`.
    #[serde(default)]
    pub(super) stream: bool,
    /// Choices, 1 to 8 (default 1): each its own generation from the same prompt (its KV
    /// cells shared), seeded `seed`, `seed + 1`, ...; not streamed above 1.
    #[schema(minimum = 1, maximum = 8)]
    pub(super) n: Option<u32>,
    /// What the output must be: plain text (default), any JSON object, or JSON valid
    /// against a schema (enforced by a grammar while sampling).
    pub(super) response_format: Option<ResponseFormat>,
    /// llama-server's spelling of a JSON Schema `response_format`: the output must be JSON
    /// valid against this schema.
    #[schema(value_type = Option<Object>)]
    pub(super) json_schema: Option<Value>,
    /// The output must follow this GBNF grammar (root rule `root`), as llama-server takes it.
    pub(super) grammar: Option<String>,
    /// Keep only the k most likely tokens (llama-server's `top_k`); 0 (default) keeps all.
    #[schema(minimum = 0)]
    pub(super) top_k: Option<i32>,
    /// Keep tokens at least this fraction as likely as the most likely one, 0 to 1 (default
    /// 0: off).
    #[schema(minimum = 0, maximum = 1)]
    pub(super) min_p: Option<f32>,
    /// Locally typical sampling mass, 0 to 1 (default 1: off).
    #[schema(minimum = 0, maximum = 1)]
    pub(super) typical_p: Option<f32>,
    /// Divides the logit of a token seen in the last `repeat_last_n` tokens, above 0 (default
    /// 1: off; with a JSON `response_format` 1.3 unless given).
    #[schema(exclusive_minimum = 0)]
    pub(super) repeat_penalty: Option<f32>,
    /// How many of the last tokens the penalties look at: -1 (the whole context) or more
    /// (default 64).
    #[schema(minimum = -1)]
    pub(super) repeat_last_n: Option<i32>,
    /// Subtracted from a token's logit once it appeared, -2 to 2 (default 0).
    #[schema(minimum = -2, maximum = 2)]
    pub(super) presence_penalty: Option<f32>,
    /// Subtracted from a token's logit per time it appeared, -2 to 2 (default 0).
    #[schema(minimum = -2, maximum = 2)]
    pub(super) frequency_penalty: Option<f32>,
    /// Added to the logits of tokens: an object from token id (or a text, whose tokens all
    /// get the bias) to a bias from -100 to 100, or `false` to ban it; llama-server's list of
    /// `[token or text, bias]` pairs too. At most 1024 tokens.
    #[schema(value_type = Option<Object>)]
    pub(super) logit_bias: Option<Value>,
    /// With `stream`: `include_usage` adds a last chunk with `usage` and no choices.
    pub(super) stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with the request's `usage` (OpenAI's streaming usage).
    #[serde(default)]
    pub(super) include_usage: bool,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub(super) kind: FormatKind,
    /// The schema, for `json_schema`.
    pub(super) json_schema: Option<JsonSchemaFormat>,
    /// llama-server's spelling: the schema itself, for `json_object` or `json_schema`.
    #[schema(value_type = Option<Object>)]
    pub(super) schema: Option<Value>,
}

/// `response_format.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// A JSON value valid against `json_schema.schema`.
    JsonSchema,
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct JsonSchemaFormat {
    /// The schema's name (not used).
    #[allow(dead_code)]
    name: Option<String>,
    /// What the schema is for (not used).
    #[allow(dead_code)]
    description: Option<String>,
    /// The JSON Schema: `type`, `properties`, `required`, `additionalProperties` (a
    /// boolean), `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `enum`,
    /// `const` and annotations; other keywords are refused (400, naming them).
    #[schema(value_type = Option<Object>)]
    pub(super) schema: Option<Value>,
    /// Accepted; the schema is enforced either way.
    #[allow(dead_code)]
    strict: Option<bool>,
}

impl ResponseFormat {
    /// The GBNF grammar the output must follow (`None` for text).
    pub(super) fn grammar(&self) -> Result<Option<String>, String> {
        let schema = self
            .json_schema
            .as_ref()
            .and_then(|j| j.schema.as_ref())
            .or(self.schema.as_ref());
        Ok(match (self.kind, schema) {
            (FormatKind::Text, _) => None,
            (_, Some(schema)) => Some(schema_grammar(schema)?),
            (_, None) => Some(schema_grammar(&serde_json::json!({"type": "object"}))?),
        })
    }
}

/// The GBNF grammar of a JSON Schema, made by llama.cpp's `json-schema-to-grammar` (as
/// llama-server's); its message names what the schema asks that it cannot express.
pub(super) fn schema_grammar(schema: &Value) -> Result<String, String> {
    ember_llama::chat_template::json_schema_to_grammar(&schema.to_string())
        .map_err(|e| e.input_message())
}

/// `POST /v1/completions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompletionRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// The prompt: one string (or a list of exactly one).
    pub(super) prompt: OneOrMany,
    /// Log-probability of each generated token, with this many most likely alternatives
    /// (0 to 20), in `choices[].logprobs` (OpenAI's completions shape).
    #[schema(minimum = 0, maximum = 20)]
    pub(super) logprobs: Option<u32>,
    #[serde(flatten)]
    pub(super) sampling: Sampling,
}

/// Message content: a string, or a list of parts of which the text ones are used.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (`{"type": "text", "text": ...}`).
    #[schema(value_type = Vec<Object>)]
    Parts(Vec<Value>),
}

/// Who speaks (in the document; the template decides what it accepts).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// A chat message, as OpenAI's: passed to the chat template as given.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool` (a tool's result).
    #[schema(value_type = Role)]
    pub(super) role: String,
    /// Its text (may be null in an assistant message with `tool_calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<Content>,
    /// An assistant message's calls: `{"id", "type": "function", "function": {"name",
    /// "arguments"}}`, as answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(super) tool_calls: Option<Vec<Value>>,
    /// A tool message's answer to this call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tool_call_id: Option<String>,
    /// The speaker's or tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    /// An assistant message's reasoning, for templates that render it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<String>,
}

/// A chat request's tools and template settings (OpenAI's and llama-server's fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ChatFields {
    /// Functions the model may call: `{"type": "function", "function": {"name",
    /// "description", "parameters"}}` (a JSON Schema of the arguments).
    #[schema(value_type = Option<Vec<Object>>)]
    pub(super) tools: Option<Vec<Value>>,
    /// `auto` (default), `none`, `required`, or `{"type": "function", "function": {"name"}}`
    /// for one named function; `required` and a named function constrain the output to
    /// a call with a grammar.
    #[schema(value_type = Option<Object>)]
    pub(super) tool_choice: Option<Value>,
    /// Whether several calls may come in one answer (default: what the template supports).
    pub(super) parallel_tool_calls: Option<bool>,
    /// Where reasoning goes for this request: `none`, `auto`, `deepseek`,
    /// `deepseek-legacy` (default: model.reasoning_format).
    pub(super) reasoning_format: Option<String>,
    /// OpenAI's `reasoning_effort` (`none` turns thinking off), passed to the template.
    pub(super) reasoning_effort: Option<String>,
    /// Extra variables for the template (e.g. `{"enable_thinking": false}`).
    #[schema(value_type = Option<Object>)]
    pub(super) chat_template_kwargs: Option<Value>,
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// The conversation, at least one message.
    #[schema(min_items = 1)]
    pub(super) messages: Vec<Message>,
    /// Log-probability of each generated token in `choices[].logprobs.content`.
    pub(super) logprobs: Option<bool>,
    /// With `logprobs`, this many most likely alternatives per token (0 to 20).
    #[schema(minimum = 0, maximum = 20)]
    pub(super) top_logprobs: Option<u32>,
    /// Add `__verbose` with the rendered `prompt` to the answer (llama-server's debugging
    /// field; not streamed).
    #[serde(default)]
    pub(super) verbose: bool,
    #[serde(flatten)]
    pub(super) end: super::chat::PromptEnd,
    #[serde(flatten)]
    pub(super) chat: ChatFields,
    #[serde(flatten)]
    pub(super) sampling: Sampling,
}

/// `POST /apply-template` body: a chat, as `/v1/chat/completions` takes it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplyTemplateRequest {
    /// The conversation, at least one message.
    #[schema(min_items = 1)]
    pub(super) messages: Vec<Message>,
    #[serde(flatten)]
    pub(super) end: super::chat::PromptEnd,
    #[serde(flatten)]
    pub(super) chat: ChatFields,
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// Ignored: the loaded model answers.
    #[allow(dead_code)]
    model: Option<String>,
    /// One to 64 non-empty strings.
    #[schema(value_type = EmbeddingInput)]
    pub(super) input: OneOrMany,
    /// `float` (the default) or `base64`: each vector's little-endian f32 bytes in base64,
    /// as OpenAI's clients ask by default.
    #[serde(default)]
    pub(super) encoding_format: EncodingFormat,
}

/// How `/v1/embeddings` writes a vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// An array of numbers.
    #[default]
    Float,
    /// A string: the little-endian f32 bytes in base64.
    Base64,
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
