//! The [`Builder`]: which probes, which settings; [`start`](Builder::start) runs them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::events;
use crate::handle::{Handle, Shared, Started};
use crate::poller::bpf::run_bpf;
use crate::poller::procfs::run_procfs;
use crate::probe::Probe;
use crate::sys;
use crate::table::ProcessTable;
use crate::wait::Waiter;

/// Where the process table and events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// BPF programs on kernel tracepoints (needs root or CAP_BPF + CAP_PERFMON, and BTF).
    #[default]
    Bpf,
    /// Polling `/proc`, for hosts without BPF: the same [`ProcessTable`], but no events, no
    /// exit codes and no histograms. Chosen explicitly, never as a silent fallback.
    Procfs,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Bpf => "bpf",
            Mode::Procfs => "procfs",
        }
    }
}

/// Chooses probes and settings; [`start`](Builder::start) loads and attaches them.
///
/// Defaults: process lifecycle (exec, fork, exit) and OOM kills on; TCP, run-queue and block I/O
/// off; 8 MiB ring buffer, wakeup at 256 KiB unread, 10 ms poll timer, a channel of 65 536 events;
/// a probe the kernel refuses is reported down while the others run.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    pub(crate) mode: Mode,
    pub(crate) process: bool,
    pub(crate) oom: bool,
    pub(crate) failed_execs: bool,
    pub(crate) tcp: bool,
    pub(crate) runq: bool,
    pub(crate) block: bool,
    pub(crate) ring_bytes: u32,
    pub(crate) wakeup_bytes: u64,
    pub(crate) poll_interval: Duration,
    pub(crate) channel_capacity: usize,
    pub(crate) events: bool,
    pub(crate) sample_interval: Duration,
    pub(crate) retention: Duration,
    pub(crate) max_exited: usize,
    pub(crate) proc_root: PathBuf,
    pub(crate) require_all: bool,
    pub(crate) retarget: Vec<(Probe, String)>,
    pub(crate) disabled: Vec<Probe>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            mode: Mode::Bpf,
            process: true,
            oom: true,
            failed_execs: false,
            tcp: false,
            runq: false,
            block: false,
            ring_bytes: 8 << 20,
            wakeup_bytes: 256 << 10,
            poll_interval: Duration::from_millis(10),
            channel_capacity: 65_536,
            events: true,
            sample_interval: Duration::from_secs(1),
            retention: Duration::from_secs(60),
            max_exited: 16_384,
            proc_root: PathBuf::from("/proc"),
            require_all: false,
            retarget: Vec::new(),
            disabled: Vec::new(),
        }
    }
}

impl Builder {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// BPF (default) or `/proc` polling.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Exec, fork and exit events (on by default). The process table follows them in BPF mode.
    pub fn process(mut self, on: bool) -> Self {
        self.process = on;
        self
    }

    /// OOM-kill events (on by default).
    pub fn oom(mut self, on: bool) -> Self {
        self.oom = on;
        self
    }

    /// [`Event::ExecFailed`](crate::Event::ExecFailed) for each `execve`/`execveat` that returns an error (off by default).
    /// Its program runs on the exit of every system call (`raw_syscalls:sys_exit`, which turns
    /// on the kernel's syscall-tracing path for all tasks) and returns at once unless the call
    /// failed.
    pub fn failed_execs(mut self, on: bool) -> Self {
        self.failed_execs = on;
        self
    }

    /// TCP connection lifetime events.
    pub fn tcp(mut self, on: bool) -> Self {
        self.tcp = on;
        self
    }

    /// The run-queue latency histogram.
    pub fn run_queue_latency(mut self, on: bool) -> Self {
        self.runq = on;
        self
    }

    /// The block I/O latency histogram.
    pub fn block_io_latency(mut self, on: bool) -> Self {
        self.block = on;
        self
    }

    /// Ring-buffer size in bytes: a power of two, at least one page.
    pub fn ring_buffer_size(mut self, bytes: u32) -> Self {
        self.ring_bytes = bytes;
        self
    }

    /// Wake the consumer when this many bytes or more are unread (once, until it has read again);
    /// below it, the poll timer picks records up. `0` wakes it on every record (the kernel's
    /// default policy, ~20 µs per record in a VM).
    pub fn wakeup_threshold(mut self, bytes: u64) -> Self {
        self.wakeup_bytes = bytes;
        self
    }

    /// How often the consumer reads the ring buffer without a wakeup (default 10 ms). Between
    /// reads, records wait in the ring buffer until they reach the fill threshold. Stopping does
    /// not wait for the interval to end.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Capacity of the event channel; when it is full, events are dropped and counted.
    pub fn channel_capacity(mut self, events: usize) -> Self {
        self.channel_capacity = events;
        self
    }

