//! Pieces the llama benchmarks share (a module, not a benchmark target of its own).

use ember::llama::Token;

/// llama-bench's token source is `rand() % n_vocab`; any fixed pseudo-random ids will do.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next pseudo-random token id below `n_vocab`.
    pub fn token(&mut self, n_vocab: i32) -> Token {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Token(((self.0 >> 33) % n_vocab as u64) as i32)
    }
}
