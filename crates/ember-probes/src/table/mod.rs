//! The process table: every known process with its parent, children, command line, CPU %, RSS,
//! start and exit.
//!
//! It is seeded from `/proc` when the probes start, so processes that already run are known, and
//! then fed by fork/exec/exit events ([`Mode::Bpf`](crate::Mode::Bpf)) or by polling `/proc`
//! ([`Mode::Procfs`](crate::Mode::Procfs)). CPU % and RSS of running processes are sampled from
//! `/proc/<pid>/stat` in both modes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::event::{Event, ExitStatus};
use crate::pod::{PodCache, PodIdentity};
use crate::procfs;
use crate::sys;

mod procfs_scan;

/// How long fork timestamps are kept for [`ProcessTable::fork_rate`].
const FORK_WINDOW_NS: u64 = 10_000_000_000;

/// How the table first learned about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Read from `/proc` (at start, or by polling in procfs mode).
    Procfs,
    /// From a fork, exec or exit event.
    Event,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessExit {
    /// When the exit was seen.
    pub at: SystemTime,
    /// Exit code or signal; `None` when only `/proc` polling saw the process go.
    pub status: Option<ExitStatus>,
    /// User CPU time over the process's life (from the exit event).
    pub user_time: Option<Duration>,
    /// System CPU time over the process's life (from the exit event).
    pub system_time: Option<Duration>,
    /// Peak resident set size (from the exit event).
    pub max_rss_bytes: Option<u64>,
}

/// One process.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name.
    pub comm: String,
    /// Command line (from the exec event, at most its first 256 bytes, or from `/proc`); a
    /// forked child shares its parent's until it execs.
    pub argv: Arc<[String]>,
    /// Path of the executable given to the last `execve`, when an exec event was seen.
    pub filename: Option<String>,
    /// Real user id, when known.
    pub uid: Option<u32>,
    /// cgroup v2 id, when an exec event was seen.
    pub cgroup_id: Option<u64>,
    /// Its pod, container and QoS class when it runs in a Kubernetes pod (from its cgroup path,
    /// read at exec or when `/proc` is scanned; a forked child shares its parent's).
    pub pod: Option<Arc<PodIdentity>>,
    /// Start time, when known.
    pub started: Option<SystemTime>,
    /// Pids of the known children, ascending.
    pub children: Vec<u32>,
    /// CPU use over the last sampling interval, in percent of one CPU.
    pub cpu_percent: f64,
    /// Resident set size at the last sample.
    pub rss_bytes: u64,
    /// Set once the process has exited.
    pub exit: Option<ProcessExit>,
    /// True when an OOM kill of this process was reported.
    pub oom_killed: bool,
    /// How the table learned about the process.
    pub source: Source,
    last_cpu_ticks: Option<u64>,
    start_ticks: Option<u64>,
    missing_samples: u32,
}

impl Process {
    fn new(pid: u32, ppid: u32, comm: String, source: Source) -> Self {
        Process {
            pid,
            ppid,
            comm,
            argv: Arc::from([]),
            filename: None,
            uid: None,
            cgroup_id: None,
            pod: None,
            started: None,
            children: Vec::new(),
            cpu_percent: 0.0,
            rss_bytes: 0,
            exit: None,
            oom_killed: false,
            source,
            last_cpu_ticks: None,
            start_ticks: None,
            missing_samples: 0,
        }
    }

    /// True until the process's exit is seen.
    pub fn is_running(&self) -> bool {
        self.exit.is_none()
    }

    /// The exit code, when the process exited normally and the exit event was seen.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit.as_ref()?.status?.code()
    }
}

/// Every known process, running or recently exited.
#[derive(Debug, Clone)]
pub struct ProcessTable {
    procs: HashMap<u32, Process>,
    forks: VecDeque<u64>,
    exited: VecDeque<(u64, u32)>,
    retention_ns: u64,
    max_exited: usize,
    proc_root: PathBuf,
    ticks_per_sec: u64,
    page_size: u64,
    boot_secs: Option<u64>,
    last_sample_ns: Option<u64>,
    /// A wall-clock time and the monotonic time it was read at, to date events (refreshed
    /// at each sample rather than read twice per event).
    wall_base: (SystemTime, u64),
    /// False when `/proc` is not mounted (a bare chroot): no seeding, no CPU/RSS samples.
    procfs: bool,
    /// Pod identities by cgroup id.
    pods: PodCache,
}

