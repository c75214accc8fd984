//! Run with: `build-support/kernel-matrix` (it builds this program static and runs it inside a
//! VM per kernel, and on the host; needs root).
//!
//! The probe check of the kernel matrix: starts every probe, runs a marker workload (the command
//! after `--`), and prints what each probe saw, one `check:` line per fact:
//!
//! ```text
//! check: kernel 6.1.0-57-amd64
//! check: probe exec up 212                  (events; histogram samples for run_queue, block_io)
//! check: probe oom down 0 <reason>
//! check: lost 0 ring 0 channel
//! check: marker oom seen pid 391 argv dd if=/dev/zero of=/dev/null bs=64M count=1
//! check: result ok
//! ```
//!
//! Markers, each asked for by an option: `--exit-code N` (a process exited with N),
//! `--failed-exec PATH` (an execve of PATH failed), `--tcp-port PORT` (a TCP connection on
//! loopback to or from PORT closed), `--oom-arg WORD` (the OOM killer chose a process whose
//! command line holds WORD, found through its exec event, since an OOM event from a kernel
//! whose `oom:mark_victim` passes the pid only carries nothing else; where it carries the task,
//! its memory figures must be there too), `--block-io` (block I/O requests completed),
//! `--execs N` (at least N execs). The result is `fail` (and the exit status 1) when a probe is
//! down, an up probe saw nothing, an event was lost, or a marker was missing. `--require-all`
//! starts the probes with `require_all_probes(true)`, as `insightd --require-all-probes` does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ember_probes::{Builder, Event, HistogramKind, OomEvent, Probe, ProbeState};

