//! Alerts to Prometheus Alertmanager (`POST /api/v2/alerts`), as Prometheus sends them: every
//! active alert on each change and again every `alertmanager.resend_s`, with an `endsAt` four
//! resends ahead (so that the Alertmanager resolves the alerts of an insightd that is gone),
//! and a resolved alert with its real `endsAt` until each Alertmanager took it.
//!
//! One task sends to every URL. It reads the alert and insight stores under their locks only
//! to copy what it sends; a slow or down Alertmanager is retried with backoff (1 s doubling to
//! `resend_s`) and counted, and never holds up the rules or the probes.
//!
//! Labels: `alertname` (the rule), `severity`, `node`, `subject` (the command), `alert_id`, and
//! `pod_uid`/`container_id` when the subject runs in a pod. An alert's labels are fixed at its
//! first sending (an Alertmanager tells alerts apart by them). Annotations: `summary` (the
//! message), `description` (the evidence), `pid`, `cgroup`, and once the model wrote it,
//! `insight`, `insight_actions` and `insight_confidence`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::alerts::Alert;
use crate::insights::Insight;
use crate::metrics::AlertmanagerLabel;
use crate::state::Shared;
use crate::time::rfc3339;

/// Labels of one alert.
pub type Labels = BTreeMap<String, String>;

/// The `node` label: configured, else `$NODE_NAME`, else the host name.
pub fn node_name(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(crate::push::host_name)
}

/// The labels an alert is first sent with.
pub fn labels(alert: &Alert, node: &str) -> Labels {
    let mut l = Labels::new();
    l.insert("alertname".into(), alert.rule.to_string());
    l.insert("severity".into(), alert.severity.as_str().into());
    l.insert("node".into(), node.into());
    l.insert("subject".into(), alert.subject.comm.clone());
    l.insert("alert_id".into(), alert.id.to_string());
    if let Some(pod) = &alert.subject.pod {
        l.insert("pod_uid".into(), pod.uid.clone());
        if let Some(id) = &pod.container_id {
            l.insert("container_id".into(), id.clone());
        }
    }
    l
}

/// One alert as the v2 API takes it. `ends_active` is the `endsAt` of an active alert.
pub fn postable(
    alert: &Alert,
    labels: &Labels,
    insight: Option<&Insight>,
    ends_active: &str,
) -> Value {
    let e = &alert.evidence;
    let mut description = format!(
        "{} {} (threshold {} over {} s)",
        e.value, e.unit, e.threshold, e.window_s
    );
    for (k, v) in &e.details {
        description.push_str(&format!("; {k}: {v}"));
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("summary", alert.message.clone());
    annotations.insert("description", description);
    if alert.subject.pid != 0 {
        annotations.insert("pid", alert.subject.pid.to_string());
    }
    if let Some(cg) = &alert.subject.cgroup {
        annotations.insert("cgroup", cg.clone());
    }
    if let Some(i) = insight {
        annotations.insert(
            "insight",
            format!(
                "{} Likely cause: {}",
                i.insight.summary, i.insight.likely_cause
            ),
        );
        annotations.insert("insight_actions", i.insight.suggested_actions.join("; "));
        annotations.insert("insight_confidence", i.insight.confidence.to_string());
    }
    let ends = if alert.active {
        ends_active.to_string()
    } else {
        alert
            .resolved
            .clone()
            .unwrap_or_else(|| alert.last_seen.clone())
    };
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.first_seen,
        "endsAt": ends,
    })
}

