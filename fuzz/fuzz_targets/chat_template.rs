//! Arbitrary messages (and template names) through the chat template renderer.
#![no_main]

use ember_llama::{apply_chat_template, builtin_templates, ChatMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let pick = parts.next().map_or(0, str::len);
    let templates = builtin_templates();
    let template = if templates.is_empty() || pick % 7 == 0 {
        // Sometimes a template text of the input's own.
        parts.next().unwrap_or_default().to_string()
    } else {
        templates[pick % templates.len()].clone()
    };
    let roles = ["system", "user", "assistant", "tool", ""];
    let messages: Vec<ChatMessage> = parts
        .enumerate()
        .map(|(i, content)| ChatMessage::new(roles[i % roles.len()], content))
        .collect();
    let _ = apply_chat_template(&template, &messages, pick % 2 == 0);
});
