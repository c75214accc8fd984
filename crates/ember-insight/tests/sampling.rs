//! Every sampling parameter of the generation endpoints against the real model: each one
//! changes the output the way it says (or, where the model cannot show it, is accepted and
//! kept in range), `logit_bias` in its three spellings, out-of-range values are 400s that
//! name the field, and `stream_options.include_usage` sends the usage chunk.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

const PROMPT: &str = "The capital of France is";

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
        ],
        Some(common::NO_INSIGHTS),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    Some(d)
}

/// The text of a completion of PROMPT with `extra` fields.
async fn complete(d: &Daemon, extra: Value) -> String {
    let mut body = json!({"prompt": PROMPT, "max_tokens": 8, "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r: Value = d.post_json("/v1/completions", &body).await;
    r["choices"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body} -> {r}"))
        .to_string()
}

async fn first_token(d: &Daemon, text: &str) -> i64 {
    let r: Value = d.post_json("/tokenize", &json!({"content": text})).await;
    r["tokens"][0].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn logit_bias_bans_and_forces_tokens_in_every_spelling() {
    let Some(d) = start().await else { return };
    let greedy = complete(&d, json!({"max_tokens": 1})).await;
    let greedy_id = first_token(&d, &greedy).await;

    // Banned (false, as llama-server spells it, and OpenAI's -100): another first token.
    for ban in [json!(false), json!(-100)] {
        let banned = complete(
            &d,
            json!({"max_tokens": 1, "logit_bias": {greedy_id.to_string(): ban}}),
        )
        .await;
        assert_ne!(
            banned, greedy,
            "banning token {greedy_id} ({greedy:?}) with {ban}"
        );
    }

    // Forced: a token the model would not pick, by id, by text and as a [token, bias] pair.
    let forced_id = first_token(&d, " banana").await;
    for bias in [
        json!({forced_id.to_string(): 100}),
        json!({" banana": 100}),
        json!([[forced_id, 100]]),
        json!([[" banana", 100]]),
    ] {
        let out = complete(&d, json!({"max_tokens": 1, "logit_bias": bias})).await;
        assert_eq!(out, " banana", "logit_bias {bias}");
    }
    // Sampled too (temperature 1): the bias acts before the draw.
    let out = complete(
        &d,
        json!({"max_tokens": 1, "temperature": 1, "seed": 7, "logit_bias": {forced_id.to_string(): 100}}),
    )
    .await;
    assert_eq!(out, " banana");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncation_and_penalties_change_the_output_as_they_say() {
    let Some(d) = start().await else { return };
    let greedy = complete(&d, json!({})).await;
    // Keeping one candidate makes a random draw the greedy choice.
    for keep_one in [json!({"top_k": 1}), json!({"min_p": 1.0})] {
        for seed in [1, 2, 3] {
            let mut extra = json!({"temperature": 1.5, "seed": seed});
            for (k, v) in keep_one.as_object().unwrap() {
                extra[k] = v.clone();
            }
            assert_eq!(complete(&d, extra).await, greedy, "{keep_one} seed {seed}");
        }
    }
    // Without truncation, a hot draw strays from the greedy text for some seed.
    let mut strayed = false;
    for seed in [1, 2, 3] {
        strayed |= complete(&d, json!({"temperature": 1.5, "seed": seed})).await != greedy;
    }
    assert!(
        strayed,
        "temperature 1.5 gave the greedy text for three seeds"
    );
    // typical_p is accepted with a draw (its effect is not observable on one token here).
    complete(&d, json!({"temperature": 1, "seed": 1, "typical_p": 0.5})).await;

    // A prompt that invites repeating itself: penalties make greedy decoding leave it.
    let repeat =
        json!({"prompt": "one one one one one one one one", "max_tokens": 8, "temperature": 0});
    let plain: Value = d.post_json("/v1/completions", &repeat).await;
    let plain = plain["choices"][0]["text"].as_str().unwrap().to_string();
    for penalty in [
        json!({"repeat_penalty": 3.0}),
        json!({"frequency_penalty": 2.0}),
    ] {
        let mut body = repeat.clone();
        for (k, v) in penalty.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r: Value = d.post_json("/v1/completions", &body).await;
        let text = r["choices"][0]["text"].as_str().unwrap();
        assert_ne!(
            text, plain,
            "{penalty} left the greedy text {plain:?} as it was"
        );
    }
    // Presence counts once per token (at most 2): it moves a greedy text that repeats the
    // prompt's words, not one this sure of " one".
    let sixteen = json!({"max_tokens": 16});
    let plain16 = complete(&d, sixteen.clone()).await;
    let present = complete(&d, json!({"max_tokens": 16, "presence_penalty": 2.0})).await;
    assert_ne!(
        present, plain16,
        "presence_penalty 2 left {plain16:?} as it was"
    );
    // Windows beyond the context are the context (llama.cpp would allocate the window).
    for last_n in [-1, i32::MAX] {
        complete(&d, json!({"repeat_penalty": 1.1, "repeat_last_n": last_n})).await;
    }
    // The window: with repeat_last_n 0 the penalty sees nothing.
    let mut body = repeat.clone();
    body["repeat_penalty"] = json!(3.0);
    body["repeat_last_n"] = json!(0);
    let r: Value = d.post_json("/v1/completions", &body).await;
    assert_eq!(r["choices"][0]["text"], plain.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_sampling_is_a_400_naming_the_field() {
    let Some(d) = start().await else { return };
    let client = reqwest::Client::new();
    let too_many: Vec<Value> = (0..1025).map(|i| json!([i, 1])).collect();
    for (extra, field) in [
        (json!({"top_k": -1}), "top_k"),
        (json!({"min_p": 1.5}), "min_p"),
        (json!({"typical_p": -0.1}), "typical_p"),
        (json!({"repeat_penalty": 0}), "repeat_penalty"),
        (json!({"repeat_penalty": 1e39}), "repeat_penalty"),
        (json!({"repeat_last_n": -2}), "repeat_last_n"),
        (json!({"presence_penalty": 2.5}), "presence_penalty"),
        (json!({"frequency_penalty": -3}), "frequency_penalty"),
        (
            json!({"logit_bias": {"999999999": 1}}),
            "not in the vocabulary",
        ),
        (json!({"logit_bias": {"-1": 1}}), "not in the vocabulary"),
        (json!({"logit_bias": {"5": 101}}), "-100..=100"),
        (json!({"logit_bias": {"5": true}}), "-100..=100"),
        (json!({"logit_bias": "5"}), "logit_bias"),
        (json!({"logit_bias": [[5]]}), "pairs"),
        (json!({"logit_bias": [[1.5, 1]]}), "integer"),
        (json!({"logit_bias": too_many}), "at most 1024"),
    ] {
        for path in ["/v1/completions", "/v1/chat/completions"] {
            let mut body = if path == "/v1/completions" {
                json!({"prompt": PROMPT, "max_tokens": 2})
            } else {
                json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            };
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let resp = client.post(d.url(path)).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{path} {extra}");
            let err: Value = resp.json().await.unwrap();
            let message = err["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{path} {extra}: {message}");
        }
    }
    // The daemon still answers.
    complete(&d, json!({"max_tokens": 1})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn include_usage_sends_a_last_chunk_with_usage() {
    let Some(d) = start().await else { return };
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/v1/completions",
            json!({"prompt": PROMPT, "max_tokens": 6, "temperature": 0}),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "temperature": 0}),
        ),
    ] {
        let plain: Value = d.post_json(path, &body).await;
        for include in [true, false] {
            let mut streamed = body.clone();
            streamed["stream"] = json!(true);
            streamed["stream_options"] = json!({"include_usage": include});
            let text = client
                .post(d.url(path))
                .json(&streamed)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let events = common::sse_events(&text);
            assert_eq!(events.last().unwrap()[0].1, "[DONE]", "{text}");
            let chunks: Vec<Value> = events[..events.len() - 1]
                .iter()
                .map(|ev| serde_json::from_str(&ev[0].1).unwrap())
                .collect();
            let with_usage: Vec<&Value> =
                chunks.iter().filter(|c| c.get("usage").is_some()).collect();
            if include {
                assert_eq!(with_usage.len(), 1, "{path}: {text}");
                let last = chunks.last().unwrap();
                assert_eq!(last["choices"], json!([]), "{path}: {last}");
                // The same counts (the cached part of the prompt may differ).
                for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
                    assert_eq!(
                        last["usage"][count], plain["usage"][count],
                        "{path} {count}"
                    );
                }
                assert_eq!(last["id"], chunks[0]["id"]);
            } else {
                assert!(with_usage.is_empty(), "{path}: {text}");
            }
        }
    }
}
