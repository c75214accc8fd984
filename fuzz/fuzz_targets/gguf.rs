//! GGUF bytes through ember-llama's validator and ggml's own parser (`gguf_init_from_file`),
//! a differential in both directions:
//! - the validator's container rules (`gguf::validate_container`) accept exactly the files
//!   ggml accepts;
//! - what the full validator (`gguf::validate`, which `Model::load` runs) accepts, ggml
//!   accepts too, and loading it as a model is an error or a model, never an abort.
#![no_main]

use std::io::Write;

use ember_llama::{gguf, Model, ModelParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = file_path();
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .expect("write the input file");
    let container = gguf::validate_container(&path);
    let ggml = gguf::ggml_accepts(&path);
    match (&container, ggml) {
        (Ok(_), false) => panic!("the validator accepted a file ggml rejects"),
        (Err(e), true) => panic!("ggml accepted a file the validator rejects: {e}"),
        _ => {}
    }
    if gguf::validate(&path).is_ok() {
        assert!(ggml, "the full validator accepted a file ggml rejects");
        // Through the exception barrier: an error or a model, never an abort.
        let _ = Model::load(&path, &ModelParams::default().with_vocab_only(true));
    }
});

fn file_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-fuzz-gguf-{}", std::process::id()))
}
