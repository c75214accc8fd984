//! The readable report of `insightd --once`.

use std::fmt::Write as _;
use std::time::Duration;

use ember_probes::Process;

use crate::state::{ModelState, Shared, VERSION};

/// Renders what telemetry, the rules and (with a model) the insights saw.
pub fn render(shared: &Shared, watched: Duration, insight_errors: &[String]) -> String {
    let t = shared.telemetry();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "insightd {VERSION} report: {:.1} s of telemetry",
        watched.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "probes:    {} mode{}",
        t.mode.unwrap_or("none"),
        t.fallback_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    for p in &t.probes {
        if let Some(reason) = p.reason() {
            let _ = writeln!(out, "probe down: {} ({reason})", p.probe);
        }
    }
    let _ = writeln!(
        out,
        "events:    {} received, {} lost in the ring buffer, {} lost in the channel",
        t.stats.received, t.stats.ring_drops, t.stats.channel_drops
    );
    if let Some(p99) = t.runq_p99_us {
        let _ = writeln!(out, "run queue: p99 latency <= {p99} µs (last second)");
    }
    if let Some(table) = &t.table {
        let _ = writeln!(
            out,
            "processes: {} running, {:.1} forks/s (last 10 s)",
            table.running(),
            table.fork_rate()
        );
        let mut procs: Vec<&Process> = table.iter().filter(|p| p.is_running()).collect();
        procs.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        write_top(&mut out, "\ntop CPU:", &procs);
        procs.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes));
        write_top(&mut out, "top RSS:", &procs);
    } else {
        let _ = writeln!(
            out,
            "processes: not sampled (the duration was shorter than one tick)"
        );
    }
    let alerts = shared.alerts.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<_> = alerts.all().collect();
    let _ = writeln!(out, "\nalerts: {}", list.len());
    for a in &list {
        let _ = writeln!(
            out,
            "  #{} [{}] {}: {} (seen {} times)",
            a.id,
            a.severity.as_str(),
            a.rule,
            a.message,
            a.count
        );
    }
    drop(alerts);
    let insights = shared.insights.lock().unwrap_or_else(|e| e.into_inner());
    match shared.model_state() {
        ModelState::Ready(llm) => {
            let _ = writeln!(
                out,
                "\ninsights ({}): {}",
                llm.name(),
                if insights.is_empty() && insight_errors.is_empty() {
                    "none, no alert fired".to_string()
                } else {
                    insights.len().to_string()
                }
            );
            for i in insights.all() {
                let _ = writeln!(
                    out,
                    "  alert #{} ({}, {} ms):",
                    i.alert_id, i.rule, i.took_ms
                );
                let _ = writeln!(out, "    summary:      {}", i.insight.summary);
                let _ = writeln!(out, "    likely cause: {}", i.insight.likely_cause);
                for action in &i.insight.suggested_actions {
                    let _ = writeln!(out, "    action:       {action}");
                }
                let _ = writeln!(out, "    confidence:   {}", i.insight.confidence);
            }
            for e in insight_errors {
                let _ = writeln!(out, "  failed: {e}");
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "\ninsights: none (no model: pass --model <GGUF> for LLM insights on alerts)"
            );
        }
    }
    out
}

/// `title`, then the first five of `procs`: pid, command, CPU % and RSS.
fn write_top(out: &mut String, title: &str, procs: &[&Process]) {
    let _ = writeln!(out, "{title}");
    for p in procs.iter().take(5) {
        let _ = writeln!(
            out,
            "  {:>7}  {:<16} {:>6.1} %  {:>8.1} MB",
            p.pid,
            p.comm,
            p.cpu_percent,
            p.rss_bytes as f64 / 1e6
        );
    }
}
