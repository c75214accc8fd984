//! Run with: `cargo run --release --example sysinfo -- models/gemma-3-270m-q4_k_m.gguf`
//!
//! Prints llama.cpp's system info (the CPU features the statically linked ggml was built
//! for) and a GGUF model's metadata, through the raw `ember-llama-sys` bindings.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use ember::llama_sys as sys;

/// Print llama.cpp's system info and a GGUF model's metadata.
#[derive(Parser)]
struct Args {
    /// GGUF model to describe (default: $EMBER_TEST_MODEL).
    model: Option<PathBuf>,
    /// Print llama.cpp's own log lines on stderr.
    #[arg(long)]
    verbose: bool,
}

/// Drops llama.cpp's log lines (it logs to stderr by default).
unsafe extern "C" fn quiet_log(
    _level: sys::ggml_log_level,
    _text: *const c_char,
    _user: *mut c_void,
) {
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let path = match args
        .model
        .or_else(|| std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from))
    {
        Some(path) => path,
        None => bail!(
            "no model given: pass a GGUF path or set EMBER_TEST_MODEL (build-support/fetch-model)"
        ),
    };
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    let c_path =
        CString::new(path.as_os_str().as_encoded_bytes()).context("model path holds a NUL byte")?;

    if !args.verbose {
        // SAFETY: `quiet_log` matches ggml_log_callback and ignores its pointers; a null user
        // data pointer is allowed.
        unsafe { sys::llama_log_set(Some(quiet_log), std::ptr::null_mut()) };
    }
    // SAFETY: called once, before any other llama.cpp call that needs the backend.
    unsafe { sys::llama_backend_init() };
    // SAFETY: returns a pointer to a static NUL-terminated string owned by llama.cpp.
    let info = unsafe { CStr::from_ptr(sys::llama_print_system_info()) };
    println!("llama.cpp system info: {}", info.to_string_lossy().trim());

    // SAFETY: plain value constructor with no preconditions.
    let params = unsafe { sys::llama_model_default_params() };
    // SAFETY: `c_path` is a valid NUL-terminated path; the result is null on failure.
    let model = unsafe { sys::llama_model_load_from_file(c_path.as_ptr(), params) };
    if model.is_null() {
        bail!(
            "llama.cpp could not load {} as a GGUF model (run with --verbose to see why)",
            path.display()
        );
    }

    // SAFETY: `model` is non-null and stays valid until llama_model_free below.
    unsafe {
        let desc = read_string(|buf, len| sys::llama_model_desc(model, buf, len));
        println!("model:            {}", path.display());
        println!("description:      {desc}");
        println!(
            "size:             {:.1} MiB",
            sys::llama_model_size(model) as f64 / (1 << 20) as f64
        );
        println!(
            "parameters:       {:.1} M",
            sys::llama_model_n_params(model) as f64 / 1e6
        );
        println!("trained context:  {}", sys::llama_model_n_ctx_train(model));
        println!("embedding size:   {}", sys::llama_model_n_embd(model));
        println!(
            "vocabulary:       {} tokens",
            sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(model))
        );
        let template = sys::llama_model_chat_template(model, std::ptr::null());
        println!(
            "chat template:    {}",
            if template.is_null() { "none" } else { "yes" }
        );
        println!("GGUF metadata:");
        for i in 0..sys::llama_model_meta_count(model) {
            let key =
                read_string(|buf, len| sys::llama_model_meta_key_by_index(model, i, buf, len));
            let value =
                read_string(|buf, len| sys::llama_model_meta_val_str_by_index(model, i, buf, len));
            let value: String = value.chars().take(72).collect();
            println!("  {key:<44} {}", value.replace('\n', "\\n"));
        }
        sys::llama_model_free(model);
        sys::llama_backend_free();
    }
    Ok(())
}

/// Calls a llama.cpp "write into this buffer, return the full length" function, growing the
/// buffer when the first try was too small.
fn read_string(mut call: impl FnMut(*mut c_char, usize) -> i32) -> String {
    let mut buf = vec![0u8; 256];
    for _ in 0..2 {
        let n = call(buf.as_mut_ptr().cast(), buf.len());
        if n < 0 {
            return String::new();
        }
        let n = n as usize;
        if n < buf.len() {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        buf.resize(n + 1, 0);
    }
    String::new()
}
