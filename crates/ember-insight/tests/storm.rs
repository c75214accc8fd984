//! Must show 2: a fork storm fires the fork-rate alert, and an insight follows whose JSON
//! parses and names the storm's command.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Daemon};

/// The storm's command name: a copy of /bin/sh under this name runs the loop.
const STORM: &str = "emberstorm";

const CONFIG: &str = include_str!("fork-storm.toml");

#[tokio::test(flavor = "multi_thread")]
async fn fork_storm_raises_an_alert_and_an_insight() {
    let Some(model) = common::model() else { return };
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            common::probe_mode(),
        ],
        Some(CONFIG),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    if d.probe_mode().await != "bpf" {
        assert!(
            !common::bpf_required(),
            "BPF is required but insightd runs in procfs mode"
        );
        common::skipped("fork events need BPF (run as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let storm = common::fork_storm(dir.path(), STORM);
    let storm_pid = storm.0.id();

    let start = Instant::now();
    let alert = loop {
        let alerts: Value = d.get_json("/alerts").await;
        let found = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "fork_rate" && a["subject"]["pid"] == storm_pid)
            .cloned();
        if let Some(a) = found {
            break a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no fork_rate alert: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(storm);
    eprintln!("alert: {alert}");
    assert_eq!(alert["subject"]["comm"], STORM);
    assert_eq!(alert["severity"], "critical");
    assert!(alert["evidence"]["value"].as_f64().unwrap() >= 20.0);
    assert_eq!(alert["evidence"]["unit"], "forks/s");
    assert!(alert["first_seen"].as_str().unwrap().ends_with('Z'));
    assert!(alert["id"].as_u64().unwrap() >= 1);

    // The insight takes as long as the machine lets the model run: wait while the engine
    // makes progress (decode steps), and fail only when it stalls.
    let mut progress = common::Progress::new(&d, Duration::from_secs(120));
    let insight = loop {
        let list: Value = d.get_json("/insights").await;
        let found = list["insights"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["alert_id"] == alert["id"])
            .cloned();
        if let Some(i) = found {
            break i;
        }
        progress
            .check(&format!("no insight for alert {} yet: {list}", alert["id"]))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("insight: {insight}");
    // Re-parse the model's JSON as a client would.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        summary: String,
        likely_cause: String,
        suggested_actions: Vec<String>,
        confidence: f64,
    }
    let text = insight["insight"].to_string();
    let body: Body = serde_json::from_str(&text).unwrap();
    assert!(!body.summary.is_empty() && !body.suggested_actions.is_empty());
    assert!((0.0..=1.0).contains(&body.confidence));
    let said = format!(
        "{} {} {}",
        body.summary,
        body.likely_cause,
        body.suggested_actions.join(" ")
    );
    assert!(
        said.contains(STORM),
        "the insight does not name {STORM}: {text}"
    );
    // Repeats merge into the alert instead of raising new ones.
    let alerts: Value = d.get_json("/alerts").await;
    let same: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "fork_rate" && a["subject"]["pid"] == storm_pid)
        .collect();
    assert_eq!(same.len(), 1, "{alerts}");
    let m = d.get_text("/metrics").await;
    assert!(common::metric(&m, "insightd_alerts_total{rule=\"fork_rate\"}").unwrap() >= 1.0);
    assert!(common::metric(&m, "insightd_insights_total").unwrap() >= 1.0);
}
