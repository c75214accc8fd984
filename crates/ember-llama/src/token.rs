//! [`Token`] ids and the UTF-8-safe streaming [`TokenDecoder`].

use std::fmt;

/// A token id of a model's vocabulary.
///
/// Any `i32` can be wrapped; functions that hand a token to llama.cpp check it against the
/// vocabulary first and return [`Error::TokenOutOfRange`](crate::Error::TokenOutOfRange).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub i32);

impl Token {
    /// The raw id.
    pub fn id(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i32> for Token {
    fn from(id: i32) -> Self {
        Token(id)
    }
}

/// Turns a stream of token pieces (bytes) into text without ever splitting a UTF-8
/// character: bytes of an incomplete character are held until the rest arrives.
///
/// Byte sequences that can never become valid UTF-8 are replaced by U+FFFD, so every
/// string returned is valid and their concatenation is the lossy decoding of all bytes.
///
/// ```
/// let mut decoder = ember_llama::TokenDecoder::new();
/// let crab = "🦀".as_bytes();
/// assert_eq!(decoder.push(&crab[..2]), "");
/// assert_eq!(decoder.push(&crab[2..]), "🦀");
/// assert_eq!(decoder.finish(), "");
/// ```
#[derive(Clone, Debug, Default)]
pub struct TokenDecoder {
    pending: Vec<u8>,
}

impl TokenDecoder {
    /// A decoder with nothing held.
    pub fn new() -> Self {
        TokenDecoder::default()
    }

    /// Adds a piece's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix up to `valid` is UTF-8 by the error's contract.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: keep it for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never be valid: replace them and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whether bytes of an incomplete character are held.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: held bytes of an unfinished character become U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
