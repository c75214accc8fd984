//! `cargo xtask`: ember's build tasks that handle data (read TOML, write JSON, compute
//! statistics). Shell stays where it drives apt, chroots, images and benchmarks' processes;
//! what those scripts measure is summarised here.

mod bench;
mod chart;
mod cpu_symbols;
mod docs_rs;
mod json;
mod package;
mod probes;
mod stats;
// The build script's check that ember's llama.cpp is private, tested here (build scripts have
// no test harness); cpu_symbols uses its name rule on linked binaries.
#[cfg_attr(not(test), allow(dead_code))]
#[path = "../../crates/ember-llama-sys/build/symcheck.rs"]
mod symcheck;
#[cfg(test)]
mod symcheck_tests;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ember's build tasks (run from anywhere in the checkout).
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Print the build version `yymmddhhmm-<short sha>`: HEAD's UTC commit time and sha
    /// (EMBER_VERSION, when set, is checked and printed as is: a Docker build has no .git).
    Version,
    /// Print (or check) the /version.json an ember image carries.
    VersionJson(version::JsonArgs),
    /// `cargo package` (verified) of the six published crates, with the third-party files
    /// they build with staged in; prints each .crate's size and fails above crates.io's limit.
    Package(package::Args),
    /// Stage (or unstage) the files docs.rs builds ember-llama-sys and ember-probes from, or
    /// print each crate's docs.rs `cargo doc` flags (build-support/check-docs-rs).
    #[command(subcommand)]
    DocsRs(docs_rs::Task),
    /// Summaries and helpers for build-support/bench, bench-probes and bench-insight.
    #[command(subcommand)]
    Bench(BenchTask),
    /// Statistics over numbers the benchmark scripts measured.
    #[command(subcommand)]
    Stats(StatsTask),
    /// Check a binary linked with ember-llama-sys' CPU variants (built with symbols): each
    /// variant once, only its renamed entry points global, no ggml-cpu internal global.
    CpuSymbols(cpu_symbols::Args),
    /// Print values from the JSON document on stdin, tab-separated, one line.
    Json {
        /// Dotted paths: `0.avg_ts` is field avg_ts of the first array element; a missing
        /// value is an error.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchTask {
    /// build-support/bench's report: the table on stdout; bench.csv, bench.json and
    /// bench.svg written into OUT (from OUT/runs.tsv, builds.tsv, devices.tsv, probes.txt).
    Report(bench::ReportArgs),
    /// build-support/bench-probes' summary (numbered figures 1-4) from its scratch folder.
    ProbesReport(probes::ReportArgs),
    /// Kernel run time of our BPF programs: `name run_time_ns run_cnt` per program that is
    /// in LOADED and not in BEFORE (bpftool prog show --json files), as NOW reports it.
    BpfStats {
        /// Programs listed before our consumer loaded its own.
        before: PathBuf,
        /// Programs listed once our consumer had loaded.
        loaded: PathBuf,
        /// Programs listed after the run (their stats).
        now: PathBuf,
    },
    /// The executable of the named target from `cargo build --message-format=json` on stdin.
    Executable {
        /// The target's name (e.g. llama_bench).
        name: String,
    },
}

#[derive(Subcommand)]
enum StatsTask {
    /// The median of the numbers in FILE (or stdin), one per line.
    Median {
        /// A file of numbers; stdin when absent.
        file: Option<PathBuf>,
        /// Digits after the point.
        #[arg(long, default_value_t = 3)]
        digits: usize,
    },
    /// NUMERATOR / DENOMINATOR (a ratio, or a rate as count / seconds).
    Ratio {
        /// The numerator.
        numerator: f64,
        /// The denominator (not 0).
        denominator: f64,
        /// Digits after the point.
        #[arg(long, default_value_t = 4)]
        digits: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Version => version::current().map(|v| println!("{v}")),
        Task::VersionJson(args) => version::json(&args),
        Task::Package(args) => package::run(&args),
        Task::DocsRs(task) => docs_rs::run(&task),
        Task::Bench(BenchTask::Report(args)) => bench::report(&args),
        Task::Bench(BenchTask::ProbesReport(args)) => probes::report(&args),
        Task::Bench(BenchTask::BpfStats {
            before,
            loaded,
            now,
        }) => probes::bpf_stats(&before, &loaded, &now),
        Task::Bench(BenchTask::Executable { name }) => json::cargo_executable(&name),
        Task::Stats(StatsTask::Median { file, digits }) => {
            stats::median_of(file.as_deref()).map(|m| println!("{m:.digits$}"))
        }
        Task::Stats(StatsTask::Ratio {
            numerator,
            denominator,
            digits,
        }) => stats::ratio(numerator, denominator).map(|r| println!("{r:.digits$}")),
        Task::CpuSymbols(args) => cpu_symbols::run(&args),
        Task::Json { paths } => json::get(&paths),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The checkout's root (xtask/ lives in it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}
