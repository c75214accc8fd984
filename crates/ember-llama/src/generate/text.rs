//! [`TextStream`]: sampled tokens' bytes in, releasable text out. It holds the bytes of an
//! unfinished UTF-8 character and any text that could still become a stop string, so a
//! stop string is never emitted. Shared by [`Generation`](super::Generation) and the
//! [`BatchGenerator`](crate::BatchGenerator).

use crate::token::TokenDecoder;

#[derive(Debug, Default)]
pub(crate) struct TextStream {
    decoder: TokenDecoder,
    held: String,
    stops: Vec<String>,
    stopped: bool,
}

impl TextStream {
    pub(crate) fn new(stops: &[String]) -> TextStream {
        TextStream {
            stops: stops.to_vec(),
            ..TextStream::default()
        }
    }

    /// Whether a stop string appeared (nothing after it is released).
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds one token's bytes; returns the text that is now decided.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        let fresh = self.decoder.push(bytes);
        self.held.push_str(&fresh);
        self.release()
    }

    /// Ends the stream: returns everything still held (up to a stop string).
    pub(crate) fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let tail = self.decoder.finish();
        self.held.push_str(&tail);
        let out = self.release();
        if self.stopped {
            return out;
        }
        out + &std::mem::take(&mut self.held)
    }

    /// Releases the held text that can no longer start a stop string; stops at a stop.
    fn release(&mut self) -> String {
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let out = self.held[..at].to_string();
            self.held.clear();
            self.stopped = true;
            return out;
        }
        // Keep the longest suffix of `held` that is a prefix of some stop string.
        let mut keep_from = self.held.len();
        for (i, _) in self.held.char_indices().rev() {
            let tail = &self.held[i..];
            if self.stops.iter().any(|s| s.starts_with(tail)) {
                keep_from = i;
            }
        }
        let out = self.held[..keep_from].to_string();
        self.held.drain(..keep_from);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TextStream;

    #[test]
    fn holds_a_possible_stop_and_drops_a_real_one() {
        let mut s = TextStream::new(&["</end>".to_string()]);
        assert_eq!(s.push(b"hello </"), "hello ");
        assert_eq!(s.push(b"en"), "");
        assert_eq!(s.push(b"d> more"), "");
        assert!(s.stopped());
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn releases_a_false_alarm_and_the_tail() {
        let mut s = TextStream::new(&["</end>".to_string()]);
        assert_eq!(s.push(b"a </e"), "a ");
        assert_eq!(s.push(b"x"), "</ex");
        assert_eq!(s.push(b" </"), " ");
        assert!(!s.stopped());
        assert_eq!(s.finish(), "</");
    }

    #[test]
    fn never_splits_a_utf8_character() {
        let mut s = TextStream::new(&[]);
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..2]), "");
        assert_eq!(s.push(&euro[2..]), "€");
    }
}
