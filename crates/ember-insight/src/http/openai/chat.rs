//! Chat messages of a request, checked and turned into the model's [`ChatMessage`]s for its
//! chat template.

use ember_llama::ChatMessage;

use super::request::{Content, Message};
use crate::http::ApiError;
use crate::llm::Llm;

/// How a chat's prompt ends (llama-server's and vLLM's fields).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct PromptEnd {
    /// Open the assistant's turn after the messages (default true).
    pub(super) add_generation_prompt: Option<bool>,
    /// Continue the last message, which must be the assistant's, instead of opening a new
    /// turn (vLLM's name; a last assistant message is continued anyway unless
    /// `add_generation_prompt` is false).
    pub(super) continue_final_message: Option<bool>,
}

/// The prompt of a chat: the template's rendering of the messages with the assistant's turn
/// opened; when the last message is the assistant's, the text continues it (a prefill, as
/// llama-server does), unless `add_generation_prompt` is false without
/// `continue_final_message`.
pub(super) fn chat_prompt(
    llm: &Llm,
    mut messages: Vec<ChatMessage>,
    end: PromptEnd,
) -> Result<String, ApiError> {
    let render = |messages: &[ChatMessage], open: bool| {
        llm.chat_prompt_with(messages, open)
            .map_err(|e| ApiError::bad_request(format!("cannot apply the chat template: {e:#}")))
    };
    let continued = end.continue_final_message == Some(true);
    if continued && end.add_generation_prompt == Some(true) {
        return Err(ApiError::bad_request(
            "add_generation_prompt and continue_final_message exclude each other: set one",
        ));
    }
    let last_is_assistant = messages.last().is_some_and(|m| m.role == "assistant");
    if last_is_assistant && messages.len() >= 2 && messages[messages.len() - 2].role == "assistant"
    {
        return Err(ApiError::bad_request(
            "the last two messages are the assistant's: only the last may be continued, merge them",
        ));
    }
    if continued && !last_is_assistant {
        return Err(ApiError::bad_request(
            "continue_final_message needs the last message to be the assistant's",
        ));
    }
    if last_is_assistant && (continued || end.add_generation_prompt != Some(false)) {
        let prefill = messages.pop().map(|m| m.content).unwrap_or_default();
        return Ok(render(&messages, true)? + &prefill);
    }
    render(&messages, end.add_generation_prompt.unwrap_or(true))
}

pub(super) fn chat_messages(messages: Vec<Message>) -> Result<Vec<ChatMessage>, ApiError> {
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
