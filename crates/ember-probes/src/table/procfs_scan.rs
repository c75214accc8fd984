//! Keeping the table in step with `/proc`: the scan that seeds it at start (and polls it in
//! procfs mode), and the CPU % and RSS samples of running processes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Process, ProcessExit, ProcessTable, Source};
use crate::pod;
use crate::procfs;
use crate::sys;

impl ProcessTable {
    fn mark_gone(&mut self, pid: u32, now_ns: u64) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exit = Some(ProcessExit {
                at: SystemTime::now(),
                status: None,
                user_time: None,
                system_time: None,
                max_rss_bytes: None,
            });
            p.cpu_percent = 0.0;
            p.rss_bytes = 0;
            self.exited.push_back((now_ns, pid));
        }
    }

    fn process_from_stat(&self, stat: &procfs::ProcStat) -> Process {
        let mut p = Process::new(stat.pid, stat.ppid, stat.comm.clone(), Source::Procfs);
        p.argv = Arc::from(procfs::read_cmdline(&self.proc_root, stat.pid));
        p.uid = procfs::read_uid(&self.proc_root, stat.pid);
        p.pod = pod::read(&self.proc_root, stat.pid).map(Arc::new);
        p.start_ticks = Some(stat.start_ticks);
        p.started = self.boot_secs.map(|b| {
            UNIX_EPOCH
                + Duration::from_secs(b)
                + Duration::from_secs(stat.start_ticks / self.ticks_per_sec)
                + Duration::from_nanos(
                    stat.start_ticks % self.ticks_per_sec * 1_000_000_000 / self.ticks_per_sec,
                )
        });
        p.rss_bytes = stat.rss_pages * self.page_size;
        p.last_cpu_ticks = Some(stat.cpu_ticks);
        p
    }

    /// Whether `/proc` could be read when the table was made.
    pub(crate) fn has_procfs(&self) -> bool {
        self.procfs
    }

    /// Reads every process in `/proc`: new pids are added, vanished ones marked exited (procfs
    /// mode), and, with `count_forks`, new pids count towards [`fork_rate`](Self::fork_rate).
    pub(crate) fn scan_procfs(&mut self, count_forks: bool) -> std::io::Result<()> {
        if !self.procfs {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "procfs is not mounted there",
            ));
        }
        let now = sys::monotonic_ns();
        let pids = procfs::list_pids(&self.proc_root)?;
        let listed: HashSet<u32> = pids.iter().copied().collect();
        let mut added = Vec::new();
        for pid in pids {
            let known = self.procs.get(&pid).filter(|p| p.is_running());
            let Some(stat) = procfs::read_stat(&self.proc_root, pid) else {
                continue;
            };
            // A running entry with another start time is an earlier process whose pid was reused.
            let reused =
                known.is_some_and(|p| p.start_ticks.is_some_and(|t| t != stat.start_ticks));
            if known.is_none() || reused {
                let p = self.process_from_stat(&stat);
                added.push((p.pid, p.ppid));
                self.insert(p);
                if count_forks && self.last_sample_ns.is_some() {
                    self.forks.push_back(now);
                }
            }
        }
        // A child listed before its parent (pids wrap around) links now that both are in.
        for (pid, ppid) in added {
            self.link(pid, ppid);
        }
        if count_forks {
            let gone: Vec<u32> = self
                .procs
                .values()
                .filter(|p| p.is_running() && !listed.contains(&p.pid))
                .map(|p| p.pid)
                .collect();
            for pid in gone {
                self.mark_gone(pid, now);
            }
        }
        Ok(())
    }

    /// Samples CPU % and RSS of running processes from `/proc/<pid>/stat`. With `bpf`, a process
    /// missing from `/proc` twice in a row whose exit event never came is marked exited.
    pub(crate) fn sample(&mut self, bpf: bool) {
        let now = sys::monotonic_ns();
        self.wall_base = (SystemTime::now(), now);
        if !self.procfs {
            self.prune(now);
            return;
        }
        let elapsed = self
            .last_sample_ns
            .map(|t| now.saturating_sub(t) as f64 / 1e9);
        let mut gone = Vec::new();
        let hz = self.ticks_per_sec as f64;
        let page = self.page_size;
        let root = self.proc_root.clone();
        for p in self.procs.values_mut().filter(|p| p.is_running()) {
            match procfs::read_stat(&root, p.pid) {
                Some(stat) => {
                    p.missing_samples = 0;
                    if let (Some(prev), Some(secs)) = (p.last_cpu_ticks, elapsed) {
                        if secs > 0.0 {
                            let ticks = stat.cpu_ticks.saturating_sub(prev) as f64;
                            p.cpu_percent = ticks / hz / secs * 100.0;
                        }
                    }
                    p.last_cpu_ticks = Some(stat.cpu_ticks);
                    p.start_ticks.get_or_insert(stat.start_ticks);
                    p.rss_bytes = stat.rss_pages * page;
                }
                None if bpf => {
                    p.missing_samples += 1;
                    if p.missing_samples >= 2 {
                        gone.push(p.pid);
                    }
                }
                None => {}
            }
        }
        for pid in gone {
            self.mark_gone(pid, now);
        }
        self.last_sample_ns = Some(now);
        self.prune(now);
    }
}
