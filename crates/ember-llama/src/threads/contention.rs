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

/// Windows a count stays put after the decode went up to it from a window that could not
/// tell it from a lower one (see [`Reading::Between`]): about a second between probes.
const HOLD_WINDOWS: u32 = 10;

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
    /// Windows left before an ambiguous window probes a lower count again.
    hold: u32,
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
            hold: 0,
        }
    }

    /// The thread count for the next decode: the configured count until a window has
    /// passed, then the count that runs fastest beside what other processes used in it.
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
            let reading = next_threads(
                &last,
                &sample,
                self.cpus.len().max(1),
                self.max,
                self.threads,
                ember_llama_sys::OPENMP,
            );
            self.follow(reading);
        }
        self.last = Some(sample);
        self.threads
    }

    /// Takes a window's reading: a count as it is; between two counts, the lower one (a
    /// probe: with fewer threads the next window tells the load apart), unless the decode
    /// went up from such a probe less than [`HOLD_WINDOWS`] windows ago.
    fn follow(&mut self, reading: Reading) {
        let next = match reading {
            Reading::Count(t) => t,
            Reading::Between { more, .. } if self.hold > 0 => more,
            Reading::Between { fewer, .. } => fewer,
        };
        self.hold = if next > self.threads {
            HOLD_WINDOWS
        } else {
            self.hold.saturating_sub(1)
        };
        self.threads = next;
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

/// What one window says about the next decode's thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The count that runs fastest beside the load the window saw.
    Count(usize),
    /// The window fits two loads that want different counts: on full CPUs, threads that
    /// sleep at a barrier lose time to CPU-bound tasks, so whether the others' time is one
    /// task taking nearly a core or several taking a fair share each is not known. Two
    /// threads beside one busy loop on two cores and two beside two loops both measure
    /// about a core each for us and for them.
    Between { fewer: usize, more: usize },
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
/// it (the fewest on a tie): on 2 cores, 2 threads when idle, 1 beside one busy loop (a second
/// would share the loop's core and hold the first back), 2 beside two (each thread gets the
/// same half core as the loops, where one thread alone would get two thirds of one).
///
/// `k` is read from the others' time: as many tasks as cores they used while a core stayed
/// idle; on full CPUs, between "each took at most a core" (tasks that beat our sleeping
/// threads to the cores: measured here, one busy loop took 0.8 to 1.0 of a core beside two
/// threads, not the fair two thirds) and fair sharing with our threads. One thread of ours
/// never sleeps at a barrier and shares fairly, so its window settles what two or more
/// could not ([`Reading::Between`]).
fn next_threads(
    last: &Sample,
    now: &Sample,
    ncpus: usize,
    max: usize,
    threads: usize,
    sleeping_barrier: bool,
) -> Reading {
    let elapsed = now.total.saturating_sub(last.total) as f64 / ncpus as f64;
    if elapsed <= 0.0 {
        return Reading::Count(max);
    }
    let busy = now.busy.saturating_sub(last.busy);
    let ours = now.ours.saturating_sub(last.ours);
    // Cores' worth of CPU time, over the window.
    let others = busy.saturating_sub(ours) as f64 / elapsed;
    let ours = ours as f64 / elapsed;
    let cpus = ncpus as f64;
    if !sleeping_barrier {
        let free = (cpus - others).round();
        return Reading::Count((free.max(1.0) as usize).min(max));
    }
    let fastest = |k: f64| {
        // A bound for the arithmetic: beyond 4 tasks per core, every count looks the same.
        let k = k.clamp(0.0, 4.0 * cpus) as usize;
        let pace = |t: usize| t as f64 / ((k + t) as f64 / cpus).ceil();
        (1..=max)
            .max_by(|&a, &b| pace(a).total_cmp(&pace(b)).then(b.cmp(&a)))
            .unwrap_or(1)
    };
    let idle = cpus - others - ours;
    if idle > 0.5 || others < 0.15 {
        // They had all they wanted.
        return Reading::Count(fastest(others.round()));
    }
    let fair = fastest(fair_share_demand(others, cpus, threads));
    if threads < 2 {
        return Reading::Count(fair);
    }
    let at_most_a_core = fastest((others - 0.25).ceil().max(1.0));
    if fair == at_most_a_core {
        Reading::Count(fair)
    } else {
        Reading::Between {
            fewer: fair.min(at_most_a_core),
            more: fair.max(at_most_a_core),
        }
    }
}

/// Other CPU-bound tasks on full CPUs, if each of the `k + threads` tasks got the share our
/// threads got (`k = others / ((cpus - others) / threads)`), counting a task from a quarter
/// of that share up.
fn fair_share_demand(others: f64, cpus: f64, threads: usize) -> f64 {
    let share = ((cpus - others) / threads.max(1) as f64).max(0.05);
    (others / share + 0.75).floor()
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
    ) -> Reading {
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
        assert_eq!(next(20, 20, 2, 2, 2), Reading::Count(2));
        // One busy loop beside two threads of ours: it got 2/3 of a core.
        assert_eq!(next(20, 13, 2, 2, 2), Reading::Count(1));
        // Two busy loops: none free, but a decode always has one thread.
        assert_eq!(next(20, 0, 2, 2, 2), Reading::Count(1));
        // A little noise (a tenth of a core) does not cost a thread.
        assert_eq!(next(11, 10, 2, 2, 2), Reading::Count(2));
        // Never above the configured count.
        assert_eq!(next(0, 0, 8, 4, 4), Reading::Count(4));
    }

    #[test]
    fn sleeping_barrier_takes_the_count_the_most_crowded_core_allows() {
        use Reading::{Between, Count};
        let next = |busy, ours, ncpus, max, threads| {
            next_after_10_ticks(busy, ours, ncpus, max, threads, true)
        };
        // Idle, or a little noise: every thread.
        assert_eq!(next(20, 20, 2, 2, 2), Count(2));
        assert_eq!(next(11, 10, 2, 2, 2), Count(2));
        // One busy loop, with a fair share beside two threads of ours or a core beside one.
        assert_eq!(next(20, 13, 2, 2, 2), Count(1));
        assert_eq!(next(20, 10, 2, 2, 1), Count(1));
        // One busy loop that our two threads held to a third of a core.
        assert_eq!(next(20, 17, 2, 2, 2), Count(1));
        // One busy loop while we were not decoding: it used one core and left one idle.
        assert_eq!(next(10, 0, 2, 2, 2), Count(1));
        // Two busy loops beside one thread of ours (they got 4/3 cores): two threads, each
        // as much as a loop.
        assert_eq!(next(20, 7, 2, 2, 1), Count(2));
        // A core for them, a core for our two threads: one loop that beat our sleeping
        // threads (1 thread) or two that shared fairly (2): probe with one.
        assert_eq!(next(20, 10, 2, 2, 2), Between { fewer: 1, more: 2 });
        assert_eq!(next(19, 10, 2, 2, 2), Between { fewer: 1, more: 2 });
        // Over a core and a quarter for them: two loops either way.
        assert_eq!(next(20, 7, 2, 2, 2), Count(2));
        // Four CPUs, three busy loops beside one thread of ours: all four threads (the most
        // crowded core has two tasks: 4 / 2 = 2 threads' worth, against 1).
        assert_eq!(next(40, 10, 4, 4, 1), Count(4));
        // Four CPUs, one busy loop: three threads on the free cores.
        assert_eq!(next(40, 30, 4, 4, 3), Count(3));
        // Never above the configured count.
        assert_eq!(next(0, 0, 8, 4, 4), Count(4));
    }

    #[test]
    fn an_ambiguous_window_probes_fewer_threads_then_holds_a_count_it_went_up_to() {
        use Reading::{Between, Count};
        let ambiguous = Between { fewer: 1, more: 2 };
        // One busy loop on two cores: the probe with one thread settles on one.
        let mut c = Contention::new(vec![0, 1], 2, ThreadPriority::Normal);
        c.follow(ambiguous);
        assert_eq!(c.threads, 1);
        c.follow(Count(1));
        assert_eq!(c.threads, 1);
        // Two busy loops: the probe's window says two; two is kept for HOLD_WINDOWS
        // ambiguous windows, then probed again.
        c.follow(Count(2));
        for _ in 0..HOLD_WINDOWS {
            c.follow(ambiguous);
            assert_eq!(c.threads, 2);
        }
        c.follow(ambiguous);
        assert_eq!(c.threads, 1);
        // A clear reading is taken at once, hold or not.
        c.follow(Count(2));
        c.follow(Count(1));
        assert_eq!(c.threads, 1);
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
