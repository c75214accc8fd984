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

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use ember_probes::{Event, Histogram, ProcessTable};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::{Rule, RulesConfig, Severity};
use crate::time::rfc3339;

/// What an alert is about.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Subject {
    /// The process (0 for system-wide alerts).
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Its cgroup path (v2), when known.
    pub cgroup: Option<String>,
}

/// The figures behind an alert.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Evidence {
    /// The measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Unit of both.
    pub unit: &'static str,
    /// The window, in seconds.
    pub window_s: f64,
    /// Other figures, each `[name, value]`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub details: Vec<(String, String)>,
}

/// A raised alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    /// Unique, increasing.
    pub id: u64,
    /// The rule's name.
    pub rule: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// What it is about.
    pub subject: Subject,
    /// The figures of the latest firing.
    pub evidence: Evidence,
    /// One line for people.
    pub message: String,
    /// First firing (RFC 3339).
    pub first_seen: String,
    /// Latest firing (RFC 3339).
    pub last_seen: String,
    /// Firings merged into this alert.
    pub count: u64,
    /// False once resolved.
    pub active: bool,
    #[serde(skip)]
    last_seen_at: Instant,
}

impl Alert {
    /// A new, active alert first seen now (what the rule engine makes of a first firing;
    /// also for synthetic alerts, e.g. in tests).
    pub fn new(
        id: u64,
        rule: &'static str,
        severity: Severity,
        subject: Subject,
        evidence: Evidence,
        message: String,
    ) -> Alert {
        let now = rfc3339(SystemTime::now());
        Alert {
            id,
            rule,
            severity,
            subject,
            evidence,
            message,
            first_seen: now.clone(),
            last_seen: now,
            count: 1,
            active: true,
            last_seen_at: Instant::now(),
        }
    }
}

/// The outcome of one firing.
#[derive(Debug, Clone)]
pub enum Fired {
    /// A new alert.
    New(Box<Alert>),
    /// A repeat, merged into the alert with this id.
    Repeat(u64),
}

/// Alerts raised so far (newest last), with deduplication.
#[derive(Debug, Default)]
pub struct AlertStore {
    alerts: VecDeque<Alert>,
    active: HashMap<String, u64>,
    next_id: u64,
}

impl AlertStore {
    /// The alerts, oldest first.
    pub fn all(&self) -> impl DoubleEndedIterator<Item = &Alert> {
        self.alerts.iter()
    }

    /// Active alerts.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// The alert `id`.
    pub fn get(&self, id: u64) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.id == id)
    }

    fn fire(&mut self, candidate: Candidate, keep: usize) -> Fired {
        let now = SystemTime::now();
        if let Some(&id) = self.active.get(&candidate.key) {
            if let Some(alert) = self.alerts.iter_mut().find(|a| a.id == id) {
                alert.last_seen = rfc3339(now);
                alert.last_seen_at = Instant::now();
                alert.count += 1;
                alert.evidence = candidate.evidence;
                alert.message = candidate.message;
                if candidate.subject.pid != 0 {
                    alert.subject = candidate.subject;
                }
                return Fired::Repeat(id);
            }
        }
        self.next_id += 1;
        let alert = Alert::new(
            self.next_id,
            candidate.rule,
            candidate.severity,
            candidate.subject,
            candidate.evidence,
            candidate.message,
        );
        self.active.insert(candidate.key, alert.id);
        self.alerts.push_back(alert.clone());
        while self.alerts.len() > keep.max(1) {
            if let Some(old) = self.alerts.pop_front() {
                self.active.retain(|_, id| *id != old.id);
            }
        }
        Fired::New(Box::new(alert))
    }

    fn resolve_stale(&mut self, after: Duration) {
        let alerts = &mut self.alerts;
        self.active.retain(|_, id| {
            let Some(alert) = alerts.iter_mut().find(|a| a.id == *id) else {
                return false;
            };
            if alert.last_seen_at.elapsed() >= after {
                alert.active = false;
                false
            } else {
                true
            }
        });
    }
}

struct Candidate {
    key: String,
    rule: &'static str,
    severity: Severity,
    subject: Subject,
    evidence: Evidence,
    message: String,
}

fn window(rule: &Rule) -> Duration {
    Duration::try_from_secs_f64(rule.window_s.max(0.0)).unwrap_or(Duration::from_secs(10))
}

/// Timestamps in a window, pruned on read.
#[derive(Default)]
struct Window {
    times: VecDeque<Instant>,
}

impl Window {
    fn push(&mut self, t: Instant) {
        self.times.push_back(t);
    }

    fn count(&mut self, now: Instant, span: Duration) -> usize {
        while self
            .times
            .front()
            .is_some_and(|&t| now.duration_since(t) > span)
        {
            self.times.pop_front();
        }
        self.times.len()
    }
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
        candidates
            .into_iter()
            .filter_map(|c| match store.fire(c, self.config.keep) {
                Fired::New(alert) => Some(*alert),
                Fired::Repeat(_) => None,
            })
            .collect()
    }

    fn fork_rate(&mut self, now: Instant, table: &ProcessTable, out: &mut Vec<Candidate>) {
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

    fn failing_exits(&mut self, now: Instant, table: &ProcessTable, out: &mut Vec<Candidate>) {
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
                        cgroup: cgroup_path(*ppid),
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

    fn oom_kills(&mut self, now: Instant, _table: &ProcessTable, out: &mut Vec<Candidate>) {
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

    fn subtrees(&mut self, now: Instant, table: &ProcessTable, out: &mut Vec<Candidate>) {
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

    fn runq_p99(&mut self, now: Instant, hist: Histogram, out: &mut Vec<Candidate>) {
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
        cgroup: cgroup_path(pid),
    }
}

/// The cgroup v2 path of a live process (`0::/path` in `/proc/<pid>/cgroup`).
pub fn cgroup_path(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use ember_probes::{ExecEvent, ExitEvent, ExitStatus, ForkEvent, OomEvent};

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

    #[test]
    fn repeats_are_merged_until_resolved() {
        let mut store = AlertStore::default();
        let c = || Candidate {
            key: "fork_rate:1".into(),
            rule: "fork_rate",
            severity: Severity::Warning,
            subject: Subject {
                pid: 1,
                comm: "x".into(),
                cgroup: None,
            },
            evidence: Evidence {
                value: 1.0,
                threshold: 1.0,
                unit: "forks/s",
                window_s: 1.0,
                details: Vec::new(),
            },
            message: String::new(),
        };
        assert!(matches!(store.fire(c(), 10), Fired::New(_)));
        assert!(matches!(store.fire(c(), 10), Fired::Repeat(1)));
        assert_eq!(store.get(1).unwrap().count, 2);
        store.resolve_stale(Duration::ZERO);
        assert!(!store.get(1).unwrap().active);
        assert!(matches!(store.fire(c(), 10), Fired::New(a) if a.id == 2));
    }
}
