//! How many CPU threads a context uses, at which scheduling priority, and how it gives way
//! when other work needs the CPUs.
//!
//! A decode's threads meet at a barrier between its steps. ggml's own barrier spins: when
//! fewer cores are free than a decode has threads, a thread whose partner lost its core
//! spins until the partner is scheduled again, so throughput falls far below a fair share of
//! the CPU (on two cores beside two busy loops, a two-thread decode ran at 23 % of its idle
//! speed here and upstream llama-bench's at 3 %, where a fair share is 50 %). What keeps a
//! context a good neighbour:
//!
//! - a barrier that sleeps: on linux-gnu, ember-llama-sys builds ggml with OpenMP
//!   (`GGML_OPENMP=ON`, [`ember_llama_sys::OPENMP`]) and sets libgomp's spin count to 1000
//!   (`GOMP_SPINCOUNT`, unless the environment sets it or `OMP_WAIT_POLICY`): two running
//!   threads meet within those spins, a thread whose partner lost its core sleeps on a futex
//!   and gives its core away. Measured here, two threads beside two busy loops: 0.43x of
//!   idle with 1000 spins, 0.22x with libgomp's default (300 000) and with ggml's pool, 0.38x
//!   with one thread; idle speed the same (upstream llama-bench built with OpenMP, same tree,
//!   medians of 3; `build-support/bench-neighbour` measures ember's);
//! - [`CpuBudget`]: the default thread count is the CPUs this process may use, from its
//!   affinity mask and its cgroup CPU quota, not the machine's core count;
//! - [`ThreadPriority`]: the decode threads can run in the background (nice 19), so the
//!   machine's other work comes first;
//! - adaptive threads (on by default, [`ContextParams::with_adaptive_threads`]): before a
//!   decode, at most every 100 ms, the context measures how much CPU other processes used on
//!   its CPUs since the last look and picks the count that runs fastest beside them. With a
//!   sleeping barrier the slowest thread sets the pace, so that is the count whose threads
//!   share the least crowded cores: on two cores, one thread beside one busy loop (a second
//!   thread would share the loop's core and hold the first back), two beside two (each gets
//!   the half core a loop gets, where one thread alone gets two thirds of one). Two sleeping
//!   threads lose time to busy loops, so beside them one loop taking nearly a core and two
//!   taking half a core each look alike: then the context decodes a window with fewer
//!   threads, whose figures tell the two apart, and keeps a count it goes back up to for
//!   about a second before it tries again. With ggml's
//!   spinning barrier (other targets), as many threads as there are free cores: one thread
//!   on a free core never waits at all.
//!
//! Why not the pool's poll level ([`ContextParams::with_thread_poll`]): it sets how long an
//! idle worker of ggml's own pool spins waiting for the *next* decode; inside a decode,
//! ggml's barrier (`ggml_barrier` in ggml-cpu.c) spins without yielding whatever the level,
//! and that is where the time goes under contention. With OpenMP the level does nothing.
//!
//! With OpenMP the worker threads belong to the thread that decodes (libgomp keeps a team
//! per calling thread), not to the context: a context names them `ggml-worker` and, in the
//! background, nices them, on the first decode from each thread. A thread that decoded a
//! background context keeps its niced workers for later normal-priority contexts: decode
//! those from another thread.
//!
//! Priority never changes a decode's output, nor, nearly always, does the thread count:
//! ggml computes each output element on one thread, whatever the count. The exception is
//! its flash-attention decode of one token over 512 or more KV cells (`use_split_kv_path`
//! in ggml-cpu's ops.cpp), which splits the sums over the KV cells by thread and adds the
//! parts: there the last bits, and rarely a greedy token, follow the count, so with
//! adaptive threads on a long generation's output can follow the machine's load (upstream
//! differs between `-t 1` and `-t 2` the same way). Turn adaptive threads off where it must
//! not.
//!
//! [`ContextParams::with_adaptive_threads`]: crate::ContextParams::with_adaptive_threads
//! [`ContextParams::with_thread_poll`]: crate::ContextParams::with_thread_poll

mod budget;
mod contention;

pub use budget::CpuBudget;
pub(crate) use contention::Contention;

use crate::error::{Error, Result};

/// The scheduling priority of a context's decode threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ThreadPriority {
    /// The priority of the thread that creates the context (nice 0 usually): a decode
    /// competes with the machine's other work as an equal.
    #[default]
    Normal,
    /// nice 19: the machine's other work comes first, the decode gets what is left. Chosen
    /// over `SCHED_IDLE` because a niced thread still gets a small share (about 1.5 % per
    /// core against one nice-0 task) and so always makes progress, and because an
    /// unprivileged process can set it (and never undo it).
    Background,
}

