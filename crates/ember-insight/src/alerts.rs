//! Alerts and their store: what the rules raise ([`Alert`], deduplicated by rule and subject)
//! and what the HTTP layer and the insight worker read ([`AlertStore`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Severity;
use crate::pod::Pod;
use crate::time::rfc3339;

/// What an alert is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Subject {
    /// The process (0 for system-wide alerts).
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Its cgroup path (v2), when known.
    pub cgroup: Option<String>,
    /// Its Kubernetes pod and container, when it runs in one.
    pub pod: Option<Pod>,
}

/// The figures behind an alert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Evidence {
    /// The measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Unit of both.
    #[serde(deserialize_with = "crate::history::interned")]
    #[schema(value_type = String)]
    pub unit: crate::history::Name,
    /// The window, in seconds.
    pub window_s: f64,
    /// Other figures, each `[name, value]`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub details: Vec<(String, String)>,
}

/// A raised alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Unique, increasing (across restarts when `state.dir` is set).
    pub id: u64,
    /// The rule's name.
    #[serde(deserialize_with = "crate::history::interned")]
    #[schema(value_type = String)]
    pub rule: crate::history::Name,
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
    /// When it was resolved (RFC 3339): `rules.resolve_after_s` after its last firing.
    #[serde(default)]
    pub resolved: Option<String>,
    #[serde(skip, default = "Instant::now")]
    last_seen_at: Instant,
    /// What repeats of it share (rule and subject), for merging them.
    #[serde(skip)]
    pub(crate) key: String,
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
            resolved: None,
            last_seen_at: Instant::now(),
            key: String::new(),
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
    /// Alerts changed since [`take_changed`](Self::take_changed): raised, repeated, resolved.
    changed: BTreeSet<u64>,
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

    /// Puts back alerts from the history (any order), the newest `keep`; those that were
    /// active stay active, as if seen now, so that their repeats merge into them and they
    /// resolve after `resolve_after_s` without. Ids continue after the largest.
    pub fn restore(&mut self, mut alerts: Vec<Alert>, keep: usize) {
        alerts.sort_by_key(|a| a.id);
        let skip = alerts.len().saturating_sub(keep.max(1));
        for mut alert in alerts.into_iter().skip(skip) {
            self.next_id = self.next_id.max(alert.id);
            alert.last_seen_at = Instant::now();
            if alert.active && !alert.key.is_empty() {
                self.active.insert(alert.key.clone(), alert.id);
            } else if alert.active {
                alert.active = false;
                alert.resolved = Some(alert.last_seen.clone());
            }
            self.alerts.push_back(alert);
        }
    }

    /// The alerts changed since the last call (for the history), oldest first.
    pub fn take_changed(&mut self) -> Vec<Alert> {
        let ids = std::mem::take(&mut self.changed);
        self.alerts
            .iter()
            .filter(|a| ids.contains(&a.id))
            .cloned()
            .collect()
    }

    pub(crate) fn fire(&mut self, candidate: Candidate, keep: usize) -> Fired {
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
                self.changed.insert(id);
                return Fired::Repeat(id);
            }
        }
        self.next_id += 1;
        let mut alert = Alert::new(
            self.next_id,
            candidate.rule,
            candidate.severity,
            candidate.subject,
            candidate.evidence,
            candidate.message,
        );
        alert.key.clone_from(&candidate.key);
        self.active.insert(candidate.key, alert.id);
        self.changed.insert(alert.id);
        self.alerts.push_back(alert.clone());
        while self.alerts.len() > keep.max(1) {
            if let Some(old) = self.alerts.pop_front() {
                self.active.retain(|_, id| *id != old.id);
            }
        }
        Fired::New(Box::new(alert))
    }

    pub(crate) fn resolve_stale(&mut self, after: Duration) {
        let alerts = &mut self.alerts;
        let changed = &mut self.changed;
        self.active.retain(|_, id| {
            let Some(alert) = alerts.iter_mut().find(|a| a.id == *id) else {
                return false;
            };
            if alert.last_seen_at.elapsed() >= after {
                alert.active = false;
                alert.resolved = Some(rfc3339(SystemTime::now()));
                changed.insert(alert.id);
                false
            } else {
                true
            }
        });
    }
}

pub(crate) struct Candidate {
    pub(crate) key: String,
    pub(crate) rule: &'static str,
    pub(crate) severity: Severity,
    pub(crate) subject: Subject,
    pub(crate) evidence: Evidence,
    pub(crate) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

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
                pod: None,
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
