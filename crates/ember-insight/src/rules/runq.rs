//! `runq_p99_us`: 99th percentile of run-queue latency over the window (BPF only).

use std::time::Instant;

use ember_probes::Histogram;

use super::{percentile_us, window, Engine};
use crate::alerts::{Candidate, Evidence, Subject};

impl Engine {
    pub(super) fn runq_p99(&mut self, now: Instant, hist: Histogram, out: &mut Vec<Candidate>) {
        let rule = self.config.runq_p99_us.clone();
        let span = window(&rule);
        self.runq.push_back((now, hist));
        while self.runq.len() > 2 && now.duration_since(self.runq[1].0) >= span {
            self.runq.pop_front();
        }
        let (Some(first), Some(last)) = (self.runq.front(), self.runq.back()) else {
            return;
        };
        if !rule.enabled || now.duration_since(first.0) < span {
            return;
        }
        let delta: Vec<u64> = last
            .1
            .slots
            .iter()
            .zip(first.1.slots.iter())
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let Some(p99) = percentile_us(&delta, 0.99) else {
            return;
        };
        if p99 as f64 >= rule.threshold {
            let samples: u64 = delta.iter().sum();
            out.push(Candidate {
                key: "runq_p99_us".into(),
                rule: "runq_p99_us",
                severity: rule.severity,
                message: format!(
                    "run-queue latency p99 is {p99} µs over {:.0} s (threshold {})",
                    rule.window_s, rule.threshold
                ),
                subject: Subject {
                    pid: 0,
                    comm: "system".into(),
                    cgroup: None,
                    pod: None,
                },
                evidence: Evidence {
                    value: p99 as f64,
                    threshold: rule.threshold,
                    unit: "µs",
                    window_s: rule.window_s,
                    details: vec![("samples".into(), samples.to_string())],
                },
            });
        }
    }
}
