//! Run with: `sudo cargo run --example execsnoop --no-default-features --features probes,vendored -- [--json]`
//!
//! One line per exec, like libbpf-tools' execsnoop: time (UTC), pid, ppid, what `execve` returned
//! (0, or a negative errno for a failed exec) and the command line (its first 256 bytes).
//! `--json` prints one JSON object per line instead. Failed execs come from the classic
//! `syscalls` tracepoints, which need tracefs; without it only successful execs are shown.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use ember::probes::{Builder, Error, Event, RecvTimeoutError};

/// Trace new processes.
#[derive(Parser)]
struct Args {
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Only show commands whose name contains this string.
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Exit after this many execs.
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`execsnoop | head`) is a normal way to stop.
        Err(err)
            if err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let builder = Builder::new().oom(false);
    let probes = match builder.clone().failed_execs(true).start() {
        Err(err @ Error::Attach { .. }) => {
            eprintln!("warning: failed execs will not be shown: {err}");
            builder.start()
        }
        started => started,
    }
    .context("starting the exec probe")?;
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut out = io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:<8} {:<7} {:<7} {:>3} ARGS",
            "TIME", "PID", "PPID", "RET"
        )?;
        out.flush()?;
    }
    let mut shown = 0u64;
    while args.count.is_none_or(|n| shown < n) && deadline.is_none_or(|d| Instant::now() < d) {
        let event = match probes.events().recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break, // the poller failed: stop() says why
        };
        let Some(exec) = Exec::from_event(event) else {
            continue;
        };
        if args
            .name
            .as_ref()
            .is_some_and(|n| !exec.comm.contains(n.as_str()))
        {
            continue;
        }
        if args.json {
            writeln!(out, "{}", json(&exec))?;
        } else {
            let (pid, ppid, ret) = (exec.pid, exec.ppid, exec.ret);
            let line = command_line(&exec);
            writeln!(out, "{:<8} {pid:<7} {ppid:<7} {ret:>3} {line}", clock())?;
        }
        out.flush()?;
        shown += 1;
    }
    let stats = probes.stats()?;
    if stats.ring_drops + stats.channel_drops > 0 {
        eprintln!("lost {} events", stats.ring_drops + stats.channel_drops);
    }
    probes.stop().context("stopping the probes")?;
    Ok(())
}

/// What is shown of a successful exec (`ret` 0) or a failed one (a negative errno).
struct Exec {
    ts_ns: u64,
    pid: u32,
    ppid: u32,
    uid: u32,
    ret: i32,
    cgroup_id: Option<u64>,
    comm: String,
    filename: String,
    argv: Vec<String>,
    argv_truncated: bool,
}

impl Exec {
    fn from_event(event: Event) -> Option<Exec> {
        Some(match event {
            Event::Exec(e) => Exec {
                ret: 0,
                cgroup_id: Some(e.cgroup_id),
                ts_ns: e.ts_ns,
                pid: e.pid,
                ppid: e.ppid,
                uid: e.uid,
                comm: e.comm,
                filename: e.filename,
                argv: e.argv,
                argv_truncated: e.argv_truncated,
            },
            Event::ExecFailed(e) => Exec {
                ret: e.ret,
                cgroup_id: None,
                ts_ns: e.ts_ns,
                pid: e.pid,
                ppid: e.ppid,
                uid: e.uid,
                comm: e.comm,
                filename: e.filename,
                argv: e.argv,
                argv_truncated: e.argv_truncated,
            },
            _ => return None,
        })
    }
}

fn command_line(exec: &Exec) -> String {
    let mut line = if exec.argv.is_empty() {
        exec.filename.clone()
    } else {
        exec.argv.join(" ")
    };
    if exec.argv_truncated {
        line.push_str(" ...");
    }
    line
}

fn json(exec: &Exec) -> serde_json::Value {
    serde_json::json!({
        "time": clock(),
        "ts_ns": exec.ts_ns,
        "pid": exec.pid,
        "ppid": exec.ppid,
        "uid": exec.uid,
        "ret": exec.ret,
        "comm": exec.comm,
        "filename": exec.filename,
        "argv": exec.argv,
        "argv_truncated": exec.argv_truncated,
        "cgroup_id": exec.cgroup_id,
    })
}

/// Wall-clock time of day, UTC, as HH:MM:SS.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
