//! Prometheus metrics (`prometheus-client`), served by `/metrics` in the OpenMetrics text
//! format.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of per-rule metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    /// The rule name.
    pub rule: String,
}

/// Labels of the Alertmanager posts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertmanagerLabel {
    /// The Alertmanager's base URL.
    pub url: String,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of the OTLP exports.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OtlpLabel {
    /// `metrics` or `logs`.
    pub signal: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Label of dropped OTLP log records.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// `queue_full` or `export_failed`.
    pub reason: &'static str,
}

/// Label of per-probe metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabel {
    /// The probe name (`exec`, `oom`, `run_queue`, ...).
    pub probe: String,
}

/// Label of per-kind event metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The event kind (`exec`, `fork`, `exit`, `oom`, `tcp`, `exec_failed`).
    pub kind: &'static str,
}

/// Every metric of the daemon.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Alerts raised (new, not repeats).
    pub alerts: Family<RuleLabel, Counter>,
    /// Alerts active now.
    pub alerts_active: Gauge,
    /// Insights produced.
    pub insights: Counter,
    /// Insights that failed.
    pub insight_failures: Counter,
    /// Seconds from an insight job's start to its insight (or failure).
    pub insight_seconds: Histogram,
    /// Insight jobs waiting for the worker.
    pub insight_queue: Gauge,
    /// Alerts that got no insight because of the rate limit or a full queue.
    pub insights_skipped: Counter,
    /// Writes to the history (`state.dir`) that failed.
    pub history_write_errors: Counter,
    /// POSTs of alerts to each Alertmanager, by outcome.
    pub alertmanager_posts: Family<AlertmanagerLabel, Counter>,
    /// OTLP exports, by signal and outcome.
    pub otlp_exports: Family<OtlpLabel, Counter>,
    /// OTLP log records dropped, by reason.
    pub otlp_dropped: Family<DropLabel, Counter>,
    /// `/stream` clients connected now.
    pub sse_clients: Gauge,
    /// `/stream` clients dropped for falling behind.
    pub sse_clients_dropped: Counter,
    /// Requests refused for a missing or wrong bearer token.
    pub unauthorized: Counter,
    /// Probe events read.
    pub probe_events: Counter,
    /// Probe events the rules saw, by kind.
    pub events: Family<KindLabel, Counter>,
    /// Records lost in the BPF ring buffer.
    pub probe_ring_drops: Counter,
    /// Events lost in the probe channel.
    pub probe_channel_drops: Counter,
    /// Processes running.
    pub processes: Gauge,
    /// System-wide forks per second (10 s window).
    pub fork_rate: Gauge<f64, AtomicU64>,
    /// 1 when the probes run as BPF, 0 under `/proc` polling.
    pub probe_bpf: Gauge,
    /// Per enabled probe: 1 attached, 0 down (the reason is in `/status`).
    pub probe_up: Family<ProbeLabel, Gauge>,
    /// 1 once a model is loaded.
    pub model_loaded: Gauge,
    /// The OpenAI-compatible server's and its engine's (ember-serve).
    pub serve: ember_serve::ServeMetrics,
}

