//! The builder, the running [`Handle`], and the poller thread behind it.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, RingBufferBuilder};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::events::{self, BatchSender, Events};
use crate::probe::{attach_hint, Probe, ProbeState, ProbeStatus};
use crate::skel::{ProbesSkel, ProbesSkelBuilder};
use crate::sys;
use crate::table::ProcessTable;
use crate::wait::{Stopper, Waiter};

const HIST_SLOTS: usize = 32;
const COUNTER_DROPS: u32 = 0;
const COUNTER_EVENTS: u32 = 1;
const COUNTER_WAKEUPS: u32 = 2;

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
    fn name(self) -> &'static str {
        match self {
            Mode::Bpf => "bpf",
            Mode::Procfs => "procfs",
        }
    }
}

/// The latency histograms kept in per-CPU BPF maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistogramKind {
    /// Time from wakeup (or preemption) to running on a CPU.
    RunQueue,
    /// Time from issue to completion of block I/O requests.
    BlockIo,
}

/// A log2 histogram of latencies in microseconds, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// `slots[i]` counts latencies in `[2^i, 2^(i+1))` µs; slot 0 also counts those under 1 µs.
    pub slots: [u64; HIST_SLOTS],
}

impl Histogram {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.slots.iter().sum()
    }

    /// `(low_us, high_us, count)` for each non-empty slot.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let low = if i == 0 { 0 } else { 1u64 << i };
                (low, (1u64 << (i + 1)) - 1, c)
            })
    }
}

/// Counters of the event pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Records the kernel could not write because the ring buffer was full.
    pub ring_drops: u64,
    /// Events dropped because the bounded channel was full (the reader was too slow).
    pub channel_drops: u64,
    /// Records the kernel submitted.
    pub submitted: u64,
    /// Records submitted with a forced wakeup of the consumer (fill threshold reached).
    pub wakeups: u64,
    /// Records the consumer read.
    pub received: u64,
}

/// Chooses probes and settings; [`start`](Builder::start) loads and attaches them.
///
/// Defaults: process lifecycle (exec, fork, exit) and OOM kills on; TCP, run-queue and block I/O
/// off; 8 MiB ring buffer, wakeup at 256 KiB unread, 10 ms poll timer, a channel of 65 536 events;
/// a probe the kernel refuses is reported down while the others run.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    mode: Mode,
    process: bool,
    oom: bool,
    failed_execs: bool,
    tcp: bool,
    runq: bool,
    block: bool,
    ring_bytes: u32,
    wakeup_bytes: u64,
    poll_interval: Duration,
    channel_capacity: usize,
    events: bool,
    sample_interval: Duration,
    retention: Duration,
    max_exited: usize,
    proc_root: PathBuf,
    require_all: bool,
    retarget: Vec<(Probe, String)>,
    disabled: Vec<Probe>,
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

    /// [`Event::ExecFailed`] for each `execve`/`execveat` that returns an error (off by default).
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
    fn enabled(&self) -> Vec<Probe> {
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

fn join_error(thread: JoinHandle<Result<()>>) -> Error {
    match thread.join() {
        Ok(Err(err)) => err,
        Ok(Ok(())) => Error::Poller("stopped before it was ready".into()),
        Err(_) => Error::Poller("panicked".into()),
    }
}

struct Shared {
    table: Mutex<ProcessTable>,
    stop: AtomicBool,
    received: AtomicU64,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, ProcessTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Duplicated descriptors of the maps user space reads while the programs run.
struct Maps {
    counters: MapHandle,
    hists: MapHandle,
}

/// What the poller thread hands back once it runs.
struct Started {
    maps: Option<Maps>,
    probes: Vec<ProbeStatus>,
}

/// Running probes. Dropping it (or [`stop`](Handle::stop)) detaches the programs.
pub struct Handle {
    rx: Events,
    shared: Arc<Shared>,
    maps: Option<Maps>,
    probes: Vec<ProbeStatus>,
    mode: Mode,
    stopper: Stopper,
    thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The event stream, bounded by [`Builder::channel_capacity`]. It yields nothing in procfs
    /// mode, and ends (reports disconnection) once the probes stop.
    pub fn events(&self) -> &Events {
        &self.rx
    }

    /// The mode the probes run in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every [`Probe`], in [`Probe::ALL`] order, with its state: up, down (with the reason), or
    /// off (not enabled, or procfs mode).
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// A copy of the process table as it is now.
    pub fn table(&self) -> ProcessTable {
        self.shared.table().clone()
    }

    /// Runs `f` on the live process table (the poller waits meanwhile; keep it short).
    pub fn with_table<R>(&self, f: impl FnOnce(&ProcessTable) -> R) -> R {
        f(&self.shared.table())
    }

    /// Drop and event counters, read now.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats {
            channel_drops: self.rx.dropped(),
            received: self.shared.received.load(Ordering::Relaxed),
            ..Stats::default()
        };
        if let Some(maps) = &self.maps {
            stats.ring_drops = sum_counter(&maps.counters, COUNTER_DROPS)?;
            stats.submitted = sum_counter(&maps.counters, COUNTER_EVENTS)?;
            stats.wakeups = sum_counter(&maps.counters, COUNTER_WAKEUPS)?;
        }
        Ok(stats)
    }

    /// A latency histogram, summed over CPUs, read now. Counts only what the builder enabled.
    pub fn histogram(&self, kind: HistogramKind) -> Result<Histogram> {
        let maps = self.maps.as_ref().ok_or(Error::Unsupported {
            what: "histograms",
            mode: self.mode.name(),
        })?;
        let key: u32 = match kind {
            HistogramKind::RunQueue => 0,
            HistogramKind::BlockIo => 1,
        };
        let per_cpu = maps
            .hists
            .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::Map {
                map: "hists",
                message: e.to_string(),
            })?
            .unwrap_or_default();
        let mut hist = Histogram {
            slots: [0; HIST_SLOTS],
        };
        for cpu in per_cpu {
            for (slot, chunk) in hist.slots.iter_mut().zip(cpu.chunks_exact(8)) {
                *slot += u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
            }
        }
        Ok(hist)
    }

    /// Stops the poller and detaches the programs, reporting a failure of the poller thread.
    /// Events already read stay in the channel.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.stopper.stop();
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(err))) => Err(err),
            Some(Err(_)) => Err(Error::Poller("panicked".into())),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn sum_counter(map: &MapHandle, key: u32) -> Result<u64> {
    let per_cpu = map
        .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| Error::Map {
            map: "counters",
            message: e.to_string(),
        })?
        .unwrap_or_default();
    Ok(per_cpu
        .iter()
        .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
        .sum())
}

