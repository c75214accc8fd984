//! Arbitrary messages (and template names) through the chat template renderers: llama.cpp's
//! built-in ones, and its Jinja engine (`common`, feature `chat`) with arbitrary template
//! source, an arbitrary request, JSON Schema and model output: an error or a result, never
//! an abort.
#![no_main]

use ember_llama::chat_template::{json_schema_to_grammar, parse_output, ChatTemplates};
use ember_llama::{apply_chat_template, builtin_templates, ChatMessage};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let pick = parts.next().map_or(0, str::len);
    if pick % 3 == 1 {
        jinja(parts.collect());
        return;
    }
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

/// Parts: a Jinja template, a request (JSON), a JSON Schema, a model output.
fn jinja(parts: Vec<&str>) {
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let _ = json_schema_to_grammar(part(2));
    let Ok(templates) = ChatTemplates::new(common::vocab(), Some(part(0))) else {
        return;
    };
    let options = r#"{"use_jinja": true, "reasoning_format": "deepseek"}"#;
    if let Ok(settings) = templates.apply(part(1), options) {
        let _ = parse_output(&settings, part(3), false);
        let _ = parse_output(&settings, part(3), true);
    }
}
