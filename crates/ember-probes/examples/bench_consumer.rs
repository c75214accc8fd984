//! Run with: `build-support/bench-probes` (it builds and drives this program; needs root).
//!
//! The consumer side of the probe benchmark: starts the process-lifecycle probes, prints
//! `ready`, drains events until its stdin closes, then prints one JSON-like line with the events
//! received, its own CPU time (getrusage) over that span, and the drop counters.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ember_probes::Builder;

fn cpu_time_us() -> u64 {
    // SAFETY: rusage is plain old data; all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // EMBER_BENCH_POLL_MS: the poll timer (default 10 ms), to see how its wakeups weigh.
    // EMBER_BENCH_SAMPLE_MS: the /proc CPU/RSS sampling interval (default 1000 ms).
    let env_ms = |name: &str, default: u64| {
        let ms = std::env::var(name).ok().and_then(|v| v.parse().ok());
        Duration::from_millis(ms.unwrap_or(default))
    };
    let probes = Builder::new()
        .oom(false)
        .channel_capacity(1 << 20)
        .poll_interval(env_ms("EMBER_BENCH_POLL_MS", 10))
        .sample_interval(env_ms("EMBER_BENCH_SAMPLE_MS", 1000))
        .start()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        stopper.store(true, Ordering::Relaxed);
    });
    let cpu_start = cpu_time_us();
    println!("ready");
    std::io::stdout().flush()?;
    let mut events = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if probes
            .events()
            .recv_timeout(Duration::from_millis(50))
            .is_ok()
        {
            events += 1 + probes.events().try_iter().count() as u64;
        }
    }
    // Let the poller pick up the last records (it polls every 10 ms), then drain.
    std::thread::sleep(Duration::from_millis(50));
    events += probes.events().try_iter().count() as u64;
    let cpu_us = cpu_time_us() - cpu_start;
    let stats = probes.stats()?;
    println!(
        "events={events} cpu_us={cpu_us} ring_drops={} channel_drops={} submitted={} wakeups={}",
        stats.ring_drops, stats.channel_drops, stats.submitted, stats.wakeups
    );
    probes.stop()?;
    Ok(())
}
