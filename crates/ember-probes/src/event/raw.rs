//! The ring-buffer records as the BPF programs write them: `#[repr(C)]` mirrors of the structs
//! in `src/bpf/probes.h`, compile-time checks that their layouts match, and decoding them into
//! [`Event`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::{
    Event, ExecEvent, ExecFailedEvent, ExitEvent, ExitStatus, ForkEvent, OomEvent, TcpEvent,
};

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

impl Event {
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
