//! The running [`Handle`]: events, the process table, probe states, counters, histograms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::builder::Mode;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::probe::ProbeStatus;
use crate::table::ProcessTable;
use crate::wait::Stopper;

pub(crate) const HIST_SLOTS: usize = 32;
pub(crate) const COUNTER_DROPS: u32 = 0;
pub(crate) const COUNTER_EVENTS: u32 = 1;
pub(crate) const COUNTER_WAKEUPS: u32 = 2;

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

pub(crate) struct Shared {
    pub(crate) table: Mutex<ProcessTable>,
    pub(crate) stop: AtomicBool,
    pub(crate) received: AtomicU64,
}

impl Shared {
    pub(crate) fn table(&self) -> MutexGuard<'_, ProcessTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Duplicated descriptors of the maps user space reads while the programs run.
pub(crate) struct Maps {
    pub(crate) counters: MapHandle,
    pub(crate) hists: MapHandle,
}

/// What the poller thread hands back once it runs.
pub(crate) struct Started {
    pub(crate) maps: Option<Maps>,
    pub(crate) probes: Vec<ProbeStatus>,
}

/// Running probes. Dropping it (or [`stop`](Handle::stop)) detaches the programs.
pub struct Handle {
    pub(crate) rx: Events,
    pub(crate) shared: Arc<Shared>,
    pub(crate) maps: Option<Maps>,
    pub(crate) probes: Vec<ProbeStatus>,
    pub(crate) mode: Mode,
    pub(crate) stopper: Stopper,
    pub(crate) thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The event stream, bounded by [`Builder::channel_capacity`](crate::Builder::channel_capacity). It yields nothing in procfs
    /// mode, and ends (reports disconnection) once the probes stop.
    pub fn events(&self) -> &Events {
        &self.rx
    }

    /// The mode the probes run in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every [`Probe`](crate::Probe), in [`Probe::ALL`](crate::Probe::ALL) order, with its state: up, down (with the reason), or
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

pub(crate) fn sum_counter(map: &MapHandle, key: u32) -> Result<u64> {
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
