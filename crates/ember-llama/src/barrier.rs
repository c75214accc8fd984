//! Calls through ember-llama-sys' exception barrier (`shim/ember_shim.h`): a C++ exception
//! thrown inside llama.cpp comes back as [`Error::Exception`] naming the call, instead of
//! unwinding into Rust (which aborts the process).

use std::ffi::{c_char, c_int, CStr};

use ember_llama_sys as sys;

use crate::error::{Error, Result};

/// Room for the exception's message.
const MESSAGE_BYTES: usize = 512;

/// Runs `call` (a shim function given a message buffer and its length) and maps a caught
/// exception to [`Error::Exception`].
pub(crate) fn guarded(
    what: &'static str,
    call: impl FnOnce(*mut c_char, usize) -> c_int,
) -> Result<()> {
    let mut message = [0 as c_char; MESSAGE_BYTES];
    let status = call(message.as_mut_ptr(), message.len());
    if status == sys::EMBER_OK as c_int {
        return Ok(());
    }
    // SAFETY: the shim NUL-terminates the message within the buffer (it writes at most
    // len - 1 bytes and a NUL); the buffer starts zeroed, so a NUL exists in any case.
    let text = unsafe { CStr::from_ptr(message.as_ptr()) };
    Err(Error::Exception {
        call: what,
        message: text.to_string_lossy().into_owned(),
    })
}
