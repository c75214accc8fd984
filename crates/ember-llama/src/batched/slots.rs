//! The slots of a [`BatchGenerator`] (one sequence of its context each) as their callers see
//! them: what each runs and caches, and an idle slot's cache saved to a file, restored from
//! one, or erased (llama-server's `/slots` actions).

use std::path::Path;

use super::{BatchGenerator, SequenceId};
use crate::error::{Error, Result};

/// One slot of a [`BatchGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    /// The generation running in it, if any.
    pub running: Option<SequenceId>,
    /// Tokens its KV cache holds (a finished or restored prompt, for prefix reuse).
    pub cached_tokens: usize,
}

/// What a slot's save or restore moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFile {
    /// Tokens in the cache saved or restored.
    pub tokens: usize,
    /// Bytes written or read.
    pub bytes: usize,
}

impl BatchGenerator {
    /// Each slot, in order (slot `i` is sequence `i` of the context).
    pub fn slots(&self) -> Vec<SlotState> {
        self.slots
            .iter()
            .map(|s| SlotState {
                running: s.running.as_ref().map(|r| r.id),
                cached_tokens: s.cached.len(),
            })
            .collect()
    }

    /// Writes idle slot `slot`'s cache (its KV and the tokens it holds) to `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when there is no such slot or a generation runs in it;
    /// [`Error::SequenceState`] when the file cannot be written.
    pub fn save_slot(&mut self, slot: usize, path: &Path) -> Result<SlotFile> {
        self.idle_slot(slot)?;
        let s = &self.slots[slot];
        let bytes = self.ctx.save_sequence_state(s.seq, path, &s.cached)?;
        Ok(SlotFile {
            tokens: s.cached.len(),
            bytes,
        })
    }

    /// Replaces idle slot `slot`'s cache with the one saved in `path`: a prompt that starts
    /// with its tokens then decodes only the rest. On failure the slot is left empty.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when there is no such slot or a generation runs in it;
    /// [`Error::SequenceState`] when the file cannot be read as a cache of this model and
    /// context, or holds [`max_sequence_tokens`](BatchGenerator::max_sequence_tokens) or
    /// more tokens.
    pub fn restore_slot(&mut self, slot: usize, path: &Path) -> Result<SlotFile> {
        self.idle_slot(slot)?;
        self.slots[slot].cached.clear();
        let seq = self.slots[slot].seq;
        let (tokens, bytes) =
            self.ctx
                .load_sequence_state(seq, path, self.max_sequence_tokens.saturating_sub(1))?;
        self.clock += 1;
        let s = &mut self.slots[slot];
        s.cached = tokens;
        s.last_used = self.clock;
        Ok(SlotFile {
            tokens: s.cached.len(),
            bytes,
        })
    }

    /// Empties idle slot `slot`'s cache; returns how many tokens it held.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when there is no such slot or a generation runs in it.
    pub fn erase_slot(&mut self, slot: usize) -> Result<usize> {
        self.idle_slot(slot)?;
        let erased = self.slots[slot].cached.len();
        self.clear_slot(slot);
        Ok(erased)
    }

    fn idle_slot(&self, slot: usize) -> Result<()> {
        match self.slots.get(slot) {
            None => Err(Error::InvalidParameter {
                name: "slot",
                reason: format!("no slot {slot}: there are {}", self.slots.len()),
            }),
            Some(s) if s.running.is_some() => Err(Error::InvalidParameter {
                name: "slot",
                reason: format!("slot {slot} is running a generation"),
            }),
            Some(_) => Ok(()),
        }
    }
}
