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
            self.threads = next_threads(
                &last,
                &sample,
                self.cpus.len().max(1),
                self.max,
                self.threads,
                ember_llama_sys::OPENMP,
            );
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

/// The thread count for the next decode, from what other processes used of `ncpus` CPUs
/// between two samples while this process decoded with `threads` threads, in 1..=max.
///
/// With a barrier that spins (ggml's own pool), a thread must never wait for a partner that
/// lost its core: the count is the cores others left free. With a barrier that sleeps
/// (OpenMP with a short spin count, see `ember_openmp.h`), a waiting thread gives its core
/// away, and the slowest thread sets the pace: with `k` other CPU-bound tasks and `t`
/// threads on `c` cores, the most crowded core has `ceil((k + t) / c)` tasks, so a decode
/// runs at about `t / ceil((k + t) / c)` threads' worth. The count is the `t` that maximises
/// it (the fewest on a tie): on 2 cores, 2 threads when idle, 1 beside one busy loop (a
/// second would share the loop's core and hold the first back), 2 beside two (each thread
/// gets the same half core as the loops, where one thread alone would get two thirds of one).
fn next_threads(
    last: &Sample,
    now: &Sample,
    ncpus: usize,
    max: usize,
    threads: usize,
    sleeping_barrier: bool,
) -> usize {
    let elapsed = now.total.saturating_sub(last.total) as f64 / ncpus as f64;
    if elapsed <= 0.0 {
        return max;
    }
    let busy = now.busy.saturating_sub(last.busy);
    let ours = now.ours.saturating_sub(last.ours);
    // Cores' worth of CPU time, over the window.
    let others = busy.saturating_sub(ours) as f64 / elapsed;
    let cpus = ncpus as f64;
    if !sleeping_barrier {
        let free = (cpus - others).round();
        return (free.max(1.0) as usize).min(max);
    }
    let k = others_demand(others, ours as f64 / elapsed, cpus, threads);
    let pace = |t: usize| t as f64 / ((k + t) as f64 / cpus).ceil();
    (1..=max)
        .max_by(|&a, &b| pace(a).total_cmp(&pace(b)).then(b.cmp(&a)))
        .unwrap_or(1)
}

/// Other CPU-bound tasks, from the cores they used (`others`) beside ours (`ours`) with our
/// `threads`: as many as they used while a core stayed idle (they had all they wanted,
/// rounded); when the CPUs were full, what fair sharing implies (each of the `k + threads`
/// tasks gets the share our threads got, so `k = others / ((cpus - others) / threads)`),
/// counting a task from a quarter of that share up: threads that sleep at every barrier
/// win their wake-ups, so a busy loop beside them gets less than its share.
fn others_demand(others: f64, ours: f64, cpus: f64, threads: usize) -> usize {
    let idle = cpus - others - ours;
    let k = if idle > 0.5 || others < 0.15 {
        others.round()
    } else {
        let share = ((cpus - others) / threads.max(1) as f64).max(0.05);
        (others / share + 0.75).floor()
    };
    // A bound for the arithmetic: beyond 4 tasks per core, every count looks the same.
    k.clamp(0.0, 4.0 * cpus) as usize
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

    /// [`next_threads`] after a window of 10 ticks per CPU from zero, in which the CPUs were
    /// busy `busy` ticks, `ours` of them this process's.
    fn next_after_10_ticks(
        busy: u64,
        ours: u64,
        ncpus: usize,
        max: usize,
        threads: usize,
        sleeping_barrier: bool,
    ) -> usize {
        let now = sample(busy, 10 * ncpus as u64, ours);
        next_threads(
            &sample(0, 0, 0),
            &now,
            ncpus,
            max,
            threads,
            sleeping_barrier,
        )
    }

    #[test]
    fn spinning_barrier_takes_the_cores_others_left_free() {
        let next = |busy, ours, ncpus, max, threads| {
            next_after_10_ticks(busy, ours, ncpus, max, threads, false)
        };
        // Two CPUs for 10 ticks each (20 in all): we used 20, nobody else: 2 free.
        assert_eq!(next(20, 20, 2, 2, 2), 2);
        // One busy loop beside two threads of ours: it got 2/3 of a core.
        assert_eq!(next(20, 13, 2, 2, 2), 1);
        // Two busy loops: none free, but a decode always has one thread.
        assert_eq!(next(20, 0, 2, 2, 2), 1);
        // A little noise (a tenth of a core) does not cost a thread.
        assert_eq!(next(11, 10, 2, 2, 2), 2);
        // Never above the configured count.
        assert_eq!(next(0, 0, 8, 4, 4), 4);
    }

    #[test]
    fn sleeping_barrier_takes_the_count_the_most_crowded_core_allows() {
        let next = |busy, ours, ncpus, max, threads| {
            next_after_10_ticks(busy, ours, ncpus, max, threads, true)
        };
        // Idle, or a little noise: every thread.
        assert_eq!(next(20, 20, 2, 2, 2), 2);
        assert_eq!(next(11, 10, 2, 2, 2), 2);
        // One busy loop, whether it shared with two threads of ours or left us one core.
        assert_eq!(next(20, 13, 2, 2, 2), 1);
        assert_eq!(next(20, 10, 2, 2, 1), 1);
        // One busy loop that our two threads held to a third of a core.
        assert_eq!(next(20, 17, 2, 2, 2), 1);
        // One busy loop while we were not decoding: it used one core and left one idle.
        assert_eq!(next(10, 0, 2, 2, 2), 1);
        // Two busy loops, beside one thread of ours (they got 4/3 cores) or two (1 core):
        // two threads, each as much as a loop.
        assert_eq!(next(20, 7, 2, 2, 1), 2);
        assert_eq!(next(20, 10, 2, 2, 2), 2);
        // Four CPUs, three busy loops beside one thread of ours: all four threads (the most
        // crowded core has two tasks: 4 / 2 = 2 threads' worth, against 1).
        assert_eq!(next(40, 10, 4, 4, 1), 4);
        // Four CPUs, one busy loop: three threads on the free cores.
        assert_eq!(next(40, 30, 4, 4, 3), 3);
        // Never above the configured count.
        assert_eq!(next(0, 0, 8, 4, 4), 4);
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
