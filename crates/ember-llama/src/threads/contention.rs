//! [`Contention`]: how many of this process's CPUs other processes keep busy, measured from
//! `/proc/stat` (per-CPU time) and `/proc/self/stat` (this process's own time), and the
//! thread count that leaves them their share.

use std::time::{Duration, Instant};

use super::ThreadPriority;

/// Shortest window between two looks: `/proc/stat` counts in ticks of 10 ms, so 100 ms
/// resolves a tenth of a core, and a change of load is followed within a few tokens.
const WINDOW: Duration = Duration::from_millis(100);

/// CPU time counters at one moment, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Busy time of the watched CPUs (all processes; see [`Contention::busy`]).
    busy: u64,
    /// All time of the watched CPUs, idle included.
    total: u64,
    /// This process's user and system time.
    ours: u64,
}

/// Chooses a decode's thread count from the free cores among the process's CPUs.
#[derive(Debug)]
pub(crate) struct Contention {
    cpus: Vec<usize>,
    max: usize,
    /// Whether niced processes count as load: a normal-priority decode takes their time
    /// anyway, a background one gives way to them.
    count_niced: bool,
    last: Option<Sample>,
    threads: usize,
}

impl Contention {
    /// Watches `cpus` (the affinity mask), for a decode of at most `max` threads at
    /// `priority`.
    pub(crate) fn new(cpus: Vec<usize>, max: usize, priority: ThreadPriority) -> Contention {
        Contention {
            cpus,
            max: max.max(1),
            count_niced: priority == ThreadPriority::Background,
            last: None,
            threads: max.max(1),
        }
    }

    /// The thread count for the next decode: the configured count until a window has
    /// passed, then the cores other processes left free in it (rounded, 1..=max).
    pub(crate) fn threads(&mut self) -> usize {
        let now = Instant::now();
        if self.last.is_some_and(|l| now - l.at < WINDOW) {
            return self.threads;
        }
        let Some(sample) = self.sample(now) else {
            // /proc unreadable: keep the configured count.
            return self.threads;
        };
        if let Some(last) = self.last {
            self.threads = free_threads(&last, &sample, self.cpus.len().max(1), self.max);
        }
        self.last = Some(sample);
        self.threads
    }

    fn sample(&self, at: Instant) -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (busy, total) = cpu_ticks(&stat, &self.cpus, self.count_niced)?;
        Some(Sample {
            at,
            busy,
            total,
            ours: own_ticks(&own)?,
        })
    }
}

/// Free cores between two samples of `ncpus` CPUs, as a thread count in 1..=max: the
/// CPUs less what others used (busy time less ours), rounded to the nearest core.
fn free_threads(last: &Sample, now: &Sample, ncpus: usize, max: usize) -> usize {
    let elapsed = now.total.saturating_sub(last.total) as f64 / ncpus as f64;
    if elapsed <= 0.0 {
        return max;
    }
    let busy = now.busy.saturating_sub(last.busy);
    let ours = now.ours.saturating_sub(last.ours);
    let others = busy.saturating_sub(ours) as f64 / elapsed;
    let free = (ncpus as f64 - others).round();
    (free.max(1.0) as usize).min(max)
}

/// Busy and total ticks of `cpus` from `/proc/stat`'s `cpuN` lines. Busy is user, system,
/// irq, softirq and steal, plus nice when `count_niced`.
fn cpu_ticks(stat: &str, cpus: &[usize], count_niced: bool) -> Option<(u64, u64)> {
    let (mut busy, mut total, mut seen) = (0u64, 0u64, 0usize);
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            break; // the cpu lines come first
        };
        let mut fields = rest.split_ascii_whitespace();
        let Some(Ok(n)) = fields.next().map(str::parse::<usize>) else {
            continue; // the "cpu" sum line
        };
        if !cpus.contains(&n) {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest time is inside user)
        let v: Vec<u64> = fields.take(8).map(|f| f.parse().unwrap_or(0)).collect();
        if v.len() < 8 {
            return None;
        }
        let niced = if count_niced { v[1] } else { 0 };
        busy += v[0] + niced + v[2] + v[5] + v[6] + v[7];
        total += v.iter().sum::<u64>();
        seen += 1;
    }
    (seen > 0).then_some((busy, total))
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, after the parenthesised name.
fn own_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  300 50 100 1000 5 0 3 0 0 0
cpu0 100 50 50 500 5 0 1 0 0 0
cpu1 200 0 50 500 0 0 2 0 0 0
intr 12345 0 0
ctxt 99
";

    #[test]
    fn per_cpu_ticks_for_the_watched_cpus() {
        assert_eq!(cpu_ticks(STAT, &[0, 1], false), Some((403, 1458)));
        assert_eq!(cpu_ticks(STAT, &[0, 1], true), Some((453, 1458)));
        assert_eq!(cpu_ticks(STAT, &[1], false), Some((252, 752)));
        assert_eq!(cpu_ticks(STAT, &[7], false), None);
    }

    #[test]
    fn own_time_is_read_after_the_name() {
        let stat = "42 (a) b (c)) R 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(own_ticks(stat), Some(300));
    }

    fn sample(busy: u64, total: u64, ours: u64) -> Sample {
        Sample {
            at: Instant::now(),
            busy,
            total,
            ours,
        }
    }

    #[test]
    fn free_cores_are_the_cpus_less_what_others_used() {
        let start = sample(0, 0, 0);
        // Two CPUs for 10 ticks each (20 in all): we used 20, nobody else: 2 free.
        assert_eq!(free_threads(&start, &sample(20, 20, 20), 2, 2), 2);
        // One busy loop beside two threads of ours: it got 2/3 of a core.
        assert_eq!(free_threads(&start, &sample(20, 20, 13), 2, 2), 1);
        // Two busy loops: none free, but a decode always has one thread.
        assert_eq!(free_threads(&start, &sample(20, 20, 0), 2, 2), 1);
        // A little noise (a tenth of a core) does not cost a thread.
        assert_eq!(free_threads(&start, &sample(11, 20, 10), 2, 2), 2);
        // Never above the configured count.
        assert_eq!(free_threads(&start, &sample(0, 80, 0), 8, 4), 4);
    }

    #[test]
    fn this_machine_gives_a_count_in_range() {
        let mut c = Contention::new(vec![0], 2, ThreadPriority::Normal);
        assert_eq!(
            c.threads(),
            2,
            "the configured count until a window has passed"
        );
        std::thread::sleep(WINDOW);
        assert!((1..=2).contains(&c.threads()));
    }
}
