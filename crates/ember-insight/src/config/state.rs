//! `[state]`: where alerts and insights persist across restarts, and how much of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The on-disk history of alerts and insights.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// A directory for `insightd.db` (SQLite); none (the default) keeps history in memory
    /// only. In a DaemonSet, a hostPath or PVC.
    pub dir: Option<PathBuf>,
    /// Most alerts kept on disk (the newest).
    pub max_alerts: usize,
    /// Most insights kept on disk (the newest).
    pub max_insights: usize,
    /// Alerts and insights older than this many days are removed.
    pub max_age_days: f64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: None,
            max_alerts: 10_000,
            max_insights: 1_000,
            max_age_days: 30.0,
        }
    }
}
