//! `/status`: the daemon's state (version, backend, probes and their counters, the model,
//! alert and insight counts, stream clients, free generation slots).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::health::not_ready;
use crate::config::ModelPriority;
use crate::http::{AppState, ErrorBody};
use crate::state::{ModelState, VERSION};

/// The model part of `/status`, by state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelStatus {
    /// No model configured.
    None {
        /// What to set.
        reason: &'static str,
    },
    /// Loading.
    Loading {
        /// The GGUF file.
        path: String,
    },
    /// It failed to load.
    Failed {
        /// The GGUF file.
        path: String,
        /// Why.
        error: String,
    },
    /// Loaded and serving.
    Ready {
        /// The name the OpenAI endpoints give.
        name: String,
        /// The GGUF file.
        path: String,
        /// llama.cpp's description (architecture, size, quantisation).
        description: String,
        /// File size.
        size_bytes: u64,
        /// The chat template, or `(the model's own)`.
        chat_template: String,
        /// Context size per generation.
        ctx_size: u32,
        /// Generations batched at once.
        max_concurrent: usize,
        /// Requests that may wait for one.
        queue: usize,
        /// Most CPU threads per decode (fewer run while other processes keep cores busy).
        threads: i32,
        /// How that count was chosen (affinity mask, cgroup quota, or `model.threads`).
        threads_reason: String,
        /// Scheduling priority of the engine's threads: `background` (nice 19) or `normal`.
        priority: ModelPriority,
    },
}

impl ModelStatus {
    /// `none`, `loading`, `failed` or `ready`.
    pub fn name(&self) -> &'static str {
        match self {
            ModelStatus::None { .. } => "none",
            ModelStatus::Loading { .. } => "loading",
            ModelStatus::Failed { .. } => "failed",
            ModelStatus::Ready { .. } => "ready",
        }
    }
}

/// The model part of `/status`.
pub fn model_status(state: &AppState) -> ModelStatus {
    match state.model_state() {
        ModelState::None => ModelStatus::None {
            reason: "no model configured (--model or model.path)",
        },
        ModelState::Loading(p) => ModelStatus::Loading {
            path: p.display().to_string(),
        },
        ModelState::Failed { path, error } => ModelStatus::Failed {
            path: path.display().to_string(),
            error,
        },
        ModelState::Ready(llm) => ModelStatus::Ready {
            name: llm.name().to_string(),
            path: llm.model().path().display().to_string(),
            description: llm.model().description(),
            size_bytes: llm.model().size(),
            chat_template: if llm.template().len() > 40 {
                "(the model's own)".to_string()
            } else {
                llm.template().to_string()
            },
            ctx_size: llm.config().ctx_size,
            max_concurrent: llm.config().max_concurrent,
            queue: llm.config().queue,
            threads: llm.threads().0,
            threads_reason: llm.threads().1.to_string(),
            priority: llm.config().priority,
        },
    }
}

/// `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `insightd`.
    name: &'static str,
    /// The crate version.
    version: &'static str,
    /// llama.cpp's system info: its backends and the CPU features ggml uses.
    backend: &'static str,
    /// The variant of ggml's CPU backend in use (`x64`, `sse42`, `sandybridge`, `haswell`,
    /// `skylakex`, `icelake`, `alderlake`, `zen4` on x86-64; `armv8.0_1`, `armv8.2_2`,
    /// `armv8.6_1`, `armv8.6_2` on aarch64; `native` or `default` for builds with one CPU
    /// backend); null when none can run, and then `backend` says why.
    cpu_variant: Option<&'static str>,
    /// Seconds since start.
    uptime_s: f64,
    /// What `/readyz` says.
    ready: bool,
    /// The probes.
    telemetry: TelemetryStatus,
    /// The model.
    model: ModelStatus,
    /// Alerts kept and active.
    alerts: AlertCounts,
    /// Insights kept.
    insights: usize,
    /// `/stream` clients.
    stream: StreamStatus,
    /// Generation slots free now.
    generation_slots_free: usize,
}

/// The telemetry part of `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetryStatus {
    /// True once the probes run.
    running: bool,
    /// `bpf` or `procfs`, once running.
    mode: Option<&'static str>,
    /// Why BPF is not used, when it is not.
    fallback_reason: Option<String>,
    /// Why telemetry stopped, when it did.
    error: Option<String>,
    /// Telemetry ticks so far.
    ticks: u64,
    /// Running processes (after the first tick).
    processes: Option<usize>,
    /// Forks per second.
    fork_rate: Option<f64>,
    /// Run-queue latency p99 over the last tick, in µs (BPF with the histogram on).
    runq_p99_us: Option<u64>,
    /// Records the consumer read.
    events_received: u64,
    /// Records lost.
    drops: Drops,
    /// Each probe and its state.
    probes: Vec<ProbeInfo>,
}

/// Records lost, by where.
#[derive(Debug, Serialize, ToSchema)]
pub struct Drops {
    /// The kernel's ring buffer was full.
    ring_buffer: u64,
    /// The bounded channel to the daemon was full.
    channel: u64,
}

/// One probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeInfo {
    /// Its name (`exec`, `fork`, `oom`, ...).
    name: &'static str,
    /// `up`, `down` or `off`.
    state: &'static str,
    /// Why it is down.
    reason: Option<String>,
}

/// Alert counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertCounts {
    /// Kept.
    kept: usize,
    /// Active.
    active: usize,
}

/// `/stream` clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamStatus {
    /// Connected now.
    clients: usize,
    /// Dropped for falling behind, since start.
    dropped: u64,
}

/// llama.cpp's system info, read once: it does not change while the process runs.
fn backend() -> &'static str {
    static INFO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INFO.get_or_init(|| ember_llama::system_info().unwrap_or_else(|e| format!("unavailable: {e}")))
}

/// `GET /status`: version, probe mode and counters, model, alerts, insights, streams.
#[utoipa::path(get, path = "/status", tag = "ops", responses(
    (status = 200, description = "the daemon's state", body = Status),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Json<Status> {
    let t = state.telemetry();
    let alerts = state.alerts.lock().unwrap_or_else(|e| e.into_inner());
    let (kept, active) = (alerts.all().count(), alerts.active_count());
    drop(alerts);
    let insights = state
        .insights
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    Json(Status {
        name: "insightd",
        version: VERSION,
        backend: backend(),
        cpu_variant: ember_llama::cpu::variant().ok(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        ready: not_ready(&state).is_none(),
        telemetry: TelemetryStatus {
            running: t.running,
            mode: t.mode,
            ticks: t.ticks,
            processes: t.table.as_ref().map(|t| t.running()),
            fork_rate: t.table.as_ref().map(|t| t.fork_rate()),
            runq_p99_us: t.runq_p99_us,
            events_received: t.stats.received,
            drops: Drops {
                ring_buffer: t.stats.ring_drops,
                channel: t.stats.channel_drops,
            },
            probes: t
                .probes
                .iter()
                .map(|p| ProbeInfo {
                    name: p.probe.name(),
                    state: p.state_name(),
                    reason: p.reason().map(str::to_string),
                })
                .collect(),
            fallback_reason: t.fallback_reason,
            error: t.error,
        },
        model: model_status(&state),
        alerts: AlertCounts { kept, active },
        insights,
        stream: StreamStatus {
            clients: state.hub.clients(),
            dropped: state.hub.dropped(),
        },
        generation_slots_free: state.serve.slots.available_permits(),
    })
}
