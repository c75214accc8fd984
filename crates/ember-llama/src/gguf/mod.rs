//! A bounds-checked reader of a GGUF file's header, metadata and tensor directory.
//!
//! llama.cpp's own parser handles most damaged files, but some damage reaches a
//! `GGML_ASSERT` (which aborts the process) or reads past an array. [`validate`] checks
//! the structure in safe Rust first: every length against the bytes left in the file, every
//! type tag, the keys llama.cpp reads with fixed types, and every tensor's data range.
//! [`Model::load`](crate::Model::load) runs it before handing the path to llama.cpp.
//!
//! Its container rules are ggml's own (`gguf_init_from_file`): tensors packed in directory
//! order, names under 64 bytes, 0 to 4 dimensions, and so on. A differential test and the
//! `gguf` fuzz target hold the two parsers to the same answer on the same bytes, both ways.

mod check;
mod keys;
mod reader;
mod value;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ember_llama_sys as sys;

use crate::error::{Error, Result};

use check::{check, Rules};
use reader::Reader;

/// What [`validate`] learnt about a file.
#[derive(Clone, Debug)]
pub struct GgufSummary {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Number of metadata keys.
    pub n_kv: u64,
    /// Number of tensors.
    pub n_tensors: u64,
    /// `general.architecture`, if present.
    pub architecture: Option<String>,
}

/// Checks that `path` is a GGUF file llama.cpp can parse without tripping an assertion.
///
/// # Errors
///
/// [`Error::ModelFile`] when the file cannot be opened, [`Error::InvalidGguf`] naming the
/// first problem (with its byte offset) otherwise.
pub fn validate(path: &Path) -> Result<GgufSummary> {
    validate_with(path, Rules::Llama)
}

/// [`validate`] with ggml's container rules only: accepts exactly the files ggml's own
/// `gguf_init_from_file` accepts when it reads no tensor data. The differential tests and the
/// `gguf` fuzz target hold the two parsers to that; [`validate`] is this plus the rules of
/// llama.cpp's loader.
///
/// # Errors
///
/// As [`validate`].
#[doc(hidden)]
pub fn validate_container(path: &Path) -> Result<GgufSummary> {
    validate_with(path, Rules::Ggml)
}

/// Whether ggml's own parser (`gguf_init_from_file`, no tensor data read) accepts the file:
/// the other side of the differential tests and the `gguf` fuzz target.
#[doc(hidden)]
pub fn ggml_accepts(path: &Path) -> bool {
    let Some(c_path) = path.to_str().and_then(|p| std::ffi::CString::new(p).ok()) else {
        return false;
    };
    let params = sys::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    // SAFETY: a NUL-terminated path; no_alloc with no ggml context to fill.
    let ctx = unsafe { sys::gguf_init_from_file(c_path.as_ptr(), params) };
    if ctx.is_null() {
        return false;
    }
    // SAFETY: a context gguf_init_from_file returned, freed once.
    unsafe { sys::gguf_free(ctx) };
    true
}

fn validate_with(path: &Path, rules: Rules) -> Result<GgufSummary> {
    let file = File::open(path).map_err(|error| Error::ModelFile {
        path: path.to_path_buf(),
        error,
    })?;
    let len = file
        .metadata()
        .map_err(|error| Error::ModelFile {
            path: path.to_path_buf(),
            error,
        })?
        .len();
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Error::InvalidGguf {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let mut reader = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
    };
    check(&mut reader, rules).map_err(|reason| Error::InvalidGguf {
        path: path.to_path_buf(),
        reason,
    })
}
