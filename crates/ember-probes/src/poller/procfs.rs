//! The `/proc` poller, for hosts without BPF: samples the process table on a timer.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{after, Ready};
use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::handle::{Shared, Started};
use crate::probe::{Probe, ProbeState, ProbeStatus};
use crate::wait::Waiter;

pub(crate) fn run_procfs(
    cfg: &Builder,
    shared: &Shared,
    waiter: &Waiter,
    ready: &Ready,
) -> Result<()> {
    let seeded = {
        let mut table = shared.table();
        table.scan_procfs(true).map(|()| table.sample(false))
    };
    if let Err(error) = seeded {
        let _ = ready.send(Err(Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        }));
        return Ok(());
    }
    let _ = ready.send(Ok(Started {
        maps: None,
        probes: Probe::ALL
            .into_iter()
            .map(|probe| ProbeStatus {
                probe,
                state: ProbeState::Off,
            })
            .collect(),
    }));
    let mut next = after(cfg.sample_interval);
    while !shared.stop.load(Ordering::Relaxed) {
        let woken = waiter
            .wait(next.saturating_duration_since(Instant::now()))
            .map_err(|e| Error::Poller(format!("waiting for the next sample: {e}")))?;
        if woken.stop || Instant::now() < next {
            continue;
        }
        let mut table = shared.table();
        table.scan_procfs(true).map_err(|error| Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        })?;
        table.sample(false);
        next = after(cfg.sample_interval);
    }
    Ok(())
}
