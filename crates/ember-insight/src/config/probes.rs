//! `[probes]`: where telemetry comes from and how it is buffered and sampled.

use serde::{Deserialize, Serialize};

/// The probe names, for error messages.
pub(super) fn probe_names() -> String {
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
