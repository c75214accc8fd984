//! llama.cpp's process-wide state: backend initialisation, once, and log routing.
//!
//! The first [`Model`](crate::Model) load calls [`init`]. It chooses the CPU variant
//! ([`crate::cpu`]), routes llama.cpp's and ggml's log lines to the [`log`] crate under the
//! target `llama.cpp` (so they are silent unless the program installs a logger), then
//! initialises the ggml backends.

use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use ember_llama_sys as sys;

use crate::error::{Error, Result};

/// Proof that the backend was initialised. Obtained from [`init`].
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    _private: (),
}

static BACKEND: OnceLock<std::result::Result<Backend, String>> = OnceLock::new();

/// Initialises llama.cpp once per process (later calls return the same result) and routes
/// its logs to the `log` crate.
///
/// # Errors
///
/// [`Error::CpuVariant`] when no CPU variant can run (see [`crate::cpu::variant`]); nothing
/// of llama.cpp is initialised then.
pub fn init() -> Result<Backend> {
    let result = BACKEND.get_or_init(|| {
        // The CPU variant first: ggml's backend registry calls into the CPU backend.
        crate::cpu::variant().map_err(|e| match e {
            Error::CpuVariant { reason } => reason,
            other => other.to_string(),
        })?;
        // SAFETY: `log_to_rust` has the `ggml_log_callback` signature, never unwinds (it
        // catches panics) and ignores the user-data pointer, which may be null.
        unsafe { sys::llama_log_set(Some(log_to_rust), std::ptr::null_mut()) };
        // SAFETY: called once per process (guarded by the OnceLock), before any model load.
        unsafe { sys::llama_backend_init() };
        Ok(Backend { _private: () })
    });
    result
        .clone()
        .map_err(|reason| Error::CpuVariant { reason })
}

/// llama.cpp's system info: the CPU features of the CPU variant that runs, and the backends.
///
/// # Errors
///
/// [`Error::CpuVariant`], as [`init`].
pub fn system_info() -> Result<String> {
    init()?;
    // SAFETY: returns a pointer to a static NUL-terminated string owned by llama.cpp.
    let info = unsafe { CStr::from_ptr(sys::llama_print_system_info()) };
    Ok(info.to_string_lossy().trim().to_string())
}

/// The `ggml_log_callback` that forwards a line to `log`. llama.cpp may send a line in
/// pieces (`GGML_LOG_LEVEL_CONT`); each piece is forwarded with its trailing newline
/// trimmed, continuation pieces at debug level.
unsafe extern "C" fn log_to_rust(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for this call.
    let text = unsafe { CStr::from_ptr(text) };
    let level = match level {
        sys::ggml_log_level_GGML_LOG_LEVEL_ERROR => log::Level::Error,
        sys::ggml_log_level_GGML_LOG_LEVEL_WARN => log::Level::Warn,
        sys::ggml_log_level_GGML_LOG_LEVEL_INFO => log::Level::Info,
        _ => log::Level::Debug,
    };
    if !log::log_enabled!(target: "llama.cpp", level) {
        return;
    }
    let text = text.to_string_lossy();
    let line = text.trim_end_matches('\n');
    if line.is_empty() {
        return;
    }
    // A logger that panics must not unwind into C.
    let _ = std::panic::catch_unwind(|| log::log!(target: "llama.cpp", level, "{line}"));
}