impl ThreadPriority {
    /// The nice value of this priority (0 or 19).
    pub fn nice(self) -> i32 {
        match self {
            ThreadPriority::Normal => 0,
            ThreadPriority::Background => 19,
        }
    }

    /// `normal` or `background`.
    pub fn name(self) -> &'static str {
        match self {
            ThreadPriority::Normal => "normal",
            ThreadPriority::Background => "background",
        }
    }

    /// Gives the calling thread this priority. A decode runs part of its work on the thread
    /// that calls it, so a background context is decoded from a background thread.
    /// [`ThreadPriority::Normal`] leaves the thread as it is (lowering a thread's priority
    /// cannot be undone without `CAP_SYS_NICE`).
    ///
    /// ```
    /// use ember_llama::threads::ThreadPriority;
    /// std::thread::spawn(|| ThreadPriority::Background.apply_to_current_thread())
    ///     .join()
    ///     .unwrap()
    ///     .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ThreadPriority`] when the kernel refuses.
    pub fn apply_to_current_thread(self) -> Result<()> {
        if self == ThreadPriority::Normal {
            return Ok(());
        }
        // On Linux, setpriority(PRIO_PROCESS, tid) sets one thread's nice value, and threads
        // it creates later inherit it (ggml's workers among them).
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), self.nice()).map_err(|err| {
            Error::ThreadPriority {
                priority: self.name(),
                reason: err.to_string(),
            }
        })
    }
}

thread_local! {
    /// This thread's OpenMP team as [`prepare_team`] left it: (workers named, nice given).
    static TEAM: std::cell::Cell<(i32, i32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Readies the OpenMP team that decodes from this thread (with [`sys::OPENMP`]; a no-op with
/// ggml's own pool): `n_threads` workers named `ggml-worker`, at the priority's nice value
/// for [`ThreadPriority::Background`]. libgomp keeps one team per calling thread for the
/// thread's life, so this does its work once per thread (again only for a larger team or a
/// lower priority). A normal-priority context decoded from a thread that decoded a
/// background one keeps that thread's niced workers.
///
/// [`sys::OPENMP`]: ember_llama_sys::OPENMP
pub(crate) fn prepare_team(n_threads: i32, priority: ThreadPriority) -> Result<()> {
    if !ember_llama_sys::OPENMP {
        return Ok(());
    }
    let nice = priority.nice();
    let (size, niced) = TEAM.get();
    if size >= n_threads && niced >= nice {
        return Ok(());
    }
    let size = size.max(n_threads);
    let apply = if priority == ThreadPriority::Normal {
        -1
    } else {
        nice
    };
    // SAFETY: plain C function; it runs an OpenMP parallel region of `size` threads.
    let errno = unsafe { ember_llama_sys::ember_openmp_prepare_team(size, apply) };
    if errno != 0 {
        return Err(Error::ThreadPriority {
            priority: priority.name(),
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
        });
    }
    TEAM.set((size, niced.max(nice)));
    Ok(())
}

impl std::str::FromStr for ThreadPriority {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "normal" => Ok(ThreadPriority::Normal),
            "background" => Ok(ThreadPriority::Background),
            other => Err(format!(
                "unknown thread priority {other:?}: use \"background\" or \"normal\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_sets_nice_19_on_this_thread_only() {
        fn nice_of(tid: rustix::process::Pid) -> i32 {
            rustix::process::getpriority_process(Some(tid)).unwrap()
        }
        let main = rustix::thread::gettid();
        let before = nice_of(main);
        let (inside, child_of_inside) = std::thread::spawn(|| {
            ThreadPriority::Background
                .apply_to_current_thread()
                .unwrap();
            let me = nice_of(rustix::thread::gettid());
            let child = std::thread::spawn(move || nice_of(rustix::thread::gettid()))
                .join()
                .unwrap();
            (me, child)
        })
        .join()
        .unwrap();
        assert_eq!((inside, child_of_inside), (19, 19));
        assert_eq!(nice_of(main), before);
    }

    #[test]
    fn priorities_parse_by_name() {
        assert_eq!("background".parse(), Ok(ThreadPriority::Background));
        assert_eq!("normal".parse(), Ok(ThreadPriority::Normal));
        assert!("idle"
            .parse::<ThreadPriority>()
            .unwrap_err()
            .contains("background"));
    }
}
