//! [`GenerationStats`]: token counts and timings of a generation.

use std::time::Duration;

/// Counters of a generation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens (all of them, including those reused from the KV cache).
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV was already cached and not decoded again (only the
    /// [`BatchGenerator`](crate::BatchGenerator) reuses prompt prefixes).
    pub cached_prompt_tokens: usize,
    /// Time to decode the prompt.
    pub prompt_time: Duration,
    /// Tokens sampled (including a final end-of-generation token).
    pub generated_tokens: usize,
    /// Time from the end of the prompt to the last token (decoding, sampling, text).
    pub generation_time: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prompt_time)
    }

    /// Generated tokens per second.
    pub fn generation_tokens_per_second(&self) -> f64 {
        per_second(self.generated_tokens, self.generation_time)
    }
}

fn per_second(n: usize, t: Duration) -> f64 {
    let secs = t.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}
