//! How the poller thread sleeps: an edge-triggered epoll on the ring buffer, plus an eventfd that
//! [`Handle::stop`](crate::Handle::stop) signals so stopping does not wait for the poll timer.
//!
//! Edge-triggered matters. libbpf's own `ring_buffer__poll` registers the ring level-triggered:
//! after one wakeup, every later `epoll_wait` returns at once while any record is unread, so at a
//! steady event rate the poller would spin, reading a record or two per pass, instead of sleeping
//! until the next fill-threshold wakeup or the timer. Edge-triggered, it reports only wakeups.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// Tags of the two descriptors in the epoll set.
const RING: u64 = 1;
const STOP: u64 = 2;

/// What ended a wait.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Woken {
    /// A forced wakeup from the BPF side (the fill threshold was reached).
    pub(crate) ring: bool,
    /// [`Stopper::stop`] was called.
    pub(crate) stop: bool,
}

/// Signals the poller to stop; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Stopper(Arc<OwnedFd>);

impl Stopper {
    /// Wakes the poller out of its wait (the stop flag says what to do next).
    pub(crate) fn stop(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: the eventfd is open for as long as `self.0` lives; an 8-byte write of a
        // non-zero value is what eventfd(2) expects. A full counter (EAGAIN) already wakes.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// The poller's epoll set.
#[derive(Debug)]
pub(crate) struct Waiter {
    epoll: OwnedFd,
    stop: Arc<OwnedFd>,
}

impl Waiter {
    /// An epoll set with only the stop eventfd; [`watch_ring`](Waiter::watch_ring) adds the ring.
    pub(crate) fn new() -> io::Result<(Waiter, Stopper)> {
        // SAFETY: plain system calls with constant flags; each result is checked before use and
        // owned by exactly one OwnedFd.
        let (epoll, stop) = unsafe {
            let epoll = cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?;
            let epoll = OwnedFd::from_raw_fd(epoll);
            let stop = cvt(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
            (epoll, Arc::new(OwnedFd::from_raw_fd(stop)))
        };
        let waiter = Waiter { epoll, stop };
        waiter.add(waiter.stop.as_raw_fd(), libc::EPOLLIN as u32, STOP)?;
        let stopper = Stopper(Arc::clone(&waiter.stop));
        Ok((waiter, stopper))
    }

    /// Adds the ring buffer map, edge-triggered.
    pub(crate) fn watch_ring(&self, ring: BorrowedFd<'_>) -> io::Result<()> {
        self.add(
            ring.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            RING,
        )
    }

    fn add(&self, fd: RawFd, events: u32, tag: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: tag };
        // SAFETY: both descriptors are open (borrowed or owned by `self`), `ev` is a valid
        // epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    /// Sleeps until a wakeup, a stop, or `timeout`; EINTR counts as a timeout.
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<Woken> {
        // Round up so that a wait never ends just before its deadline and spins.
        let ms = timeout.as_micros().div_ceil(1000);
        let ms = i32::try_from(ms).unwrap_or(i32::MAX);
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `events` has room for the 2 entries announced; the epoll fd is open.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 2, ms) };
        let mut woken = Woken::default();
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(woken),
                _ => Err(err),
            };
        }
        for ev in &events[..n as usize] {
            match ev.u64 {
                RING => woken.ring = true,
                STOP => woken.stop = true,
                _ => {}
            }
        }
        Ok(woken)
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_a_long_wait() {
        let (waiter, stopper) = Waiter::new().expect("epoll + eventfd");
        let quiet = waiter.wait(Duration::from_millis(1)).expect("wait");
        assert_eq!(quiet, Woken::default());
        stopper.stop();
        let woken = waiter.wait(Duration::from_secs(3600)).expect("wait");
        assert!(woken.stop && !woken.ring);
    }
}
