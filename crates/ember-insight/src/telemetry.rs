//! The telemetry thread: starts the probes (BPF, or `/proc` polling when BPF cannot load and
//! the mode allows it), feeds events to the rules and the `/stream` hub, and on each tick
//! evaluates the rules, refreshes the shared snapshot and the metrics.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use ember_probes::{Builder, Event, Handle, HistogramKind, Mode, ProcessTable};
use serde_json::json;

use crate::config::ProbeMode;
use crate::insights::{InsightJob, ProcessContext, RateLimit};
use crate::metrics::raise_to;
use crate::pod::Pod;
use crate::rules::{percentile_us, Engine};
use crate::state::Shared;

/// Starts the probes and the telemetry thread. Returns once the probes run (or failed to).
/// New alerts go to `insights` (a bounded queue: when it is full the alert is counted as
/// skipped).
///
/// # Errors
///
/// The probes could not start in the configured mode (with `auto`, only when `/proc`
/// polling fails too).
pub fn start(
    shared: Arc<Shared>,
    insights: Option<SyncSender<InsightJob>>,
) -> anyhow::Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("insightd-telemetry".into())
        .spawn(move || {
            let (handle, fallback) = match open_probes(&shared) {
                Ok(v) => {
                    let _ = ready_tx.send(Ok(()));
                    v
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            run(&shared, handle, fallback, insights.as_ref());
        })
        .context("cannot spawn the telemetry thread")?;
    ready_rx
        .recv()
        .map_err(|_| anyhow!("the telemetry thread died while starting"))??;
    Ok(thread)
}

/// The tracepoint `--test-fail-probe` attaches its probe to: no kernel has it.
const MISSING_TRACEPOINT: &str = "insightd_test_missing_tracepoint";

fn builder(shared: &Shared, mode: Mode) -> Builder {
    let p = &shared.config.probes;
    let builder = Builder::new()
        .mode(mode)
        .run_queue_latency(p.run_queue_latency)
        .ring_buffer_size(p.ring_buffer_bytes)
        .channel_capacity(p.channel_capacity)
        .sample_interval(Duration::from_millis(p.tick_ms))
        .exited_retention(Duration::from_secs(10), 4096)
        .require_all_probes(p.require_all);
    // Names were checked by Config::validate.
    let builder = p
        .disable
        .iter()
        .filter_map(|name| ember_probes::Probe::from_name(name))
        .fold(builder, Builder::disable);
    match p.test_fail {
        Some(probe) => builder.retarget(probe, MISSING_TRACEPOINT),
        None => builder,
    }
}

fn open_probes(shared: &Shared) -> anyhow::Result<(Handle, Option<String>)> {
    let mode = shared.config.probes.mode;
    if mode == ProbeMode::Procfs {
        let handle = builder(shared, Mode::Procfs)
            .start()
            .context("cannot start /proc polling")?;
        return Ok((handle, Some("probes.mode is procfs".into())));
    }
    match builder(shared, Mode::Bpf).start() {
        Ok(handle) => Ok((handle, None)),
        // A required probe that is down is not "BPF unavailable": never fall back for it.
        Err(e @ ember_probes::Error::ProbeDown { probe, .. }) => Err(e).context(format!(
            "cannot start the BPF probes with --require-all-probes (probes.require_all): \
             leave {probe} off with probes.disable = [\"{probe}\"] in the config, or start \
             without --require-all-probes to run with it down"
        )),
        Err(e) if mode == ProbeMode::Auto => {
            let reason = format!("BPF unavailable: {e}");
            log::warn!(
                "{reason}; falling back to /proc polling (no events, exit codes or histograms)"
            );
            let handle = builder(shared, Mode::Procfs)
                .start()
                .context("BPF failed and /proc polling failed too")?;
            Ok((handle, Some(reason)))
        }
        Err(e) => Err(e).context("cannot start the BPF probes (probes.mode is bpf)"),
    }
}

fn run(
    shared: &Shared,
    handle: Handle,
    fallback: Option<String>,
    insights: Option<&SyncSender<InsightJob>>,
) {
    let bpf = handle.mode() == Mode::Bpf;
    let mode = if bpf { "bpf" } else { "procfs" };
    log::info!(
        "telemetry running in {mode} mode{}",
        fallback
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    shared.metrics.probe_bpf.set(i64::from(bpf));
    for status in handle.probes() {
        match status.reason() {
            Some(reason) => log::warn!("probe {} is down: {reason}", status.probe),
            None => log::debug!("probe {} is {}", status.probe, status.state_name()),
        }
        // Off probes get no series: `insightd_probe_up` covers what was asked for.
        if status.state != ember_probes::ProbeState::Off {
            shared
                .metrics
                .probe_up
                .get_or_create(&crate::metrics::ProbeLabel {
                    probe: status.probe.name().to_string(),
                })
                .set(i64::from(status.state == ember_probes::ProbeState::Up));
        }
    }
    {
        let mut t = shared.telemetry.write().unwrap_or_else(|e| e.into_inner());
        t.running = true;
        t.mode = Some(mode);
        t.fallback_reason = fallback;
        t.probes = handle.probes().to_vec();
    }
    let tick = Duration::from_millis(shared.config.probes.tick_ms);
    let mut engine = Engine::new(shared.config.rules.clone());
    let runq_on = bpf && shared.config.probes.run_queue_latency;
    let mut last_runq = None;
    let mut next_tick = crate::time::after(tick);
    let mut ticks = 0u64;
    let mut limit = RateLimit::new(shared.config.insights.min_interval_s);
    let otlp_events = shared.otlp_logs.is_some() && shared.config.otlp.events;
    while !shared.stopping.load(Ordering::Relaxed) {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match handle.events().recv_timeout(wait) {
            Ok(event) => {
                engine.on_event(&event);
                shared
                    .metrics
                    .events
                    .get_or_create(&crate::metrics::KindLabel { kind: event.kind() })
                    .inc();
                let to_clients = shared.hub.has_clients();
                if to_clients || otlp_events {
                    let pod = handle.with_table(|t| crate::pod::of(t, event.pid()));
                    let (kind, data) = event_json(&event, pod.as_ref());
                    if to_clients {
                        shared.hub.publish(kind, data.to_string());
                    }
                    if otlp_events {
                        shared.export_log(crate::otlp::Record {
                            kind,
                            time: std::time::SystemTime::now(),
                            severity: None,
                            body: format!(
                                "{kind} {} (pid {})",
                                data["comm"].as_str().unwrap_or(""),
                                event.pid()
                            ),
                            fields: data,
                            pod,
                        });
                    }
                }
                if Instant::now() < next_tick {
                    continue;
                }
            }
            Err(ember_probes::RecvTimeoutError::Timeout) => {}
            Err(_) if bpf => {
                let msg = "the probe event channel closed: the poller thread stopped".to_string();
                log::error!("{msg}");
                let mut t = shared.telemetry.write().unwrap_or_else(|e| e.into_inner());
                t.running = false;
                t.error = Some(msg);
                break;
            }
            // Procfs mode has no events; its channel may report closed at once.
            Err(_) => std::thread::sleep(wait),
        }
        next_tick = crate::time::after(tick);
        ticks += 1;
        let table = handle.table();
        let runq = if runq_on {
            handle.histogram(HistogramKind::RunQueue).ok()
        } else {
            None
        };
        let runq_p99 = match (&runq, &last_runq) {
            (Some(now), Some(before)) => {
                let now: &ember_probes::Histogram = now;
                let before: &ember_probes::Histogram = before;
                let delta: Vec<u64> = now
                    .slots
                    .iter()
                    .zip(before.slots.iter())
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                percentile_us(&delta, 0.99)
            }
            _ => None,
        };
        last_runq.clone_from(&runq);
        let new_alerts = {
            let mut store = shared.alerts.lock().unwrap_or_else(|e| e.into_inner());
            let new = engine.evaluate(&table, runq, &mut store);
            // On disk before the lock is released: what /alerts or /stream shows was written.
            shared.publish_alert_changes(&mut store);
            shared
                .metrics
                .alerts_active
                .set(store.active_count() as i64);
            new
        };
        for alert in new_alerts {
            log::warn!("alert {} [{}] {}", alert.id, alert.rule, alert.message);
            shared
                .metrics
                .alerts
                .get_or_create(&crate::metrics::RuleLabel {
                    rule: alert.rule.to_string(),
                })
                .inc();
            if let Ok(text) = serde_json::to_string(&alert) {
                shared.hub.publish("alert", text);
            }
            if let Some(tx) = insights {
                if !limit.admit(&alert) {
                    shared.metrics.insights_skipped.inc();
                    log::info!(
                        "no insight for alert {}: one per {} s for {} alerts on {}",
                        alert.id,
                        shared.config.insights.min_interval_s,
                        alert.rule,
                        alert.subject.comm
                    );
                    continue;
                }
                let job = InsightJob {
                    context: ProcessContext::from_table(&table, alert.subject.pid),
                    alert,
                };
                // Counted before the send, so the worker never takes the gauge below 0.
                shared.metrics.insight_queue.inc();
                match tx.try_send(job) {
                    Ok(()) => {}
                    Err(TrySendError::Full(job)) => {
                        shared.metrics.insight_queue.dec();
                        shared.metrics.insights_skipped.inc();
                        log::info!(
                            "no insight for alert {}: the insight queue is full",
                            job.alert.id
                        );
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        shared.metrics.insight_queue.dec();
                    }
                }
            }
        }
        let stats = handle.stats().unwrap_or_default();
        update_metrics(shared, &table, &stats);
        let mut t = shared.telemetry.write().unwrap_or_else(|e| e.into_inner());
        t.stats = stats;
        t.table = Some(Arc::new(table));
        t.runq_p99_us = runq_p99;
        t.ticks = ticks;
    }
    if let Err(e) = handle.stop() {
        log::warn!("stopping the probes: {e}");
    }
    shared
        .telemetry
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .running = false;
}

fn update_metrics(shared: &Shared, table: &ProcessTable, stats: &ember_probes::Stats) {
    let m = &shared.metrics;
    raise_to(&m.probe_events, stats.received);
    raise_to(&m.probe_ring_drops, stats.ring_drops);
    raise_to(&m.probe_channel_drops, stats.channel_drops);
    m.processes.set(table.running() as i64);
    m.fork_rate.set(table.fork_rate());
}

/// The SSE event name and JSON of a probe event, with the process's pod (`"pod"`, null
/// outside pods).
pub fn event_json(event: &Event, pod: Option<&Pod>) -> (&'static str, serde_json::Value) {
    let (kind, mut data) = event_fields(event);
    data["pod"] = json!(pod);
    (kind, data)
}

fn event_fields(event: &Event) -> (&'static str, serde_json::Value) {
    match event {
        Event::Exec(e) => (
            "exec",
            json!({"pid": e.pid, "ppid": e.ppid, "uid": e.uid, "cgroup_id": e.cgroup_id,
                   "comm": e.comm, "filename": e.filename, "argv": e.argv}),
        ),
        Event::Fork(e) => (
            "fork",
            json!({"pid": e.pid, "ppid": e.ppid, "comm": e.comm}),
        ),
        Event::Exit(e) => (
            "exit",
            json!({"pid": e.pid, "ppid": e.ppid, "comm": e.comm, "code": e.status.code(),
                   "signal": e.status.signal(), "user_ms": e.user_time.as_millis() as u64,
                   "system_ms": e.system_time.as_millis() as u64, "max_rss_bytes": e.max_rss_bytes}),
        ),
        Event::Oom(e) => (
            "oom",
            json!({"pid": e.pid, "comm": e.comm, "uid": e.uid, "anon_rss_bytes": e.anon_rss_bytes,
                   "total_vm_bytes": e.total_vm_bytes, "trigger_pid": e.trigger_pid}),
        ),
        Event::Tcp(e) => (
            "tcp",
            json!({"pid": e.pid, "comm": e.comm, "saddr": e.saddr.to_string(), "sport": e.sport,
                   "daddr": e.daddr.to_string(), "dport": e.dport, "rx_bytes": e.rx_bytes,
                   "tx_bytes": e.tx_bytes, "duration_ms": e.duration.as_millis() as u64}),
        ),
        _ => ("other", json!({"pid": event.pid()})),
    }
}
