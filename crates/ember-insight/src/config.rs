//! Configuration: the file format and its domain types ([`Config`], TOML), with the
//! command-line flags ([`Cli`]) applied over it. Every field of the file has a
//! default, so an empty file (or none) is valid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::cli::Cli;

/// Most CPU threads a context may use: ggml's `GGML_MAX_N_THREADS` (it asserts above).
pub const MAX_THREADS: i32 = 512;

/// `value` must lie in `lo..=hi`: every numeric setting has a documented range, so that no
/// arithmetic on it (durations, allocations, thread counts) can overflow or abort.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    lo: T,
    hi: T,
) -> anyhow::Result<()> {
    if value < lo || value > hi {
        bail!("{name} = {value} is out of range: it must be {lo}..={hi}");
    }
    Ok(())
}

/// As [`within`] for a float, which must also be finite.
fn within_f64(name: &str, value: f64, lo: f64, hi: f64) -> anyhow::Result<()> {
    if !value.is_finite() {
        bail!("{name} = {value} is not a finite number");
    }
    within(name, value, lo, hi)
}

/// The probe names, for error messages.
fn probe_names() -> String {
    let names: Vec<_> = ember_probes::Probe::ALL.iter().map(|p| p.name()).collect();
    names.join(", ")
}

/// Where telemetry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// BPF; when it cannot load, `/proc` polling, with the reason shown in `/status`.
    #[default]
    Auto,
    /// BPF or fail.
    Bpf,
    /// `/proc` polling only.
    Procfs,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address (default 127.0.0.1:3000).
    pub bind: SocketAddr,
    /// Bearer token; required for a non-loopback `bind`.
    #[serde(skip_serializing)]
    pub token: Option<String>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            token: None,
            probes: ProbeConfig::default(),
            model: ModelConfig::default(),
            limits: LimitsConfig::default(),
            rules: RulesConfig::default(),
            insights: InsightConfig::default(),
        }
    }
}

/// Telemetry settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// auto, bpf or procfs.
    pub mode: ProbeMode,
    /// Keep the run-queue latency histogram (needed by the `runq_p99` rule).
    pub run_queue_latency: bool,
    /// BPF ring buffer size in bytes (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// Events the probe channel holds before counting drops.
    pub channel_capacity: usize,
    /// How often rules are evaluated and the process table is sampled, in milliseconds.
    pub tick_ms: u64,
    /// Refuse to start when any enabled probe cannot attach (`--require-all-probes`).
    pub require_all: bool,
    /// Probes to leave off, by name (`exec`, `fork`, `exit`, `oom`, `run_queue`), e.g. one
    /// this kernel lacks.
    pub disable: Vec<String>,
    /// Test hook (`--test-fail-probe`): the probe to attach to a missing tracepoint.
    #[serde(skip)]
    pub test_fail: Option<ember_probes::Probe>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        // Smaller than ember-probes' defaults: the daemon drains continuously, and these
        // buffers are resident memory once used.
        ProbeConfig {
            mode: ProbeMode::Auto,
            run_queue_latency: true,
            ring_buffer_bytes: 1 << 20,
            channel_capacity: 8192,
            tick_ms: 1000,
            require_all: false,
            disable: Vec::new(),
            test_fail: None,
        }
    }
}

/// Model and generation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file; none means no insights and no `/v1` generation.
    pub path: Option<PathBuf>,
    /// Name shown by `/v1/models` (default: the file name without extension).
    pub name: Option<String>,
    /// Built-in chat template used when the model carries none (default: gemma for Gemma
    /// models, else chatml).
    pub chat_template: Option<String>,
    /// Context size per generation slot.
    pub ctx_size: u32,
    /// CPU threads per generation (default: all cores).
    pub threads: Option<i32>,
    /// Concurrent generations through the API; more are answered 429.
    pub max_concurrent: usize,
    /// Upper bound on `max_tokens` of a request.
    pub max_tokens: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            name: None,
            chat_template: None,
            ctx_size: 2048,
            threads: None,
            max_concurrent: 2,
            max_tokens: 1024,
            default_max_tokens: 128,
        }
    }
}

/// HTTP limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, in bytes (413 beyond).
    pub body_bytes: usize,
    /// Messages queued per `/stream` client; a client that falls this far behind is dropped.
    pub sse_queue: usize,
    /// Most `/stream` clients at once (503 beyond).
    pub sse_clients: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_bytes: 1 << 20,
            sse_queue: 1024,
            sse_clients: 64,
        }
    }
}

/// Alert severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One threshold rule over a sliding window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Off turns the rule off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The threshold, in the rule's unit.
    pub threshold: f64,
    /// The window in seconds: rates and counts are taken over it; gauges must stay at or
    /// above the threshold for all of it.
    pub window_s: f64,
    /// Severity of its alerts.
    pub severity: Severity,
}

fn yes() -> bool {
    true
}

fn rule(threshold: f64, window_s: f64, severity: Severity) -> Rule {
    Rule {
        enabled: true,
        threshold,
        window_s,
        severity,
    }
}

