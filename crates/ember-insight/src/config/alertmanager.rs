//! `[alertmanager]`: where alerts are sent (Prometheus Alertmanager's v2 API), and how often.

use serde::{Deserialize, Serialize};

/// Alertmanager settings. No `urls`, no sending.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of the Alertmanagers (`http://host:9093`; every one gets every alert, as
    /// Prometheus sends to each member of a cluster). Plain HTTP: put a TLS proxy in front
    /// of an `https` one.
    pub urls: Vec<String>,
    /// Active alerts are sent again this often (Prometheus' `--rules.alert.resend-delay`,
    /// 1 m); each says it ends after four of these unless sent again, so an Alertmanager
    /// resolves the alerts of an insightd that is gone.
    pub resend_s: f64,
    /// Most seconds one POST may take.
    pub timeout_s: f64,
    /// The `node` label; default: `$NODE_NAME` (the downward API's `spec.nodeName`), else
    /// the host name.
    pub node: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: Vec::new(),
            resend_s: 60.0,
            timeout_s: 10.0,
            node: None,
        }
    }
}