// The registry's contents are not worth printing; `Shared`'s Debug shows that it is there.
impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric, with `version` in `insightd_build_info`.
    pub fn new(version: &str) -> Metrics {
        let mut registry = Registry::with_prefix("insightd");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            alerts: Family::default(),
            alerts_active: Gauge::default(),
            insights: Counter::default(),
            insight_failures: Counter::default(),
            insight_seconds: Histogram::new(exponential_buckets(0.25, 2.0, 10)),
            insight_queue: Gauge::default(),
            insights_skipped: Counter::default(),
            history_write_errors: Counter::default(),
            alertmanager_posts: Family::default(),
            otlp_exports: Family::default(),
            otlp_dropped: Family::default(),
            sse_clients: Gauge::default(),
            sse_clients_dropped: Counter::default(),
            unauthorized: Counter::default(),
            probe_events: Counter::default(),
            events: Family::default(),
            probe_ring_drops: Counter::default(),
            probe_channel_drops: Counter::default(),
            processes: Gauge::default(),
            fork_rate: Gauge::default(),
            probe_bpf: Gauge::default(),
            probe_up: Family::default(),
            model_loaded: Gauge::default(),
            serve: ember_serve::ServeMetrics::default(),
        };
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![("version".to_string(), version.to_string())])
            .set(1);
        registry.register("build_info", "Build information", info);
        m.serve.register(&mut registry);
        registry.register("alerts", "Alerts raised, by rule", m.alerts.clone());
        registry.register(
            "alerts_active",
            "Alerts active now",
            m.alerts_active.clone(),
        );
        registry.register("insights", "Insights produced", m.insights.clone());
        registry.register(
            "insight_failures",
            "Insights that failed",
            m.insight_failures.clone(),
        );
        registry.register(
            "insight_seconds",
            "Seconds from an insight job's start to its insight or failure",
            m.insight_seconds.clone(),
        );
        registry.register(
            "insight_queue",
            "Insight jobs waiting for the worker",
            m.insight_queue.clone(),
        );
        registry.register(
            "insights_skipped",
            "Alerts left without insight by the rate limit or a full queue",
            m.insights_skipped.clone(),
        );
        registry.register(
            "history_write_errors",
            "Writes of alerts or insights to the history in state.dir that failed",
            m.history_write_errors.clone(),
        );
        registry.register(
            "alertmanager_posts",
            "POSTs of alerts to each Alertmanager (alertmanager.urls), by outcome",
            m.alertmanager_posts.clone(),
        );
        registry.register(
            "otlp_exports",
            "OTLP exports (otlp.endpoint), by signal and outcome",
            m.otlp_exports.clone(),
        );
        registry.register(
            "otlp_dropped",
            "OTLP log records dropped: the queue was full, or the receiver refused or timed out",
            m.otlp_dropped.clone(),
        );
        registry.register(
            "sse_clients",
            "Event stream clients connected",
            m.sse_clients.clone(),
        );
        registry.register(
            "sse_clients_dropped",
            "Event stream clients dropped for falling behind",
            m.sse_clients_dropped.clone(),
        );
        registry.register(
            "unauthorized_requests",
            "Requests refused for a missing or wrong bearer token",
            m.unauthorized.clone(),
        );
        registry.register("probe_events", "Probe events read", m.probe_events.clone());
        registry.register(
            "events",
            "Probe events the rules saw, by kind",
            m.events.clone(),
        );
        registry.register(
            "probe_ring_drops",
            "Records lost in the BPF ring buffer",
            m.probe_ring_drops.clone(),
        );
        registry.register(
            "probe_channel_drops",
            "Probe events lost in the bounded channel",
            m.probe_channel_drops.clone(),
        );
        registry.register("processes", "Processes running", m.processes.clone());
        registry.register(
            "fork_rate",
            "System-wide forks per second over 10 s",
            m.fork_rate.clone(),
        );
        registry.register(
            "probe_bpf",
            "1 when telemetry comes from BPF, 0 under /proc polling",
            m.probe_bpf.clone(),
        );
        registry.register(
            "probe_up",
            "Per enabled probe: 1 attached, 0 down (the reason is in /status)",
            m.probe_up.clone(),
        );
        registry.register(
            "model_loaded",
            "1 once the model is loaded",
            m.model_loaded.clone(),
        );
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        m
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics text: counter families are named
/// with their `_total` suffix in `# HELP`/`# TYPE` (OpenMetrics names the family without it),
/// and `# EOF` is left out. Scrapers that do not ask for OpenMetrics, and `promtool check
/// metrics`, read this format.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Raises a counter to `total` (for totals kept elsewhere, such as the probes' counters).
pub fn raise_to(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_suffix_in_the_prometheus_format() {
        let m = Metrics::new("1.2.3");
        m.serve.generations_cancelled.inc();
        let om = m.encode();
        assert!(om.contains("# TYPE insightd_generations_cancelled counter"));
        assert!(om.ends_with("# EOF\n"));
        let text = to_prometheus_text(&om);
        assert!(text.contains("# TYPE insightd_generations_cancelled_total counter\n"));
        assert!(text.contains("# HELP insightd_generations_cancelled_total Generations"));
        assert!(text.contains("insightd_generations_cancelled_total 1\n"));
        assert!(text.contains("# TYPE insightd_processes gauge\n"));
        assert!(!text.contains("# EOF"));
    }
}
