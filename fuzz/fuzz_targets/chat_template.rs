//! Arbitrary messages (and template names) through the chat template renderers: llama.cpp's
//! built-in ones, and (feature `chat`) its Jinja engine with real model templates, where what
//! an API client controls is arbitrary: the chat request (messages, tools, kwargs), a JSON
//! Schema, and the model output the parsers read. JSON goes through serde_json first, as
//! insightd parses request bodies (so nesting is bounded as there). An error or a result,
//! never an abort.
#![no_main]

use std::sync::{Mutex, OnceLock};

use ember_llama::chat_template::{json_schema_to_grammar, parse_output, ChatTemplates};
use ember_llama::{apply_chat_template, builtin_templates, ChatMessage};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// Real templates of the pinned tree, of three tool-call families.
const TEMPLATES: &[&str] = &[
    "Qwen-Qwen3-0.6B",
    "meta-llama-Llama-3.3-70B-Instruct",
    "Mistral-Small-3.2-24B-Instruct-2506",
];

fn templates() -> &'static Mutex<Vec<ChatTemplates>> {
    static LOADED: OnceLock<Mutex<Vec<ChatTemplates>>> = OnceLock::new();
    LOADED.get_or_init(|| {
        TEMPLATES
            .iter()
            .map(|name| {
                let path = format!(
                    "{}/../vendor/llama.cpp/models/templates/{name}.jinja",
                    env!("CARGO_MANIFEST_DIR")
                );
                let source = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{path}: {e} (build-support/fetch-llama-cpp)"));
                ChatTemplates::new(common::vocab(), Some(&source)).expect("a real template")
            })
            .collect::<Vec<_>>()
            .into()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let pick = parts.next().map_or(0, str::len);
    if pick % 3 == 1 {
        jinja(pick, parts.collect());
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

/// Parts: a chat request (JSON), a JSON Schema, a model output.
fn jinja(pick: usize, parts: Vec<&str>) {
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    if let Some(schema) = json(part(1)) {
        let _ = json_schema_to_grammar(&schema.to_string());
    }
    let Some(request) = json(part(0)) else {
        return;
    };
    let templates = templates().lock().unwrap_or_else(|e| e.into_inner());
    let template = &templates[pick % templates.len()];
    let options = r#"{"use_jinja": true, "reasoning_format": "deepseek"}"#;
    if let Ok(settings) = template.apply(&request.to_string(), options) {
        let _ = parse_output(&settings, part(2), false);
        let _ = parse_output(&settings, part(2), true);
    }
}
