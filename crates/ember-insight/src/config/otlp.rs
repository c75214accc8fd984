//! `[otlp]`: export to an OpenTelemetry (OTLP/HTTP, protobuf) receiver.

use serde::{Deserialize, Serialize};

/// OTLP export settings. Nothing is exported without an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://otel-collector:4318`): metrics go to
    /// `/v1/metrics`, logs to `/v1/logs`.
    pub endpoint: Option<String>,
    /// The metrics URL in full, instead of `endpoint`'s (Prometheus' receiver:
    /// `http://prometheus:9090/api/v1/otlp/v1/metrics`); `""` exports no metrics.
    pub metrics_endpoint: Option<String>,
    /// The logs URL in full, instead of `endpoint`'s; `""` exports no logs.
    pub logs_endpoint: Option<String>,
    /// Seconds between two metric exports.
    pub interval_s: f64,
    /// Probe events (exec, fork, exit, oom, tcp) as logs too; alerts and insights always are.
    pub events: bool,
    /// Most log records waiting for export; more are dropped and counted.
    pub queue: usize,
    /// Most log records in one export.
    pub batch: usize,
    /// Most seconds one export may take.
    pub timeout_s: f64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            interval_s: 15.0,
            events: true,
            queue: 8192,
            batch: 512,
            timeout_s: 10.0,
        }
    }
}

impl OtlpConfig {
    /// The URL for `signal` (`metrics` or `logs`), when it is exported.
    pub fn url(&self, signal: &str) -> Option<String> {
        let own = match signal {
            "metrics" => &self.metrics_endpoint,
            _ => &self.logs_endpoint,
        };
        match own {
            Some(url) if url.is_empty() => None,
            Some(url) => Some(url.clone()),
            None => self
                .endpoint
                .as_ref()
                .map(|base| format!("{}/v1/{signal}", base.trim_end_matches('/'))),
        }
    }
}
