//! The poller thread behind a [`Handle`](crate::Handle): BPF programs and their ring buffer
//! ([`bpf`]), or `/proc` polling ([`procfs`]).

pub(crate) mod bpf;
pub(crate) mod procfs;

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::events::BatchSender;
use crate::handle::{Shared, Started};

pub(crate) type Ready = SyncSender<Result<Started>>;

/// `now + d`, or a year from now where `d` is too long to represent.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

/// A signal interrupting a read (EINTR) is not an error: the loop just reads again.
pub(crate) fn retry_eintr(res: libbpf_rs::Result<()>) -> Result<()> {
    match res {
        Err(e) if e.kind() != libbpf_rs::ErrorKind::Interrupted => {
            Err(Error::Poller(e.to_string()))
        }
        _ => Ok(()),
    }
}

pub(crate) fn deliver(shared: &Shared, tx: Option<&BatchSender>, events: Vec<Event>) {
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
