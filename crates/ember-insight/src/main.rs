//! `insightd`: see the crate's README, or `insightd --help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use ember_insight::cli::Cli;
use ember_insight::config::Config;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::new().filter_or("INSIGHTD_LOG", "info,llama.cpp=warn"),
    )
    .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_cli(&cli)?;
    if cli.once {
        let report = ember_insight::server::once(config, cli.duration)?;
        let mut out = std::io::stdout().lock();
        out.write_all(report.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Few async threads: the work is small handlers; generations run on blocking threads.
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .thread_name("insightd-http")
        .build()?;
    runtime.block_on(ember_insight::server::serve(config))
}
