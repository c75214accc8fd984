//! `failing_exits`: exits with a non-zero code or a signal, per command, in the window.

use std::time::Instant;

use ember_probes::ProcessTable;

use super::{window, Engine};
use crate::alerts::{Candidate, Evidence, Subject};

impl Engine {
    pub(super) fn failing_exits(
        &mut self,
        now: Instant,
        table: &ProcessTable,
        out: &mut Vec<Candidate>,
    ) {
        let rule = self.config.failing_exits.clone();
        let span = window(&rule);
        self.failing.retain(|comm, (pid, ppid, code, win)| {
            let n = win.count(now, span);
            if rule.enabled && n as f64 >= rule.threshold {
                let parent = table.get(*ppid).map(|p| p.comm.clone()).unwrap_or_default();
                out.push(Candidate {
                    key: format!("failing_exits:{comm}"),
                    rule: "failing_exits",
                    severity: rule.severity,
                    message: format!(
                        "{n} processes named {comm} failed in {:.0} s (last exit {code}, parent {parent} pid {ppid})",
                        rule.window_s
                    ),
                    subject: Subject {
                        pid: *pid,
                        comm: comm.clone(),
                        cgroup: ember_probes::cgroup_path(*ppid),
                        pod: crate::pod::of(table, *pid).or_else(|| crate::pod::of(table, *ppid)),
                    },
                    evidence: Evidence {
                        value: n as f64,
                        threshold: rule.threshold,
                        unit: "exits",
                        window_s: rule.window_s,
                        details: vec![
                            ("last_exit".into(), code.to_string()),
                            ("parent_pid".into(), ppid.to_string()),
                            ("parent_comm".into(), parent),
                        ],
                    },
                });
            }
            n > 0
        });
    }
}
