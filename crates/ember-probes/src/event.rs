//! Typed events, parsed from the records the BPF programs write to the ring buffer.
//!
//! The `Raw*` structs mirror `src/bpf/probes.h` field by field (with byte arrays where C has
//! `char`); a compile-time check below holds each to the layout of the type the skeleton
//! generates from the object's BTF, so a field added to the header alone fails the build.
//! `Event::parse` is the only place that reads ring-buffer bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const TASK_COMM_LEN: usize = 16;
const FILENAME_LEN: usize = 256;
const ARGV_LEN: usize = 256;

const EVENT_EXEC: u32 = 1;
const EVENT_FORK: u32 = 2;
const EVENT_EXIT: u32 = 3;
const EVENT_OOM: u32 = 4;
const EVENT_TCP: u32 = 5;
const EVENT_EXEC_FAIL: u32 = 6;

const AF_INET6: u16 = 10;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawHeader {
    kind: u32,
    pid: u32,
    ts_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawExec {
    hdr: RawHeader,
    ppid: u32,
    uid: u32,
    cgroup_id: u64,
    args_size: u32,
    args_len: u32,
    comm: [u8; TASK_COMM_LEN],
    filename_len: u32,
    _pad: u32,
    data: [u8; FILENAME_LEN + ARGV_LEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawExecFail {
    hdr: RawHeader,
    ppid: u32,
    uid: u32,
    ret: i32,
    args_len: u32,
    truncated: u32,
    _pad: u32,
    comm: [u8; TASK_COMM_LEN],
    filename: [u8; FILENAME_LEN],
    args: [u8; 2 * ARGV_LEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawFork {
    hdr: RawHeader,
    ppid: u32,
    _pad: u32,
    comm: [u8; TASK_COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawExit {
    hdr: RawHeader,
    ppid: u32,
    exit_code: u32,
    utime_ns: u64,
    stime_ns: u64,
    maxrss_pages: u64,
    start_ns: u64,
    comm: [u8; TASK_COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawOom {
    hdr: RawHeader,
    uid: u32,
    oom_score_adj: i32,
    total_vm_pages: u64,
    anon_rss_pages: u64,
    file_rss_pages: u64,
    shmem_rss_pages: u64,
    trigger_pid: u32,
    _pad: u32,
    comm: [u8; TASK_COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawTcp {
    hdr: RawHeader,
    family: u16,
    sport: u16,
    dport: u16,
    _pad: u16,
    saddr: [u8; 16],
    daddr: [u8; 16],
    rx_bytes: u64,
    tx_bytes: u64,
    duration_ns: u64,
    comm: [u8; TASK_COMM_LEN],
}

/// Fails the build unless `$raw` has the size of the skeleton's `$c` (from probes.h) and each
/// listed field sits at the same offset in both. Every field of `$raw` must be listed: the
/// destructuring pattern does not compile if one is missing, so size and offsets cover all.
macro_rules! same_layout {
    ($raw:ident, $c:ident, [$($field:ident),+ $(,)?]) => {
        const _: () = {
            use crate::skel::types::$c as C;
            #[allow(dead_code)]
            fn every_field_listed(r: $raw) {
                let $raw { $($field: _),+ } = r;
            }
            assert!(
                std::mem::size_of::<$raw>() == std::mem::size_of::<C>(),
                concat!(stringify!($raw), " and probes.h's struct ", stringify!($c), " differ in size: update one to match the other")
            );
            $(assert!(
                std::mem::offset_of!($raw, $field) == std::mem::offset_of!(C, $field),
                concat!(stringify!($raw), ".", stringify!($field), " is not at the offset of ", stringify!($c), ".", stringify!($field), " in probes.h")
            );)+
        };
    };
}

same_layout!(RawHeader, event_header, [kind, pid, ts_ns]);
same_layout!(
    RawExec,
    exec_event,
    [
        hdr,
        ppid,
        uid,
        cgroup_id,
        args_size,
        args_len,
        comm,
        filename_len,
        _pad,
        data
    ]
);
same_layout!(
    RawExecFail,
    exec_fail_event,
    [hdr, ppid, uid, ret, args_len, truncated, _pad, comm, filename, args]
);
same_layout!(RawFork, fork_event, [hdr, ppid, _pad, comm]);
same_layout!(
    RawExit,
    exit_event,
    [
        hdr,
        ppid,
        exit_code,
        utime_ns,
        stime_ns,
        maxrss_pages,
        start_ns,
        comm
    ]
);
same_layout!(
    RawOom,
    oom_event,
    [
        hdr,
        uid,
        oom_score_adj,
        total_vm_pages,
        anon_rss_pages,
        file_rss_pages,
        shmem_rss_pages,
        trigger_pid,
        _pad,
        comm
    ]
);
same_layout!(
    RawTcp,
    tcp_event,
    [
        hdr,
        family,
        sport,
        dport,
        _pad,
        saddr,
        daddr,
        rx_bytes,
        tx_bytes,
        duration_ns,
        comm
    ]
);

// The kinds, as probes.h's enum event_kind numbers them.
const _: () = {
    use crate::skel::types::event_kind as K;
    assert!(EVENT_EXEC == K::EVENT_EXEC.0 && EVENT_FORK == K::EVENT_FORK.0);
    assert!(EVENT_EXIT == K::EVENT_EXIT.0 && EVENT_OOM == K::EVENT_OOM.0);
    assert!(EVENT_TCP == K::EVENT_TCP.0 && EVENT_EXEC_FAIL == K::EVENT_EXEC_FAIL.0);
};

// SAFETY: each struct is `repr(C)`, made only of integers and byte arrays (every bit pattern is
// valid), and matches the layout of its counterpart in probes.h, padding included.
unsafe impl plain::Plain for RawHeader {}
// SAFETY: as above.
unsafe impl plain::Plain for RawExec {}
// SAFETY: as above.
unsafe impl plain::Plain for RawExecFail {}
// SAFETY: as above.
unsafe impl plain::Plain for RawFork {}
// SAFETY: as above.
unsafe impl plain::Plain for RawExit {}
// SAFETY: as above.
unsafe impl plain::Plain for RawOom {}
// SAFETY: as above.
unsafe impl plain::Plain for RawTcp {}

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

    /// Parses one ring-buffer record as the BPF programs write it; `None` for a record that
    /// is too short or of unknown kind. Any bytes are safe input (the fuzz target
    /// `event_parse` checks that); public for tools that read the records themselves.
    pub fn parse(data: &[u8]) -> Option<Event> {
        let hdr: RawHeader = read(data)?;
        Some(match hdr.kind {
            EVENT_EXEC => {
                let r: RawExec = read(data)?;
                let off = (r.filename_len as usize).min(FILENAME_LEN);
                let len = (r.args_len as usize).min(ARGV_LEN);
                Event::Exec(ExecEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    ppid: r.ppid,
                    uid: r.uid,
                    cgroup_id: r.cgroup_id,
                    comm: cstr(&r.comm),
                    filename: cstr(&r.data[..off]),
                    argv: split_args(&r.data[off..off + len]),
                    argv_truncated: r.args_size as usize > len,
                })
            }
            EVENT_EXEC_FAIL => {
                let r: RawExecFail = read(data)?;
                let len = (r.args_len as usize).min(ARGV_LEN);
                Event::ExecFailed(ExecFailedEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    ppid: r.ppid,
                    uid: r.uid,
                    ret: r.ret,
                    comm: cstr(&r.comm),
                    filename: cstr(&r.filename),
                    argv: split_args(&r.args[..len]),
                    argv_truncated: r.truncated != 0 || r.args_len as usize > len,
                })
            }
            EVENT_FORK => {
                let r: RawFork = read(data)?;
                Event::Fork(ForkEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    ppid: r.ppid,
                    comm: cstr(&r.comm),
                })
            }
            EVENT_EXIT => {
                let r: RawExit = read(data)?;
                Event::Exit(ExitEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    ppid: r.ppid,
                    comm: cstr(&r.comm),
                    status: ExitStatus(r.exit_code),
                    user_time: Duration::from_nanos(r.utime_ns),
                    system_time: Duration::from_nanos(r.stime_ns),
                    max_rss_bytes: r.maxrss_pages.saturating_mul(page_size()),
                    start_ns: r.start_ns,
                })
            }
            EVENT_OOM => {
                let r: RawOom = read(data)?;
                let page = page_size();
                Event::Oom(OomEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    comm: cstr(&r.comm),
                    uid: r.uid,
                    oom_score_adj: r.oom_score_adj,
                    total_vm_bytes: r.total_vm_pages.saturating_mul(page),
                    anon_rss_bytes: r.anon_rss_pages.saturating_mul(page),
                    file_rss_bytes: r.file_rss_pages.saturating_mul(page),
                    shmem_rss_bytes: r.shmem_rss_pages.saturating_mul(page),
                    trigger_pid: r.trigger_pid,
                })
            }
            EVENT_TCP => {
                let r: RawTcp = read(data)?;
                let addr = |b: &[u8; 16]| -> IpAddr {
                    if r.family == AF_INET6 {
                        IpAddr::V6(Ipv6Addr::from(*b))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                };
                Event::Tcp(TcpEvent {
                    ts_ns: r.hdr.ts_ns,
                    pid: r.hdr.pid,
                    comm: cstr(&r.comm),
                    saddr: addr(&r.saddr),
                    sport: r.sport,
                    daddr: addr(&r.daddr),
                    dport: r.dport,
                    rx_bytes: r.rx_bytes,
                    tx_bytes: r.tx_bytes,
                    duration: Duration::from_nanos(r.duration_ns),
                })
            }
            _ => return None,
        })
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
    /// The victim's command name (empty before Linux 6.3).
    pub comm: String,
    /// The victim's user id (0 before Linux 5.19).
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

/// Copies a record out of the ring buffer; `None` when `data` is too short.
fn read<T: plain::Plain + Copy>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `data` holds at least `size_of::<T>()` bytes, `read_unaligned` needs no alignment,
    // and `T: Plain` means every bit pattern is a valid `T`.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Splits NUL-separated arguments (the layout of both the BPF record and `/proc/<pid>/cmdline`).
pub(crate) fn split_args(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

pub(crate) fn page_size() -> u64 {
    // Read once: exit records need it, one per process.
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a constant of the system.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).unwrap_or(4096)
    })
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

    #[test]
    fn args_split_on_nul() {
        assert_eq!(split_args(b"ls\0-l\0"), vec!["ls", "-l"]);
        assert_eq!(split_args(b"ls\0-"), vec!["ls", "-"]);
        assert!(split_args(b"").is_empty());
    }

    #[test]
    fn short_or_unknown_records_are_rejected() {
        assert_eq!(Event::parse(&[1, 0, 0]), None);
        let mut rec = [0u8; 16];
        rec[0] = 99;
        assert_eq!(Event::parse(&rec), None);
        rec[0] = EVENT_EXEC as u8;
        assert_eq!(Event::parse(&rec), None, "exec header without body");
    }
}
