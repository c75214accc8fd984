//! `insightd`'s command line (clap). Each flag overrides its setting in the config file
//! ([`Config::from_cli`](crate::config::Config::from_cli)).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ModelPriority, ProbeMode};

/// `insightd`'s command line. Flags override the config file.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "insightd", version = crate::state::VERSION, about, long_about = None)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; anything but loopback needs --token.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Bearer token every request must carry (except /healthz and /readyz).
    #[arg(long, env = "INSIGHTD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// GGUF model for insights and the OpenAI-compatible API (optional).
    #[arg(short, long, value_name = "GGUF")]
    pub model: Option<PathBuf>,
    /// Built-in chat template name when the model has none (e.g. gemma, chatml).
    #[arg(long)]
    pub chat_template: Option<String>,
    /// Most tokens of one generation (prompt plus output).
    #[arg(long)]
    pub ctx_size: Option<u32>,
    /// CPU threads per generation (default: the CPUs this process may use).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Scheduling priority of the model's threads: background (nice 19, the default: the
    /// node's workloads come first) or normal.
    #[arg(long, value_enum)]
    pub model_priority: Option<ModelPriority>,
    /// Generations batched together; more wait in the queue.
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Requests that may wait for a generation; more get 429.
    #[arg(long)]
    pub queue: Option<usize>,
    /// One KV cache for all sequences (true) or one per sequence (false).
    #[arg(long, value_name = "BOOL")]
    pub kv_unified: Option<bool>,
    /// Directory where alerts and insights persist across restarts (`state.dir`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Probe mode: auto (BPF, else /proc), bpf or procfs.
    #[arg(long, value_enum)]
    pub probe_mode: Option<ProbeMode>,
    /// Refuse to start when any enabled probe cannot attach (by default such a probe is
    /// reported down in /status and /metrics, and the others run).
    #[arg(long)]
    pub require_all_probes: bool,
    /// Test hook: attach this probe (e.g. oom) to a tracepoint that does not exist, so that
    /// it fails as on a kernel without its tracepoint.
    #[arg(long, value_name = "PROBE", hide = true)]
    pub test_fail_probe: Option<String>,
    /// Run telemetry and rules for --duration, print a report and exit.
    #[arg(long)]
    pub once: bool,
    /// How long --once watches (e.g. 10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ember_insight::cli::parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(ember_insight::cli::parse_duration("2m").unwrap(), Duration::from_secs(120));
/// ```
///
/// # Errors
///
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 10s, 500ms, 2m"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("invalid duration {text:?}: must be positive and finite"))
}