fn load_error(err: &libbpf_rs::Error) -> Error {
    Error::Load {
        message: sys::libbpf_message(err),
    }
}

type Ready = SyncSender<Result<Started>>;

/// Opens the object and loads the programs of the probes in `on`.
fn open_and_load<'obj>(
    cfg: &Builder,
    on: &[Probe],
    storage: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<ProbesSkel<'obj>> {
    let mut open = ProbesSkelBuilder::default()
        .open(storage)
        .map_err(|e| load_error(&e))?;
    open.maps
        .events
        .set_max_entries(cfg.ring_bytes)
        .map_err(|e| load_error(&e))?;
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.wakeup_bytes = cfg.wakeup_bytes;
    }
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let wanted = Probe::of_program(&name).is_some_and(|p| on.contains(&p));
        prog.set_autoload(wanted);
    }
    open.load().map_err(|e| load_error(&e))
}

/// The program libbpf's log names as the one that failed to load (verifier refusal, CO-RE
/// relocation failure), from its `prog 'NAME': ...` lines, newest first.
fn failed_program(message: &str) -> Option<Probe> {
    message.lines().rev().find_map(|line| {
        let rest = &line[line.find("prog '")? + "prog '".len()..];
        Probe::of_program(&rest[..rest.find('\'')?])
    })
}

/// A down probe, or the error that stops the start when every probe is required.
fn probe_down(cfg: &Builder, probe: Probe, reason: String) -> Result<ProbeState> {
    if cfg.require_all {
        return Err(Error::ProbeDown {
            probe,
            reason: format!(
                "{reason}\n(every probe is required: switch {probe} off, or allow probes to be \
                 down)"
            ),
        });
    }
    Ok(ProbeState::Down { reason })
}

/// Loads the enabled probes; a probe whose program fails to load is marked down and the rest
/// are loaded again without it (libbpf loads an object all or nothing).
fn load_probes<'obj>(
    cfg: &Builder,
    states: &mut [ProbeStatus],
    storages: &'obj mut [MaybeUninit<libbpf_rs::OpenObject>],
) -> Result<ProbesSkel<'obj>> {
    // One storage per attempt: an object that failed to load stays in its (never dropped)
    // slot, as libbpf-rs leaves it; at most one attempt per probe.
    for storage in storages.iter_mut() {
        let on: Vec<Probe> = states
            .iter()
            .filter(|s| s.state == ProbeState::Up)
            .map(|s| s.probe)
            .collect();
        sys::clear_libbpf_log();
        let err = match open_and_load(cfg, &on, storage) {
            Ok(skel) => return Ok(skel),
            Err(err) => err,
        };
        let Error::Load { message } = &err else {
            return Err(err);
        };
        let Some(probe) = failed_program(message).filter(|p| on.contains(p)) else {
            return Err(err);
        };
        let program = probe.programs()[0].0;
        let reason = format!("loading {program} failed: {message}");
        let state = probe_down(cfg, probe, reason)?;
        if let Some(s) = states.iter_mut().find(|s| s.probe == probe) {
            s.state = state;
        }
    }
    Err(Error::Poller("no probe could be loaded".into()))
}

