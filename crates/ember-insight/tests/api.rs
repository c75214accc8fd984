//! The OpenAI-compatible API against the real model.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gemma-3-270m-q4_k_m",
        "messages": [{"role": "user", "content": "Name three colours of the rainbow."}],
        "max_tokens": 24,
        "temperature": 0,
        "stream": stream,
    })
}

/// Must show 3: a streamed chat completion's deltas concatenate to the non-streamed answer
/// (greedy), the SSE framing and the final `[DONE]` are right, `/v1/models` lists the model.
#[tokio::test(flavor = "multi_thread")]
async fn streamed_chat_equals_the_plain_answer() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            common::probe_mode(),
            "--ctx-size",
            "512",
        ],
        Some(common::NO_INSIGHTS),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    let client = reqwest::Client::new();

    let models: Value = d.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "gemma-3-270m-q4_k_m", "{models}");
    assert_eq!(models["data"][0]["object"], "model");

    let plain: Value = d.post_json("/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(plain["object"], "chat.completion", "{plain}");
    let answer = plain["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(plain["choices"][0]["message"]["role"], "assistant");
    assert!(!answer.trim().is_empty(), "{plain}");
    let usage = &plain["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let resp = client
        .post(d.url("/v1/chat/completions"))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body:?}");
    let events = common::sse_events(&body);
    let mut streamed = String::new();
    let mut finish = None;
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.len(), 1, "one data line per event: {ev:?}");
        assert_eq!(ev[0].0, "data", "{ev:?}");
        if i == events.len() - 1 {
            assert_eq!(ev[0].1, "[DONE]");
            continue;
        }
        let chunk: Value = serde_json::from_str(&ev[0].1).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], events_id(&events));
        let choice = &chunk["choices"][0];
        if i == 0 {
            assert_eq!(choice["delta"]["role"], "assistant");
        }
        if let Some(t) = choice["delta"]["content"].as_str() {
            streamed.push_str(t);
        }
        if !choice["finish_reason"].is_null() {
            assert!(finish.is_none(), "two final chunks");
            finish = Some(choice["finish_reason"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(streamed, answer);
    assert_eq!(
        finish.as_deref(),
        plain["choices"][0]["finish_reason"].as_str()
    );
}

fn events_id(events: &[Vec<(String, String)>]) -> Value {
    let first: Value = serde_json::from_str(&events[0][0].1).unwrap();
    first["id"].clone()
}

/// Completions and embeddings answer in OpenAI's shapes; bad requests are 400.
#[tokio::test(flavor = "multi_thread")]
async fn completions_and_embeddings() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "256",
        ],
        None,
    );
    d.wait_ready(Duration::from_secs(120)).await;
    let client = reqwest::Client::new();
    let r: Value = d
        .post_json(
            "/v1/completions",
            &json!({"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}),
        )
        .await;
    assert_eq!(r["object"], "text_completion", "{r}");
    assert!(!r["choices"][0]["text"].as_str().unwrap().is_empty(), "{r}");
    assert_eq!(r["usage"]["completion_tokens"].as_u64().unwrap(), 6);
    assert_eq!(r["choices"][0]["finish_reason"], "length");

    let e: Value = d
        .post_json(
            "/v1/embeddings",
            &json!({"input": ["a cat sat on the mat", "stocks fell sharply"]}),
        )
        .await;
    let data = e["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{e}");
    let v: Vec<f64> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");

    for bad in [
        json!({"prompt": "x", "max_tokens": 100000}),
        json!({"prompt": ["a", "b"]}),
        json!({"prompt": "x", "n": 9}),
        json!({"prompt": "x", "n": 2, "stream": true}),
    ] {
        let r = client
            .post(d.url("/v1/completions"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string());
    }
    let r = client
        .post(d.url("/v1/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// llama-server's spellings: `/health` (no token) says ok once the model serves, and the
/// unprefixed routes answer as the `/v1` ones (greedy: the same text), `/completions` and
/// `/embeddings` in llama-server's own shapes as it answers them.
#[tokio::test(flavor = "multi_thread")]
async fn llama_server_routes_answer_as_the_v1_ones() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "256",
            "--token",
            "s3cret",
        ],
        Some(common::NO_INSIGHTS),
    );
    let client = reqwest::Client::new();
    // Polled as llama-server's clients do: 503 (loading) or 200, never a 401 or 404.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let resp = client.get(d.url("/health")).send().await;
        if let Ok(resp) = resp {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            if status == 200 {
                assert_eq!(body, json!({"status": "ok"}));
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"]["type"], "unavailable_error", "{body}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/health never said ok"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v1: Value = client
        .get(d.url("/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1, json!({"status": "ok"}));

    let post = |path: &'static str, body: Value| {
        let req = client.post(d.url(path)).bearer_auth("s3cret").json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let completion =
        json!({"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0});
    let chat = json!({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "temperature": 0});
    let embed = json!({"input": "hello"});
    // llama-server routes its unprefixed /completions and /embeddings to its own API, not
    // OpenAI's: the same text and vector in llama-server's shape.
    assert_eq!(
        post("/completions", completion.clone()).await["content"],
        post("/v1/completions", completion).await["choices"][0]["text"]
    );
    assert_eq!(
        post("/chat/completions", chat.clone()).await["choices"][0]["message"],
        post("/v1/chat/completions", chat).await["choices"][0]["message"]
    );
    assert_eq!(
        post("/embeddings", embed.clone()).await[0]["embedding"][0],
        post("/v1/embeddings", embed).await["data"][0]["embedding"]
    );
    let models: Value = client
        .get(d.url("/models"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "gemma-3-270m-q4_k_m", "{models}");
    // The aliases keep the token.
    let resp = client.get(d.url("/models")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
