//! `fork_rate`: forks per second by one parent, counted over the window.

use std::time::Instant;

use ember_probes::ProcessTable;

use super::{round2, subject, window, Engine};
use crate::alerts::{Candidate, Evidence};

impl Engine {
    pub(super) fn fork_rate(
        &mut self,
        now: Instant,
        table: &ProcessTable,
        out: &mut Vec<Candidate>,
    ) {
        let rule = self.config.fork_rate.clone();
        let span = window(&rule);
        let secs = rule.window_s.max(1e-3);
        self.forks.retain(|&ppid, (comm, win)| {
            let n = win.count(now, span);
            let rate = n as f64 / secs;
            if rule.enabled && rate >= rule.threshold {
                let subject = subject(table, ppid, comm);
                let children = table.children(ppid).len();
                out.push(Candidate {
                    key: format!("fork_rate:{ppid}"),
                    rule: "fork_rate",
                    severity: rule.severity,
                    message: format!(
                        "{} (pid {ppid}) forked {rate:.0} processes/s over {secs:.0} s (threshold {})",
                        subject.comm, rule.threshold
                    ),
                    subject,
                    evidence: Evidence {
                        value: round2(rate),
                        threshold: rule.threshold,
                        unit: "forks/s",
                        window_s: rule.window_s,
                        details: vec![
                            ("forks_in_window".into(), n.to_string()),
                            ("children_now".into(), children.to_string()),
                        ],
                    },
                });
            }
            n > 0
        });
    }
}
