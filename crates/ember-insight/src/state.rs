//! State shared by the telemetry thread, the insight worker and the HTTP handlers.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use ember_probes::{ProcessTable, Stats};

use crate::alerts::AlertStore;
use crate::config::Config;
use crate::history::History;
use crate::hub::Hub;
use crate::insights::InsightStore;
use crate::llm::Llm;
use crate::metrics::Metrics;
pub use ember_serve::ModelState;
use ember_serve::Server;

/// The daemon's version.
pub const VERSION: &str = match option_env!("EMBER_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// What telemetry looks like now (replaced on each tick).
#[derive(Debug, Clone, Default)]
pub struct TelemetrySnapshot {
    /// True once the probes run.
    pub running: bool,
    /// `bpf` or `procfs`.
    pub mode: Option<&'static str>,
    /// Why BPF is not used, when it is not.
    pub fallback_reason: Option<String>,
    /// Why telemetry stopped, when it did.
    pub error: Option<String>,
    /// Each probe and its state (all off under `/proc` polling).
    pub probes: Vec<ember_probes::ProbeStatus>,
    /// Probe counters.
    pub stats: Stats,
    /// The process table (after the first tick).
    pub table: Option<Arc<ProcessTable>>,
    /// Run-queue latency p99 over the last tick, in µs (BPF with the histogram on).
    pub runq_p99_us: Option<u64>,
    /// Ticks so far.
    pub ticks: u64,
}

/// Everything shared.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The metrics.
    pub metrics: Metrics,
    /// `/stream` clients.
    pub hub: Hub,
    /// Alerts.
    pub alerts: Mutex<AlertStore>,
    /// Insights.
    pub insights: Mutex<InsightStore>,
    /// Telemetry now.
    pub telemetry: RwLock<TelemetrySnapshot>,
    /// The model and the OpenAI-compatible server of it (ember-serve).
    pub serve: Arc<Server>,
    /// When the daemon started.
    pub started: Instant,
    /// Set at shutdown: the telemetry thread and insight worker stop.
    pub stopping: AtomicBool,
    /// Alerts and insights on disk (`state.dir`). Taken after `alerts` or `insights`, never
    /// before: the record is on disk before the lock that shows it is released.
    pub history: Option<Mutex<History>>,
    /// Woken when an alert is new or resolved, or gets its insight: the Alertmanager task
    /// sends then rather than at its next resend.
    pub alert_news: tokio::sync::Notify,
    /// Records waiting for the OTLP logs export (when it is configured).
    pub otlp_logs: Option<crate::otlp::LogQueue>,
}

impl Shared {
    /// State for `config` with its history: the store in `state.dir` opened, and its newest
    /// alerts (`rules.keep`) and insights (`insights.keep`) back in memory.
    ///
    /// # Errors
    ///
    /// The store cannot be opened or read (see [`History::open`]).
    pub fn open(config: Config) -> anyhow::Result<Arc<Shared>> {
        let Some(history) = History::open(&config.state)? else {
            return Ok(Shared::new(config));
        };
        let alerts = history.alerts(config.rules.keep)?;
        let insights = history.insights(config.insights.keep)?;
        log::info!(
            "history {}: {} alerts ({} active) and {} insights restored",
            history.path().display(),
            alerts.len(),
            alerts.iter().filter(|a| a.active).count(),
            insights.len()
        );
        let mut shared = Shared::build(config);
        let keep = shared.config.rules.keep;
        shared
            .alerts
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .restore(alerts, keep);
        shared
            .insights
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .restore(insights);
        shared.history = Some(Mutex::new(history));
        Ok(Arc::new(shared))
    }

    /// Fresh state for `config`, in memory only.
    pub fn new(config: Config) -> Arc<Shared> {
        Arc::new(Shared::build(config))
    }

    fn build(config: Config) -> Shared {
        let metrics = Metrics::new(VERSION);
        let mut serve = Server::new(config.model.clone(), metrics.serve.clone());
        serve.owned_by = "insightd".into();
        serve.no_model_hint = "start insightd with --model <GGUF>".into();
        Shared {
            metrics,
            serve: Arc::new(serve),
            hub: Hub::new(config.limits.sse_queue, config.limits.sse_clients),
            alerts: Mutex::new(AlertStore::default()),
            insights: Mutex::new(InsightStore::new(config.insights.keep)),
            telemetry: RwLock::new(TelemetrySnapshot::default()),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            history: None,
            alert_news: tokio::sync::Notify::new(),
            otlp_logs: config
                .otlp
                .url("logs")
                .map(|_| crate::otlp::LogQueue::new(config.otlp.queue)),
            config,
        }
    }