impl ProcessTable {
    pub(crate) fn new(proc_root: PathBuf, retention: Duration, max_exited: usize) -> Self {
        let boot_secs = procfs::boot_time_secs(&proc_root);
        let procfs = proc_root.join("self/stat").exists();
        ProcessTable {
            wall_base: (SystemTime::now(), sys::monotonic_ns()),
            procfs,
            procs: HashMap::new(),
            forks: VecDeque::new(),
            exited: VecDeque::new(),
            retention_ns: u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX),
            max_exited,
            proc_root,
            ticks_per_sec: sys::clock_ticks(),
            page_size: crate::event::page_size(),
            boot_secs,
            last_sample_ns: None,
            pods: PodCache::default(),
        }
    }

    /// A table made of `events` alone, applied in order, without `/proc`: for replaying
    /// recorded events, and for testing what reads a table (exited processes are kept 60 s).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> ProcessTable {
        // Nothing can exist below /dev/null, so no /proc is read.
        let mut table = ProcessTable::new("/dev/null/proc".into(), Duration::from_secs(60), 4096);
        for ev in events {
            table.apply(ev);
        }
        table
    }

    /// The process with this pid (running, or exited within the retention time).
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// All known processes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Process> {
        self.procs.values()
    }

    /// Number of known processes, exited ones included.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when no process is known.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Number of running processes.
    pub fn running(&self) -> usize {
        self.procs.values().filter(|p| p.is_running()).count()
    }

    /// Pids of the children of `pid`, ascending.
    pub fn children(&self, pid: u32) -> &[u32] {
        self.procs.get(&pid).map_or(&[], |p| &p.children)
    }

    /// Parent, grandparent, ... of `pid`, as far as the table knows them.
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([pid]);
        let mut cur = pid;
        while let Some(p) = self.procs.get(&cur) {
            if p.ppid == 0 || !seen.insert(p.ppid) {
                break;
            }
            out.push(p.ppid);
            cur = p.ppid;
        }
        out
    }

    /// All descendants of `pid`, breadth first.
    pub fn descendants(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([pid]);
        let mut queue = VecDeque::from([pid]);
        while let Some(cur) = queue.pop_front() {
            for &child in self.children(cur) {
                if seen.insert(child) {
                    out.push(child);
                    queue.push_back(child);
                }
            }
        }
        out
    }

    /// New processes per second over the last 10 seconds.
    pub fn fork_rate(&self) -> f64 {
        let now = sys::monotonic_ns();
        let n = self
            .forks
            .iter()
            .filter(|&&t| now.saturating_sub(t) <= FORK_WINDOW_NS)
            .count();
        n as f64 / (FORK_WINDOW_NS as f64 / 1e9)
    }

    fn link(&mut self, pid: u32, ppid: u32) {
        if let Some(parent) = self.procs.get_mut(&ppid) {
            if let Err(at) = parent.children.binary_search(&pid) {
                parent.children.insert(at, pid);
            }
        }
    }

    fn unlink(&mut self, pid: u32, ppid: u32) {
        if let Some(parent) = self.procs.get_mut(&ppid) {
            if let Ok(at) = parent.children.binary_search(&pid) {
                parent.children.remove(at);
            }
        }
    }

    fn set_parent(&mut self, pid: u32, ppid: u32) {
        let Some(old) = self.procs.get(&pid).map(|p| p.ppid) else {
            return;
        };
        if old != ppid {
            self.unlink(pid, old);
            if let Some(p) = self.procs.get_mut(&pid) {
                p.ppid = ppid;
            }
        }
        self.link(pid, ppid);
    }

    /// Inserts `p` (with no children yet: a child links itself when its own event or scan
    /// entry arrives), replacing any earlier process with that pid (pid reuse). O(1): this runs
    /// for every fork.
    fn insert(&mut self, p: Process) {
        let pid = p.pid;
        let ppid = p.ppid;
        if let Some(old) = self.procs.remove(&pid) {
            self.unlink(pid, old.ppid);
        }
        self.procs.insert(pid, p);
        self.link(pid, ppid);
    }

    fn wall(&self, mono_ns: u64) -> SystemTime {
        let (wall, mono) = self.wall_base;
        // Kernel timestamps are untrusted input here: an absurd one must not panic.
        let moved = if mono_ns >= mono {
            wall.checked_add(Duration::from_nanos(mono_ns - mono))
        } else {
            wall.checked_sub(Duration::from_nanos(mono - mono_ns))
        };
        moved.unwrap_or(wall)
    }

    /// Applies one event.
    pub(crate) fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Fork(f) => {
                let mut p = Process::new(f.pid, f.ppid, f.comm.clone(), Source::Event);
                if let Some(parent) = self.procs.get(&f.ppid) {
                    p.argv = parent.argv.clone();
                    p.filename = parent.filename.clone();
                    p.uid = parent.uid;
                    p.cgroup_id = parent.cgroup_id;
                    p.pod = parent.pod.clone();
                }
                p.started = Some(self.wall(f.ts_ns));
                self.insert(p);
                self.forks.push_back(f.ts_ns);
            }
            Event::Exec(e) => {
                let fresh = self.procs.get(&e.pid).is_none_or(|p| !p.is_running());
                if fresh {
                    let mut p = Process::new(e.pid, e.ppid, e.comm.clone(), Source::Event);
                    p.started = Some(self.wall(e.ts_ns));
                    self.insert(p);
                }
                self.set_parent(e.pid, e.ppid);
                // An exec keeps the cgroup: a forked child in its parent's cgroup keeps the
                // parent's pod without a read of /proc (which a short-lived child may have left
                // by now); otherwise the pod is read, once per cgroup where it can be cached.
                let inherited = self
                    .procs
                    .get(&e.pid)
                    .filter(|p| p.cgroup_id == Some(e.cgroup_id) && p.pod.is_some())
                    .map(|p| p.pod.clone());
                let pod = match inherited {
                    Some(pod) => pod,
                    None if self.procfs => {
                        self.pods.resolve(&self.proc_root, e.pid, Some(e.cgroup_id))
                    }
                    None => None,
                };
                if let Some(p) = self.procs.get_mut(&e.pid) {
                    p.pod = pod;
                    p.comm = e.comm.clone();
                    p.argv = Arc::from(e.argv.as_slice());
                    p.filename = Some(e.filename.clone());
                    p.uid = Some(e.uid);
                    p.cgroup_id = Some(e.cgroup_id);
                }
            }
            Event::Exit(x) => {
                if self.procs.get(&x.pid).is_none_or(|p| !p.is_running()) {
                    let mut p = Process::new(x.pid, x.ppid, x.comm.clone(), Source::Event);
                    p.started = Some(self.wall(x.start_ns));
                    self.insert(p);
                }
                self.set_parent(x.pid, x.ppid);
                let at = self.wall(x.ts_ns);
                if let Some(p) = self.procs.get_mut(&x.pid) {
                    p.exit = Some(ProcessExit {
                        at,
                        status: Some(x.status),
                        user_time: Some(x.user_time),
                        system_time: Some(x.system_time),
                        max_rss_bytes: Some(x.max_rss_bytes),
                    });
                    p.cpu_percent = 0.0;
                    p.rss_bytes = 0;
                }
                self.exited.push_back((x.ts_ns, x.pid));
            }
            Event::Oom(o) => {
                if let Some(p) = self.procs.get_mut(&o.pid) {
                    p.oom_killed = true;
                }
            }
            Event::Tcp(_) | Event::ExecFailed(_) => {}
        }
    }

    /// Drops exited processes older than the retention time, or beyond the cap.
    pub(crate) fn prune(&mut self, now_ns: u64) {
        while let Some(&(t, pid)) = self.exited.front() {
            let old = now_ns.saturating_sub(t) > self.retention_ns;
            if !old && self.exited.len() <= self.max_exited {
                break;
            }
            self.exited.pop_front();
            // The pid may have been reused by a running process since.
            if self.procs.get(&pid).is_some_and(|p| !p.is_running()) {
                let ppid = self.procs[&pid].ppid;
                self.procs.remove(&pid);
                self.unlink(pid, ppid);
            }
        }
        while self
            .forks
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) > FORK_WINDOW_NS)
        {
            self.forks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExecEvent, ExitEvent, ForkEvent};

    fn table() -> ProcessTable {
        ProcessTable::new("/nonexistent".into(), Duration::from_secs(60), 100)
    }

    fn fork(pid: u32, ppid: u32) -> Event {
        Event::Fork(ForkEvent {
            ts_ns: sys::monotonic_ns(),
            pid,
            ppid,
            comm: "sh".into(),
        })
    }

    #[test]
    fn events_build_a_tree_and_record_exits() {
        let mut t = table();
        t.apply(&fork(10, 1));
        t.apply(&fork(11, 10));
        t.apply(&fork(12, 11));
        t.apply(&Event::Exec(ExecEvent {
            ts_ns: sys::monotonic_ns(),
            pid: 12,
            ppid: 11,
            uid: 0,
            cgroup_id: 1,
            comm: "sleep".into(),
            filename: "/bin/sleep".into(),
            argv: vec!["sleep".into(), "1".into()],
            argv_truncated: false,
        }));
        assert_eq!(t.children(10), &[11]);
        assert_eq!(t.descendants(10), vec![11, 12]);
        assert_eq!(t.ancestors(12), vec![11, 10, 1]);
        assert_eq!(&*t.get(12).unwrap().argv, ["sleep", "1"]);
        t.apply(&Event::Exit(ExitEvent {
            ts_ns: sys::monotonic_ns(),
            pid: 12,
            ppid: 11,
            comm: "sleep".into(),
            status: ExitStatus(7 << 8),
            user_time: Duration::ZERO,
            system_time: Duration::ZERO,
            max_rss_bytes: 0,
            start_ns: 0,
        }));
        assert_eq!(t.get(12).unwrap().exit_code(), Some(7));
        assert!(t.fork_rate() > 0.0);
    }

    #[test]
    fn exited_processes_are_pruned_beyond_the_cap() {
        let mut t = ProcessTable::new("/nonexistent".into(), Duration::from_secs(60), 1);
        t.apply(&fork(10, 1));
        for pid in [20, 21] {
            t.apply(&fork(pid, 10));
            t.apply(&Event::Exit(ExitEvent {
                ts_ns: sys::monotonic_ns(),
                pid,
                ppid: 10,
                comm: "x".into(),
                status: ExitStatus(0),
                user_time: Duration::ZERO,
                system_time: Duration::ZERO,
                max_rss_bytes: 0,
                start_ns: 0,
            }));
        }
        t.prune(sys::monotonic_ns());
        assert!(t.get(20).is_none());
        assert!(t.get(21).is_some());
        assert_eq!(t.children(10), &[21]);
    }
}
