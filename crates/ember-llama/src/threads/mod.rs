//! How many CPU threads a context uses, at which scheduling priority, and how it gives way
//! when other work needs the CPUs.
//!
//! ggml's worker threads spin at a barrier between the steps of a decode. When fewer cores
//! are free than a decode has threads, a worker whose partner lost its core spins until the
//! partner is scheduled again, so throughput falls far below a fair share of the CPU (on two
//! cores beside two busy loops, a two-thread decode ran at 23 % of its idle speed here and
//! upstream llama-bench's at 3 %, where a fair share is 50 %). Three things keep a context a
//! good neighbour:
//!
//! - [`CpuBudget`]: the default thread count is the CPUs this process may use, from its
//!   affinity mask and its cgroup CPU quota, not the machine's core count;
//! - [`ThreadPriority`]: the decode threads can run in the background (nice 19), so the
//!   machine's other work comes first;
//! - adaptive threads (on by default, [`ContextParams::with_adaptive_threads`]): before a
//!   decode, at most every 100 ms, the context measures how much CPU other processes used on
//!   its CPUs since the last look and decodes with as many threads as there are free cores
//!   (at least one, at most the configured count). One thread on a free core never waits at
//!   a barrier.
//!
//! Why not the pool's poll level ([`ContextParams::with_thread_poll`]): it sets how long an
//! idle worker spins waiting for the *next* decode; inside a decode, ggml's barrier
//! (`ggml_barrier` in ggml-cpu.c) spins without yielding whatever the level, and that is where
//! the time goes under contention. A yielding barrier would mean patching ggml. Fewer threads
//! than free cores never reach the barrier's slow path, and one thread never waits at all.
//!
//! None of this changes a decode's output: ggml computes each output element on one thread,
//! whatever the thread count.
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
