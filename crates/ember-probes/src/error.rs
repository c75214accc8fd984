//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong starting or reading the probes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process lacks a capability BPF needs. Run as root, grant the capability, or pick
    /// [`Mode::Procfs`](crate::Mode::Procfs) explicitly.
    #[error("missing capability {name}: {hint}")]
    MissingCapability {
        /// The capability, e.g. `CAP_BPF`.
        name: &'static str,
        /// What would fix it.
        hint: &'static str,
    },
    /// The kernel exposes no BTF, so CO-RE programs cannot be relocated.
    #[error("no kernel BTF at {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf {
        /// Where BTF was looked for.
        path: PathBuf,
    },
    /// The kernel is older than the BPF features used here need.
    #[error("kernel {found} is too old: the probes need Linux {required} or newer")]
    KernelTooOld {
        /// The running kernel's release.
        found: String,
        /// The oldest release that works.
        required: &'static str,
    },
    /// libbpf failed to open or load the BPF object, or to create a map.
    #[error("loading BPF programs failed: {message}")]
    Load {
        /// libbpf's error and the last lines of its log (verifier output included).
        message: String,
    },
    /// Attaching a program to its tracepoint failed.
    #[error("attaching {program} failed: {message}")]
    Attach {
        /// The BPF program.
        program: String,
        /// libbpf's error and the last lines of its log.
        message: String,
    },
    /// A probe could not be loaded or attached, and
    /// [`Builder::require_all_probes`](crate::Builder::require_all_probes) asks for all of them.
    #[error("probe {probe} is down: {reason}")]
    ProbeDown {
        /// The probe.
        probe: crate::Probe,
        /// What failed and what would fix it.
        reason: String,
    },
    /// Reading a BPF map failed.
    #[error("reading BPF map {map} failed: {message}")]
    Map {
        /// The map.
        map: &'static str,
        /// libbpf's error.
        message: String,
    },
    /// The requested data is not available in this mode (e.g. histograms under procfs).
    #[error("{what} is not available in {mode} mode")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// The mode in use.
        mode: &'static str,
    },
    /// An invalid builder setting.
    #[error("invalid setting {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Reading `/proc` failed.
    // The I/O errors are in the messages and are not also a `source()`: `{:#}` (anyhow)
    // would print them twice.
    #[error("reading {path}: {error}")]
    Procfs {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Starting the poller thread failed.
    #[error("starting the poller thread: {0}")]
    Thread(std::io::Error),
    /// The poller thread stopped with an error or panicked.
    #[error("the poller thread failed: {0}")]
    Poller(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
