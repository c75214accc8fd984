//! Rules: thresholds over sliding windows, evaluated on probe events and on each telemetry
//! tick, raising deduplicated [`Alert`]s.
//!
//! - `fork_rate`: forks per second by one parent, counted over the window;
//! - `subtree_rss_mb`, `subtree_cpu_percent`: a process and its descendants, at or above the
//!   threshold for the whole window; only the smallest such subtree is reported (not every
//!   ancestor up to init);
//! - `oom_kills`: OOM kills in the window;
//! - `failing_exits`: exits with a non-zero code or a signal, per command, in the window;
//! - `runq_p99_us`: 99th percentile of run-queue latency over the window (BPF only).
//!
//! An alert is keyed by rule and subject; while it fires again within `resolve_after_s` it is
//! the same alert (its `last_seen`, `count` and evidence are updated), after that a new one.
//!
//! The engine is here; each rule's evaluation is in its own file, over the engine's windows.

mod failing_exits;
mod fork_rate;
mod oom_kills;
mod runq;
mod subtrees;
mod window;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ember_probes::{Event, Histogram, ProcessTable};

use crate::alerts::{Alert, AlertStore, Fired, Subject};
use crate::config::{Rule, RulesConfig};
use window::Window;

fn window(rule: &Rule) -> Duration {
    Duration::try_from_secs_f64(rule.window_s.max(0.0)).unwrap_or(Duration::from_secs(10))
}

/// The rule engine. Owned by the telemetry thread.
pub struct Engine {
    config: RulesConfig,
    forks: HashMap<u32, (String, Window)>,
    failing: HashMap<String, (u32, u32, i64, Window)>,
    ooms: Window,
    last_oom: Option<(u32, String)>,
    above: HashMap<(&'static str, u32), Instant>,
    runq: VecDeque<(Instant, Histogram)>,
}

impl Engine {
    /// An engine for these rules.
    pub fn new(config: RulesConfig) -> Engine {
        Engine {
            config,
            forks: HashMap::new(),
            failing: HashMap::new(),
            ooms: Window::default(),
            last_oom: None,
            above: HashMap::new(),
            runq: VecDeque::new(),
        }
    }

    /// Counts one probe event.
    pub fn on_event(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::Fork(e) if self.config.fork_rate.enabled => {
                let entry = self
                    .forks
                    .entry(e.ppid)
                    .or_insert_with(|| (e.comm.clone(), Window::default()));
                entry.0.clone_from(&e.comm);
                entry.1.push(now);
            }
            Event::Exit(e) if self.config.failing_exits.enabled => {
                let failed = e.status.signal().is_some() || e.status.code().is_some_and(|c| c != 0);
                if failed {
                    let code = e
                        .status
                        .code()
                        .map_or_else(|| -i64::from(e.status.signal().unwrap_or(0)), i64::from);
                    let entry = self
                        .failing
                        .entry(e.comm.clone())
                        .or_insert_with(|| (0, 0, 0, Window::default()));
                    entry.0 = e.pid;
                    entry.1 = e.ppid;
                    entry.2 = code;
                    entry.3.push(now);
                }
            }
            Event::Oom(e) if self.config.oom_kills.enabled => {
                self.ooms.push(now);
                self.last_oom = Some((e.pid, e.comm.clone()));
            }
            _ => {}
        }
    }

    /// Evaluates every rule against the table (and the run-queue histogram, when kept),
    /// recording firings in `store`. Returns the new alerts.
    pub fn evaluate(
        &mut self,
        table: &ProcessTable,
        runq: Option<Histogram>,
        store: &mut AlertStore,
    ) -> Vec<Alert> {
        let now = Instant::now();
        let mut candidates = Vec::new();
        self.fork_rate(now, table, &mut candidates);
        self.failing_exits(now, table, &mut candidates);
        self.oom_kills(now, table, &mut candidates);
        self.subtrees(now, table, &mut candidates);
        if let Some(hist) = runq {
            self.runq_p99(now, hist, &mut candidates);
        }
        let after = Duration::try_from_secs_f64(self.config.resolve_after_s.max(0.0))
            .unwrap_or(Duration::from_secs(60));
        store.resolve_stale(after);
        let config = &self.config;
        candidates
            .into_iter()
            .filter(|c| {
                let pod = c.subject.pod.as_ref().map(|p| p.uid.as_str());
                config
                    .get(c.rule)
                    .is_none_or(|r| r.scopes(c.subject.pid, pod))
            })
            .filter_map(|c| match store.fire(c, self.config.keep) {
                Fired::New(alert) => Some(*alert),
                Fired::Repeat(_) => None,
            })
            .collect()
    }
}

/// Upper bound (µs) of the log2 slot holding quantile `q` of `slots` (see
/// [`Histogram::slots`]); `None` for an empty histogram.
pub fn percentile_us(slots: &[u64], q: f64) -> Option<u64> {
    let total: u64 = slots.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &c) in slots.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some((1u64 << (i + 1)) - 1);
        }
    }
    None
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn subject(table: &ProcessTable, pid: u32, fallback_comm: &str) -> Subject {
    let comm = table
        .get(pid)
        .map(|p| p.comm.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| fallback_comm.to_string());
    Subject {
        pid,
        comm,
        cgroup: ember_probes::cgroup_path(pid),
        pod: crate::pod::of(table, pid),
    }
}

