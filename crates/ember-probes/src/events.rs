//! The event stream: a bounded queue of [`Event`]s between the poller thread and the reader.
//!
//! The poller hands events over in batches (one per ring-buffer read, every few milliseconds),
//! so the reader's thread is woken once per batch rather than once per event: a thread wakeup
//! costs several microseconds, more than handling an event. The bound counts events, not
//! batches; events that would exceed it are dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
pub use crossbeam_channel::{RecvError, RecvTimeoutError, TryRecvError};

use crate::event::Event;

/// Shared between both ends: how many events are queued, and how many were dropped.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicUsize,
    pub(crate) dropped: AtomicU64,
}

/// The poller's end.
pub(crate) struct BatchSender {
    tx: Sender<Vec<Event>>,
    capacity: usize,
    counters: Arc<Counters>,
}

impl BatchSender {
    /// Queues what fits under the bound; counts the rest as dropped.
    pub(crate) fn send(&self, mut batch: Vec<Event>) {
        let queued = self.counters.queued.load(Ordering::Acquire);
        let room = self.capacity.saturating_sub(queued);
        if batch.len() > room {
            let dropped = batch.len() - room;
            batch.truncate(room);
            self.counters
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        self.counters.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(batch).is_err() {
            // The reader is gone: nothing to count against.
            self.counters.queued.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// A bounded stream of events. Iterating blocks until the probes stop.
///
/// Reading from several threads at once works, but each event goes to one reader.
#[derive(Debug)]
pub struct Events {
    rx: Receiver<Vec<Event>>,
    buf: Mutex<VecDeque<Event>>,
    counters: Arc<Counters>,
}

pub(crate) fn channel(capacity: usize) -> (BatchSender, Events) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let counters = Arc::new(Counters::default());
    let sender = BatchSender {
        tx,
        capacity,
        counters: Arc::clone(&counters),
    };
    (
        sender,
        Events {
            rx,
            buf: Mutex::new(VecDeque::new()),
            counters,
        },
    )
}

impl Events {
    fn buf(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, buf: &mut VecDeque<Event>, batch: Vec<Event>) -> Option<Event> {
        self.counters
            .queued
            .fetch_sub(batch.len(), Ordering::AcqRel);
        buf.extend(batch);
        buf.pop_front()
    }

    /// The next event, waiting at most `timeout`. `Disconnected` once the probes stopped and
    /// every event was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too far to represent: that is waiting forever.
            return self
                .recv()
                .map_err(|RecvError| RecvTimeoutError::Disconnected);
        };
        let mut buf = self.buf();
        loop {
            if let Some(ev) = buf.pop_front() {
                return Ok(ev);
            }
            let batch = self.rx.recv_deadline(deadline)?;
            if let Some(ev) = self.take(&mut buf, batch) {
                return Ok(ev);
            }
        }
    }

    /// The next event, waiting as long as it takes. `Err` once the probes stopped and every
    /// event was read.
    pub fn recv(&self) -> Result<Event, RecvError> {
        let mut buf = self.buf();
        loop {
            if let Some(ev) = buf.pop_front() {
                return Ok(ev);
            }
            let batch = self.rx.recv()?;
            if let Some(ev) = self.take(&mut buf, batch) {
                return Ok(ev);
            }
        }
    }

    /// The next event if one is queued now.
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        let mut buf = self.buf();
        loop {
            if let Some(ev) = buf.pop_front() {
                return Ok(ev);
            }
            let batch = self.rx.try_recv()?;
            if let Some(ev) = self.take(&mut buf, batch) {
                return Ok(ev);
            }
        }
    }

    /// The events queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }

    /// Every event, blocking between them, until the probes stop.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.recv().ok())
    }

    /// Number of events queued and not yet read.
    pub fn len(&self) -> usize {
        self.buf().len() + self.counters.queued.load(Ordering::Acquire)
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// True when no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ForkEvent;

    fn fork(pid: u32) -> Event {
        Event::Fork(ForkEvent {
            ts_ns: 0,
            pid,
            ppid: 1,
            comm: String::new(),
        })
    }

    #[test]
    fn batches_arrive_in_order_and_the_bound_drops_the_excess() {
        let (tx, rx) = channel(3);
        tx.send(vec![fork(1), fork(2)]);
        tx.send(vec![fork(3), fork(4)]);
        assert_eq!(tx.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.len(), 3);
        let pids: Vec<u32> = rx.try_iter().map(|e| e.pid()).collect();
        assert_eq!(pids, [1, 2, 3]);
        assert!(rx.is_empty());
        tx.send(vec![fork(5)]);
        drop(tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)).map(|e| e.pid()),
            Ok(5)
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
