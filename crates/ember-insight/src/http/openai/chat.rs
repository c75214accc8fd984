//! Chat messages of a request, checked and turned into the model's [`ChatMessage`]s for its
//! chat template.

use ember_llama::ChatMessage;

use super::request::{Content, Message};
use crate::http::ApiError;

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
