//! Run with: `cargo run --release --example sysinfo -- models/gemma-3-270m-q4_k_m.gguf`
//!
//! Prints llama.cpp's system info (the CPU features the statically linked ggml was built
//! for) and a GGUF model's metadata, through the safe `ember-llama` API.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use ember::llama::{cpu, system_info, Model, ModelParams};

/// Print llama.cpp's system info and a GGUF model's metadata.
#[derive(Parser)]
struct Args {
    /// GGUF model to describe (default: $EMBER_TEST_MODEL).
    model: Option<PathBuf>,
    /// Print llama.cpp's own log lines on stderr.
    #[arg(long)]
    verbose: bool,
}

/// ember-llama sends llama.cpp's log lines to the `log` crate: with --verbose, to stderr.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!("{} {}: {}", record.level(), record.target(), record.args());
    }
    fn flush(&self) {}
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
    if args.verbose {
        log::set_logger(&Stderr).expect("the only logger");
        log::set_max_level(log::LevelFilter::Debug);
    }
    let Some(path) = args
        .model
        .or_else(|| std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from))
    else {
        bail!(
            "no model given: pass a GGUF path or set EMBER_TEST_MODEL (build-support/fetch-model)"
        );
    };
    // A locked stdout and `?`: a closed pipe (`| head`) ends the program with an error line,
    // not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(out, "llama.cpp system info: {}", system_info()?)?;
    writeln!(
        out,
        "CPU variant:      {}",
        cpu_variants_line(cpu::variant()?)
    )?;

    // The error names the file and says what is wrong with it (missing, not GGUF, refused).
    let model = Model::load(&path, &ModelParams::default())?;
    let mib = model.size() as f64 / (1 << 20) as f64;
    let template = if model.chat_template().is_some() {
        "yes"
    } else {
        "none"
    };
    writeln!(out, "model:            {}", path.display())?;
    writeln!(out, "description:      {}", model.description())?;
    writeln!(out, "size:             {mib:.1} MiB")?;
    writeln!(
        out,
        "parameters:       {:.1} M",
        model.n_params() as f64 / 1e6
    )?;
    writeln!(out, "trained context:  {}", model.n_ctx_train())?;
    writeln!(out, "embedding size:   {}", model.n_embd())?;
    writeln!(out, "vocabulary:       {} tokens", model.n_vocab())?;
    writeln!(out, "chat template:    {template}")?;
    writeln!(out, "GGUF metadata:")?;
    for (key, value) in model.metadata() {
        let value: String = value.chars().take(72).collect();
        writeln!(out, "  {key:<44} {}", value.replace('\n', "\\n"))?;
    }
    Ok(())
}

/// `haswell (of x64, sse42, ..., +haswell, zen4; + runs here)`: the variant in use among
/// those the binary carries, or the fixed name of a one-backend build.
fn cpu_variants_line(chosen: &str) -> String {
    let variants = cpu::variants();
    if variants.is_empty() {
        return format!("{chosen} (one CPU backend in this build)");
    }
    let all: Vec<String> = variants
        .iter()
        .map(|v| format!("{}{}", if v.runnable { "+" } else { "" }, v.name))
        .collect();
    format!("{chosen} (of {}; + runs here)", all.join(", "))
}
