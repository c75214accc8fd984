//! GGUF bytes through ember-llama's validator; where it accepts, ggml's own parser
//! (`gguf_init_from_file`) must accept the same bytes too, without aborting.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile();
    file.write_all(data).expect("write the input");
    let path = file_path();
    if ember_llama::gguf::validate(&path).is_err() {
        return;
    }
    let c_path = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
    let params = ember_llama_sys::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    // SAFETY: a NUL-terminated path; no_alloc with no ggml context to fill.
    let ctx = unsafe { ember_llama_sys::gguf_init_from_file(c_path.as_ptr(), params) };
    assert!(!ctx.is_null(), "the validator accepted a file ggml rejects");
    // SAFETY: a context gguf_init_from_file returned, freed once.
    unsafe { ember_llama_sys::gguf_free(ctx) };
});

fn file_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-fuzz-gguf-{}", std::process::id()))
}

fn tempfile() -> std::fs::File {
    std::fs::File::create(file_path()).expect("create the input file")
}
