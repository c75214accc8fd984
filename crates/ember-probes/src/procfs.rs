//! Reading processes from `/proc`: the seed of the process table, its CPU/RSS sampler, and the
//! whole of [`Mode::Procfs`](crate::Mode::Procfs).

use std::fs;
use std::io::Read;
use std::path::Path;

/// The fields of `/proc/<pid>/stat` the table uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// User and system CPU time in clock ticks.
    pub cpu_ticks: u64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    pub rss_pages: u64,
}

/// Parses the text of `/proc/<pid>/stat`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    // f[0] is field 3 (state) of proc_pid_stat(5); 24 (rss) is the last one used. A fixed
    // array, not a Vec: this runs for every process at every sample.
    let mut f = [""; 22];
    for (slot, word) in f.iter_mut().zip(text.get(close + 1..)?.split_whitespace()) {
        *slot = word;
    }
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        pid,
        comm,
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

pub(crate) fn read_stat(root: &Path, pid: u32) -> Option<ProcStat> {
    // Into a stack buffer: the file is well under 1 KiB, and read_to_string would first stat
    // it and allocate; this runs for every running process once per sample interval.
    let mut file = fs::File::open(root.join(format!("{pid}/stat"))).ok()?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_stat(std::str::from_utf8(&buf[..len]).ok()?)
}

pub(crate) fn read_cmdline(root: &Path, pid: u32) -> Vec<String> {
    let Ok(bytes) = fs::read(root.join(pid.to_string()).join("cmdline")) else {
        return Vec::new();
    };
    crate::event::split_args(&bytes)
}

/// Real uid from `/proc/<pid>/status`.
pub(crate) fn read_uid(root: &Path, pid: u32) -> Option<u32> {
    let status = fs::read_to_string(root.join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Pids of all processes (thread-group leaders) under `root`.
pub(crate) fn list_pids(root: &Path) -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir(root)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Boot time in seconds since the epoch (`btime` in `/proc/stat`).
pub(crate) fn boot_time_secs(root: &Path) -> Option<u64> {
    let stat = fs::read_to_string(root.join("stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The cgroup v2 path of a live process (`0::/path` in `/proc/<pid>/cgroup`); `None` when the
/// process is gone or has no v2 cgroup.
pub fn cgroup_path(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let text = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                    555 1000000 42 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(text).expect("parses");
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.cpu_ticks, 10);
        assert_eq!(s.start_ticks, 555);
        assert_eq!(s.rss_pages, 42);
    }

    #[test]
    fn own_process_is_listed_and_readable() {
        let root = Path::new("/proc");
        let me = std::process::id();
        assert!(list_pids(root).expect("lists /proc").contains(&me));
        let stat = read_stat(root, me).expect("reads own stat");
        assert_eq!(stat.pid, me);
        assert!(stat.rss_pages > 0);
        assert!(!read_cmdline(root, me).is_empty());
    }
}
