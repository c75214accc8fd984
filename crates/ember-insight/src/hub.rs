//! Fan-out of events to `/stream` clients, each with a bounded queue. A client whose queue is
//! full is dropped (its stream ends) and counted, so one slow reader never holds the others
//! back or grows memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// One message: the SSE event name and its JSON data.
#[derive(Debug, Clone)]
pub struct Message {
    /// `exec`, `fork`, `exit`, `oom`, `tcp`, `alert` or `insight`.
    pub kind: &'static str,
    /// JSON text.
    pub data: Arc<str>,
}

/// The set of connected clients.
#[derive(Debug)]
pub struct Hub {
    clients: Mutex<Vec<mpsc::Sender<Message>>>,
    queue: usize,
    max_clients: usize,
    dropped: AtomicU64,
}

impl Hub {
    /// A hub giving each client `queue` slots, with at most `max_clients`.
    pub fn new(queue: usize, max_clients: usize) -> Hub {
        Hub {
            clients: Mutex::new(Vec::new()),
            queue: queue.max(1),
            max_clients,
            dropped: AtomicU64::new(0),
        }
    }

    /// A new client's receiver, or `None` when `max_clients` are connected.
    pub fn subscribe(&self) -> Option<mpsc::Receiver<Message>> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|c| !c.is_closed());
        if clients.len() >= self.max_clients {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.queue);
        clients.push(tx);
        Some(rx)
    }

    /// Sends `message` to every client; drops those whose queue is full. Never blocks.
    pub fn publish(&self, kind: &'static str, data: impl Into<Arc<str>>) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.is_empty() {
            return;
        }
        let message = Message {
            kind,
            data: data.into(),
        };
        clients.retain(|c| match c.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "dropped a /stream client: {} messages queued and unread",
                    self.queue
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Whether anyone listens (to skip serializing events for nobody).
    pub fn has_clients(&self) -> bool {
        !self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|c| !c.is_closed());
        clients.len()
    }

    /// Clients dropped for falling behind, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends every stream (at shutdown).
    pub fn close_all(&self) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_client_is_dropped_and_counted() {
        let hub = Hub::new(2, 8);
        let mut slow = hub.subscribe().unwrap();
        let mut fast = hub.subscribe().unwrap();
        for i in 0..2 {
            hub.publish("x", i.to_string());
            assert_eq!(&*fast.try_recv().unwrap().data, i.to_string());
        }
        hub.publish("x", "2");
        assert_eq!(hub.dropped(), 1);
        assert_eq!(hub.clients(), 1);
        assert_eq!(&*fast.try_recv().unwrap().data, "2");
        // The slow one reads what it had, then its stream ends.
        assert!(slow.try_recv().is_ok() && slow.try_recv().is_ok());
        assert!(matches!(
            slow.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
