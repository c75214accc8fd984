//! CO-RE eBPF probes with libbpf-rs: typed kernel events and a live process table.
//!
//! `ember-probes` loads small BPF programs on kernel tracepoints and turns what they report into
//! Rust values:
//!
//! - **process lifecycle**: [`Event::Exec`] (pid, ppid, uid, cgroup id, comm, filename, the first
//!   256 bytes of argv), [`Event::Fork`] (parent, child), [`Event::Exit`] (exit code or signal,
//!   user/system CPU time, peak RSS), and on request [`Event::ExecFailed`] (an `execve` that
//!   returned an error, with its negative errno);
//! - **OOM kills** ([`Event::Oom`], from `oom:mark_victim`);
//! - **TCP connection lifetimes** ([`Event::Tcp`]: addresses, ports, payload bytes each way,
//!   duration);
//! - **latency histograms** for the run queue and block I/O ([`Handle::histogram`]), kept in
//!   per-CPU maps and readable at any time;
//! - a [`ProcessTable`] (tree, CPU %, RSS, start/exit, exit codes, children, fork rate), seeded
//!   from `/proc` at start and then fed by the events.
//! - each process's **Kubernetes pod** ([`PodIdentity`]: pod UID, container id, QoS class),
//!   read from its cgroup path as the kubelet and the runtimes name them ([`pod`]).
//!
//! # How it works
//!
//! The programs (`src/bpf/probes.bpf.c`) use raw tracepoints only, which attach by name and need
//! no tracefs, and read kernel structures with CO-RE, so one build loads on any kernel from 5.8
//! with BTF (`/sys/kernel/btf/vmlinux`). Each [`Probe`] attaches on its own: one the kernel
//! refuses is reported [`ProbeState::Down`] by [`Handle::probes`], with the reason, and the
//! others run ([`Builder::require_all_probes`] makes that an error instead). Records go through one BPF ring buffer. A wakeup of the
//! reader per record costs about 20 µs of kernel time in a VM, so records are submitted with
//! `BPF_RB_NO_WAKEUP`; a record that finds the unread data at or above a threshold
//! ([`Builder::wakeup_threshold`]) wakes the reader, once until it has read again, and the reader
//! otherwise polls on a short timer ([`Builder::poll_interval`], 10 ms). Records the kernel cannot write because the buffer is
//! full, and events the bounded channel cannot take, are counted in [`Stats`].
//!
//! Loading needs root, or `CAP_BPF` and `CAP_PERFMON` (`CAP_SYS_ADMIN` before Linux 5.8).
//! Without them [`Builder::start`] fails with [`Error::MissingCapability`] naming the
//! capability; it never falls back silently. [`Mode::Procfs`] polls `/proc` instead, behind the
//! same table API, for hosts without BPF.
//!
//! libbpf, libelf and zlib are built from vendored sources and linked statically, so a binary
//! using this crate needs no shared libraries beyond libc (and none with `+crt-static`).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use ember_probes::{Builder, Event};
//!
//! fn main() -> ember_probes::Result<()> {
//!     let probes = Builder::new().tcp(true).wakeup_threshold(64 * 1024).start()?;
//!     while let Ok(event) = probes.events().recv_timeout(Duration::from_secs(5)) {
//!         match event {
//!             Event::Exec(e) => println!("exec {} {:?}", e.pid, e.argv),
//!             Event::Exit(e) => println!("exit {} {:?}", e.pid, e.status.code()),
//!             Event::Tcp(t) => println!("tcp {}:{} {} B out", t.daddr, t.dport, t.tx_bytes),
//!             other => println!("{other:?}"),
//!         }
//!     }
//!     let table = probes.table();
//!     println!("{} processes, {:.1} forks/s", table.running(), table.fork_rate());
//!     println!("dropped: {:?}", probes.stats()?);
//!     probes.stop()
//! }
//! ```
#![deny(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): items gated on a feature or target say so.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod skel {
    #![allow(missing_docs, clippy::all, clippy::undocumented_unsafe_blocks)]
    include!(concat!(env!("OUT_DIR"), "/probes.skel.rs"));
}

mod builder;
pub mod error;
pub mod event;
pub mod events;
mod handle;
pub mod pod;
mod poller;
mod probe;
mod procfs;
mod sys;
pub mod table;
mod wait;

pub use builder::{Builder, Mode};
pub use error::{Error, Result};
pub use event::{
    Event, ExecEvent, ExecFailedEvent, ExitEvent, ExitStatus, ForkEvent, OomEvent, TcpEvent,
};
pub use events::{Events, RecvError, RecvTimeoutError, TryRecvError};
pub use handle::{Handle, Histogram, HistogramKind, Stats};
pub use pod::{pod_identity, PodIdentity, QosClass};
pub use probe::{Probe, ProbeState, ProbeStatus};
pub use procfs::cgroup_path;
pub use table::{Process, ProcessExit, ProcessTable, Source};