#[cfg(test)]
mod tests {
    use ember_probes::{ExecEvent, ExitEvent, ExitStatus, ForkEvent, OomEvent};

    use crate::config::Severity;

    use super::*;

    fn fork(ppid: u32, pid: u32, comm: &str) -> Event {
        Event::Fork(ForkEvent {
            ts_ns: 1,
            pid,
            ppid,
            comm: comm.into(),
        })
    }

    fn exit(pid: u32, ppid: u32, comm: &str, status: u32) -> Event {
        Event::Exit(ExitEvent {
            ts_ns: 2,
            pid,
            ppid,
            comm: comm.into(),
            status: ExitStatus(status),
            user_time: Duration::ZERO,
            system_time: Duration::ZERO,
            max_rss_bytes: 0,
            start_ns: 1,
        })
    }

    /// Feeds `events` to a default engine and evaluates once against a table made of them.
    fn alerts_for(events: &[Event], store: &mut AlertStore, engine: &mut Engine) -> Vec<Alert> {
        for ev in events {
            engine.on_event(ev);
        }
        let table = ProcessTable::from_events(events);
        engine.evaluate(&table, None, store)
    }

    #[test]
    fn a_fork_storm_raises_one_fork_rate_alert_naming_the_parent() {
        let mut engine = Engine::new(RulesConfig::default());
        let mut store = AlertStore::default();
        // 100 forks/s over the 10 s window is the threshold: 1 200 forks in the window.
        let storm: Vec<Event> = (0..1200)
            .map(|i| fork(4242, 10_000 + i, "forker"))
            .collect();
        let calm: Vec<Event> = (0..50).map(|i| fork(77, 20_000 + i, "calm")).collect();
        let events: Vec<Event> = storm.into_iter().chain(calm).collect();
        let alerts = alerts_for(&events, &mut store, &mut engine);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.rule, "fork_rate");
        assert_eq!(a.subject.pid, 4242);
        assert_eq!(a.subject.comm, "forker");
        assert_eq!(a.evidence.value, 120.0);
        assert!(a.message.contains("forker (pid 4242)"), "{}", a.message);
        // Firing again within resolve_after_s is the same alert, counted.
        assert!(alerts_for(&[], &mut store, &mut engine).is_empty());
        assert_eq!(store.get(a.id).unwrap().count, 2);
        assert_eq!(store.active_count(), 1);
    }

    #[test]
    fn failing_exits_count_per_command_and_ignore_successes() {
        let mut engine = Engine::new(RulesConfig::default());
        let mut store = AlertStore::default();
        let mut events = Vec::new();
        for i in 0..19 {
            events.push(exit(30_000 + i, 1, "crashy", 1 << 8)); // exit code 1
            events.push(exit(40_000 + i, 1, "fine", 0));
        }
        assert!(
            alerts_for(&events, &mut store, &mut engine).is_empty(),
            "19 < 20"
        );
        // The 20th failure, by a signal (SIGSEGV), crosses the threshold.
        let alerts = alerts_for(&[exit(30_100, 1, "crashy", 11)], &mut store, &mut engine);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "failing_exits");
        assert_eq!(alerts[0].subject.comm, "crashy");
        assert_eq!(alerts[0].evidence.value, 20.0);
        assert!(
            alerts[0].message.contains("last exit -11"),
            "{}",
            alerts[0].message
        );
    }

    #[test]
    fn one_oom_kill_is_critical_and_names_the_victim() {
        let mut engine = Engine::new(RulesConfig::default());
        let mut store = AlertStore::default();
        let oom = Event::Oom(OomEvent {
            ts_ns: 3,
            pid: 555,
            comm: "hog".into(),
            uid: 1000,
            oom_score_adj: 0,
            total_vm_bytes: 1 << 30,
            anon_rss_bytes: 1 << 29,
            file_rss_bytes: 0,
            shmem_rss_bytes: 0,
            trigger_pid: 0,
        });
        let alerts = alerts_for(&[oom], &mut store, &mut engine);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "oom_kills");
        assert_eq!(alerts[0].severity, Severity::Critical);
        assert_eq!(
            (alerts[0].subject.pid, alerts[0].subject.comm.as_str()),
            (555, "hog")
        );
    }

    #[test]
    fn a_disabled_rule_ignores_its_events() {
        let mut config = RulesConfig::default();
        config.fork_rate.enabled = false;
        let mut engine = Engine::new(config);
        let mut store = AlertStore::default();
        let storm: Vec<Event> = (0..5000).map(|i| fork(9, 50_000 + i, "forker")).collect();
        assert!(alerts_for(&storm, &mut store, &mut engine).is_empty());
        // Exec events feed no rule at all.
        let exec = Event::Exec(ExecEvent {
            ts_ns: 1,
            pid: 9,
            ppid: 1,
            uid: 0,
            cgroup_id: 0,
            comm: "x".into(),
            filename: "/bin/x".into(),
            argv: vec!["x".into()],
            argv_truncated: false,
        });
        assert!(alerts_for(&[exec], &mut store, &mut engine).is_empty());
    }

    #[test]
    fn percentiles_of_log2_slots() {
        let mut slots = [0u64; 32];
        assert_eq!(percentile_us(&slots, 0.99), None);
        slots[3] = 99; // 8..15 µs
        slots[10] = 1; // 1024..2047 µs
        assert_eq!(percentile_us(&slots, 0.99), Some(15));
        assert_eq!(percentile_us(&slots, 1.0), Some(2047));
    }
}