    /// A copy of the telemetry snapshot.
    pub fn telemetry(&self) -> TelemetrySnapshot {
        self.telemetry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The OpenMetrics text of every metric, as `/metrics` and the OTLP export read it: the
    /// count of dropped stream clients, kept by the hub, brought up to date first.
    pub fn metrics_text(&self) -> String {
        crate::metrics::raise_to(&self.metrics.sse_clients_dropped, self.hub.dropped());
        self.metrics.encode()
    }

    /// The model state.
    pub fn model_state(&self) -> ModelState {
        self.serve.model_state()
    }

    /// The loaded model, if any.
    pub fn llm(&self) -> Option<Arc<Llm>> {
        self.serve.llm()
    }

    /// Hands on what changed in `alerts`, under the alert store's lock that the caller holds:
    /// every change to the history (when there is one; a failed write is logged and counted,
    /// the alerts stay in memory), and new (first firing) or resolved alerts to the OTLP
    /// export and, as news, to the Alertmanager sender (repeats wait for its next resend).
    pub fn publish_alert_changes(&self, alerts: &mut AlertStore) {
        let changed = alerts.take_changed();
        let mut news = false;
        for alert in changed.iter().filter(|a| !a.active || a.count == 1) {
            news = true;
            self.export_alert(alert);
        }
        if news {
            self.alert_news.notify_one();
        }
        if let Some(history) = &self.history {
            let result = history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save_alerts(&changed);
            self.history_result(result);
        }
    }

    /// Writes an insight to the history (when there is one).
    pub fn persist_insight(&self, insight: &crate::insights::Insight) {
        if let Some(history) = &self.history {
            let result = history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save_insight(insight);
            self.history_result(result);
        }
    }

    /// Queues a record for the OTLP logs export (when configured); a full queue drops it,
    /// counted.
    pub fn export_log(&self, record: crate::otlp::Record) {
        if let Some(queue) = &self.otlp_logs {
            if !queue.push(record) {
                self.metrics
                    .otlp_dropped
                    .get_or_create(&crate::metrics::DropLabel {
                        reason: "queue_full",
                    })
                    .inc();
            }
        }
    }

    fn export_alert(&self, a: &crate::alerts::Alert) {
        if self.otlp_logs.is_none() {
            return;
        }
        let fields = serde_json::json!({
            "alert.id": a.id, "alert.rule": a.rule, "alert.state": if a.active { "firing" } else { "resolved" },
            "alert.value": a.evidence.value, "alert.threshold": a.evidence.threshold,
            "alert.unit": a.evidence.unit, "alert.window_s": a.evidence.window_s,
            "alert.first_seen": a.first_seen, "alert.resolved": a.resolved,
            "process.pid": a.subject.pid, "process.command": a.subject.comm, "cgroup": a.subject.cgroup,
        });
        self.export_log(crate::otlp::Record {
            kind: "alert",
            time: std::time::SystemTime::now(),
            severity: Some(a.severity),
            body: a.message.clone(),
            fields,
            pod: a.subject.pod.clone(),
        });
    }

    /// Queues an insight for the OTLP logs export (when configured).
    pub fn export_insight(&self, i: &crate::insights::Insight) {
        if self.otlp_logs.is_none() {
            return;
        }
        let fields = serde_json::json!({
            "alert.id": i.alert_id, "alert.rule": i.rule, "process.command": i.subject_comm,
            "insight.likely_cause": i.insight.likely_cause,
            "insight.suggested_actions": i.insight.suggested_actions.join("; "),
            "insight.confidence": i.insight.confidence, "insight.model": i.model,
            "insight.took_ms": i.took_ms, "insight.tokens": i.tokens,
        });
        self.export_log(crate::otlp::Record {
            kind: "insight",
            time: std::time::SystemTime::now(),
            severity: None,
            body: i.insight.summary.clone(),
            fields,
            pod: i.subject_pod.clone(),
        });
    }

    fn history_result(&self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            self.metrics.history_write_errors.inc();
            log::warn!("writing the history: {e:#}");
        }
    }

    /// Sets the model state.
    pub fn set_model(&self, state: ModelState) {
        self.serve.set_model(state);
    }
}
