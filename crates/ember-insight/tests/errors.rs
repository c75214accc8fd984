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

/// Sends `request` on `stream` and reads one answer: its status and headers (lower-case names).
fn exchange(
    stream: &mut std::net::TcpStream,
    request: &[u8],
) -> std::io::Result<(u16, Vec<(String, String)>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    stream.write_all(request)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::other("closed without an answer"));
    }
    let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok((status, headers))
}

/// A client that keeps connections open (reqwest, httpx, requests all do) must learn when an
/// error answer ends the connection: hyper closes it when the handler never read the body (a
/// rejected token, a wrong method or path, a body over the limit). Before `Connection: close`
/// was sent, the next request on the same socket failed with a broken pipe.
#[test]
fn an_error_that_leaves_the_body_unread_says_connection_close() {
    let d = Daemon::start(
        &["--probe-mode", "procfs", "--token", "t0ken"],
        Some("[limits]\nbody_bytes = 65536\n"),
    );
    let addr = d.base.trim_start_matches("http://").to_string();
    let body = format!("{{\"prompt\":\"{}\"}}", "x".repeat(100_000));
    let small = "{\"prompt\":\"hi\"}";
    let request = |method: &str, path: &str, token: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let cases = [
        (
            "wrong token",
            request("POST", "/v1/completions", "nope", &body),
            401,
        ),
        (
            "wrong method",
            request("GET", "/v1/completions", "t0ken", &body),
            405,
        ),
        (
            "no such path",
            request("POST", "/v2/none", "t0ken", &body),
            404,
        ),
        (
            "over the limit",
            request("POST", "/v1/completions", "t0ken", &body),
            413,
        ),
    ];
    for (what, req, want) in cases {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (status, headers) = exchange(&mut stream, &req).unwrap();
        assert_eq!(status, want, "{what}");
        let close = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        if !close {
            // Then the connection must serve the next request.
            let next = exchange(&mut stream, &request("GET", "/version", "t0ken", ""));
            assert!(
                matches!(next, Ok((200, _))),
                "{what}: no Connection: close, and the next request on the socket got {next:?}"
            );
        }
    }
    // A small body the handler reads keeps the connection open.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let (status, headers) = exchange(
        &mut stream,
        &request("POST", "/v1/completions", "t0ken", small),
    )
    .unwrap();
    assert_eq!(status, 503, "no model is loaded");
    assert!(
        !headers.iter().any(|(k, _)| k == "connection"),
        "{headers:?}"
    );
    let (status, _) = exchange(&mut stream, &request("GET", "/version", "t0ken", "")).unwrap();
    assert_eq!(status, 200);
}
