//! Issue 33, must show 4: alerts and insights in `state.dir` survive `kill -9`. Rounds of
//! insightd are killed while a loop raises alerts (every failing command is one) and the model
//! writes insights; every alert and insight a client saw (`/alerts`, `/insights`) before a kill
//! is back after the last restart, the store passes SQLite's integrity check, and no record is
//! there twice. Then retention bounds the store.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Daemon};

fn config(state: &Path, max_alerts: usize) -> String {
    format!(
        r#"
[model]
ctx_size = 1024

[probes]
tick_ms = 200

[state]
dir = "{}"
max_alerts = {max_alerts}

[insights]
min_interval_s = 0.0
keep = 10000
max_tokens = 120

[rules]
keep = 10000
resolve_after_s = 1.0

[rules.failing_exits]
threshold = 1.0
window_s = 1.0
severity = "warning"
"#,
        state.display()
    ) + &common::rules_off_except(&["failing_exits"])
}

/// Commands that fail, each under a name of its own (a new alert each), until dropped.
fn failures(dir: &Path, round: usize) -> common::KillOnDrop {
    let script = format!(
        "i=0; while :; do i=$((i+1)); f={dir}/hf{round}x$i; cp /bin/false $f; $f; rm -f $f; sleep 0.05; done",
        dir = dir.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    common::KillOnDrop(child)
}

fn ids(list: &Value, field: &str, id: &str) -> Vec<u64> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[id].as_u64().unwrap())
        .collect()
}

