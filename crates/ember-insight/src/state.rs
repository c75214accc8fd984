//! State shared by the telemetry thread, the insight worker and the HTTP handlers.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use ember_probes::{ProcessTable, Stats};
use tokio::sync::Semaphore;

use crate::alerts::AlertStore;
use crate::config::Config;
use crate::hub::Hub;
use crate::insights::InsightStore;
use crate::llm::Llm;
use crate::metrics::Metrics;

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

/// The model slot.
#[derive(Debug, Clone, Default)]
pub enum ModelState {
    /// None configured.
    #[default]
    None,
    /// Loading from this path.
    Loading(PathBuf),
    /// Loaded.
    Ready(Arc<Llm>),
    /// Loading failed.
    Failed {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
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
    /// The model.
    pub model: RwLock<ModelState>,
    /// Admission of API generations: `max_concurrent` running plus `queue` waiting; a
    /// request that finds none free is answered 429.
    pub slots: Arc<Semaphore>,
    /// When the daemon started.
    pub started: Instant,
    /// Set at shutdown: the telemetry thread and insight worker stop.
    pub stopping: AtomicBool,
}

impl Shared {
    /// Fresh state for `config`.
    pub fn new(config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            metrics: Metrics::new(VERSION),
            hub: Hub::new(config.limits.sse_queue, config.limits.sse_clients),
            alerts: Mutex::new(AlertStore::default()),
            insights: Mutex::new(InsightStore::new(config.insights.keep)),
            telemetry: RwLock::new(TelemetrySnapshot::default()),
            model: RwLock::new(ModelState::None),
            slots: Arc::new(Semaphore::new(
                config.model.max_concurrent + config.model.queue,
            )),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            config,
        })
    }

    /// A copy of the telemetry snapshot.
    pub fn telemetry(&self) -> TelemetrySnapshot {
        self.telemetry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The model state.
    pub fn model_state(&self) -> ModelState {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The loaded model, if any.
    pub fn llm(&self) -> Option<Arc<Llm>> {
        match self.model_state() {
            ModelState::Ready(llm) => Some(llm),
            _ => None,
        }
    }

    /// Sets the model state.
    pub fn set_model(&self, state: ModelState) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = state;
    }
}
