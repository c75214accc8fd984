//! Typed events, parsed from the records the BPF programs write to the ring buffer.
//!
//! The `Raw*` structs mirror `src/bpf/probes.h` field by field (with byte arrays where C has
//! `char`); a compile-time check in `raw.rs` holds each to the layout of the type the skeleton
//! generates from the object's BTF, so a field added to the header alone fails the build.
//! `Event::parse` is the only place that reads ring-buffer bytes.

use std::net::IpAddr;
use std::time::Duration;

mod raw;

pub(crate) use raw::{page_size, split_args};

/// One kernel event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A process called `execve` successfully.
    Exec(ExecEvent),
    /// A process was created by `fork`/`clone` (new threads are not reported).
    Fork(ForkEvent),
    /// The last thread of a process exited.
    Exit(ExitEvent),
    /// The OOM killer chose a victim.
    Oom(OomEvent),
    /// A TCP connection closed.
    Tcp(TcpEvent),
    /// An `execve` failed (only with [`Builder::failed_execs`](crate::Builder::failed_execs)).
    ExecFailed(ExecFailedEvent),
}

impl Event {
    /// Its name: `exec`, `fork`, `exit`, `oom`, `tcp` or `exec_failed` (the SSE event name and
    /// metric label insightd uses).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Exec(_) => "exec",
            Event::Fork(_) => "fork",
            Event::Exit(_) => "exit",
            Event::Oom(_) => "oom",
            Event::Tcp(_) => "tcp",
            Event::ExecFailed(_) => "exec_failed",
        }
    }

    /// The process the event is about (for [`Event::Fork`], the child).
    pub fn pid(&self) -> u32 {
        match self {
            Event::Exec(e) => e.pid,
            Event::Fork(e) => e.pid,
            Event::Exit(e) => e.pid,
            Event::Oom(e) => e.pid,
            Event::Tcp(e) => e.pid,
            Event::ExecFailed(e) => e.pid,
        }
    }

    /// Kernel time of the event, `CLOCK_MONOTONIC` in nanoseconds.
    pub fn timestamp_ns(&self) -> u64 {
        match self {
            Event::Exec(e) => e.ts_ns,
            Event::Fork(e) => e.ts_ns,
            Event::Exit(e) => e.ts_ns,
            Event::Oom(e) => e.ts_ns,
            Event::Tcp(e) => e.ts_ns,
            Event::ExecFailed(e) => e.ts_ns,
        }
    }
}

/// A successful `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// Kernel time, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Process id (thread-group id).
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// cgroup v2 id of the process.
    pub cgroup_id: u64,
    /// Command name after the exec (at most 15 bytes).
    pub comm: String,
    /// Path given to `execve`.
    pub filename: String,
    /// Arguments, from the first 256 bytes of the new process's argv.
    pub argv: Vec<String>,
    /// True when argv was longer than what was copied.
    pub argv_truncated: bool,
}

/// A failed `execve` (the process goes on running its old program).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecFailedEvent {
    /// Kernel time of the return from `execve`, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Process id (thread-group id) of the caller.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// What `execve` returned: a negative errno, e.g. `-2` (`ENOENT`).
    pub ret: i32,
    /// Command name of the caller.
    pub comm: String,
    /// Path given to `execve`.
    pub filename: String,
    /// Arguments given to `execve`: at most 16, and their first 256 bytes.
    pub argv: Vec<String>,
    /// True when argv was longer than what was copied.
    pub argv_truncated: bool,
}

/// A new process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEvent {
    /// Kernel time, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// The child's process id.
    pub pid: u32,
    /// The parent's process id.
    pub ppid: u32,
    /// Command name (inherited from the parent).
    pub comm: String,
}

/// A wait(2) status: exit code or terminating signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub u32);

impl ExitStatus {
    /// The exit code, when the process exited normally.
    pub fn code(self) -> Option<i32> {
        (self.0 & 0x7f == 0).then_some(((self.0 >> 8) & 0xff) as i32)
    }

    /// The signal that killed the process, if any.
    pub fn signal(self) -> Option<i32> {
        let sig = (self.0 & 0x7f) as i32;
        (sig != 0).then_some(sig)
    }
}

/// A process exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitEvent {
    /// Kernel time, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Parent process id at exit.
    pub ppid: u32,
    /// Command name.
    pub comm: String,
    /// Exit code or signal.
    pub status: ExitStatus,
    /// User CPU time of all the process's threads.
    pub user_time: Duration,
    /// System CPU time of all the process's threads.
    pub system_time: Duration,
    /// Peak resident set size.
    pub max_rss_bytes: u64,
    /// When the process started, `CLOCK_MONOTONIC` nanoseconds.
    pub start_ns: u64,
}

/// An OOM kill (`oom:mark_victim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomEvent {
    /// Kernel time, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// The victim's process id.
    pub pid: u32,
    /// The victim's command name (empty where the kernel's `oom:mark_victim` passes the pid
    /// only: mainline before 6.8; stable kernels took the change, Debian's 5.10.262 and 6.1.192
    /// have it).
    pub comm: String,
    /// The victim's user id (0 where `oom:mark_victim` passes the pid only).
    pub uid: u32,
    /// The victim's `oom_score_adj`.
    pub oom_score_adj: i32,
    /// Virtual memory size.
    pub total_vm_bytes: u64,
    /// Anonymous resident memory.
    pub anon_rss_bytes: u64,
    /// File-backed resident memory.
    pub file_rss_bytes: u64,
    /// Shared-memory resident memory.
    pub shmem_rss_bytes: u64,
    /// Process that was running when the victim was chosen (often the one that hit the limit).
    pub trigger_pid: u32,
}

/// A closed TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEvent {
    /// Kernel time of the close, `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Process that opened the connection (for an accepted one, whoever ran when it arrived).
    pub pid: u32,
    /// That process's command name.
    pub comm: String,
    /// Local address.
    pub saddr: IpAddr,
    /// Local port.
    pub sport: u16,
    /// Remote address.
    pub daddr: IpAddr,
    /// Remote port.
    pub dport: u16,
    /// Payload bytes received (SYN and FIN not counted).
    pub rx_bytes: u64,
    /// Payload bytes sent, retransmissions not counted.
    pub tx_bytes: u64,
    /// From the first state change (SYN sent, SYN received or established) to close.
    pub duration: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_decodes_code_and_signal() {
        assert_eq!(ExitStatus(3 << 8).code(), Some(3));
        assert_eq!(ExitStatus(3 << 8).signal(), None);
        assert_eq!(ExitStatus(9).code(), None);
        assert_eq!(ExitStatus(9).signal(), Some(9));
    }
}
