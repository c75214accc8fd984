//! The event stream: a bounded queue of [`Event`]s between the poller thread and the reader.
//!
//! The poller hands events over in batches (one per ring-buffer read, every few milliseconds),
//! so the reader's thread is woken once per batch rather than once per event: a thread wakeup
//! costs several microseconds, more than handling an event. The bound counts events; events
//! that would exceed it are dropped and counted.
//!
//! A mutex and a condition variable, not a channel: a blocked reader sleeps on the condition
//! variable at once, where a channel's receiver (crossbeam's, and std's `mpsc`, built on it)
//! first spins and calls `sched_yield` a few times per wait, which at a 100 Hz poll timer cost
//! more CPU than the events it waited for. The error types are std's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};

use crate::event::Event;

/// What both ends share.
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Event>,
    /// The poller is gone: no more events will come.
    closed: bool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The poller's end. Dropping it ends the stream once the queued events are read.
pub(crate) struct BatchSender {
    shared: Arc<Shared>,
    capacity: usize,
}

impl BatchSender {
    /// Queues what fits under the bound; counts the rest as dropped.
    pub(crate) fn send(&self, mut batch: Vec<Event>) {
        {
            let mut queue = self.shared.queue();
            let room = self.capacity.saturating_sub(queue.events.len());
            if batch.len() > room {
                let dropped = batch.len() - room;
                batch.truncate(room);
                self.shared
                    .dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            if batch.is_empty() {
                return;
            }
            queue.events.extend(batch);
        }
        self.shared.ready.notify_all();
    }
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
    }
}

/// A bounded stream of events. Iterating blocks until the probes stop.
///
/// Reading from several threads at once works, but each event goes to one reader.
#[derive(Debug)]
pub struct Events {
    shared: Arc<Shared>,
}

pub(crate) fn channel(capacity: usize) -> (BatchSender, Events) {
    let shared = Arc::new(Shared::default());
    let sender = BatchSender {
        shared: Arc::clone(&shared),
        capacity,
    };
    (sender, Events { shared })
}

impl Events {
    /// The next event, waiting at most `timeout`. `Disconnected` once the probes stopped and
    /// every event was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too far to represent: that is waiting forever.
            return self
                .recv()
                .map_err(|RecvError| RecvTimeoutError::Disconnected);
        };
        let mut queue = self.shared.queue();
        loop {
            if let Some(ev) = queue.events.pop_front() {
                return Ok(ev);
            }
            if queue.closed {
                return Err(RecvTimeoutError::Disconnected);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            queue = self
                .shared
                .ready
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next event, waiting as long as it takes. `Err` once the probes stopped and every
    /// event was read.
    pub fn recv(&self) -> Result<Event, RecvError> {
        let mut queue = self.shared.queue();
        loop {
            if let Some(ev) = queue.events.pop_front() {
                return Ok(ev);
            }
            if queue.closed {
                return Err(RecvError);
            }
            queue = self
                .shared
                .ready
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next event if one is queued now.
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        let mut queue = self.shared.queue();
        match queue.events.pop_front() {
            Some(ev) => Ok(ev),
            None if queue.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
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
        self.shared.queue().events.len()
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
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
        assert_eq!(rx.dropped(), 1);
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

    #[test]
    fn a_blocked_reader_wakes_on_a_batch_and_on_close_and_times_out_meanwhile() {
        let (tx, rx) = channel(10);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(vec![fork(7)]);
            std::thread::sleep(Duration::from_millis(20));
        });
        assert_eq!(rx.recv().map(|e| e.pid()), Ok(7));
        assert_eq!(rx.recv(), Err(RecvError), "ends when the sender is dropped");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        sender.join().expect("sender thread");
    }
}