    /// Whether to deliver events on the channel at all (on by default). Off, they only feed the
    /// process table.
    pub fn events(mut self, on: bool) -> Self {
        self.events = on;
        self
    }

    /// How often CPU % and RSS are sampled, and `/proc` is polled in procfs mode (default 1 s).
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// How long exited processes stay in the table (default 60 s), and at most how many.
    pub fn exited_retention(mut self, time: Duration, max: usize) -> Self {
        self.retention = time;
        self.max_exited = max;
        self
    }

    /// Whether every enabled probe must load and attach (default `false`): with `true`, one the
    /// kernel refuses makes [`start`](Builder::start) fail with [`Error::ProbeDown`]; with
    /// `false` it is reported down by [`Handle::probes`] and the others run.
    pub fn require_all_probes(mut self, on: bool) -> Self {
        self.require_all = on;
        self
    }

    /// Switches one probe off, whatever the other settings say (e.g. [`Probe::Oom`] on a
    /// kernel without `oom:mark_victim`). Off, exec, fork or exit leave the process table
    /// without their events.
    pub fn disable(mut self, probe: Probe) -> Self {
        self.disabled.push(probe);
        self
    }

    /// Attaches `probe`'s programs to the raw tracepoint `tracepoint` instead of their own. A
    /// test hook: a name the kernel does not have makes the probe fail as it would on a kernel
    /// without its tracepoint.
    #[doc(hidden)]
    pub fn retarget(mut self, probe: Probe, tracepoint: impl Into<String>) -> Self {
        self.retarget.push((probe, tracepoint.into()));
        self
    }

    /// The probes this builder switches on.
    pub(crate) fn enabled(&self) -> Vec<Probe> {
        Probe::ALL
            .into_iter()
            .filter(|p| match p {
                Probe::Exec | Probe::Fork | Probe::Exit => self.process,
                Probe::ExecFailed => self.failed_execs,
                Probe::Oom => self.oom,
                Probe::Tcp => self.tcp,
                Probe::RunQueue => self.runq,
                Probe::BlockIo => self.block,
            })
            .filter(|p| !self.disabled.contains(p))
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let page = crate::event::page_size();
        if !self.ring_bytes.is_power_of_two() || u64::from(self.ring_bytes) < page {
            return Err(Error::InvalidConfig {
                name: "ring_buffer_size",
                reason: format!(
                    "{} is not a power of two of at least {page}",
                    self.ring_bytes
                ),
            });
        }
        if self.wakeup_bytes >= u64::from(self.ring_bytes) {
            return Err(Error::InvalidConfig {
                name: "wakeup_threshold",
                reason: format!(
                    "{} must be below the ring-buffer size {}",
                    self.wakeup_bytes, self.ring_bytes
                ),
            });
        }
        if self.poll_interval.is_zero() || self.sample_interval.is_zero() {
            return Err(Error::InvalidConfig {
                name: "poll_interval/sample_interval",
                reason: "must be above zero".into(),
            });
        }
        if self.channel_capacity == 0 {
            return Err(Error::InvalidConfig {
                name: "channel_capacity",
                reason: "is 0".into(),
            });
        }
        Ok(())
    }

    /// Checks capabilities and BTF, loads and attaches the chosen programs (or, in procfs mode,
    /// reads `/proc`), seeds the process table, and starts the poller thread.
    pub fn start(self) -> Result<Handle> {
        self.validate()?;
        if self.mode == Mode::Bpf {
            sys::preflight()?;
        }
        let (tx, rx) = events::channel(self.channel_capacity);
        let (waiter, stopper) = Waiter::new()
            .map_err(|e| Error::Poller(format!("creating its epoll set and eventfd: {e}")))?;
        let shared = Arc::new(Shared {
            table: Mutex::new(ProcessTable::new(
                self.proc_root.clone(),
                self.retention,
                self.max_exited,
            )),
            stop: AtomicBool::new(false),
            received: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let mode = self.mode;
        let thread = std::thread::Builder::new()
            .name("ember-probes".into())
            .spawn(move || {
                let tx = self.events.then_some(tx);
                match self.mode {
                    Mode::Bpf => run_bpf(&self, &thread_shared, &waiter, tx, &ready_tx),
                    Mode::Procfs => run_procfs(&self, &thread_shared, &waiter, &ready_tx),
                }
            })
            .map_err(Error::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(Started { maps, probes })) => Ok(Handle {
                rx,
                shared,
                maps,
                probes,
                mode,
                stopper,
                thread: Some(thread),
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(join_error(thread)),
        }
    }
}

pub(crate) fn join_error(thread: JoinHandle<Result<()>>) -> Error {
    match thread.join() {
        Ok(Err(err)) => err,
        Ok(Ok(())) => Error::Poller("stopped before it was ready".into()),
        Err(_) => Error::Poller("panicked".into()),
    }
}
