//! [`Batch`]: tokens with positions and sequence ids, handed to
//! [`Context::decode`](crate::Context::decode).

use ember_llama_sys as sys;

use crate::error::{Error, Result};
use crate::token::Token;

/// A fixed-capacity batch of tokens for [`Context::decode`](crate::Context::decode).
///
/// Each entry is a token at a position in one or more sequences, with a flag asking for its
/// logits (or embedding). Adding past the capacity is an [`Error::BatchFull`].
///
/// ```
/// use ember_llama::{Batch, Token};
/// let mut batch = Batch::new(2, 1);
/// batch.add(Token(1), 0, &[0], false)?;
/// batch.add(Token(2), 1, &[0], true)?;
/// assert!(batch.add(Token(3), 2, &[0], true).is_err());
/// # Ok::<(), ember_llama::Error>(())
/// ```
#[derive(Debug)]
pub struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
    n_seq_max: usize,
    len: usize,
}

// SAFETY: the batch owns its arrays (allocated by llama_batch_init, freed once in Drop) and
// no other value points into them, so it can move to another thread.
unsafe impl Send for Batch {}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from llama_batch_init and is freed exactly once.
        unsafe { sys::llama_batch_free(self.raw) };
    }
}

impl Batch {
    /// A batch for up to `capacity` tokens, each in at most `n_seq_max` sequences (both at
    /// least 1).
    pub fn new(capacity: usize, n_seq_max: usize) -> Batch {
        let capacity = capacity.clamp(1, i32::MAX as usize);
        let n_seq_max = n_seq_max.clamp(1, i32::MAX as usize);
        // SAFETY: both sizes are positive and fit i32; the arrays it allocates are
        // `capacity` long (seq_id entries `n_seq_max` long) and are only written below with
        // bounds checks.
        let raw = unsafe { sys::llama_batch_init(capacity as i32, 0, n_seq_max as i32) };
        Batch {
            raw,
            capacity,
            n_seq_max,
            len: 0,
        }
    }

    /// Adds `token` at position `pos` in the sequences `seqs`; `output` asks for its logits.
    ///
    /// # Errors
    ///
    /// [`Error::BatchFull`] when full; [`Error::InvalidParameter`] for an empty or too long
    /// `seqs`, or a negative position or sequence.
    pub fn add(&mut self, token: Token, pos: i32, seqs: &[i32], output: bool) -> Result<()> {
        if self.len >= self.capacity {
            return Err(Error::BatchFull {
                capacity: self.capacity,
            });
        }
        if seqs.is_empty() || seqs.len() > self.n_seq_max {
            return Err(Error::InvalidParameter {
                name: "seqs",
                reason: format!(
                    "{} sequence ids, 1..={} allowed",
                    seqs.len(),
                    self.n_seq_max
                ),
            });
        }
        if pos < 0 || seqs.iter().any(|s| *s < 0) {
            return Err(Error::InvalidParameter {
                name: "pos/seqs",
                reason: "positions and sequence ids must not be negative".into(),
            });
        }
        let i = self.len;
        // SAFETY: `i < capacity`, the length of every array llama_batch_init allocated, and
        // each seq_id[i] has room for n_seq_max ids (`seqs.len()` is at most that).
        unsafe {
            *self.raw.token.add(i) = token.0;
            *self.raw.pos.add(i) = pos;
            *self.raw.n_seq_id.add(i) = seqs.len() as i32;
            let dst = *self.raw.seq_id.add(i);
            std::ptr::copy_nonoverlapping(seqs.as_ptr(), dst, seqs.len());
            *self.raw.logits.add(i) = i8::from(output);
        }
        self.len += 1;
        self.raw.n_tokens = self.len as i32;
        Ok(())
    }

    /// Adds `tokens` at consecutive positions from `pos0` in sequence `seq`, asking for the
    /// logits of the last one only when `last_output`.
    ///
    /// # Errors
    ///
    /// As [`Batch::add`]; on error the tokens added so far stay in the batch.
    pub fn add_sequence(
        &mut self,
        tokens: &[Token],
        pos0: i32,
        seq: i32,
        last_output: bool,
    ) -> Result<()> {
        if self.len + tokens.len() > self.capacity {
            return Err(Error::BatchFull {
                capacity: self.capacity,
            });
        }
        for (i, &t) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            let pos = i32::try_from(i)
                .ok()
                .and_then(|i| pos0.checked_add(i))
                .ok_or(Error::InvalidParameter {
                    name: "pos0",
                    reason: "position overflows i32".into(),
                })?;
            self.add(t, pos, &[seq], last && last_output)?;
        }
        Ok(())
    }

    /// Empties the batch (keeps its capacity).
    pub fn clear(&mut self) {
        self.len = 0;
        self.raw.n_tokens = 0;
    }

    /// Tokens in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of tokens.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Token `i`, its position, and whether it asked for output.
    pub(crate) fn entry(&self, i: usize) -> Option<(Token, i32, bool)> {
        if i >= self.len {
            return None;
        }
        // SAFETY: `i < len <= capacity`, and entries below `len` were written by `add`.
        unsafe {
            Some((
                Token(*self.raw.token.add(i)),
                *self.raw.pos.add(i),
                *self.raw.logits.add(i) != 0,
            ))
        }
    }

    /// Sequence ids of entry `i` (`i < len`).
    pub(crate) fn seqs(&self, i: usize) -> &[i32] {
        if i >= self.len {
            return &[];
        }
        // SAFETY: entry `i` was written by `add`: n_seq_id[i] ids at seq_id[i].
        unsafe {
            let n = *self.raw.n_seq_id.add(i) as usize;
            std::slice::from_raw_parts(*self.raw.seq_id.add(i), n)
        }
    }

    pub(crate) fn raw(&self) -> sys::llama_batch {
        self.raw
    }
}
