//! `subtree_rss_mb`, `subtree_cpu_percent`: a process and its descendants at or above the
//! threshold for the whole window; only the smallest such subtree is reported.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ember_probes::ProcessTable;

use super::{round2, subject, window, Engine};
use crate::alerts::{Candidate, Evidence};

impl Engine {
    pub(super) fn subtrees(
        &mut self,
        now: Instant,
        table: &ProcessTable,
        out: &mut Vec<Candidate>,
    ) {
        let rss_rule = self.config.subtree_rss_mb.clone();
        let cpu_rule = self.config.subtree_cpu_percent.clone();
        if !rss_rule.enabled && !cpu_rule.enabled {
            return;
        }
        // Sum each running process into itself and every ancestor.
        let running: HashMap<u32, (u32, f64, f64)> = table
            .iter()
            .filter(|p| p.is_running())
            .map(|p| (p.pid, (p.ppid, p.rss_bytes as f64 / 1e6, p.cpu_percent)))
            .collect();
        let mut totals: HashMap<u32, (f64, f64)> = HashMap::with_capacity(running.len());
        for (&pid, &(_, rss, cpu)) in &running {
            let mut at = pid;
            let mut seen = 0;
            while let Some(&(ppid, _, _)) = running.get(&at) {
                let t = totals.entry(at).or_default();
                t.0 += rss;
                t.1 += cpu;
                // A cycle would be a table bug; never loop on it.
                seen += 1;
                if ppid == at || ppid == 0 || seen > 4096 {
                    break;
                }
                at = ppid;
            }
        }
        for (name, unit, rule, pick) in [
            ("subtree_rss_mb", "MB", &rss_rule, 0usize),
            ("subtree_cpu_percent", "% CPU", &cpu_rule, 1usize),
        ] {
            let value = |t: &(f64, f64)| if pick == 0 { t.0 } else { t.1 };
            let over: HashSet<u32> = if rule.enabled {
                totals
                    .iter()
                    .filter(|(_, t)| value(t) >= rule.threshold)
                    .map(|(&pid, _)| pid)
                    .collect()
            } else {
                HashSet::new()
            };
            self.above
                .retain(|&(r, pid), _| r != name || over.contains(&pid));
            let parents_of_over: HashSet<u32> = over
                .iter()
                .filter_map(|pid| running.get(pid).map(|r| r.0))
                .collect();
            for &pid in &over {
                let since = *self.above.entry((name, pid)).or_insert(now);
                if parents_of_over.contains(&pid) || now.duration_since(since) < window(rule) {
                    continue;
                }
                let v = totals.get(&pid).map(value).unwrap_or_default();
                let comm = table.get(pid).map(|p| p.comm.clone()).unwrap_or_default();
                let descendants = table.descendants(pid).len();
                out.push(Candidate {
                    key: format!("{name}:{pid}"),
                    rule: name,
                    severity: rule.severity,
                    message: format!(
                        "{comm} (pid {pid}) and its {descendants} descendants use {v:.0} {unit} (threshold {} for {:.0} s)",
                        rule.threshold, rule.window_s
                    ),
                    subject: subject(table, pid, &comm),
                    evidence: Evidence {
                        value: round2(v),
                        threshold: rule.threshold,
                        unit,
                        window_s: rule.window_s,
                        details: vec![("descendants".into(), descendants.to_string())],
                    },
                });
            }
        }
    }
}
