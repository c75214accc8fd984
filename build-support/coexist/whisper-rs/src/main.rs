//! ember-llama and whisper-rs in one static binary, each with its own ggml: generates greedy
//! text through ember, prints whisper.cpp's system info (its ggml's CPU features) and checks
//! that whisper.cpp refuses a model that does not exist (build-support/check-coexist).
//!
//! Usage: coexist-whisper-rs [MODEL.gguf [PROMPT]]   (MODEL default: $EMBER_TEST_MODEL)

use std::path::Path;
use std::process::ExitCode;

use whisper_rs::{WhisperContext, WhisperContextParameters};

#[path = "../../common.rs"]
mod common;
use common::Result;

const MISSING_MODEL: &str = "/nonexistent/ggml-tiny.en.bin";

fn main() -> ExitCode {
    common::main_with(run)
}

fn run(model: &Path, prompt: &str) -> Result<()> {
    let text = common::ember(model, prompt)?;
    println!("ember:       {text:?}");
    if text.is_empty() {
        return Err("ember generated no text".into());
    }

    println!(
        "whisper.cpp {}: {}",
        whisper_rs::get_whisper_version(),
        whisper_rs::print_system_info().trim_end()
    );
    // Routes whisper.cpp's and its ggml's logs to `log` (no logger: dropped), so the expected
    // failure below prints only our line.
    whisper_rs::install_logging_hooks();
    match WhisperContext::new_with_params(MISSING_MODEL, WhisperContextParameters::default()) {
        Ok(_) => Err(format!("whisper.cpp loaded {MISSING_MODEL}, which does not exist").into()),
        Err(err) => {
            println!("whisper.cpp: loading {MISSING_MODEL} failed as expected: {err}");
            Ok(())
        }
    }
}
