//! Issue 33, must show 2: a fork storm's alert reaches a real Alertmanager (Debian's
//! `prometheus-alertmanager`, on loopback) with its labels, the model's insight arrives there
//! later as an annotation, an Alertmanager restarted mid-storm (with empty storage) has the
//! alert again from the resends, and after the storm the alert is resolved there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Daemon};

const STORM: &str = "emberamstorm";

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
}

impl Alertmanager {
    async fn start(bin: &Path, dir: &Path, port: u16) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let storage = tempfile::tempdir_in(dir).unwrap().keep();
        let log = std::fs::File::create(dir.join(format!("alertmanager-{port}.log"))).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: no gossip port, no peers.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", am.url)).await {
                if r.status() == 200 {
                    return am;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Alertmanager not ready in 30 s; log in {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The alerts it holds from the storm (active, or resolved but not yet forgotten).
    async fn storm_alerts(&self) -> Vec<Value> {
        let list: Value = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["subject"] == STORM)
            .cloned()
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alertmanager_bin() -> Option<PathBuf> {
    common::which("prometheus-alertmanager").or_else(|| common::which("alertmanager"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(url: &str) -> String {
    format!(
        r#"
[model]
ctx_size = 1024

[insights]
min_interval_s = 600.0
max_tokens = 200

[alertmanager]
urls = ["{url}"]
resend_s = 1.0
node = "test-node"

[rules]
resolve_after_s = 3.0

[rules.fork_rate]
threshold = 20.0
window_s = 2.0
severity = "critical"
"#
    ) + &common::rules_off_except(&["fork_rate"])
}

/// Waits (bounded) until `f` finds something in the Alertmanager.
async fn until<F>(am: &Alertmanager, limit: Duration, what: &str, f: F) -> Value
where
    F: Fn(&[Value]) -> Option<Value>,
{
    let start = Instant::now();
    loop {
        let alerts = am.storm_alerts().await;
        if let Some(v) = f(&alerts) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "{what} not in the Alertmanager after {limit:?}: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_alert_reaches_alertmanager_with_its_insight_survives_a_restart_and_resolves() {
    let Some(model) = common::model() else { return };
    let Some(bin) = alertmanager_bin() else {
        let why = "prometheus-alertmanager not found (apt-get install prometheus-alertmanager)";
        assert!(!common::ci(), "CI=true and {why}");
        common::skipped(why);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut am = Alertmanager::start(&bin, dir.path(), port).await;
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            common::probe_mode(),
        ],
        Some(&config(&am.url)),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    if !common::runs_bpf(&d, "fork events need BPF").await {
        return;
    }
    let storm = common::fork_storm(dir.path(), STORM);
    let began = Instant::now();

    // 1. The alert, with its labels.
    let first = until(&am, Duration::from_secs(60), "the storm's alert", |a| {
        a.first().cloned()
    })
    .await;
    let raised_after = began.elapsed();
    let labels = &first["labels"];
    let id = labels["alert_id"].as_str().unwrap().to_string();
    assert_eq!(labels["alertname"], "fork_rate", "{first}");
    assert_eq!(labels["severity"], "critical", "{first}");
    assert_eq!(labels["node"], "test-node", "{first}");
    assert_eq!(first["status"]["state"], "active", "{first}");
    assert!(first["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains(STORM));
    assert!(first["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("forks/s"));
    crate::report!(
        "alert in Alertmanager {:.1} s after the storm began: labels {labels}",
        raised_after.as_secs_f64()
    );

    // 2. The insight follows as an annotation (as long as the model makes progress).
    let mut progress = common::Progress::new(&d, Duration::from_secs(120));
    let with_insight = loop {
        let alerts = am.storm_alerts().await;
        if let Some(a) = alerts.iter().find(|a| {
            a["labels"]["alert_id"] == id.as_str() && a["annotations"].get("insight").is_some()
        }) {
            break a.clone();
        }
        progress
            .check("no insight annotation in Alertmanager yet")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    crate::report!(
        "insight annotation {:.1} s after the storm began: {}",
        began.elapsed().as_secs_f64(),
        with_insight["annotations"]["insight"]
    );

    // 3. Alertmanager restarted mid-storm, with empty storage: the resends bring it back.
    am.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let am = Alertmanager::start(&bin, dir.path(), port).await;
    let restarted = Instant::now();
    let again = until(
        &am,
        Duration::from_secs(30),
        "the alert after a restart",
        |a| {
            a.iter()
                .find(|a| a["labels"]["alert_id"] == id.as_str())
                .cloned()
        },
    )
    .await;
    assert_eq!(again["status"]["state"], "active", "{again}");
    assert!(again["annotations"].get("insight").is_some(), "{again}");
    crate::report!(
        "after an Alertmanager restart: the alert is back in {:.1} s, with its insight",
        restarted.elapsed().as_secs_f64()
    );
    let m = d.get_text("/metrics").await;
    let errors = common::metric(
        &m,
        &format!(
            "insightd_alertmanager_posts_total{{url=\"{}\",outcome=\"error\"}}",
            am.url
        ),
    )
    .unwrap_or(0.0);
    let ok = common::metric(
        &m,
        &format!(
            "insightd_alertmanager_posts_total{{url=\"{}\",outcome=\"ok\"}}",
            am.url
        ),
    )
    .unwrap_or(0.0);
    crate::report!(
        "posts while it was down: {errors} failed (retried with backoff); {ok} ok in all"
    );
    assert!(errors >= 1.0, "{m}");

    // 4. After the storm: resolved in insightd, then in the Alertmanager (endsAt passed).
    drop(storm);
    let stopped = Instant::now();
    let resolved = until(&am, Duration::from_secs(30), "the resolved alert", |a| {
        a.iter()
            .find(|a| a["labels"]["alert_id"] == id.as_str())
            .map_or(Some(Value::Null), |_| None)
    })
    .await;
    assert!(resolved.is_null());
    let ours: Value = d.get_json("/alerts").await;
    let ours = ours["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
        .cloned()
        .unwrap();
    assert_eq!(ours["active"], false, "{ours}");
    crate::report!(
        "resolved {:.1} s after the storm ended (resolve_after_s = 3): insightd's resolved = {}, gone from Alertmanager's active alerts",
        stopped.elapsed().as_secs_f64(),
        ours["resolved"]
    );
}
