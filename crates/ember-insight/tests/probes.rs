//! One probe down is not the daemon down: a probe made to fail (attached to a tracepoint no
//! kernel has, through the `--test-fail-probe` hook) is reported in `/status` and `/metrics`
//! while the others run; with `--require-all-probes` insightd refuses to start, naming it.

use std::process::Command;
use std::time::Duration;

use crate::common::{self, Daemon};

/// True when this host runs BPF; otherwise the test says why and skips (fails under CI).
fn bpf_here() -> bool {
    let out = Command::new(common::BIN)
        .args(["--once", "--duration", "100ms", "--probe-mode", "bpf"])
        .output()
        .unwrap();
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!common::bpf_required(), "BPF does not start here: {err}");
    common::skipped(&format!("BPF does not start here: {err}"));
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_probe_is_down_in_status_and_metrics_and_the_daemon_serves() {
    if !bpf_here() {
        return;
    }
    let d = Daemon::start(&["--probe-mode", "auto", "--test-fail-probe", "oom"], None);
    d.wait_ready(Duration::from_secs(60)).await;
    let status = d.get_json("/status").await;
    let t = &status["telemetry"];
    assert_eq!(t["mode"], "bpf", "{status:#}");
    let probes = t["probes"].as_array().expect("probes listed");
    let find = |name: &str| {
        probes
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {probes:?}"))
    };
    let oom = find("oom");
    assert_eq!(oom["state"], "down", "{oom}");
    let reason = oom["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("insightd_test_missing_tracepoint"),
        "{reason}"
    );
    assert!(reason.contains("switch the probe off"), "{reason}");
    for name in ["exec", "fork", "exit"] {
        assert_eq!(find(name)["state"], "up", "{name}");
        assert!(find(name)["reason"].is_null());
    }
    assert_eq!(find("tcp")["state"], "off");

    // The others still see processes come and go.
    let before =
        common::metric(&d.get_text("/metrics").await, "insightd_probe_events_total").unwrap_or(0.0);
    for _ in 0..20 {
        Command::new("/bin/true").status().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = d.get_text("/metrics").await;
    assert_eq!(
        common::metric(&metrics, "insightd_probe_up{probe=\"oom\"}"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        common::metric(&metrics, "insightd_probe_up{probe=\"exec\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        common::metric(&metrics, "insightd_probe_events_total").unwrap() >= before + 40.0,
        "{metrics}"
    );
    assert!(d.log_contains("probe oom is down"));
}

#[test]
fn with_require_all_probes_a_failed_probe_stops_the_start_naming_it() {
    if !bpf_here() {
        return;
    }
    for mode in ["auto", "bpf"] {
        let out = Command::new(common::BIN)
            .args(["--bind", "127.0.0.1:0", "--probe-mode", mode])
            .args(["--require-all-probes", "--test-fail-probe", "oom"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "started in {mode} mode");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("probe oom is down"), "{mode}: {err}");
        assert!(err.contains("--require-all-probes"), "{mode}: {err}");
        assert!(
            err.contains("insightd_test_missing_tracepoint"),
            "{mode}: {err}"
        );
    }
}