async fn start(model: &Path, state: &Path, max_alerts: usize) -> Option<Daemon> {
    let d = Daemon::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            common::probe_mode(),
        ],
        Some(&config(state, max_alerts)),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    if !common::runs_bpf(&d, "failing exits need BPF").await {
        return None;
    }
    Some(d)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_no_acknowledged_alert_or_insight() {
    let Some(model) = common::model() else { return };
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut acked_alerts = BTreeSet::new();
    let mut acked_insights = BTreeSet::new();
    let rounds = 4;
    for round in 0..rounds {
        let Some(d) = start(&model, state.path(), 10_000).await else {
            return;
        };
        let failures = failures(work.path(), round);
        // Different moments in the write pattern each round; from the third on, the kill
        // waits for an insight to be shown first (one takes seconds on a small CPU) and comes
        // while the next is being written.
        let run_for = Duration::from_millis(2500 + 900 * round as u64);
        let want_insight = round >= 2;
        let began = Instant::now();
        let (mut a, mut i) = (0, 0);
        let mut insight_at = None;
        loop {
            let waited = began.elapsed();
            let enough = match (want_insight, insight_at) {
                (false, _) => waited >= run_for,
                (true, Some(at)) => {
                    waited >= run_for && at + Duration::from_millis(700) <= began.elapsed()
                }
                (true, None) => false,
            };
            if enough {
                break;
            }
            assert!(
                waited < Duration::from_secs(180),
                "no insight in 180 s of round {round}"
            );
            let alerts: Value = d.get_json("/alerts").await;
            let insights: Value = d.get_json("/insights").await;
            for id in ids(&alerts, "alerts", "id") {
                a += usize::from(acked_alerts.insert(id));
            }
            for id in ids(&insights, "insights", "alert_id") {
                if acked_insights.insert(id) {
                    i += 1;
                    insight_at.get_or_insert(began.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.kill9();
        drop(failures);
        crate::report!(
            "round {round}: killed (-9) after {:.1} s; newly acknowledged: {a} alerts, {i} insights",
            began.elapsed().as_secs_f64()
        );
    }

    // The store, as SQLite itself sees it after the kills, before insightd opens it again.
    let db = state.path().join("insightd.db");
    let (check, rows_alerts, rows_insights, distinct) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        (
            check,
            count("SELECT count(*) FROM alerts"),
            count("SELECT count(*) FROM insights"),
            // The same alert (rule and subject key, first firing) under two ids is a duplicate.
            count("SELECT count(*) FROM (SELECT DISTINCT key, json_extract(body, '$.first_seen') FROM alerts)"),
        )
    };
    assert_eq!(check, "ok", "integrity check after kill -9");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = state.path().join("insightd.db-wal");
    crate::report!(
        "store after the kills: insightd.db {} bytes, -wal {} bytes, for {} rows ({} bytes a row)",
        size(&db),
        size(&wal),
        rows_alerts + rows_insights,
        (size(&db) + size(&wal)) / (rows_alerts + rows_insights).max(1) as u64
    );

    let Some(d) = start(&model, state.path(), 10_000).await else {
        return;
    };
    let alerts: Value = d.get_json("/alerts").await;
    let insights: Value = d.get_json("/insights").await;
    let found_alerts: Vec<u64> = ids(&alerts, "alerts", "id");
    let found_insights: Vec<u64> = ids(&insights, "insights", "alert_id");
    let unique_alerts: BTreeSet<u64> = found_alerts.iter().copied().collect();
    let unique_insights: BTreeSet<u64> = found_insights.iter().copied().collect();
    let lost_alerts: Vec<&u64> = acked_alerts.difference(&unique_alerts).collect();
    let lost_insights: Vec<&u64> = acked_insights.difference(&unique_insights).collect();
    crate::report!(
        "{:<9} {:>9} {:>13} {:>12} {:>5}",
        "",
        "written",
        "acknowledged",
        "found after",
        "lost"
    );
    crate::report!(
        "{:<9} {:>9} {:>13} {:>12} {:>5}",
        "alerts",
        rows_alerts,
        acked_alerts.len(),
        found_alerts.len(),
        lost_alerts.len()
    );
    crate::report!(
        "{:<9} {:>9} {:>13} {:>12} {:>5}",
        "insights",
        rows_insights,
        acked_insights.len(),
        found_insights.len(),
        lost_insights.len()
    );
    crate::report!(
        "integrity_check: {check}; distinct (key, first_seen) among alert rows: {distinct}"
    );
    assert!(
        acked_alerts.len() >= 20,
        "too few alerts to tell: {acked_alerts:?}"
    );
    assert!(
        !acked_insights.is_empty(),
        "no insight was written in {rounds} rounds"
    );
    assert!(
        lost_alerts.is_empty(),
        "acknowledged alerts lost: {lost_alerts:?}"
    );
    assert!(
        lost_insights.is_empty(),
        "acknowledged insights lost: {lost_insights:?}"
    );
    assert_eq!(found_alerts.len(), unique_alerts.len(), "an alert id twice");
    assert_eq!(
        found_insights.len(),
        unique_insights.len(),
        "an insight twice"
    );
    assert_eq!(found_alerts.len() as i64, rows_alerts, "every row is back");
    assert_eq!(
        found_insights.len() as i64,
        rows_insights,
        "every row is back"
    );
    assert_eq!(distinct, rows_alerts, "an alert stored twice under two ids");
    // Ids go on after the restart: a new alert gets one never used before.
    let failures = failures(work.path(), rounds);
    let max_before = *unique_alerts.last().unwrap();
    let start_wait = Instant::now();
    loop {
        let list: Value = d.get_json("/alerts").await;
        let newer = ids(&list, "alerts", "id")
            .into_iter()
            .filter(|id| *id > max_before)
            .count();
        if newer > 0 {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(30),
            "no new alert after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(failures);
    d.stop();

    // Retention: the store keeps the newest `max_alerts`.
    let Some(d) = start(&model, state.path(), 20).await else {
        return;
    };
    let list: Value = d.get_json("/alerts").await;
    let kept = ids(&list, "alerts", "id");
    d.stop();
    crate::report!(
        "retention max_alerts = 20: {} alerts back; insightd.db {} bytes, -wal {} bytes",
        kept.len(),
        size(&db),
        size(&wal)
    );
    assert_eq!(kept.len(), 20, "{list}");
    assert!(kept.iter().all(|id| *id > max_before.saturating_sub(40)));
}