/// What the task keeps per Alertmanager.
struct Target {
    url: String,
    endpoint: hyper::Uri,
    /// Resolved alerts this one took.
    resolved_sent: HashSet<u64>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Sends alerts until shutdown (a no-op without `alertmanager.urls`).
pub async fn run(shared: Arc<Shared>) {
    let config = shared.config.alertmanager.clone();
    let mut targets: Vec<Target> = config
        .urls
        .iter()
        .filter_map(|url| {
            let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'))
                .parse()
                .ok()?;
            Some(Target {
                url: url.clone(),
                endpoint,
                resolved_sent: HashSet::new(),
                failures: 0,
                retry_at: None,
            })
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let node = node_name(config.node.as_deref());
    let resend = Duration::from_secs_f64(config.resend_s);
    let timeout = Duration::from_secs_f64(config.timeout_s);
    let client = crate::push::client();
    let mut fixed_labels: HashMap<u64, Labels> = HashMap::new();
    log::info!(
        "sending alerts to {} as node {node}, again every {:.0} s",
        config.urls.join(", "),
        config.resend_s
    );
    let mut next_resend = Instant::now();
    while !shared.stopping.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wake = targets
            .iter()
            .filter_map(|t| t.retry_at)
            .chain([next_resend])
            .min()
            .unwrap_or(next_resend);
        // Woken by news (a new, resolved or explained alert), a resend or a retry; at least
        // every second, to see shutdown.
        let wait = wake
            .saturating_duration_since(now)
            .min(Duration::from_secs(1));
        let news = tokio::time::timeout(wait, shared.alert_news.notified())
            .await
            .is_ok();
        let now = Instant::now();
        let due = news || now >= next_resend;
        if due {
            next_resend = now + resend;
        }
        let (alerts, insights) = snapshot(&shared);
        let ids: HashSet<u64> = alerts.iter().map(|a| a.id).collect();
        fixed_labels.retain(|id, _| ids.contains(id));
        let ends_active = rfc3339(SystemTime::now() + 4 * resend);
        for t in &mut targets {
            // Due news or resend while not backing off, or a retry that is due.
            let send = match t.retry_at {
                None => due,
                Some(at) => now >= at,
            };
            if !send {
                continue;
            }
            t.resolved_sent.retain(|id| ids.contains(id));
            let batch: Vec<&Alert> = alerts
                .iter()
                .filter(|a| a.active || !t.resolved_sent.contains(&a.id))
                .collect();
            if batch.is_empty() {
                t.retry_at = None;
                continue;
            }
            let body: Vec<Value> = batch
                .iter()
                .map(|a| {
                    let labels = fixed_labels.entry(a.id).or_insert_with(|| labels(a, &node));
                    postable(a, labels, insights.get(&a.id), &ends_active)
                })
                .collect();
            let result = match serde_json::to_vec(&body) {
                Ok(bytes) => {
                    crate::push::post(&client, &t.endpoint, "application/json", bytes, timeout)
                        .await
                }
                Err(e) => Err(e.to_string()),
            };
            let outcome = if result.is_ok() { "ok" } else { "error" };
            shared
                .metrics
                .alertmanager_posts
                .get_or_create(&AlertmanagerLabel {
                    url: t.url.clone(),
                    outcome,
                })
                .inc();
            match result {
                Ok(()) => {
                    if t.failures > 0 {
                        log::info!(
                            "alertmanager {} takes alerts again after {} failed tries",
                            t.url,
                            t.failures
                        );
                    }
                    t.failures = 0;
                    t.retry_at = None;
                    t.resolved_sent
                        .extend(batch.iter().filter(|a| !a.active).map(|a| a.id));
                }
                Err(e) => {
                    t.failures += 1;
                    let backoff = Duration::from_secs(1)
                        .saturating_mul(1 << t.failures.min(16).saturating_sub(1))
                        .min(resend.max(Duration::from_secs(1)));
                    t.retry_at = Some(Instant::now() + backoff);
                    if t.failures == 1 || t.failures.is_power_of_two() {
                        log::warn!(
                            "alertmanager {}: {e} ({} tries failed; next in {:.0} s)",
                            t.url,
                            t.failures,
                            backoff.as_secs_f64()
                        );
                    }
                }
            }
        }
    }
}

/// Copies of the alerts (all the store holds) and of the insights by alert id.
fn snapshot(shared: &Shared) -> (Vec<Alert>, HashMap<u64, Insight>) {
    let alerts: Vec<Alert> = shared
        .alerts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .all()
        .cloned()
        .collect();
    let insights = shared
        .insights
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .all()
        .map(|i| (i.alert_id, i.clone()))
        .collect();
    (alerts, insights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Evidence, Subject};
    use crate::config::Severity;
    use crate::pod::Pod;

    #[test]
    fn labels_annotations_and_ends() {
        let mut a = Alert::new(
            3,
            "fork_rate",
            Severity::Critical,
            Subject {
                pid: 42,
                comm: "storm".into(),
                cgroup: Some("/kubepods/pod1/abc".into()),
                pod: Some(Pod {
                    uid: "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8".into(),
                    container_id: Some("abc".into()),
                    qos_class: "Burstable".into(),
                    runtime: None,
                }),
            },
            Evidence {
                value: 50.0,
                threshold: 20.0,
                unit: "forks/s",
                window_s: 3.0,
                details: vec![("children_now".into(), "9".into())],
            },
            "storm forked".into(),
        );
        let l = labels(&a, "node-1");
        assert_eq!(l["alertname"], "fork_rate");
        assert_eq!(l["severity"], "critical");
        assert_eq!(l["pod_uid"], "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8");
        assert_eq!(l["container_id"], "abc");
        let v = postable(&a, &l, None, "2030-01-01T00:00:00.000Z");
        assert_eq!(v["endsAt"], "2030-01-01T00:00:00.000Z");
        assert_eq!(
            v["annotations"]["description"],
            "50 forks/s (threshold 20 over 3 s); children_now: 9"
        );
        assert!(v["annotations"].get("insight").is_none());
        a.active = false;
        a.resolved = Some("2026-01-01T00:00:00.000Z".into());
        let v = postable(&a, &l, None, "2030-01-01T00:00:00.000Z");
        assert_eq!(v["endsAt"], "2026-01-01T00:00:00.000Z");
    }
}
