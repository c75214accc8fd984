//! KV cache ("memory") operations of a [`Context`]: clear, remove and copy sequence
//! ranges, for prompt-prefix reuse and multi-sequence work.

use ember_llama_sys as sys;

use crate::context::Context;
use crate::error::Result;

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
    /// [`Error::SequenceOutOfRange`](crate::Error::SequenceOutOfRange).
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
    /// [`Error::SequenceOutOfRange`](crate::Error::SequenceOutOfRange).
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

    /// The highest position cached for `seq`, `None` when it is empty.
    ///
    /// # Errors
    ///
    /// [`Error::SequenceOutOfRange`](crate::Error::SequenceOutOfRange).
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