/// Attaches each loaded probe's programs; a probe with a program that fails is detached again
/// and marked down.
fn attach_probes(
    cfg: &Builder,
    skel: &ProbesSkel<'_>,
    states: &mut [ProbeStatus],
) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for status in states.iter_mut().filter(|s| s.state == ProbeState::Up) {
        let probe = status.probe;
        let retarget = cfg
            .retarget
            .iter()
            .rev()
            .find(|(p, _)| *p == probe)
            .map(|(_, tp)| tp.as_str());
        let mut attached = Vec::new();
        for (program, tracepoint) in probe.programs() {
            let Some(prog) = skel
                .object()
                .progs_mut()
                .find(|p| p.name().to_str() == Some(*program))
            else {
                return Err(Error::Poller(format!(
                    "program {program} is not in the object"
                )));
            };
            sys::clear_libbpf_log();
            let tracepoint = retarget.unwrap_or(*tracepoint);
            let result = match retarget {
                Some(tp) => prog.attach_raw_tracepoint(tp),
                None => prog.attach(),
            };
            match result {
                Ok(link) => attached.push(link),
                Err(err) => {
                    let reason = format!(
                        "attaching {program} to raw tracepoint {tracepoint} failed: {}; {}",
                        sys::libbpf_message(&err),
                        attach_hint(err.kind(), tracepoint)
                    );
                    // Detach what this probe attached so far: a probe is all or nothing.
                    attached.clear();
                    status.state = probe_down(cfg, probe, reason)?;
                    break;
                }
            }
        }
        links.append(&mut attached);
    }
    Ok(links)
}

fn run_bpf(
    cfg: &Builder,
    shared: &Shared,
    waiter: &Waiter,
    tx: Option<BatchSender>,
    ready: &Ready,
) -> Result<()> {
    sys::capture_libbpf_log();
    let enabled = cfg.enabled();
    let mut states: Vec<ProbeStatus> = Probe::ALL
        .into_iter()
        .map(|probe| ProbeStatus {
            probe,
            state: if enabled.contains(&probe) {
                ProbeState::Up
            } else {
                ProbeState::Off
            },
        })
        .collect();
    let mut storages: Vec<MaybeUninit<libbpf_rs::OpenObject>> =
        (0..=enabled.len()).map(|_| MaybeUninit::uninit()).collect();
    let skel = match load_probes(cfg, &mut states, &mut storages) {
        Ok(skel) => skel,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let links = match attach_probes(cfg, &skel, &mut states) {
        Ok(links) => links,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let maps = (|| -> Result<Maps> {
        Ok(Maps {
            counters: MapHandle::try_from(&skel.maps.counters).map_err(|e| load_error(&e))?,
            hists: MapHandle::try_from(&skel.maps.hists).map_err(|e| load_error(&e))?,
        })
    })();
    let maps = match maps {
        Ok(m) => m,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };

    // The callback only parses; events are applied and sent in batches after each poll.
    let batch: Rc<RefCell<Vec<Event>>> = Rc::new(RefCell::new(Vec::with_capacity(4096)));
    let sink = Rc::clone(&batch);
    let mut rb = RingBufferBuilder::new();
    rb.add(&skel.maps.events, move |data: &[u8]| {
        if let Some(ev) = Event::parse(data) {
            sink.borrow_mut().push(ev);
        }
        0
    })
    .map_err(|e| load_error(&e))?;
    let rb = match rb.build() {
        Ok(rb) => rb,
        Err(err) => {
            let _ = ready.send(Err(load_error(&err)));
            return Ok(());
        }
    };
    if let Err(err) = waiter.watch_ring(skel.maps.events.as_fd()) {
        let _ = ready.send(Err(Error::Poller(format!(
            "adding the ring buffer to its epoll set: {err}"
        ))));
        return Ok(());
    }

    // Seed after attaching, so no process falls between the /proc scan and the first event.
    // Without /proc (a bare chroot) the table starts empty and learns from events only.
    let seeded = {
        let mut table = shared.table();
        if table.has_procfs() {
            table.scan_procfs(false)
        } else {
            Ok(())
        }
    };
    if let Err(error) = seeded {
        let _ = ready.send(Err(Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        }));
        return Ok(());
    }
    shared.table().sample(true);
    let _ = ready.send(Ok(Started {
        maps: Some(maps),
        probes: states,
    }));

    // The ring buffer is read on a forced wakeup (fill threshold), when the poll timer runs out,
    // and once more when stopping; /proc samples have their own timer and read no records.
    let mut next_read = after(cfg.poll_interval);
    let mut next_sample = after(cfg.sample_interval);
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let mut read = stopping;
        if !stopping {
            let timeout = next_read
                .min(next_sample)
                .saturating_duration_since(Instant::now());
            let woken = waiter
                .wait(timeout)
                .map_err(|e| Error::Poller(format!("waiting on the ring buffer: {e}")))?;
            read = woken.ring || woken.stop || Instant::now() >= next_read;
        }
        if read {
            retry_eintr(rb.consume())?;
            let events = {
                let mut batch = batch.borrow_mut();
                let capacity = batch.len().max(64);
                std::mem::replace(&mut *batch, Vec::with_capacity(capacity))
            };
            deliver(shared, tx.as_ref(), events);
            next_read = after(cfg.poll_interval);
        }
        if Instant::now() >= next_sample {
            shared.table().sample(true);
            next_sample = after(cfg.sample_interval);
        }
        if stopping {
            break;
        }
    }
    drop(links);
    Ok(())
}

