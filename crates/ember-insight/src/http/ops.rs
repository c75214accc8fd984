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
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::state::{ModelState, VERSION};

/// `GET /healthz`: 200 while the process serves.
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
/// if configured, is loaded; else 503
/// with the reason.
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

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(json!({"name": "insightd", "version": VERSION}))
}

/// The model part of `/status`.
pub fn model_status(state: &AppState) -> Value {
    match state.model_state() {
        ModelState::None => {
            json!({"state": "none", "reason": "no model configured (--model or model.path)"})
        }
        ModelState::Loading(p) => json!({"state": "loading", "path": p}),
        ModelState::Failed { path, error } => {
            json!({"state": "failed", "path": path, "error": error})
        }
        ModelState::Ready(llm) => json!({
            "state": "ready",
            "name": llm.name(),
            "path": llm.model().path(),
            "description": llm.model().description(),
            "size_bytes": llm.model().size(),
            "chat_template": if llm.template().len() > 40 { "(the model's own)" } else { llm.template() },
            "ctx_size": llm.config().ctx_size,
            "max_concurrent": llm.config().max_concurrent,
        }),
    }
}

/// `GET /status`: version, probe mode and counters, model, alerts, insights, streams.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    let t = state.telemetry();
    let alerts = state.alerts.lock().unwrap_or_else(|e| e.into_inner());
    let (alerts_total, alerts_active) = (alerts.all().count(), alerts.active_count());
    drop(alerts);
    let insights = state
        .insights
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    Json(json!({
        "name": "insightd",
        "version": VERSION,
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "ready": not_ready(&state).is_none(),
        "telemetry": {
            "running": t.running,
            "mode": t.mode,
            "fallback_reason": t.fallback_reason,
            "error": t.error,
            "ticks": t.ticks,
            "processes": t.table.as_ref().map(|t| t.running()),
            "fork_rate": t.table.as_ref().map(|t| t.fork_rate()),
            "runq_p99_us": t.runq_p99_us,
            "events_received": t.stats.received,
            "drops": {"ring_buffer": t.stats.ring_drops, "channel": t.stats.channel_drops},
            "probes": t.probes.iter().map(|p| json!({
                "name": p.probe.name(),
                "state": p.state_name(),
                "reason": p.reason(),
            })).collect::<Vec<_>>(),
        },
        "model": model_status(&state),
        "alerts": {"kept": alerts_total, "active": alerts_active},
        "insights": insights,
        "stream": {"clients": state.hub.clients(), "dropped": state.hub.dropped()},
        "generation_slots_free": state.slots.available_permits(),
    }))
}

/// Query of `/processes`.
#[derive(Debug, Deserialize)]
pub struct ProcessQuery {
    /// `pid` (default), `cpu` or `rss`.
    sort: Option<String>,
    /// At most this many.
    limit: Option<usize>,
}

fn process_json(p: &Process, table: &ProcessTable) -> Value {
    json!({
        "pid": p.pid,
        "ppid": p.ppid,
        "comm": p.comm,
        "argv": &*p.argv,
        "uid": p.uid,
        "cgroup_id": p.cgroup_id,
        "cpu_percent": (p.cpu_percent * 10.0).round() / 10.0,
        "rss_bytes": p.rss_bytes,
        "children": p.children.len(),
        "running": p.is_running(),
        "exit_code": p.exit_code(),
        "oom_killed": p.oom_killed,
        "descendants": table.descendants(p.pid).len(),
    })
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
pub async fn processes(
    State(state): State<AppState>,
    Query(q): Query<ProcessQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let list: Vec<Value> = procs.iter().map(|p| process_json(p, &table)).collect();
    Ok(Json(json!({"total": total, "processes": list})))
}

/// `GET /processes/{pid}`: one process with its children and ancestors.
pub async fn process(
    State(state): State<AppState>,
    Path(pid): Path<u32>,
) -> Result<Json<Value>, ApiError> {
    let table = table(&state)?;
    let p = table.get(pid).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no process {pid} in the table (running, or exited in the last 10 s)"),
        )
    })?;
    let mut v = process_json(p, &table);
    v["filename"] = json!(p.filename);
    v["children_pids"] = json!(p.children);
    v["ancestors"] = json!(table.ancestors(pid));
    v["cgroup"] = json!(crate::rules::cgroup_path(pid));
    let (rss, cpu) = table
        .descendants(pid)
        .iter()
        .filter_map(|d| table.get(*d))
        .filter(|d| d.is_running())
        .fold((p.rss_bytes, p.cpu_percent), |(r, c), d| {
            (r + d.rss_bytes, c + d.cpu_percent)
        });
    v["subtree"] = json!({"rss_bytes": rss, "cpu_percent": (cpu * 10.0).round() / 10.0});
    Ok(Json(v))
}

/// `GET /stream`: server-sent events (`exec`, `fork`, `exit`, `oom`, `tcp`, `alert`,
/// `insight`). Each client has a bounded queue; one that falls behind is dropped.
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

/// `GET /alerts`: kept alerts, newest first.
pub async fn alerts(State(state): State<AppState>) -> Json<Value> {
    let store = state.alerts.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<&crate::rules::Alert> = store.all().rev().collect();
    Json(json!({"active": store.active_count(), "alerts": list}))
}

/// `GET /insights`: kept insights, newest first; says why there are none.
pub async fn insights(State(state): State<AppState>) -> Json<Value> {
    let store = state.insights.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<&crate::insights::Insight> = store.all().rev().collect();
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
    Json(json!({"insights": list, "reason": reason}))
}

/// `GET /metrics`: OpenMetrics text when the scraper asks for it (`Accept:
/// application/openmetrics-text`), else the Prometheus text format 0.0.4.
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
