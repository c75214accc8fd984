//! Token, body limit, concurrency bound, cancellation on disconnect.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{self, Daemon};

/// Must show 5: a non-loopback bind without `--token` is refused at start; with a token,
/// requests without it (or with a wrong one) get 401.
#[tokio::test(flavor = "multi_thread")]
async fn non_loopback_needs_a_token() {
    let out = Command::new(common::BIN)
        .args(["--bind", "0.0.0.0:0", "--probe-mode", "procfs"])
        .env_remove("INSIGHTD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a token") && err.contains("--token"),
        "{err}"
    );

    let d = Daemon::start_on(
        "0.0.0.0:0",
        &["--token", "s3cret", "--probe-mode", "procfs"],
        None,
    );
    let client = reqwest::Client::new();
    for path in ["/status", "/metrics", "/v1/models", "/alerts", "/processes"] {
        let r = client.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = client
            .get(d.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    let r = client
        .post(d.url("/v1/completions"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(d.url("/status"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Orchestrator probes stay open.
    assert_eq!(
        client.get(d.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let m = client
        .get(d.url("/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        common::metric(&m, "insightd_unauthorized_requests_total").unwrap() >= 11.0,
        "{m}"
    );
    // Bodies over the limit are refused before parsing.
    let big = "x".repeat(2 << 20);
    let r = client
        .post(d.url("/v1/completions"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(format!("{{\"prompt\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// Must show 6: 64 concurrent clients on /v1/completions with 2 generation slots: no crash,
/// every request answered 200 or 429, the 429s counted in /metrics.
#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_clients_get_answers_or_429() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "128",
            "--max-concurrent",
            "2",
        ],
        None,
    );
    d.wait_ready(Duration::from_secs(120)).await;
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            let url = d.url("/v1/completions");
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"prompt": format!("Request {i}: the sky is"), "max_tokens": 4, "temperature": 0}))
                    .send()
                    .await
                    .expect("request failed: the daemon closed the connection");
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0u32, 0u32);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => {
                assert!(
                    body["usage"]["completion_tokens"].as_u64().unwrap() > 0,
                    "{body}"
                );
                ok += 1;
            }
            429 => {
                assert_eq!(body["error"]["type"], "rate_limit_exceeded", "{body}");
                busy += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    eprintln!("64 clients: {ok} answered, {busy} got 429");
    assert_eq!(ok + busy, 64);
    assert!(ok >= 2 && busy > 0, "{ok} answered, {busy} refused");
    let m = d.get_text("/metrics").await;
    let rejected = common::metric(
        &m,
        "insightd_generations_rejected_total{endpoint=\"completions\"}",
    )
    .unwrap();
    assert_eq!(rejected, f64::from(busy), "{m}");
    let started =
        common::metric(&m, "insightd_generations_total{endpoint=\"completions\"}").unwrap();
    assert_eq!(started, f64::from(ok));
    // Still serving.
    assert_eq!(
        client.get(d.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let exit = d.stop();
    assert!(exit.success(), "{exit}");
}

/// Must show 7: a client that disconnects mid-stream stops its generation, visible in
/// /metrics and in the log.
#[tokio::test(flavor = "multi_thread")]
async fn disconnect_mid_stream_cancels_the_generation() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "512",
        ],
        None,
    );
    d.wait_ready(Duration::from_secs(120)).await;
    let before = common::metric(
        &d.get_text("/metrics").await,
        "insightd_generations_cancelled_total",
    )
    .unwrap();
    assert_eq!(before, 0.0);
    let stream_client = reqwest::Client::new();
    let resp = stream_client
        .post(d.url("/v1/completions"))
        .json(
            &json!({"prompt": "Count from one to five hundred: one, two, three,", "max_tokens": 400,
                      "temperature": 0, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while seen.matches("data: ").count() < 3 {
        let chunk = body.next().await.expect("stream ended early").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("[DONE]"));
    drop(body);
    drop(stream_client);
    let start = Instant::now();
    let after = loop {
        let v = common::metric(
            &d.get_text("/metrics").await,
            "insightd_generations_cancelled_total",
        )
        .unwrap();
        if v > before {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the generation was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after, 1.0);
    let m = d.get_text("/metrics").await;
    let tokens = common::metric(&m, "insightd_generated_tokens_total").unwrap();
    assert!(
        tokens < 400.0,
        "the generation ran to its end: {tokens} tokens"
    );
    // The log says so.
    let start = Instant::now();
    while !d.log_contains("the client disconnected") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no log line about the disconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        common::metric(&m, "insightd_generations_running").unwrap(),
        0.0
    );
}
