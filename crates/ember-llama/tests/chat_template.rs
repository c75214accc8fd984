//! The model's Jinja template, tool calls and JSON Schema grammars through llama.cpp's
//! `common` library (feature `chat`).

use std::sync::Arc;

use ember_llama::chat_template::{json_schema_to_grammar, parse_output, ChatParser, ChatTemplates};
use ember_llama::{Context, ContextParams, GenerateOptions, Model, SamplerBuilder};
use serde_json::{json, Value};

use crate::common;

fn template(name: &str) -> String {
    let path = format!(
        "{}/../../vendor/llama.cpp/models/templates/{name}.jinja",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn apply(tmpls: &ChatTemplates, request: Value) -> Value {
    let options = json!({"use_jinja": true, "reasoning_format": "deepseek"});
    serde_json::from_str(
        &tmpls
            .apply(&request.to_string(), &options.to_string())
            .unwrap(),
    )
    .unwrap()
}

fn generate(model: &Arc<Model>, settings: &Value, max_tokens: usize) -> String {
    let mut ctx = Context::new(model, &ContextParams::default().with_n_ctx(1024)).unwrap();
    let mut sampler = SamplerBuilder::new()
        .chat_grammar(&settings.to_string())
        .select_greedy()
        .build(model)
        .unwrap();
    let options = GenerateOptions::default().with_max_tokens(max_tokens);
    let prompt = settings["prompt"].as_str().unwrap();
    let mut text = String::new();
    for piece in ctx.generate(&mut sampler, prompt, &options).unwrap() {
        text.push_str(&piece.unwrap().text);
    }
    text
}

#[test]
fn required_tool_choice_yields_a_call_that_parses() {
    let Some(model) = common::model() else { return };
    let tmpls = ChatTemplates::new(&model, Some(&template("Qwen-Qwen3-0.6B"))).unwrap();
    let settings = apply(
        &tmpls,
        json!({"messages": [{"role": "user", "content": "What is the weather in Paris?"}],
               "tools": weather_tool(), "tool_choice": "required", "parallel_tool_calls": false}),
    );
    // Qwen3's template lists the tools in its system turn; the grammar is not lazy.
    assert!(settings["prompt"].as_str().unwrap().contains("get_weather"));
    assert_eq!(settings["grammar_lazy"], false, "{settings}");
    assert_eq!(settings["parse_tool_calls"], true, "{settings}");
    let text = generate(&model, &settings, 64);
    assert!(
        text.starts_with("<tool_call>"),
        "no text before the call: {text:?}"
    );
    let message: Value =
        serde_json::from_str(&parse_output(&settings.to_string(), &text, false).unwrap()).unwrap();
    // Qwen3's grammar repeats calls ((tool-call space)+, as llama-server's) even without
    // parallel_tool_calls: each call must be get_weather with arguments that fit its schema.
    let calls = message["tool_calls"].as_array().expect("tool_calls");
    assert!(!calls.is_empty(), "{message}");
    for call in calls {
        assert_eq!(call["function"]["name"], "get_weather", "{message}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{args}");
        assert_eq!(args.as_object().unwrap().len(), 1, "{args}");
    }
    let call = &calls[0]["function"];

    // The answer goes back as an assistant message with the call and a tool message with the
    // result: the template renders both into the next prompt.
    let next = apply(
        &tmpls,
        json!({"messages": [{"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}],
               "tools": weather_tool()}),
    );
    let prompt = next["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("<tool_response>\n18 degrees and sunny\n</tool_response>"),
        "{prompt}"
    );
    assert!(prompt.contains("\"name\": \"get_weather\""), "{prompt}");
}

#[test]
fn reasoning_is_split_from_the_content() {
    let Some(model) = common::model() else { return };
    let tmpls = ChatTemplates::new(&model, Some(&template("Qwen-Qwen3-0.6B"))).unwrap();
    let settings = apply(
        &tmpls,
        json!({"messages": [{"role": "user", "content": "Hi"}]}),
    );
    let text = "<think>\nThe user greets.\n</think>\n\nHello!";
    let message: Value =
        serde_json::from_str(&parse_output(&settings.to_string(), text, false).unwrap()).unwrap();
    assert_eq!(
        message["reasoning_content"].as_str().map(str::trim),
        Some("The user greets."),
        "{message}"
    );
    assert_eq!(message["content"], "Hello!", "{message}");

    // One parser for a whole stream: each prefix parses as a partial message that the
    // next one extends, and the last one is the one-shot parse.
    let parser = ChatParser::new(&settings.to_string()).unwrap();
    let mut reasoning_seen = String::new();
    for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let partial: Value =
            serde_json::from_str(&parser.parse(&text[..end], end < text.len()).unwrap()).unwrap();
        let reasoning = partial["reasoning_content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            reasoning.starts_with(&reasoning_seen),
            "reasoning went back at {end}: {reasoning:?} after {reasoning_seen:?}"
        );
        assert!(
            partial["content"].as_str().unwrap_or("").len() <= "Hello!".len(),
            "{partial}"
        );
        reasoning_seen = reasoning;
        if end == text.len() {
            assert_eq!(partial, message);
        }
    }
    assert!(ChatParser::new("not json").is_err());
}

#[test]
fn json_schema_to_grammar_takes_refs_patterns_and_bounds() {
    let schema = json!({"$defs": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
        "type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]{3}$"},
        "n": {"$ref": "#/$defs/n"}, "v": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}},
        "required": ["id", "n", "v"], "additionalProperties": false});
    let grammar = json_schema_to_grammar(&schema.to_string()).unwrap();
    assert!(grammar.contains("root ::="), "{grammar}");
    let bad = json_schema_to_grammar("{\"type\": \"object\"").unwrap_err();
    assert!(matches!(bad, ember_llama::Error::Exception { .. }), "{bad}");
}
