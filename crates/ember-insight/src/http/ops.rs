//! Operations endpoints: health, status, processes, the event stream, alerts, insights,
//! metrics, version.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ember_probes::{Process, ProcessTable};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, ErrorBody};
use crate::alerts::Alert;
use crate::insights::Insight;
use crate::state::{ModelState, VERSION};

/// `GET /healthz`: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "the process serves", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Why the daemon is not ready, or `None` when it is.
pub fn not_ready(state: &AppState) -> Option<String> {
    let t = state.telemetry();
    if !t.running {
        return Some(
            t.error
                .unwrap_or_else(|| "telemetry is not running yet".into()),
        );
    }
    // /processes answers from the first table sample: ready means it can answer.
    if t.table.is_none() {
        return Some("the process table is not sampled yet".into());
    }
    match state.model_state() {
        ModelState::Loading(p) => Some(format!("model {} is loading", p.display())),
        ModelState::Failed { path, error } => {
            Some(format!("model {} failed to load: {error}", path.display()))
        }
        ModelState::None | ModelState::Ready(_) => None,
    }
}

/// `GET /readyz`: 200 once telemetry runs (with a first process table sample) and the model,
/// if configured, is loaded; else 503 with the reason.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "ready", body = String, content_type = "text/plain"),
    (status = 503, description = "not ready, and why", body = String, content_type = "text/plain")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready(&state) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// `/version`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    /// `insightd`.
    name: &'static str,
    /// The crate version.
    version: &'static str,
}

/// `GET /version`.
#[utoipa::path(get, path = "/version", tag = "ops",
    responses((status = 200, description = "name and version", body = VersionInfo)))]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "insightd",
        version: VERSION,
    })
}

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
        /// Generations at once.
        max_concurrent: usize,
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
    INFO.get_or_init(ember_llama::system_info)
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
        generation_slots_free: state.slots.available_permits(),
    })
}

/// Query of `/processes`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ProcessQuery {
    /// `pid` (default), `cpu` or `rss`.
    #[param(pattern = "^(pid|cpu|rss)$")]
    sort: Option<String>,
    /// At most this many.
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// One process of `/processes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessInfo {
    /// Process id.
    pid: u32,
    /// Parent's id.
    ppid: u32,
    /// Command name (16 bytes at most).
    comm: String,
    /// Arguments, when seen at exec.
    argv: Vec<String>,
    /// User id, when known.
    uid: Option<u32>,
    /// cgroup v2 id, when known.
    cgroup_id: Option<u64>,
    /// CPU use over the last tick, in percent of one CPU.
    cpu_percent: f64,
    /// Resident memory.
    rss_bytes: u64,
    /// Seconds since it started, when known.
    age_s: Option<f64>,
    /// Children in the table.
    children: usize,
    /// False once it exited.
    running: bool,
    /// Its exit code, once exited.
    exit_code: Option<i32>,
    /// Whether the OOM killer took it.
    oom_killed: bool,
    /// Descendants in the table.
    descendants: usize,
}

fn process_info(p: &Process, table: &ProcessTable) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        ppid: p.ppid,
        comm: p.comm.clone(),
        argv: p.argv.iter().map(|a| a.to_string()).collect(),
        uid: p.uid,
        cgroup_id: p.cgroup_id,
        cpu_percent: (p.cpu_percent * 10.0).round() / 10.0,
        rss_bytes: p.rss_bytes,
        age_s: p
            .started
            .and_then(|t| t.elapsed().ok())
            .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        children: p.children.len(),
        running: p.is_running(),
        exit_code: p.exit_code(),
        oom_killed: p.oom_killed,
        descendants: table.descendants(p.pid).len(),
    }
}

/// `/processes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessList {
    /// Running processes in all (before `limit`).
    total: usize,
    /// The processes, sorted.
    processes: Vec<ProcessInfo>,
}

/// `/processes/{pid}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessDetail {
    /// What `/processes` shows.
    #[serde(flatten)]
    info: ProcessInfo,
    /// The executable, when seen at exec.
    filename: Option<String>,
    /// Children's ids.
    children_pids: Vec<u32>,
    /// Parent, grandparent, ... up to the table's root.
    ancestors: Vec<u32>,
    /// Its cgroup v2 path, while it runs.
    cgroup: Option<String>,
    /// It and its running descendants.
    subtree: Subtree,
}

/// A process and its running descendants.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subtree {
    /// Resident memory in all.
    rss_bytes: u64,
    /// CPU in all, in percent of one CPU.
    cpu_percent: f64,
}

fn table(state: &AppState) -> Result<std::sync::Arc<ProcessTable>, ApiError> {
    state.telemetry().table.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the process table is not sampled yet; retry in a second",
        )
    })
}

/// `GET /processes?sort=cpu|rss|pid&limit=N`: running processes.
#[utoipa::path(get, path = "/processes", tag = "ops", params(ProcessQuery), responses(
    (status = 200, description = "running processes", body = ProcessList),
    (status = 400, description = "a bad query", body = ErrorBody),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 503, description = "the process table is not sampled yet", body = ErrorBody)))]
