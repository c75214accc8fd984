//! Hostile input: every error answer is OpenAI's error object, and out-of-range settings are
//! refused at start with a message naming the setting (they used to hang or abort).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, Daemon};

/// Runs insightd with `args`, killing it (and failing) if it has not exited in 30 s.
fn run_bounded(args: &[&str]) -> Output {
    let mut child = Command::new(common::BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("insightd {args:?} still running after 30 s (it used to hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn out_of_range_settings_are_refused_at_start_naming_them() {
    let out = run_bounded(&["--threads", "1000000", "--probe-mode", "procfs", "--once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.threads (--threads) = 1000000"), "{err}");
    assert!(err.contains("1..=512"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    for (toml, name) in [
        (
            "[probes]\ntick_ms = 9223372036854775807\n",
            "probes.tick_ms",
        ),
        (
            "[model]\nmax_tokens = 10\ndefault_max_tokens = 20\n",
            "model.default_max_tokens",
        ),
        ("[model]\nctx_size = 0\n", "model.ctx_size"),
        (
            "[rules.fork_rate]\nthreshold = nan\nwindow_s = 1.0\nseverity = \"info\"\n",
            "rules.fork_rate.threshold",
        ),
        (
            "[insights]\nmin_interval_s = inf\n",
            "insights.min_interval_s",
        ),
    ] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let out = run_bounded(&[
            "--config",
            path.to_str().unwrap(),
            "--once",
            "--duration",
            "1s",
            "--probe-mode",
            "procfs",
        ]);
        assert!(!out.status.success(), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{toml}: {err}");
    }
}

/// Each answer is `{"error": {"message", "type", "param", "code"}}` with `status`.
fn assert_openai_error(what: &str, status: u16, body: &str) {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body:?}"));
    let err = &v["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(err["type"].as_str().is_some(), "{what}: {v}");
    assert!(err.get("param").is_some(), "{what}: {v}");
    assert_eq!(err["code"], status, "{what}: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_is_an_openai_error_object() {
    let d = Daemon::start(
        &["--probe-mode", "procfs"],
        Some("[limits]\nbody_bytes = 4096\n"),
    );
    let client = reqwest::Client::new();
    let post = |path: &str, body: String, ctype: &str| {
        client
            .post(d.url(path))
            .header("content-type", ctype.to_string())
            .body(body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "broken JSON",
            post("/v1/completions", "{\"prompt\":".into(), "application/json"),
            400,
        ),
        (
            "wrong field type",
            post(
                "/v1/completions",
                json!({"prompt": 5, "max_tokens": "x"}).to_string(),
                "application/json",
            ),
            400,
        ),
        (
            "no content type",
            post("/v1/chat/completions", "{}".into(), "text/plain"),
            400,
        ),
        (
            "body over the limit",
            post(
                "/v1/completions",
                json!({"prompt": "x".repeat(8192)}).to_string(),
                "application/json",
            ),
            413,
        ),
        ("wrong method", client.delete(d.url("/v1/completions")), 405),
        (
            "GET on a POST endpoint",
            client.get(d.url("/v1/chat/completions")),
            405,
        ),
        ("no such endpoint", client.get(d.url("/v2/nothing")), 404),
        (
            "bad path parameter",
            client.get(d.url("/processes/not-a-pid")),
            400,
        ),
        ("bad query", client.get(d.url("/processes?limit=-3")), 400),
    ];
    for (what, req, status) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("application/json"), "{what}: {ctype}");
        if status == 405 {
            assert!(
                resp.headers().contains_key("allow"),
                "{what}: no Allow header"
            );
        }
        let body = resp.text().await.unwrap();
        assert_openai_error(what, status, &body);
    }
}
