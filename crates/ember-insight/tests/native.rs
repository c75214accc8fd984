//! llama-server's own API against the real model: `/completion` (prompts as text, token ids,
//! mixtures and lists; streamed chunks with `stop`; `n_probs`, `ignore_eos`, `return_tokens`,
//! `response_fields`, `n_predict`), `/props`, `/embedding` and the `X-Api-Key` header.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

const PROMPT: &str = "The capital of France is";
const TOKEN: &str = "s3cret";

async fn start() -> Option<Daemon> {
    let model = common::model()?;
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "256",
            "--max-concurrent",
            "2",
            "--token",
            TOKEN,
        ],
        Some("[model]\nseed = 7\nmax_tokens = 16\ndefault_max_tokens = 8\nslots = true\n\n[insights]\nenabled = false\n"),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    Some(d)
}

/// POSTs with llama-server's other header, `X-Api-Key`; the status and the body.
async fn post(d: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(d.url(path))
        .header("X-Api-Key", TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn ok(d: &Daemon, path: &str, body: Value) -> Value {
    let (status, v) = post(d, path, &body).await;
    assert_eq!(status, 200, "{path} {body} -> {v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_answers_in_llama_servers_shape() {
    let Some(d) = start().await else { return };

    let props: Value = {
        let resp = reqwest::Client::new()
            .get(d.url("/props"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    };
    assert!(
        props["model_path"].as_str().unwrap().ends_with(".gguf"),
        "{props}"
    );
    assert_eq!(props["total_slots"], 2, "{props}");
    assert_eq!(
        props["default_generation_settings"]["n_ctx"], 256,
        "{props}"
    );
    assert_eq!(
        props["default_generation_settings"]["params"]["seed"], 7,
        "{props}"
    );
    assert!(
        props["build_info"].as_str().unwrap().starts_with('b'),
        "{props}"
    );

    // Greedy, with the generated tokens.
    let plain = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 6, "temperature": 0, "return_tokens": true}),
    )
    .await;
    let content = plain["content"].as_str().unwrap().to_string();
    assert!(!content.is_empty(), "{plain}");
    let tokens = plain["tokens"].as_array().unwrap();
    assert_eq!(plain["stop"], true);
    assert_eq!(plain["stop_type"], "limit", "{plain}");
    assert_eq!(tokens.len(), 6, "{plain}");
    assert_eq!(plain["tokens_predicted"], 6);
    assert_eq!(plain["timings"]["predicted_n"], 6);
    for per_token in ["prompt_per_token_ms", "predicted_per_token_ms"] {
        assert!(
            plain["timings"][per_token].as_f64().unwrap() > 0.0,
            "{plain}"
        );
    }
    assert_eq!(plain["generation_settings"]["n_predict"], 6);
    // The configured default seed, and no bias without ignore_eos.
    assert_eq!(plain["generation_settings"]["seed"], 7);
    assert_eq!(plain["generation_settings"]["logit_bias"], json!([]));
    assert_eq!(plain["has_new_line"], content.contains('\n'));
    let text = ok(&d, "/detokenize", json!({"tokens": tokens})).await;
    assert_eq!(text["content"], content.as_str());
    let prompt_tokens = ok(
        &d,
        "/tokenize",
        json!({"content": PROMPT, "add_special": true}),
    )
    .await["tokens"]
        .clone();
    assert_eq!(
        plain["tokens_evaluated"],
        prompt_tokens.as_array().unwrap().len()
    );
    // Without return_tokens, none.
    let without = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(without["tokens"], json!([]));
    assert_eq!(without["content"], content.as_str());

    // The prompt as token ids, as a list of prompts, as a mixture, as an object.
    let by_ids = ok(
        &d,
        "/completion",
        json!({"prompt": prompt_tokens, "n_predict": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(by_ids["content"], content.as_str(), "{by_ids}");
    let listed = ok(
        &d,
        "/completion",
        json!({"prompt": [prompt_tokens, PROMPT, {"prompt_string": PROMPT}], "n_predict": 6, "temperature": 0}),
    )
    .await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (i, one) in listed.iter().enumerate() {
        assert_eq!(one["index"], i);
        assert_eq!(one["content"], content.as_str(), "{one}");
    }
    let mut mixed = prompt_tokens.as_array().unwrap().clone();
    mixed.push(json!(" Paris."));
    let mixed = ok(
        &d,
        "/completion",
        json!({"prompt": mixed, "n_predict": 2, "temperature": 0}),
    )
    .await;
    assert_eq!(
        mixed["tokens_evaluated"].as_u64().unwrap(),
        prompt_tokens.as_array().unwrap().len() as u64
            + ok(&d, "/tokenize", json!({"content": " Paris."})).await["tokens"]
                .as_array()
                .unwrap()
                .len() as u64
    );

    // Streamed: chunks of content and token ids with stop false, then one with stop true and
    // the rest of the answer; no [DONE].
    let resp = reqwest::Client::new()
        .post(d.url("/completion"))
        .bearer_auth(TOKEN)
        .json(&json!({"prompt": PROMPT, "n_predict": 6, "temperature": 0, "stream": true, "n_probs": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("[DONE]"), "{body}");
    let chunks: Vec<Value> = common::sse_events(&body)
        .iter()
        .map(|e| serde_json::from_str(&e[0].1).unwrap())
        .collect();
    let (last, parts) = chunks.split_last().unwrap();
    assert_eq!(last["stop"], true, "{last}");
    assert_eq!(last["stop_type"], "limit");
    assert_eq!(last["timings"]["predicted_n"], 6);
    let mut streamed = String::new();
    let mut streamed_ids = Vec::new();
    for c in parts {
        assert_eq!(c["stop"], false, "{c}");
        streamed.push_str(c["content"].as_str().unwrap());
        let ids = c["tokens"].as_array().unwrap();
        assert!(!ids.is_empty(), "{c}");
        streamed_ids.extend(ids.iter().cloned());
        let probs = c["completion_probabilities"].as_array().unwrap();
        assert_eq!(probs.len(), ids.len(), "{c}");
        for (p, id) in probs.iter().zip(ids) {
            assert_eq!(&p["id"], id);
            assert_eq!(p["top_logprobs"].as_array().unwrap().len(), 2);
        }
    }
    assert_eq!(streamed, content);
    assert_eq!(&streamed_ids, tokens);

    // n_probs, not streamed: one entry per token, greedy picks the most likely.
    let probs = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 4, "temperature": 0, "n_probs": 3}),
    )
    .await;
    let probs = probs["completion_probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 4);
    for p in probs {
        let top = p["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3, "{p}");
        assert_eq!(top[0]["id"], p["id"], "{p}");
        assert!(p["logprob"].as_f64().unwrap() <= 0.0);
        assert!(p["bytes"].is_array());
    }

    // ignore_eos bans every end-of-generation token (null: -inf); the text runs to n_predict.
    let eos = ok(
        &d,
        "/completion",
        json!({"prompt": "Say yes.", "n_predict": 12, "ignore_eos": true}),
    )
    .await;
    let bias = eos["generation_settings"]["logit_bias"].as_array().unwrap();
    assert!(!bias.is_empty());
    assert!(bias.iter().all(|b| b["bias"].is_null()), "{bias:?}");
    assert_eq!(eos["tokens_predicted"], 12, "{eos}");

    // response_fields: only those, under their paths.
    let fields = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 3, "response_fields": ["content", "generation_settings/n_predict"]}),
    )
    .await;
    assert_eq!(fields.as_object().unwrap().len(), 2, "{fields}");
    assert_eq!(fields["generation_settings/n_predict"], 3);

    // n_predict beyond model.max_tokens is that bound, as llama-server caps by --n-predict.
    let capped = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 100000, "ignore_eos": true}),
    )
    .await;
    assert_eq!(capped["generation_settings"]["n_predict"], 16);
    assert_eq!(capped["tokens_predicted"], 16);

    // /slots: model.max_concurrent entries; one busy while a generation streams.
    let slots = || async {
        let resp = reqwest::Client::new()
            .get(d.url("/slots"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        let v = v.as_array().unwrap().clone();
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|s| s["n_ctx"] == 256), "{v:?}");
        v.iter().filter(|s| s["is_processing"] == true).count()
    };
    assert_eq!(slots().await, 0);
    let mut running = reqwest::Client::new()
        .post(d.url("/completion"))
        .bearer_auth(TOKEN)
        .json(&json!({"prompt": PROMPT, "n_predict": 16, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    running.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(slots().await, 1);
    while running.chunk().await.unwrap().is_some() {}
    let mut idle = false;
    for _ in 0..40 {
        if slots().await == 0 {
            idle = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(idle, "a slot stayed busy after the generation ended");

    // llama-server's unprefixed embeddings: one row per input.
    let embedded = ok(&d, "/embedding", json!({"content": ["hello", "world"]})).await;
    let embedded = embedded.as_array().unwrap();
    assert_eq!(embedded.len(), 2);
    assert!(embedded[1]["embedding"][0].as_array().unwrap().len() > 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_refuses_what_it_cannot_do_naming_it() {
    let Some(d) = start().await else { return };
    for (body, needle) in [
        (
            json!({"prompt": PROMPT, "n_probs": 2, "post_sampling_probs": true}),
            "post_sampling_probs",
        ),
        (json!({"prompt": {}}), "prompt_string"),
        (json!({"prompt": [1, 2, 1 << 30]}), "vocabulary"),
        (json!({"prompt": PROMPT, "n_predict": -5}), "n_predict"),
        (
            json!({"prompt": {"prompt_string": "hi", "multimodal_data": ["x"]}}),
            "multimodal_data",
        ),
        (
            json!({"prompt": [PROMPT, PROMPT], "stream": true}),
            "stream",
        ),
        (
            json!({"prompt": PROMPT, "grammar": "root ::= undefined-rule"}),
            "grammar",
        ),
    ] {
        let (status, v) = post(&d, "/completion", &body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body} -> {message}");
    }
    // A prompt the context cannot hold: llama-server's error type.
    let long = "the meaning of life ".repeat(200);
    let (status, v) = post(&d, "/completion", &json!({"prompt": long})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "exceed_context_size_error", "{v}");
    // A grammar the sampler follows.
    let digits = ok(
        &d,
        "/completion",
        json!({"prompt": PROMPT, "n_predict": 5, "grammar": "root ::= [0-9]+"}),
    )
    .await;
    let text = digits["content"].as_str().unwrap();
    assert!(
        !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()),
        "{digits}"
    );
    // Without a token: 401, with a wrong X-Api-Key too.
    let resp = reqwest::Client::new()
        .post(d.url("/completion"))
        .header("X-Api-Key", "wrong")
        .json(&json!({"prompt": PROMPT}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The chat side of llama-server's API: an assistant prefill continued, `continue_final_message`
/// and `add_generation_prompt`, `/apply-template` and `verbose` showing the same prompt,
/// `/chat/completions/input_tokens` counting it, `n` choices, the usage chunk's `timings`,
/// and the context error's fields.
#[tokio::test(flavor = "multi_thread")]
async fn chat_prompts_templates_and_choices_as_llama_server() {
    let Some(d) = start().await else { return };
    let chat = json!([
        {"role": "system", "content": "Book"},
        {"role": "user", "content": "What is the best book"},
    ]);
    let applied = ok(&d, "/apply-template", json!({"messages": chat})).await;
    let prompt = applied["prompt"].as_str().unwrap().to_string();
    assert!(prompt.contains("What is the best book"), "{prompt}");
    // The answer's __verbose prompt is the applied template's.
    let verbose = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 2, "verbose": true}),
    )
    .await;
    assert_eq!(verbose["__verbose"]["prompt"], prompt.as_str(), "{verbose}");
    let quiet = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 2}),
    )
    .await;
    assert!(quiet.get("__verbose").is_none(), "{quiet}");
    // The token count is the applied prompt's.
    let counted = ok(
        &d,
        "/chat/completions/input_tokens",
        json!({"messages": chat}),
    )
    .await;
    let tokens = ok(
        &d,
        "/tokenize",
        json!({"content": prompt, "add_special": true, "parse_special": true}),
    )
    .await;
    assert_eq!(
        counted["input_tokens"],
        tokens["tokens"].as_array().unwrap().len()
    );

    // A last assistant message is continued: the prompt ends with its text, no new turn.
    let mut prefilled = chat.as_array().unwrap().clone();
    prefilled.push(json!({"role": "assistant", "content": "Whill"}));
    let cont = ok(&d, "/apply-template", json!({"messages": prefilled})).await;
    let cont = cont["prompt"].as_str().unwrap();
    assert!(
        cont.starts_with(&prompt) && cont.ends_with("Whill"),
        "{cont}"
    );
    let explicit = ok(
        &d,
        "/apply-template",
        json!({"messages": prefilled, "continue_final_message": true, "add_generation_prompt": false}),
    )
    .await;
    assert_eq!(explicit["prompt"], cont);
    let (status, v) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": prefilled, "continue_final_message": true, "add_generation_prompt": true}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    // Two assistant messages at the end: which to continue is ambiguous.
    let mut twice = prefilled.clone();
    twice.push(json!({"role": "assistant", "content": "again"}));
    let (status, v) = post(&d, "/apply-template", &json!({"messages": twice})).await;
    assert_eq!(status, 400, "{v}");

    // Without the generation prompt, the assistant's turn is not opened.
    let closed = ok(
        &d,
        "/apply-template",
        json!({"messages": chat, "add_generation_prompt": false}),
    )
    .await;
    let closed = closed["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with(closed) && prompt.len() > closed.len(),
        "{closed}"
    );

    // n choices, each its own generation: seeds seed, seed + 1, ...
    let three = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 8, "n": 3, "temperature": 1.0, "seed": 11}),
    )
    .await;
    let choices = three["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3, "{three}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["role"], "assistant");
        assert_eq!(c["finish_reason"], "length");
    }
    // Every choice's tokens; the prompt once.
    assert_eq!(three["usage"]["completion_tokens"], 24, "{three}");
    // The second choice is what seed 12 alone gives.
    let second = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 8, "temperature": 1.0, "seed": 12}),
    )
    .await;
    assert_eq!(
        second["choices"][0]["message"]["content"],
        choices[1]["message"]["content"]
    );

    // The streamed usage chunk carries timings.
    let resp = reqwest::Client::new()
        .post(d.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&json!({"messages": chat, "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    let events = common::sse_events(&body);
    let first: Value = serde_json::from_str(&events[0][0].1).unwrap();
    assert!(first["choices"][0]["delta"]["content"].is_null(), "{first}");
    let usage: Value = serde_json::from_str(&events[events.len() - 2][0].1).unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert_eq!(usage["timings"]["predicted_n"], 4, "{usage}");

    // llama-server's grammar and json_schema fields on a chat, and never two of them.
    let a5 = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 8, "grammar": "root ::= \"a\"{5,5}"}),
    )
    .await;
    assert_eq!(a5["choices"][0]["message"]["content"], "aaaaa", "{a5}");
    let forty_two = ok(
        &d,
        "/v1/chat/completions",
        json!({"messages": chat, "max_tokens": 8, "json_schema": {"const": "42"}}),
    )
    .await;
    assert_eq!(
        forty_two["choices"][0]["message"]["content"], "\"42\"",
        "{forty_two}"
    );
    let (status, v) = post(
        &d,
        "/v1/chat/completions",
        &json!({"messages": chat, "grammar": "root ::= \"a\"", "json_schema": {"const": 1}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // Too long for the context: llama-server's type and fields.
    let long: Vec<Value> = (0..60)
        .flat_map(|_| chat.as_array().unwrap().clone())
        .collect();
    let (status, v) = post(&d, "/v1/chat/completions", &json!({"messages": long})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "exceed_context_size_error");
    assert_eq!(v["error"]["n_ctx"], 256);
    assert!(v["error"]["n_prompt_tokens"].as_u64().unwrap() > 256, "{v}");
}
