//! `[insights]`: when alerts get LLM-written insights and how many are kept.

use serde::{Deserialize, Serialize};

/// Insight settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsightConfig {
    /// Whether alerts get insights (needs a model).
    pub enabled: bool,
    /// Least time between two insights for the same rule and command, in seconds; alerts in
    /// between are skipped (counted).
    pub min_interval_s: f64,
    /// Insights kept for `/insights`.
    pub keep: usize,
    /// Token budget of one insight.
    pub max_tokens: usize,
}

impl Default for InsightConfig {
    fn default() -> Self {
        InsightConfig {
            enabled: true,
            min_interval_s: 30.0,
            keep: 32,
            max_tokens: 200,
        }
    }
}
