//! The CPU thread pool a [`Context`](crate::Context) keeps for its whole life.
//!
//! Without an attached pool, ggml creates and joins a fresh set of worker threads for every
//! graph it computes, that is for every decoded token. llama-bench and llama-server attach a
//! persistent pool instead; so does every `Context`, which is what makes token generation
//! through this crate run at upstream speed.

use std::ptr::NonNull;

use ember_llama_sys as sys;

use crate::error::{Error, Result};
use crate::threads::ThreadPriority;

/// An owned `ggml_threadpool`, freed on drop.
pub(crate) struct ThreadPool {
    raw: NonNull<sys::ggml_threadpool>,
}

// SAFETY: the pool's worker threads belong to the pool, not to the thread that created it;
// only the owning Context, used by one thread at a time, hands it work.
unsafe impl Send for ThreadPool {}

impl ThreadPool {
    /// Starts a pool of `n_threads` that poll for work at level `poll` (0..=100) when idle
    /// and run at `priority`, otherwise with ggml's defaults, as llama-bench does: no CPU
    /// pinning.
    ///
    /// The workers are started from a short-lived thread named `ggml-worker` that first
    /// takes `priority`: threads inherit their creator's nice value and name, and the
    /// caller's own thread keeps its priority.
    pub(crate) fn new(n_threads: i32, poll: u32, priority: ThreadPriority) -> Result<ThreadPool> {
        let started = std::thread::Builder::new()
            .name("ggml-worker".into())
            .spawn(move || {
                priority.apply_to_current_thread()?;
                // SAFETY: plain constructor of a parameter struct.
                let mut params = unsafe { sys::ggml_threadpool_params_default(n_threads) };
                params.poll = poll;
                // SAFETY: `params` is a valid, initialised parameter struct; ggml copies it.
                let raw = unsafe { sys::ggml_threadpool_new(&mut params) };
                // The pointer crosses back as an address: the pool is not tied to this thread.
                Ok::<usize, Error>(raw as usize)
            })
            .map_err(|_| Error::ThreadPool { n_threads })?
            .join()
            .map_err(|_| Error::ThreadPool { n_threads })??;
        NonNull::new(started as *mut sys::ggml_threadpool)
            .map(|raw| ThreadPool { raw })
            .ok_or(Error::ThreadPool { n_threads })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::ggml_threadpool {
        self.raw.as_ptr()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ggml_threadpool_new and is freed once; the Context that
        // used it has already been freed (Context drops its llama_context first).
        unsafe { sys::ggml_threadpool_free(self.raw.as_ptr()) };
    }
}
