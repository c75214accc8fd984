//! Arbitrary bytes through the tokenizer and back: every token id it returns is in the
//! vocabulary, and detokenizing never fails on them.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let model = common::vocab();
    let text = String::from_utf8_lossy(data);
    let flags = data.first().copied().unwrap_or(0);
    let Ok(tokens) = model.tokenize(&text, flags & 1 != 0, flags & 2 != 0) else {
        return;
    };
    for &t in &tokens {
        model
            .check_token(t)
            .expect("the tokenizer returned an id outside the vocabulary");
        model
            .token_to_piece(t, flags & 4 != 0)
            .expect("a piece of a valid token");
    }
    let _ = model.detokenize(&tokens, flags & 8 != 0, flags & 16 != 0);
});
