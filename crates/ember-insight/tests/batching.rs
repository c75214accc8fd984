//! The generation engine behind the API: concurrent requests share one batched decode, wait
//! in the bounded queue, get 429 beyond it, and a shared prompt prefix is reported as cached;
//! answers carry llama-server-style timings; the tokenizer endpoints.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

fn start(extra: &[&str]) -> Option<Daemon> {
    let model = common::model()?;
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--probe-mode",
        "procfs",
        "--ctx-size",
        "1024",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Some(Daemon::start(&args, Some(common::NO_INSIGHTS)))
}

async fn complete(d: &Daemon, prompt: &str, max_tokens: usize) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(d.url("/v1/completions"))
        .json(&json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_a_decode_wait_in_the_queue_and_get_429_beyond_it() {
    let Some(d) = start(&["--max-concurrent", "2", "--queue", "1"]) else {
        return;
    };
    d.wait_ready(Duration::from_secs(120)).await;
    // Four at once for 2 sequences + 1 queue place: three are served, one is refused.
    let prompts = [
        "Count from 1 to 100: 1, 2, 3,",
        "The days of the week are Monday,",
        "List the planets: Mercury,",
        "The alphabet: A, B, C,",
    ];
    let results = futures_util::future::join_all(prompts.iter().map(|p| complete(&d, p, 48))).await;
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(refused.len(), 1, "{results:?}");
    assert_eq!(refused[0]["error"]["type"], "rate_limit_exceeded");
    for (status, v) in results.iter().filter(|(s, _)| *s != 429) {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["usage"]["completion_tokens"], 48, "{v}");
        assert!(!v["choices"][0]["text"].as_str().unwrap().is_empty());
    }
    let m = d.get_text("/metrics").await;
    let decodes = common::metric(&m, "insightd_batch_sequences_count").unwrap();
    let sequences = common::metric(&m, "insightd_batch_sequences_sum").unwrap();
    assert!(
        sequences > decodes,
        "no decode had two sequences: {sequences} sequences in {decodes} decodes"
    );
    assert_eq!(
        common::metric(
            &m,
            "insightd_generations_rejected_total{endpoint=\"completions\"}"
        ),
        Some(1.0)
    );
    assert_eq!(common::metric(&m, "insightd_generation_queue"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_prompt_prefix_is_reported_as_cached_tokens() {
    let Some(d) = start(&[]) else { return };
    d.wait_ready(Duration::from_secs(120)).await;
    let mut prefix = String::from("System: you watch a Linux fleet. Telemetry follows.\n");
    for i in 0..16 {
        prefix.push_str(&format!(
            "process {i}: worker-{i} exited with status {} after {} ms\n",
            i % 3,
            100 + i * 7
        ));
    }
    let (status, first) = complete(&d, &format!("{prefix}Q: which ran longest?\nA:"), 8).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let (status, second) = complete(&d, &format!("{prefix}Q: how many failed?\nA:"), 8).await;
    assert_eq!(status, 200, "{second}");
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(cached >= 290 && cached < prompt, "{second}");
    let m = d.get_text("/metrics").await;
    let reused = common::metric(&m, "insightd_prompt_tokens_reused_total").unwrap();
    assert_eq!(reused, cached as f64);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_llama_server_timings() {
    let Some(d) = start(&[]) else { return };
    d.wait_ready(Duration::from_secs(120)).await;
    let (status, v) = complete(&d, "The capital of France is Paris.", 8).await;
    assert_eq!(status, 200, "{v}");
    let timings = &v["timings"];
    assert_eq!(timings["predicted_n"], 8, "{v}");
    assert_eq!(
        timings["prompt_n"].as_u64().unwrap() + timings["cache_n"].as_u64().unwrap(),
        v["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert!(
        timings["predicted_per_second"].as_f64().unwrap() > 0.0,
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokenize_and_detokenize_round_trip() {
    let Some(d) = start(&[]) else { return };
    d.wait_ready(Duration::from_secs(120)).await;
    let text = "The capital of France is Paris.";
    let t = d.post_json("/tokenize", &json!({"content": text})).await;
    let tokens = t["tokens"].as_array().unwrap().clone();
    assert!(tokens.len() > 4, "{t}");
    let with_bos = d
        .post_json("/tokenize", &json!({"content": text, "add_special": true}))
        .await;
    assert_eq!(
        with_bos["tokens"].as_array().unwrap().len(),
        tokens.len() + 1
    );
    let back = d.post_json("/detokenize", &json!({"tokens": tokens})).await;
    assert_eq!(back["content"], text);
    let resp = reqwest::Client::new()
        .post(d.url("/detokenize"))
        .json(&json!({"tokens": [1, -5]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("-5"),
        "{err}"
    );
}
