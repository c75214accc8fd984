//! Health, readiness, status, processes, metrics (promtool), `--once`, SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Daemon};

/// Must show 1: /healthz answers within 1 s of start; /readyz turns ready once the model
/// is loaded, and /status then names the model, the CPU variant and the probe mode.
#[tokio::test(flavor = "multi_thread")]
async fn healthz_at_once_readyz_after_the_model_loads() {
    let Some(model) = common::model() else { return };
    let spawned = Instant::now();
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            common::probe_mode(),
            "--ctx-size",
            "256",
        ],
        None,
    );
    let client = reqwest::Client::new();
    let health_at = loop {
        if let Ok(r) = client.get(d.url("/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break spawned.elapsed();
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(5),
            "no /healthz answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("/healthz answered {health_at:?} after spawn");
    assert!(
        health_at < Duration::from_secs(1),
        "/healthz took {health_at:?} (the issue asks for under 1 s)"
    );
    let first = client.get(d.url("/readyz")).send().await.unwrap();
    eprintln!("first /readyz: {}", first.status());
    assert!(first.status() == 200 || first.status() == 503);
    d.wait_ready(Duration::from_secs(120)).await;
    let status: serde_json::Value = d.get_json("/status").await;
    assert_eq!(status["model"]["state"], "ready", "{status}");
    assert_eq!(status["ready"], true);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    // The CPU variant the daemon runs: the one this process gets on the same CPU.
    let variant = ember_llama::cpu::variant().unwrap();
    assert_eq!(status["cpu_variant"], variant, "{status}");
    let mode = status["telemetry"]["mode"].as_str().unwrap();
    assert!(mode == "bpf" || mode == "procfs", "{status}");
    if common::probe_mode() == "bpf" {
        assert_eq!(mode, "bpf");
    }
    // The process table knows the test itself.
    let me = std::process::id();
    let p: serde_json::Value = d.get_json(&format!("/processes/{me}")).await;
    assert_eq!(p["pid"], me, "{p}");
    let list: serde_json::Value = d.get_json("/processes?sort=rss&limit=5").await;
    assert_eq!(list["processes"].as_array().unwrap().len(), 5);
    assert_eq!(
        client
            .get(d.url("/processes/4294967295"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let v: serde_json::Value = d.get_json("/version").await;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // Graceful shutdown on SIGTERM.
    let exit = d.stop();
    assert!(exit.success(), "insightd exited with {exit}");
}

/// Must show 4: /metrics passes `promtool check metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let d = Daemon::start(&["--probe-mode", common::probe_mode()], None);
    d.wait_ready(Duration::from_secs(60)).await;
    let client = reqwest::Client::new();
    // Touch the labelled families so that they have samples.
    let _ = client
        .post(d.url("/v1/completions"))
        .json(&serde_json::json!({"prompt": "x"}))
        .send()
        .await;
    // Wait for a telemetry tick so that the probe counters are set.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = client.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    assert!(
        ctype.contains("openmetrics-text") || ctype.contains("text/plain"),
        "{ctype}"
    );
    for name in [
        "insightd_generations_cancelled_total",
        "insightd_probe_events_total",
        "insightd_processes",
        "insightd_build_info",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        common::metric(&text, "insightd_processes").unwrap() > 0.0,
        "{text}"
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {} {report}\n--- metrics ---\n{text}",
        out.status
    );
}

/// `insightd --once` prints a report, without a model and with one, and `--version` prints
/// the version.
#[test]
fn once_prints_a_report_with_and_without_a_model() {
    let out = Command::new(common::BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("insightd {}", env!("CARGO_PKG_VERSION"))
    );
    let run = |extra: &[&str]| {
        let out = Command::new(common::BIN)
            .args([
                "--once",
                "--duration",
                "2s",
                "--probe-mode",
                common::probe_mode(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let report = run(&[]);
    eprintln!("{report}");
    // It watched at least the 2 s asked for (more on a busy machine: no upper bound).
    let watched: f64 = report
        .split_once("report: ")
        .and_then(|(_, rest)| rest.split_once(" s of telemetry"))
        .and_then(|(secs, _)| secs.parse().ok())
        .unwrap_or_else(|| panic!("no \"report: N s of telemetry\" line: {report}"));
    assert!(watched >= 1.95, "{report}");
    assert!(report.contains("processes: "), "{report}");
    assert!(report.contains("insights: none (no model"), "{report}");
    let Some(model) = common::model() else { return };
    let report = run(&["--model", model.to_str().unwrap(), "--ctx-size", "1024"]);
    eprintln!("{report}");
    assert!(
        report.contains("insights (gemma-3-270m-q4_k_m)"),
        "{report}"
    );
}
