//! The process table: `/processes` (running processes, sorted and limited) and
//! `/processes/{pid}` (one process with its family and subtree totals).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use ember_probes::{Process, ProcessTable};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::{ApiError, AppState, ErrorBody};
use crate::pod::Pod;

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
    /// Its Kubernetes pod and container, when it runs in one.
    pod: Option<Pod>,
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
        pod: p.pod.as_deref().map(Pod::from),
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