/// The rules. Units: forks/s per parent; MB and % of one CPU summed over a process subtree;
/// OOM kills; failing exits (non-zero code or signal) of one command; microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Forks per second by one parent.
    pub fork_rate: Rule,
    /// Resident memory of a process and its descendants, in MB.
    pub subtree_rss_mb: Rule,
    /// CPU of a process and its descendants, in % of one CPU.
    pub subtree_cpu_percent: Rule,
    /// OOM kills in the window.
    pub oom_kills: Rule,
    /// Failing exits of one command in the window.
    pub failing_exits: Rule,
    /// 99th percentile of run-queue latency over the window, in microseconds.
    pub runq_p99_us: Rule,
    /// An alert not seen again for this long is resolved; a later one is a new alert.
    pub resolve_after_s: f64,
    /// Alerts kept for `/alerts`.
    pub keep: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            fork_rate: rule(100.0, 10.0, Severity::Warning),
            subtree_rss_mb: rule(4096.0, 30.0, Severity::Warning),
            subtree_cpu_percent: rule(190.0, 30.0, Severity::Warning),
            oom_kills: rule(1.0, 60.0, Severity::Critical),
            failing_exits: rule(20.0, 10.0, Severity::Warning),
            runq_p99_us: rule(100_000.0, 30.0, Severity::Warning),
            resolve_after_s: 60.0,
            keep: 256,
        }
    }
}

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

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not parse (the message names the file and the field),
    /// or it is named `.yaml`/`.yml`: YAML configs are no longer read (serde_yaml is
    /// unmaintained), and the error says how to convert one.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            anyhow::bail!(
                "config file {} is YAML, which insightd no longer reads (its parser \
                 serde_yaml is unmaintained): write it as TOML, e.g. `fork_rate:` with \
                 `threshold: 5.0` under `rules:` becomes `[rules.fork_rate]` with \
                 `threshold = 5.0` (see the README's Configuration), and pass the .toml file",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid TOML config {}", path.display()))
    }

    /// The file named by `--config` (or the defaults), with the flags applied, validated.
    ///
    /// # Errors
    ///
    /// As [`Config::from_file`] and [`Config::validate`].
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Config> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(bind) = cli.bind {
            config.bind = bind;
        }
        if cli.token.is_some() {
            config.token.clone_from(&cli.token);
        }
        if cli.model.is_some() {
            config.model.path.clone_from(&cli.model);
        }
        if cli.chat_template.is_some() {
            config.model.chat_template.clone_from(&cli.chat_template);
        }
        if let Some(n) = cli.ctx_size {
            config.model.ctx_size = n;
        }
        if cli.threads.is_some() {
            config.model.threads = cli.threads;
        }
        if let Some(n) = cli.max_concurrent {
            config.model.max_concurrent = n;
        }
        if let Some(mode) = cli.probe_mode {
            config.probes.mode = mode;
        }
        if cli.require_all_probes {
            config.probes.require_all = true;
        }
        if let Some(name) = &cli.test_fail_probe {
            let probe = ember_probes::Probe::from_name(name).with_context(|| {
                format!(
                    "--test-fail-probe {name}: no such probe (one of {})",
                    probe_names()
                )
            })?;
            config.probes.test_fail = Some(probe);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings that would otherwise fail later or be unsafe: a non-loopback
    /// bind without a token, zero-sized limits.
    ///
    /// # Errors
    ///
    /// What is wrong and how to fix it.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.bind.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            bail!(
                "refusing to listen on {} without a token: anything but loopback needs \
                 --token (or INSIGHTD_TOKEN, or `token` in the config file)",
                self.bind
            );
        }
        let m = &self.model;
        within("model.ctx_size (--ctx-size)", m.ctx_size, 16, 1 << 20)?;
        if let Some(threads) = m.threads {
            within("model.threads (--threads)", threads, 1, MAX_THREADS)?;
        }
        within(
            "model.max_concurrent (--max-concurrent)",
            m.max_concurrent,
            1,
            256,
        )?;
        within("model.max_tokens", m.max_tokens, 1, 1 << 20)?;
        within(
            "model.default_max_tokens",
            m.default_max_tokens,
            1,
            m.max_tokens,
        )?;
        let l = &self.limits;
        within("limits.body_bytes", l.body_bytes, 1, 64 << 20)?;
        within("limits.sse_queue", l.sse_queue, 1, 1 << 20)?;
        within("limits.sse_clients", l.sse_clients, 1, 10_000)?;
        let p = &self.probes;
        for name in &p.disable {
            if ember_probes::Probe::from_name(name).is_none() {
                bail!(
                    "probes.disable: no probe {name:?} (one of {})",
                    probe_names()
                );
            }
        }
        within("probes.tick_ms", p.tick_ms, 1, 3_600_000)?;
        within("probes.channel_capacity", p.channel_capacity, 1, 1 << 24)?;
        within(
            "probes.ring_buffer_bytes",
            p.ring_buffer_bytes,
            4096,
            1 << 30,
        )?;
        let r = &self.rules;
        for (name, rule) in [
            ("fork_rate", &r.fork_rate),
            ("subtree_rss_mb", &r.subtree_rss_mb),
            ("subtree_cpu_percent", &r.subtree_cpu_percent),
            ("oom_kills", &r.oom_kills),
            ("failing_exits", &r.failing_exits),
            ("runq_p99_us", &r.runq_p99_us),
        ] {
            within_f64(
                &format!("rules.{name}.threshold"),
                rule.threshold,
                0.0,
                1e15,
            )?;
            within_f64(
                &format!("rules.{name}.window_s"),
                rule.window_s,
                0.001,
                86_400.0,
            )?;
        }
        within_f64(
            "rules.resolve_after_s",
            r.resolve_after_s,
            0.001,
            7.0 * 86_400.0,
        )?;
        within("rules.keep", r.keep, 1, 100_000)?;
        let i = &self.insights;
        within_f64("insights.min_interval_s", i.min_interval_s, 0.0, 86_400.0)?;
        within("insights.keep", i.keep, 1, 10_000)?;
        within("insights.max_tokens", i.max_tokens, 1, 1 << 20)?;
        Ok(())
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
