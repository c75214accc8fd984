//! Which variant of ggml's CPU backend runs.
//!
//! A default x86-64 Linux build of `ember-llama-sys` links ggml's CPU backend once per
//! instruction-set variant (`x64`, `sse42`, `sandybridge`, `haswell`, `skylakex`, `icelake`,
//! `alderlake`, `zen4`; `EMBER_LLAMA_CPU_VARIANTS` at build time chooses others), an aarch64
//! Linux build once per ARM variant (`armv8.0_1`, `armv8.2_2`, `armv8.6_1`, `armv8.6_2`), and
//! one of them runs: the one upstream's score rates highest among those this CPU and OS support
//! (CPUID and XCR0 on x86, the kernel's HWCAPs on ARM), or the one the environment variable
//! `EMBER_LLAMA_CPU_VARIANT` names. The choice is made once
//! per process, by the first [`variant`] call ([`Model::load`](crate::Model::load) makes it),
//! and nothing of a variant runs before it.
//!
//! Builds with one CPU backend (feature `native`, other targets, `system`) report a fixed
//! name and no variants.
//!
//! # Example
//!
//! ```no_run
//! let name = ember_llama::cpu::variant()?;
//! for v in ember_llama::cpu::variants() {
//!     let mark = if v.name == name { "*" } else if v.runnable { "+" } else { " " };
//!     println!("{mark} {:<12} {}", v.name, v.features.join(" "));
//! }
//! # Ok::<(), ember_llama::Error>(())
//! ```

use std::ffi::{c_char, CStr};

use ember_llama_sys as sys;

use crate::error::{Error, Result};

/// One CPU variant linked into this binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuVariant {
    /// Upstream's name for it (`haswell`, `armv8.2_2`, ...).
    pub name: &'static str,
    /// The ggml ISA options it was compiled with (`AVX2`, `AVX512_VNNI`, ...; on ARM `DOTPROD`,
    /// `SVE`, ...); none for `x64` and `armv8.0_1`.
    pub features: Vec<&'static str>,
    /// Whether this CPU has those instruction sets and the OS has enabled their registers.
    pub runnable: bool,
}

/// The CPU variant this process runs, choosing it on the first call.
///
/// # Errors
///
/// [`Error::CpuVariant`] when `EMBER_LLAMA_CPU_VARIANT` names a variant this binary lacks or
/// this CPU cannot run, or when no variant of this binary runs on this CPU. Every later call
/// gives the same answer.
pub fn variant() -> Result<&'static str> {
    let mut name: *const c_char = std::ptr::null();
    let mut reason = [0u8; 512];
    // SAFETY: `name` and `reason` (`reason.len()` bytes) are writable; the call writes a
    // NUL-terminated string into `reason` on failure and a pointer to a static string into
    // `name` on success.
    let status =
        unsafe { sys::ember_cpu_select(&mut name, reason.as_mut_ptr().cast(), reason.len()) };
    if status != 0 || name.is_null() {
        let reason = CStr::from_bytes_until_nul(&reason)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(Error::CpuVariant { reason });
    }
    // SAFETY: on success `name` points to a NUL-terminated literal of the dispatcher, in
    // static storage for the whole process.
    Ok(unsafe { static_str(name) })
}

/// Every CPU variant linked into this binary, in upstream's order; empty for builds with one
/// CPU backend.
pub fn variants() -> Vec<CpuVariant> {
    // SAFETY: no arguments; reads the dispatcher's static table.
    let count = unsafe { sys::ember_cpu_variant_count() };
    (0..count)
        .filter_map(|i| {
            let mut name: *const c_char = std::ptr::null();
            let mut features: *const c_char = std::ptr::null();
            let mut runnable = 0;
            // SAFETY: `i` is below the count; the three out pointers are writable.
            let status =
                unsafe { sys::ember_cpu_variant_info(i, &mut name, &mut features, &mut runnable) };
            if status != 0 || name.is_null() || features.is_null() {
                return None;
            }
            // SAFETY: both point to NUL-terminated literals in the dispatcher's static table.
            let (name, features) = unsafe { (static_str(name), static_str(features)) };
            Some(CpuVariant {
                name,
                features: features.split_whitespace().collect(),
                runnable: runnable != 0,
            })
        })
        .collect()
}

/// # Safety
///
/// `text` must point to a NUL-terminated string that lives for the whole process.
unsafe fn static_str(text: *const c_char) -> &'static str {
    // SAFETY: guaranteed by the caller; the dispatcher's strings are ASCII.
    unsafe { CStr::from_ptr(text) }.to_str().unwrap_or("?")
}
