//! Configuration: the file format and its domain types ([`Config`], TOML), with the
//! command-line flags ([`Cli`]) applied over it. Every field of the file has a
//! default, so an empty file (or none) is valid.
//!
//! [`Cli`]: crate::cli::Cli

mod alertmanager;
mod insights;
mod limits;
mod load;
mod otlp;
mod probes;
mod rules;
mod state;
mod validate;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use alertmanager::AlertmanagerConfig;
pub use ember_serve::config::{
    ModelConfig, ModelPriority, Reasoning, ReasoningFormat, MAX_THREADS,
};
pub use insights::InsightConfig;
pub use limits::LimitsConfig;
pub use otlp::OtlpConfig;
pub use probes::{ProbeConfig, ProbeMode};
pub use rules::{Rule, RulesConfig, Severity};
pub use state::StateConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address (default 127.0.0.1:3000).
    pub bind: SocketAddr,
    /// More addresses to serve the same API on (llama-server's `--host a,b`), e.g. `[::1]:3000`
    /// beside an IPv4 `bind`.
    pub also_bind: Vec<SocketAddr>,
    /// Bearer token; required for a non-loopback `bind`.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// Web page origins whose scripts may call the API (CORS, llama-server's
    /// `--cors-origins`): `*` (any), `localhost` (http(s) on localhost, 127.0.0.1 or `[::1]`,
    /// any port) or exact origins such as `https://grafana.example`. Default: none.
    pub cors_origins: Vec<String>,
    /// Telemetry settings.
    pub probes: ProbeConfig,
    /// Model and generation settings.
    pub model: ModelConfig,
    /// HTTP limits.
    pub limits: LimitsConfig,
    /// Alert rules.
    pub rules: RulesConfig,
    /// Insight settings.
    pub insights: InsightConfig,
    /// History on disk.
    pub state: StateConfig,
    /// Where alerts are sent.
    pub alertmanager: AlertmanagerConfig,
    /// OTLP export.
    pub otlp: OtlpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            also_bind: Vec::new(),
            token: None,
            cors_origins: Vec::new(),
            probes: ProbeConfig::default(),
            model: ModelConfig::default(),
            limits: LimitsConfig::default(),
            rules: RulesConfig::default(),
            insights: InsightConfig::default(),
            state: StateConfig::default(),
            alertmanager: AlertmanagerConfig::default(),
            otlp: OtlpConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_config_is_read_and_a_yaml_one_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("insightd.toml");
        std::fs::write(
            &toml_path,
            "bind = \"127.0.0.1:4000\"\n[rules.fork_rate]\nthreshold = 5.0\nwindow_s = 2.0\nseverity = \"critical\"\n",
        )
        .unwrap();
        let c = Config::from_file(&toml_path).unwrap();
        assert_eq!(c.bind.port(), 4000);
        assert_eq!(c.rules.fork_rate.threshold, 5.0);
        assert_eq!(c.rules.fork_rate.severity, Severity::Critical);
        assert_eq!(c.rules.oom_kills.threshold, 1.0);

        let yaml_path = dir.path().join("insightd.yaml");
        std::fs::write(&yaml_path, "bind: 127.0.0.1:4000\n").unwrap();
        let err = format!("{:#}", Config::from_file(&yaml_path).unwrap_err());
        assert!(err.contains("insightd.yaml is YAML"), "{err}");
        assert!(err.contains("write it as TOML"), "{err}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let mut c = Config {
            bind: "0.0.0.0:3000".parse().unwrap(),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--token"), "{err}");
        c.token = Some("secret".into());
        c.validate().unwrap();
    }
}
