//! Structured output and log-probabilities: `response_format` (`json_object`, `json_schema`
//! enforced by llama.cpp's grammar of the schema: `pattern`, `anyOf`, `$ref`, bounds; a schema
//! it cannot convert refused with a 400) and
//! `logprobs`/`top_logprobs` on both generation endpoints, streamed and not.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

async fn start() -> Option<Daemon> {
    let model = common::model()?;
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--probe-mode",
        "procfs",
        "--ctx-size",
        "1024",
        "--threads",
        "2",
    ];
    let d = Daemon::start(&args, Some(common::NO_INSIGHTS));
    d.wait_ready(Duration::from_secs(120)).await;
    Some(d)
}

async fn post(d: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(d.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 24},
            "age": {"type": "integer"},
            "languages": {
                "type": "array",
                "items": {"type": "string", "enum": ["rust", "c", "python"]},
                "minItems": 1,
                "maxItems": 3
            },
            "active": {"type": "boolean"},
            "nickname": {"type": ["string", "null"], "maxLength": 12, "description": "optional"}
        },
        "required": ["name", "age", "languages", "active"],
        "additionalProperties": false
    })
}

/// The keywords llama.cpp's json-schema-to-grammar adds over a plain object schema.
fn rich_schema() -> Value {
    json!({
        "$defs": {"language": {"type": "string", "enum": ["rust", "c", "python"]}},
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Z][a-z]{1,10}$"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "language": {"$ref": "#/$defs/language"},
            "nickname": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 12}]}
        },
        "required": ["name", "age", "language", "nickname"],
        "additionalProperties": false
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_output_validates_with_patterns_refs_and_bounds_and_bad_schemas_get_400() {
    let Some(d) = start().await else { return };
    let schema = person_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for prompt in [
        "Describe a software engineer who likes systems programming.",
        "Invent a person. Answer in JSON.",
    ] {
        let (status, v) = post(
            &d,
            "/v1/chat/completions",
            &json!({
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 256,
                "temperature": 0,
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "person", "strict": true, "schema": schema}}
            }),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        let answer: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{content} is not valid: {errors:?}");
        // The order of the schema's properties is kept.
        let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[..4],
            ["name", "age", "languages", "active"],
            "{content}"
        );
    }

    // json_object on the completions endpoint: any JSON object.
    let (status, v) = post(
        &d,
        "/v1/completions",
        &json!({"prompt": "A JSON object describing the weather in Paris:", "max_tokens": 200,
                "temperature": 0, "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let text = v["choices"][0]["text"].as_str().unwrap();
    if v["choices"][0]["finish_reason"] == "stop" {
        let object: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(object.is_object(), "{text}");
    } else {
        // Cut at max_tokens: still the start of an object.
        assert!(text.trim_start().starts_with('{'), "{text}");
    }

    // What the hand-written converter refused before llama.cpp's: pattern, anyOf, $ref,
    // minimum/maximum. The answer validates against the schema.
    let rich = rich_schema();
    let validator = jsonschema::validator_for(&rich).unwrap();
    let (status, v) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Invent a programmer."}], "max_tokens": 128,
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": rich}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let answer: Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
    let errors: Vec<String> = validator
        .iter_errors(&answer)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{content} is not valid: {errors:?}");
    // An invalid value of a supported keyword: 400 as well.
    let (status, v) = post(
        &d,
        "/v1/completions",
        &json!({"prompt": "hi", "max_tokens": 8,
                "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "strin"}}}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("strin"),
        "{v}"
    );
    // A temperature beyond OpenAI's 0..=2 is refused (with a grammar, a huge one turned the
    // excluded tokens' logits into NaN and the generation failed: found by schemathesis).
    let (status, v) = post(
        &d,
        "/v1/completions",
        &json!({"prompt": "", "max_tokens": 4, "temperature": 3.9e216,
                "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logprobs_report_each_token_with_its_alternatives() {
    let Some(d) = start().await else { return };
    // Chat, greedy: each token is the most likely one at its step.
    let (status, v) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Name three colours."}],
                "max_tokens": 12, "temperature": 0, "logprobs": true, "top_logprobs": 3}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let completion_tokens = v["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    let eog = usize::from(v["choices"][0]["finish_reason"] == "stop");
    assert_eq!(content.len() + eog, completion_tokens, "{v}");
    let mut joined = String::new();
    for t in content {
        let top = t["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3, "{t}");
        assert_eq!(
            top[0]["token"], t["token"],
            "greedy picks the most likely: {t}"
        );
        assert_eq!(top[0]["logprob"], t["logprob"], "{t}");
        let lp: Vec<f64> = top.iter().map(|x| x["logprob"].as_f64().unwrap()).collect();
        assert!(lp.windows(2).all(|w| w[0] >= w[1]) && lp[0] <= 0.0, "{t}");
        let bytes: Vec<u8> = t["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        joined.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert_eq!(
        joined,
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        "the tokens' bytes make the text"
    );
    // Without logprobs: null.
    let (_, plain) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Name three colours."}],
                "max_tokens": 12, "temperature": 0}),
    )
    .await;
    assert!(plain["choices"][0]["logprobs"].is_null(), "{plain}");
    assert_eq!(
        plain["choices"][0]["message"]["content"],
        v["choices"][0]["message"]["content"]
    );
    // top_logprobs without logprobs: 400.
    let (status, _) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}),
    )
    .await;
    assert_eq!(status, 400);

    // Completions, OpenAI's legacy shape.
    let (status, v) = post(
        &d,
        "/v1/completions",
        &json!({"prompt": "The sky is", "max_tokens": 8, "temperature": 0, "logprobs": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let tokens = lp["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 8, "{v}");
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), 8);
    assert_eq!(lp["top_logprobs"][0].as_object().unwrap().len(), 2, "{v}");
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{v}");

    // Streamed chat: the chunks' logprobs together cover every token.
    let body = reqwest::Client::new()
        .post(d.url("/v1/chat/completions"))
        .json(
            &json!({"messages": [{"role": "user", "content": "Name three colours."}],
                      "max_tokens": 12, "temperature": 0, "logprobs": true, "stream": true}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut streamed = Vec::new();
    for event in common::sse_events(&body) {
        let data = &event.iter().find(|(k, _)| k == "data").unwrap().1;
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(c) = chunk["choices"][0]["logprobs"]["content"].as_array() {
            streamed.extend(c.iter().map(|t| t["token"].clone()));
        }
    }
    let unstreamed: Vec<Value> = content.iter().map(|t| t["token"].clone()).collect();
    assert_eq!(streamed, unstreamed);
}
