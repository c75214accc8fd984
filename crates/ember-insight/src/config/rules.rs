//! `[rules]`: the alert rules (thresholds over sliding windows) and their severities.

use serde::{Deserialize, Serialize};

/// Alert severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One threshold rule over a sliding window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Off turns the rule off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The threshold, in the rule's unit.
    pub threshold: f64,
    /// The window in seconds: rates and counts are taken over it; gauges must stay at or
    /// above the threshold for all of it.
    pub window_s: f64,
    /// Severity of its alerts.
    pub severity: Severity,
}

fn yes() -> bool {
    true
}

fn rule(threshold: f64, window_s: f64, severity: Severity) -> Rule {
    Rule {
        enabled: true,
        threshold,
        window_s,
        severity,
    }
}

/// The rules. Units: forks/s per parent; MB and % of one CPU summed over a process subtree;
/// OOM kills; failing exits (non-zero code or signal) of one command; microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Forks per second by one parent.
    pub fork_rate: Rule,
    /// Resident memory of a process and its descendants, in MB.
    pub subtree_rss_mb: Rule,
    /// CPU of a process and its descendants, in % of one CPU.
    pub subtree_cpu_percent: Rule,
    /// OOM kills in the window.
    pub oom_kills: Rule,
    /// Failing exits of one command in the window.
    pub failing_exits: Rule,
    /// 99th percentile of run-queue latency over the window, in microseconds.
    pub runq_p99_us: Rule,
    /// An alert not seen again for this long is resolved; a later one is a new alert.
    pub resolve_after_s: f64,
    /// Alerts kept for `/alerts`.
    pub keep: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            fork_rate: rule(100.0, 10.0, Severity::Warning),
            subtree_rss_mb: rule(4096.0, 30.0, Severity::Warning),
            subtree_cpu_percent: rule(190.0, 30.0, Severity::Warning),
            oom_kills: rule(1.0, 60.0, Severity::Critical),
            failing_exits: rule(20.0, 10.0, Severity::Warning),
            runq_p99_us: rule(100_000.0, 30.0, Severity::Warning),
            resolve_after_s: 60.0,
            keep: 256,
        }
    }
}
