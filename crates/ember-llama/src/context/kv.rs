//! KV cache ("memory") operations of a [`Context`]: clear, remove and copy sequence
//! ranges, for prompt-prefix reuse and multi-sequence work; a sequence's state to and from a
//! file.

use std::path::Path;

use ember_llama_sys as sys;

use crate::context::Context;
use crate::error::{c_string, Error, Result};
use crate::token::Token;

impl Context {
    fn memory(&self) -> sys::llama_memory_t {
        // SAFETY: valid context; the memory handle lives as long as it.
        unsafe { sys::llama_get_memory(self.as_ptr()) }
    }

    /// Empties the KV cache of every sequence.
    pub fn clear_kv(&mut self) {
        let mem = self.memory();
        if !mem.is_null() {
            // SAFETY: `mem` is the context's memory, exclusively borrowed through `self`.
            unsafe { sys::llama_memory_clear(mem, true) };
        }
        self.outputs.clear();
    }

    /// Removes positions `from..to` (`None` = open end) of sequence `seq` from the KV
    /// cache. Returns `false` when llama.cpp cannot remove a partial range (recurrent
    /// models); removing a whole sequence always works.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`].
    pub fn kv_remove(&mut self, seq: i32, from: Option<u32>, to: Option<u32>) -> Result<bool> {
        self.check_seq(seq)?;
        let mem = self.memory();
        if mem.is_null() {
            return Ok(false);
        }
        let p0 = from.map_or(-1, |p| p.min(i32::MAX as u32) as i32);
        let p1 = to.map_or(-1, |p| p.min(i32::MAX as u32) as i32);
        // SAFETY: `seq` is in 0..n_seq_max (llama.cpp asserts that); `mem` is valid.
        Ok(unsafe { sys::llama_memory_seq_rm(mem, seq, p0, p1) })
    }

    /// Copies positions `from..to` (`None` = open end) of sequence `src` to `dst`, sharing
    /// the cached prefix.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`].
    pub fn kv_copy(
        &mut self,
        src: i32,
        dst: i32,
        from: Option<u32>,
        to: Option<u32>,
    ) -> Result<()> {
        self.check_seq(src)?;
        self.check_seq(dst)?;
        let mem = self.memory();
        if mem.is_null() || src == dst {
            return Ok(());
        }
        let p0 = from.map_or(-1, |p| p.min(i32::MAX as u32) as i32);
        let p1 = to.map_or(-1, |p| p.min(i32::MAX as u32) as i32);
        // SAFETY: both sequences are in 0..n_seq_max; `mem` is valid.
        unsafe { sys::llama_memory_seq_cp(mem, src, dst, p0, p1) };
        Ok(())
    }

    /// Writes sequence `seq`'s KV cache, with the `tokens` it holds, to `path` (llama.cpp's
    /// session file format, as llama-server's slot save). Returns the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`]; [`Error::SequenceState`] when llama.cpp cannot write
    /// the file (a missing folder, no permission, a full disk).
    pub fn save_sequence_state(
        &mut self,
        seq: i32,
        path: &Path,
        tokens: &[Token],
    ) -> Result<usize> {
        self.check_seq(seq)?;
        let file = state_path(path)?;
        let ids: Vec<sys::llama_token> = tokens.iter().map(|t| t.0).collect();
        // SAFETY: valid context and sequence; NUL-terminated path; `ids` is read for its
        // length. llama.cpp catches its own exceptions here and returns 0.
        let written = unsafe {
            sys::llama_state_seq_save_file(
                self.as_ptr(),
                file.as_ptr(),
                seq,
                ids.as_ptr(),
                ids.len(),
            )
        };
        if written == 0 {
            return Err(Error::SequenceState {
                action: "write",
                path: path.to_path_buf(),
                reason: "llama.cpp could not write it (is the folder there and writable?)".into(),
            });
        }
        Ok(written)
    }

    /// Replaces sequence `seq`'s KV cache with the state in `path` (written by
    /// [`save_sequence_state`](Context::save_sequence_state), for the same model), holding at
    /// most `max_tokens` tokens. Returns those tokens and the bytes read. On failure the
    /// sequence is left empty.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`]; [`Error::SequenceState`] when the file is missing,
    /// not such a file, made for another model or context layout, or holds more tokens.
    pub fn load_sequence_state(
        &mut self,
        seq: i32,
        path: &Path,
        max_tokens: usize,
    ) -> Result<(Vec<Token>, usize)> {
        self.check_seq(seq)?;
        let file = state_path(path)?;
        if !path.is_file() {
            return Err(Error::SequenceState {
                action: "read",
                path: path.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        self.kv_remove(seq, None, None)?;
        let mut ids: Vec<sys::llama_token> = vec![0; max_tokens];
        let mut n = 0usize;
        // SAFETY: valid context and sequence; NUL-terminated path; llama.cpp writes at most
        // `ids.len()` tokens into `ids` and their count into `n`, and catches its own
        // exceptions (returns 0).
        let read = unsafe {
            sys::llama_state_seq_load_file(
                self.as_ptr(),
                file.as_ptr(),
                seq,
                ids.as_mut_ptr(),
                ids.len(),
                &mut n,
            )
        };
        if read == 0 || n > ids.len() {
            self.kv_remove(seq, None, None)?;
            return Err(Error::SequenceState {
                action: "read",
                path: path.to_path_buf(),
                reason: format!(
                    "llama.cpp could not load it: not a sequence state file of this model and \
                     context, or more than {max_tokens} tokens"
                ),
            });
        }
        Ok((ids[..n].iter().map(|&id| Token(id)).collect(), read))
    }

    /// The highest position cached for `seq`, `None` when it is empty.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`].
    pub fn kv_pos_max(&self, seq: i32) -> Result<Option<u32>> {
        self.check_seq(seq)?;
        let mem = self.memory();
        if mem.is_null() {
            return Ok(None);
        }
        // SAFETY: `seq` is in range; `mem` is valid.
        let pos = unsafe { sys::llama_memory_seq_pos_max(mem, seq) };
        Ok(u32::try_from(pos).ok())
    }
}

fn state_path(path: &Path) -> Result<std::ffi::CString> {
    let text = path.to_str().ok_or_else(|| Error::InvalidParameter {
        name: "path",
        reason: format!("{} is not valid UTF-8", path.display()),
    })?;
    c_string("state file path", text)
}
