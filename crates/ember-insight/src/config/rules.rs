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
    /// Only alerts about processes in these Kubernetes pods (UIDs, `metadata.uid`); empty:
    /// every process. System-wide alerts (no process) are not scoped.
    #[serde(default)]
    pub pods: Vec<String>,
    /// Never alerts about processes in these pods (UIDs).
    #[serde(default)]
    pub exclude_pods: Vec<String>,
}

impl Rule {
    /// Whether an alert about a process in `pod` (`None`: outside pods) is in the rule's
    /// scope; `pid == 0` (system-wide) always is.
    pub fn scopes(&self, pid: u32, pod: Option<&str>) -> bool {
        if pid == 0 {
            return true;
        }
        let listed = |uids: &[String]| pod.is_some_and(|p| uids.iter().any(|u| u == p));
        (self.pods.is_empty() || listed(&self.pods)) && !listed(&self.exclude_pods)
    }
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
        pods: Vec::new(),
        exclude_pods: Vec::new(),
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

impl RulesConfig {
    /// Each rule with its name.
    pub fn named(&self) -> [(&'static str, &Rule); 6] {
        [
            ("fork_rate", &self.fork_rate),
            ("subtree_rss_mb", &self.subtree_rss_mb),
            ("subtree_cpu_percent", &self.subtree_cpu_percent),
            ("oom_kills", &self.oom_kills),
            ("failing_exits", &self.failing_exits),
            ("runq_p99_us", &self.runq_p99_us),
        ]
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_scope() {
        let mut r = rule(1.0, 1.0, Severity::Info);
        assert!(r.scopes(7, None) && r.scopes(7, Some("a")));
        r.pods = vec!["a".into()];
        assert!(r.scopes(7, Some("a")));
        assert!(!r.scopes(7, Some("b")) && !r.scopes(7, None));
        assert!(r.scopes(0, None), "system-wide alerts are not scoped");
        r.pods.clear();
        r.exclude_pods = vec!["a".into()];
        assert!(!r.scopes(7, Some("a")) && r.scopes(7, Some("b")) && r.scopes(7, None));
    }
}