#[derive(Default)]
struct Args {
    require_all: bool,
    exit_code: Option<i32>,
    failed_exec: Option<String>,
    tcp_port: Option<u16>,
    oom_arg: Option<String>,
    block_io: bool,
    execs: u64,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--require-all" => args.require_all = true,
            "--exit-code" => args.exit_code = Some(number(&value()?)?),
            "--failed-exec" => args.failed_exec = Some(value()?),
            "--tcp-port" => args.tcp_port = Some(number(&value()?)?),
            "--oom-arg" => args.oom_arg = Some(value()?),
            "--block-io" => args.block_io = true,
            "--execs" => args.execs = number(&value()?)?,
            "--" => {
                args.command = it.collect();
                break;
            }
            _ => {
                return Err(format!(
                    "unknown option {arg} (see the top of kernel_check.rs)"
                ))
            }
        }
    }
    if args.command.is_empty() {
        return Err("no workload: kernel_check [OPTIONS] -- COMMAND [ARGS...]".into());
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// What the events showed, folded as they arrive.
#[derive(Default)]
struct Seen {
    per_probe: HashMap<Probe, u64>,
    /// pid -> argv of its last exec (to name an OOM victim that came with its pid only).
    argv: HashMap<u32, String>,
    exit_code: Option<u32>,
    failed_exec: Option<(u32, i32)>,
    tcp: Option<String>,
    oom: Vec<OomEvent>,
}

impl Seen {
    fn add(&mut self, event: &Event, args: &Args) {
        let probe = match event {
            Event::Exec(e) => {
                self.argv.insert(e.pid, e.argv.join(" "));
                Probe::Exec
            }
            Event::Fork(_) => Probe::Fork,
            Event::Exit(e) => {
                if args.exit_code.is_some() && e.status.code() == args.exit_code {
                    self.exit_code.get_or_insert(e.pid);
                }
                Probe::Exit
            }
            Event::ExecFailed(e) => {
                if args.failed_exec.as_deref() == Some(e.filename.as_str()) {
                    self.failed_exec.get_or_insert((e.pid, e.ret));
                }
                Probe::ExecFailed
            }
            Event::Oom(e) => {
                self.oom.push(e.clone());
                Probe::Oom
            }
            Event::Tcp(e) => {
                let ports = [e.sport, e.dport];
                if args.tcp_port.is_some_and(|p| ports.contains(&p)) && loopback(e.daddr) {
                    self.tcp.get_or_insert(format!(
                        "{}:{} -> {}:{} rx {} tx {} bytes",
                        e.saddr, e.sport, e.daddr, e.dport, e.rx_bytes, e.tx_bytes
                    ));
                }
                Probe::Tcp
            }
            _ => return,
        };
        *self.per_probe.entry(probe).or_default() += 1;
    }
}

fn loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        // An IPv4 connection on a dual-stack socket shows as ::ffff:127.0.0.1.
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            println!("check: result fail");
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("check: kernel {}", release.trim());
    let started = Instant::now();
    let probes = Builder::new()
        .failed_execs(true)
        .tcp(true)
        .run_queue_latency(true)
        .block_io_latency(true)
        .channel_capacity(1 << 20)
        .require_all_probes(args.require_all)
        .start()?;
    println!("check: started in {} ms", started.elapsed().as_millis());
    let mut child = Command::new(&args.command[0])
        .args(&args.command[1..])
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", args.command[0]))?;
    let mut seen = Seen::default();
    let status = loop {
        for event in probes.events().try_iter() {
            seen.add(&event, args);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(event) = probes.events().recv_timeout(Duration::from_millis(20)) {
            seen.add(&event, args);
        }
    };
    // The poller reads the ring buffer every 10 ms: give it the last records.
    std::thread::sleep(Duration::from_millis(200));
    for event in probes.events().try_iter() {
        seen.add(&event, args);
    }
    println!("check: workload {status}");

    let mut ok = status.success();
    for p in probes.probes() {
        let count = match p.probe {
            Probe::RunQueue => probes.histogram(HistogramKind::RunQueue)?.count(),
            Probe::BlockIo => probes.histogram(HistogramKind::BlockIo)?.count(),
            probe => seen.per_probe.get(&probe).copied().unwrap_or(0),
        };
        match &p.state {
            ProbeState::Up => {
                println!("check: probe {} up {count}", p.probe);
                // No OOM kill needs to happen unless asked for; every other probe fires on
                // any workload.
                ok &= count > 0 || (p.probe == Probe::Oom && args.oom_arg.is_none());
            }
            ProbeState::Down { reason } => {
                let reason = reason.replace('\n', " | ");
                println!("check: probe {} down 0 {reason}", p.probe);
                ok = false;
            }
            _ => println!("check: probe {} off 0", p.probe),
        }
    }
    let stats = probes.stats()?;
    println!(
        "check: lost {} ring {} channel (received {}, submitted {})",
        stats.ring_drops, stats.channel_drops, stats.received, stats.submitted
    );
    ok &= stats.ring_drops == 0 && stats.channel_drops == 0;

    let mut marker = |name: &str, found: Option<String>| match found {
        Some(detail) => println!("check: marker {name} seen {detail}"),
        None => {
            println!("check: marker {name} missing");
            ok = false;
        }
    };
    if let Some(code) = args.exit_code {
        marker(
            &format!("exit-code-{code}"),
            seen.exit_code.map(|pid| format!("pid {pid}")),
        );
    }
    if let Some(path) = &args.failed_exec {
        marker(
            "failed-exec",
            seen.failed_exec
                .map(|(pid, ret)| format!("pid {pid} {path} returned {ret}")),
        );
    }
    if args.tcp_port.is_some() {
        marker("tcp", seen.tcp.clone());
    }
    if let Some(word) = &args.oom_arg {
        // With the task in the tracepoint's arguments (comm set) the figures must be there too:
        // a victim that touched tens of MiB shows them (read from the mm as the kernel does).
        let victim = seen.oom.iter().find_map(|e| {
            let argv = seen.argv.get(&e.pid)?;
            let figures = e.comm.is_empty() || (e.total_vm_bytes > 0 && e.anon_rss_bytes > 0);
            (argv.contains(word.as_str()) && figures).then(|| {
                format!(
                    "pid {} comm {:?} total-vm {} KiB anon-rss {} KiB argv {argv}",
                    e.pid,
                    e.comm,
                    e.total_vm_bytes >> 10,
                    e.anon_rss_bytes >> 10
                )
            })
        });
        marker("oom", victim);
    }
    if args.block_io {
        let n = probes.histogram(HistogramKind::BlockIo)?.count();
        marker("block-io", (n > 0).then(|| format!("{n} requests")));
    }
    if args.execs > 0 {
        let n = seen.per_probe.get(&Probe::Exec).copied().unwrap_or(0);
        marker(
            "execs",
            (n >= args.execs).then(|| format!("{n} >= {}", args.execs)),
        );
    }
    probes.stop()?;
    println!("check: result {}", if ok { "ok" } else { "fail" });
    Ok(ok)
}
