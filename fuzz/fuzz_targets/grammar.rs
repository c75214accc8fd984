//! Arbitrary GBNF through the sampler builder (grammar init goes through the exception
//! barrier): an error or a sampler, never an abort.
#![no_main]

use ember_llama::SamplerBuilder;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (grammar, root) = text.split_once('\u{0}').unwrap_or((text, "root"));
    let _ = SamplerBuilder::new()
        .grammar(grammar, root)
        .select_greedy()
        .build(common::vocab());
});
