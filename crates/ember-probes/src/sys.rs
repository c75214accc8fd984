//! Checks made before loading anything (capabilities, BTF, kernel release), libbpf's log, clocks.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Mutex, Once};

use libbpf_rs::PrintLevel;

use crate::error::{Error, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The oldest kernel with the BPF ring buffer and `bpf_ringbuf_query`.
const MIN_KERNEL: (u32, u32) = (5, 8);
const MIN_KERNEL_STR: &str = "5.8";
/// CAP_BPF and CAP_PERFMON exist from this release; before it only CAP_SYS_ADMIN will do.
const CAP_BPF_KERNEL: (u32, u32) = (5, 8);

pub(crate) const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Everything that must hold before libbpf is asked to load the programs.
pub(crate) fn preflight() -> Result<()> {
    // uname(2) and capget(2), not /proc: the probes also run in a chroot without /proc.
    let release = kernel_release();
    let version = parse_release(&release).unwrap_or((0, 0));
    if version < MIN_KERNEL {
        return Err(Error::KernelTooOld {
            found: release,
            required: MIN_KERNEL_STR,
        });
    }
    if !Path::new(BTF_PATH).exists() {
        return Err(Error::NoBtf {
            path: BTF_PATH.into(),
        });
    }
    let caps = effective_caps()?;
    check_caps(caps, version >= CAP_BPF_KERNEL)
}

fn check_caps(caps: u64, has_cap_bpf: bool) -> Result<()> {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    if !has_cap_bpf {
        return Err(Error::MissingCapability {
            name: "CAP_SYS_ADMIN",
            hint: "kernels before 5.8 need it to load BPF programs; run as root",
        });
    }
    if !has(CAP_BPF) {
        return Err(Error::MissingCapability {
            name: "CAP_BPF",
            hint: "needed to create BPF maps and programs; run as root or grant CAP_BPF",
        });
    }
    if !has(CAP_PERFMON) {
        return Err(Error::MissingCapability {
            name: "CAP_PERFMON",
            hint: "needed to load and attach tracing programs; run as root or grant CAP_PERFMON",
        });
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The effective capability set of this thread, from capget(2).
fn effective_caps() -> Result<u64> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget reads `header` and writes two CapData structs (version 3 layout) to `data`,
    // both valid and live for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::Procfs {
            path: "capget(2)".into(),
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(u64::from(data[0].effective) | u64::from(data[1].effective) << 32)
}

/// The kernel release from uname(2), e.g. `6.18.44-foo`.
fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname for the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `"6.18.4-foo"` -> `(6, 18)`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The position of the `struct request *` among the raw arguments of the block tracepoint
/// `name` in the running kernel, read from its BTF (the `btf_trace_<name>` typedef, whose first
/// parameter is the tracepoint's private data, not an argument); 0 when the BTF does not say.
///
/// `block_rq_issue` passed the request queue first until mainline 5.11, but stable kernels took
/// the change too (Debian's 5.10.262 has it), so the kernel version cannot tell.
pub(crate) fn request_arg(name: &str) -> u32 {
    use libbpf_rs::btf::types::{FuncProto, Typedef};
    use libbpf_rs::btf::{BtfKind, BtfType};

    let Ok(btf) = libbpf_rs::Btf::from_vmlinux() else {
        return 0;
    };
    let Some(proto) = btf
        .type_by_name::<Typedef>(&format!("btf_trace_{name}"))
        .and_then(|typedef| typedef.next_type()?.next_type())
        .and_then(|ty| FuncProto::try_from(ty).ok())
    else {
        return 0;
    };
    let is_request = |param: libbpf_rs::btf::types::FuncProtoParam<'_>| {
        btf.type_by_id::<BtfType<'_>>(param.ty)
            .filter(|ty| ty.kind() == BtfKind::Ptr)
            .and_then(|ptr| ptr.next_type())
            .is_some_and(|ty| {
                ty.kind() == BtfKind::Struct && ty.name() == Some(std::ffi::OsStr::new("request"))
            })
    };
    let position = proto.iter().skip(1).position(is_request);
    position.and_then(|i| u32::try_from(i).ok()).unwrap_or(0)
}

/// The last lines libbpf printed, kept to explain a load or attach failure.
static LIBBPF_LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
const LOG_LINES: usize = 40;

fn on_libbpf_print(level: PrintLevel, msg: String) {
    if level == PrintLevel::Debug {
        return;
    }
    let mut log = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner());
    for line in msg.lines() {
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line.to_owned());
    }
}

/// Routes libbpf's messages into [`LIBBPF_LOG`] instead of stderr (libraries stay silent).
pub(crate) fn capture_libbpf_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Info, on_libbpf_print)));
    });
}

/// Clears the captured log, so that a later failure shows only its own lines.
pub(crate) fn clear_libbpf_log() {
    LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// `err` followed by what libbpf logged.
pub(crate) fn libbpf_message(err: &libbpf_rs::Error) -> String {
    let log = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner());
    if log.is_empty() {
        err.to_string()
    } else {
        let lines: Vec<&str> = log.iter().map(String::as_str).collect();
        format!("{err}\nlibbpf log:\n{}", lines.join("\n"))
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock of `bpf_ktime_get_ns`).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Clock ticks per second, the unit of CPU times in `/proc/<pid>/stat`.
pub(crate) fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_and_capabilities_are_read() {
        let release = kernel_release();
        assert!(
            parse_release(&release).is_some(),
            "uname release {release:?}"
        );
        let from_proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert_eq!(release, from_proc.trim());
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .expect("CapEff");
        assert_eq!(
            effective_caps().expect("capget"),
            u64::from_str_radix(cap_eff.trim(), 16).unwrap()
        );
    }

    #[test]
    fn the_request_is_found_among_block_tracepoint_arguments() {
        // The kernel this runs on: 6.x passes the request first; no tracepoint, no answer (0).
        if Path::new(BTF_PATH).exists() && parse_release(&kernel_release()) >= Some((5, 11)) {
            assert_eq!(request_arg("block_rq_issue"), 0);
            assert_eq!(request_arg("block_rq_complete"), 0);
        }
        assert_eq!(request_arg("no_such_tracepoint"), 0);
    }

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_release("5.8.0"), Some((5, 8)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn missing_capabilities_are_named() {
        let bpf_only = 1u64 << CAP_BPF;
        match check_caps(bpf_only, true) {
            Err(Error::MissingCapability { name, .. }) => assert_eq!(name, "CAP_PERFMON"),
            other => panic!("expected CAP_PERFMON missing, got {other:?}"),
        }
        match check_caps(0, true) {
            Err(Error::MissingCapability { name, .. }) => assert_eq!(name, "CAP_BPF"),
            other => panic!("expected CAP_BPF missing, got {other:?}"),
        }
        match check_caps(bpf_only | 1 << CAP_PERFMON, false) {
            Err(Error::MissingCapability { name, .. }) => assert_eq!(name, "CAP_SYS_ADMIN"),
            other => panic!("expected CAP_SYS_ADMIN missing, got {other:?}"),
        }
        assert!(check_caps(1 << CAP_SYS_ADMIN, true).is_ok());
        assert!(check_caps(bpf_only | 1 << CAP_PERFMON, true).is_ok());
    }
}
