//! Arbitrary ring-buffer records through ember-probes' parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(event) = ember_probes::Event::parse(data) {
        let _ = format!("{event:?}");
    }
});