pub async fn processes(
    State(state): State<AppState>,
    Query(q): Query<ProcessQuery>,
) -> Result<Json<ProcessList>, ApiError> {
    let table = table(&state)?;
    let mut procs: Vec<&Process> = table.iter().filter(|p| p.is_running()).collect();
    match q.sort.as_deref() {
        None | Some("pid") => procs.sort_by_key(|p| p.pid),
        Some("cpu") => procs.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent)),
        Some("rss") => procs.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes)),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown sort {other:?}: use pid, cpu or rss"
            )))
        }
    }
    let total = procs.len();
    procs.truncate(q.limit.unwrap_or(usize::MAX));
    let processes = procs.iter().map(|p| process_info(p, &table)).collect();
    Ok(Json(ProcessList { total, processes }))
}

/// `GET /processes/{pid}`: one process with its children and ancestors.
#[utoipa::path(get, path = "/processes/{pid}", tag = "ops",
    params(("pid" = u32, Path, description = "process id")), responses(
    (status = 200, description = "the process", body = ProcessDetail),
    (status = 400, description = "a pid that is not a number", body = ErrorBody),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 404, description = "no such process in the table", body = ErrorBody),
    (status = 503, description = "the process table is not sampled yet", body = ErrorBody)))]
pub async fn process(
    State(state): State<AppState>,
    Path(pid): Path<u32>,
) -> Result<Json<ProcessDetail>, ApiError> {
    let table = table(&state)?;
    let p = table.get(pid).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no process {pid} in the table (running, or exited in the last 10 s)"),
        )
    })?;
    let (rss, cpu) = table
        .descendants(pid)
        .iter()
        .filter_map(|d| table.get(*d))
        .filter(|d| d.is_running())
        .fold((p.rss_bytes, p.cpu_percent), |(r, c), d| {
            (r + d.rss_bytes, c + d.cpu_percent)
        });
    Ok(Json(ProcessDetail {
        info: process_info(p, &table),
        filename: p.filename.clone(),
        children_pids: p.children.clone(),
        ancestors: table.ancestors(pid),
        cgroup: ember_probes::cgroup_path(pid),
        subtree: Subtree {
            rss_bytes: rss,
            cpu_percent: (cpu * 10.0).round() / 10.0,
        },
    }))
}

/// `GET /stream`: server-sent events (`exec`, `fork`, `exit`, `oom`, `tcp`, `alert`,
/// `insight`). Each client has a bounded queue; one that falls behind is dropped.
#[utoipa::path(get, path = "/stream", tag = "ops", responses(
    (status = 200, description = "server-sent events, one JSON object per event", body = String, content_type = "text/event-stream"),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    (status = 503, description = "too many /stream clients (limits.sse_clients)", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let rx = state.hub.subscribe().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} /stream clients are connected (limits.sse_clients)",
                state.config.limits.sse_clients
            ),
        )
    })?;
    state.metrics.sse_clients.inc();
    let guard = GaugeGuard(state.clone());
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let msg = rx.recv().await?;
        let event = SseEvent::default().event(msg.kind).data(&*msg.data);
        Some((Ok(event), (rx, guard)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Decrements the stream gauge when the stream ends (client gone, dropped, or shutdown).
struct GaugeGuard(AppState);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
        crate::metrics::raise_to(&self.0.metrics.sse_clients_dropped, self.0.hub.dropped());
    }
}

/// `/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Active alerts.
    active: usize,
    /// Kept alerts, newest first.
    alerts: Vec<Alert>,
}

/// `GET /alerts`: kept alerts, newest first.
#[utoipa::path(get, path = "/alerts", tag = "ops", responses(
    (status = 200, description = "kept alerts, newest first", body = AlertList),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn alerts(State(state): State<AppState>) -> Json<AlertList> {
    let store = state.alerts.lock().unwrap_or_else(|e| e.into_inner());
    Json(AlertList {
        active: store.active_count(),
        alerts: store.all().rev().cloned().collect(),
    })
}

/// `/insights`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightList {
    /// Kept insights, newest first.
    insights: Vec<Insight>,
    /// Why there are none, when there are none.
    reason: Option<String>,
}

/// `GET /insights`: kept insights, newest first; says why there are none.
#[utoipa::path(get, path = "/insights", tag = "ops", responses(
    (status = 200, description = "kept insights, newest first", body = InsightList),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn insights(State(state): State<AppState>) -> Json<InsightList> {
    let store = state.insights.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Insight> = store.all().rev().cloned().collect();
    let reason = if !list.is_empty() {
        None
    } else if !state.config.insights.enabled {
        Some("insights are disabled (insights.enabled = false)".to_string())
    } else {
        Some(match state.model_state() {
            ModelState::None => "no model loaded: start insightd with --model <GGUF> (or model.path) to get insights".into(),
            ModelState::Loading(_) => "the model is loading".into(),
            ModelState::Failed { error, .. } => format!("the model failed to load: {error}"),
            ModelState::Ready(_) => "no alert has fired yet".into(),
        })
    };
    Json(InsightList {
        insights: list,
        reason,
    })
}

/// `GET /metrics`: OpenMetrics text when the scraper asks for it (`Accept:
/// application/openmetrics-text`), else the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics when asked for",
     content((String = "text/plain"), (String = "application/openmetrics-text"))),
    (status = 401, description = "missing or wrong bearer token", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    crate::metrics::raise_to(&state.metrics.sse_clients_dropped, state.hub.dropped());
    let text = state.metrics.encode();
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::to_prometheus_text(&text),
        )
            .into_response()
    }
}
