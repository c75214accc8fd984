//! Timestamps in a sliding window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timestamps in a window, pruned on read.
#[derive(Default)]
pub(super) struct Window {
    times: VecDeque<Instant>,
}

impl Window {
    pub(super) fn push(&mut self, t: Instant) {
        self.times.push_back(t);
    }

    pub(super) fn count(&mut self, now: Instant, span: Duration) -> usize {
        while self
            .times
            .front()
            .is_some_and(|&t| now.duration_since(t) > span)
        {
            self.times.pop_front();
        }
        self.times.len()
    }
}
