//! `oom_kills`: OOM kills in the window.

use std::time::Instant;

use ember_probes::ProcessTable;

use super::{window, Engine};
use crate::alerts::{Candidate, Evidence, Subject};

impl Engine {
    pub(super) fn oom_kills(
        &mut self,
        now: Instant,
        table: &ProcessTable,
        out: &mut Vec<Candidate>,
    ) {
        let rule = &self.config.oom_kills;
        let n = self.ooms.count(now, window(rule));
        if rule.enabled && n > 0 && n as f64 >= rule.threshold {
            let (pid, comm) = self.last_oom.clone().unwrap_or_default();
            out.push(Candidate {
                key: format!("oom_kills:{comm}"),
                rule: "oom_kills",
                severity: rule.severity,
                message: format!(
                    "{n} OOM kills in {:.0} s, last victim {comm} (pid {pid})",
                    rule.window_s
                ),
                subject: Subject {
                    pid,
                    comm,
                    cgroup: None,
                    pod: crate::pod::of(table, pid),
                },
                evidence: Evidence {
                    value: n as f64,
                    threshold: rule.threshold,
                    unit: "kills",
                    window_s: rule.window_s,
                    details: Vec::new(),
                },
            });
        }
    }
}