/// `now + d`, or a year from now where `d` is too long to represent.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

/// A signal interrupting a read (EINTR) is not an error: the loop just reads again.
fn retry_eintr(res: libbpf_rs::Result<()>) -> Result<()> {
    match res {
        Err(e) if e.kind() != libbpf_rs::ErrorKind::Interrupted => {
            Err(Error::Poller(e.to_string()))
        }
        _ => Ok(()),
    }
}

fn deliver(shared: &Shared, tx: Option<&BatchSender>, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    shared
        .received
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    {
        let mut table = shared.table();
        for ev in &events {
            table.apply(ev);
        }
    }
    if let Some(tx) = tx {
        tx.send(events);
    }
}

fn run_procfs(cfg: &Builder, shared: &Shared, waiter: &Waiter, ready: &Ready) -> Result<()> {
    let seeded = {
        let mut table = shared.table();
        table.scan_procfs(true).map(|()| table.sample(false))
    };
    if let Err(error) = seeded {
        let _ = ready.send(Err(Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        }));
        return Ok(());
    }
    let _ = ready.send(Ok(Started {
        maps: None,
        probes: Probe::ALL
            .into_iter()
            .map(|probe| ProbeStatus {
                probe,
                state: ProbeState::Off,
            })
            .collect(),
    }));
    let mut next = after(cfg.sample_interval);
    while !shared.stop.load(Ordering::Relaxed) {
        let woken = waiter
            .wait(next.saturating_duration_since(Instant::now()))
            .map_err(|e| Error::Poller(format!("waiting for the next sample: {e}")))?;
        if woken.stop || Instant::now() < next {
            continue;
        }
        let mut table = shared.table();
        table.scan_procfs(true).map_err(|error| Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        })?;
        table.sample(false);
        next = after(cfg.sample_interval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_in_the_object_belongs_to_one_probe() {
        // Opening parses the object; it needs no privileges (nothing is loaded).
        let mut storage = MaybeUninit::uninit();
        let open = ProbesSkelBuilder::default()
            .open(&mut storage)
            .expect("open the object");
        let names: Vec<String> = open
            .open_object()
            .progs()
            .map(|p| p.name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.is_empty());
        for name in &names {
            assert!(Probe::of_program(name).is_some(), "{name} has no probe");
        }
        for probe in Probe::ALL {
            for (program, _) in probe.programs() {
                assert!(
                    names.iter().any(|n| n == program),
                    "{program} not in the object"
                );
            }
        }
    }

    #[test]
    fn the_failing_program_is_found_in_libbpf_s_log() {
        let log = "libbpf: prog 'handle_oom': BPF program load failed: Invalid argument\n\
                   libbpf: prog 'handle_oom': -- BEGIN PROG LOAD LOG --\nR1 type=ctx\n\
                   libbpf: prog 'handle_oom': failed to load: -22\n";
        assert_eq!(failed_program(log), Some(Probe::Oom));
        assert_eq!(failed_program("libbpf: prog 'nope': failed"), None);
        assert_eq!(failed_program("no program named"), None);
    }
}
