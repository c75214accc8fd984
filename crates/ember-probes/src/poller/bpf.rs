//! The BPF poller: opens, loads and attaches the programs, then reads the ring buffer.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapHandle, RingBufferBuilder};

use super::{after, deliver, retry_eintr, Ready};
use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::events::BatchSender;
use crate::handle::{Maps, Shared, Started};
use crate::probe::{attach_hint, Probe, ProbeState, ProbeStatus};
use crate::skel::{ProbesSkel, ProbesSkelBuilder};
use crate::sys;
use crate::wait::Waiter;

pub(crate) fn load_error(err: &libbpf_rs::Error) -> Error {
    Error::Load {
        message: sys::libbpf_message(err),
    }
}

/// What the programs learn from the running kernel before they are loaded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KernelFacts {
    /// Which raw argument of `block_rq_issue` is the request ([`sys::request_arg`]).
    pub(crate) rq_issue_arg: u32,
}

impl KernelFacts {
    /// Reads what the probes in `on` need (the kernel's BTF only for the block I/O probe).
    pub(crate) fn read(on: &[Probe]) -> KernelFacts {
        KernelFacts {
            rq_issue_arg: if on.contains(&Probe::BlockIo) {
                sys::request_arg("block_rq_issue")
            } else {
                0
            },
        }
    }
}

/// Opens the object and loads the programs of the probes in `on`.
pub(crate) fn open_and_load<'obj>(
    cfg: &Builder,
    facts: KernelFacts,
    on: &[Probe],
    storage: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<ProbesSkel<'obj>> {
    let mut open = ProbesSkelBuilder::default()
        .open(storage)
        .map_err(|e| load_error(&e))?;
    open.maps
        .events
        .set_max_entries(cfg.ring_bytes)
        .map_err(|e| load_error(&e))?;
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.wakeup_bytes = cfg.wakeup_bytes;
        rodata.rq_issue_arg = facts.rq_issue_arg;
    }
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let wanted = Probe::of_program(&name).is_some_and(|p| on.contains(&p));
        prog.set_autoload(wanted);
    }
    open.load().map_err(|e| load_error(&e))
}

/// The program libbpf's log names as the one that failed to load (verifier refusal, CO-RE
/// relocation failure), from its `prog 'NAME': ...` lines, newest first.
pub(crate) fn failed_program(message: &str) -> Option<Probe> {
    message.lines().rev().find_map(|line| {
        let rest = &line[line.find("prog '")? + "prog '".len()..];
        Probe::of_program(&rest[..rest.find('\'')?])
    })
}

/// A down probe, or the error that stops the start when every probe is required.
pub(crate) fn probe_down(cfg: &Builder, probe: Probe, reason: String) -> Result<ProbeState> {
    if cfg.require_all {
        return Err(Error::ProbeDown {
            probe,
            reason: format!(
                "{reason}\n(every probe is required: switch {probe} off, or allow probes to be \
                 down)"
            ),
        });
    }
    Ok(ProbeState::Down { reason })
}

/// Loads the enabled probes; a probe whose program fails to load is marked down and the rest
/// are loaded again without it (libbpf loads an object all or nothing).
pub(crate) fn load_probes<'obj>(
    cfg: &Builder,
    states: &mut [ProbeStatus],
    storages: &'obj mut [MaybeUninit<libbpf_rs::OpenObject>],
) -> Result<ProbesSkel<'obj>> {
    let facts = KernelFacts::read(
        &states
            .iter()
            .filter(|s| s.state == ProbeState::Up)
            .map(|s| s.probe)
            .collect::<Vec<_>>(),
    );
    // One storage per attempt: an object that failed to load stays in its (never dropped)
    // slot, as libbpf-rs leaves it; at most one attempt per probe.
    for storage in storages.iter_mut() {
        let on: Vec<Probe> = states
            .iter()
            .filter(|s| s.state == ProbeState::Up)
            .map(|s| s.probe)
            .collect();
        sys::clear_libbpf_log();
        let err = match open_and_load(cfg, facts, &on, storage) {
            Ok(skel) => return Ok(skel),
            Err(err) => err,
        };
        let Error::Load { message } = &err else {
            return Err(err);
        };
        let Some(probe) = failed_program(message).filter(|p| on.contains(p)) else {
            return Err(err);
        };
        let program = probe.programs()[0].0;
        let reason = format!("loading {program} failed: {message}");
        let state = probe_down(cfg, probe, reason)?;
        if let Some(s) = states.iter_mut().find(|s| s.probe == probe) {
            s.state = state;
        }
    }
    Err(Error::Poller("no probe could be loaded".into()))
}

/// Attaches each loaded probe's programs; a probe with a program that fails is detached again
/// and marked down.
pub(crate) fn attach_probes(
    cfg: &Builder,
    skel: &ProbesSkel<'_>,
    states: &mut [ProbeStatus],
) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for status in states.iter_mut().filter(|s| s.state == ProbeState::Up) {
        let probe = status.probe;
        let retarget = cfg
            .retarget
            .iter()
            .rev()
            .find(|(p, _)| *p == probe)
            .map(|(_, tp)| tp.as_str());
        let mut attached = Vec::new();
        for (program, tracepoint) in probe.programs() {
            let Some(prog) = skel
                .object()
                .progs_mut()
                .find(|p| p.name().to_str() == Some(*program))
            else {
                return Err(Error::Poller(format!(
                    "program {program} is not in the object"
                )));
            };
            sys::clear_libbpf_log();
            let tracepoint = retarget.unwrap_or(*tracepoint);
            let result = match retarget {
                Some(tp) => prog.attach_raw_tracepoint(tp),
                None => prog.attach(),
            };
            match result {
                Ok(link) => attached.push(link),
                Err(err) => {
                    let reason = format!(
                        "attaching {program} to raw tracepoint {tracepoint} failed: {}; {}",
                        sys::libbpf_message(&err),
                        attach_hint(err.kind(), tracepoint)
                    );
                    // Detach what this probe attached so far: a probe is all or nothing.
                    attached.clear();
                    status.state = probe_down(cfg, probe, reason)?;
                    break;
                }
            }
        }
        links.append(&mut attached);
    }
    Ok(links)
}

pub(crate) fn run_bpf(
    cfg: &Builder,
    shared: &Shared,
    waiter: &Waiter,
    tx: Option<BatchSender>,
    ready: &Ready,
) -> Result<()> {
    sys::capture_libbpf_log();
    let enabled = cfg.enabled();
    let mut states: Vec<ProbeStatus> = Probe::ALL
        .into_iter()
        .map(|probe| ProbeStatus {
            probe,
            state: if enabled.contains(&probe) {
                ProbeState::Up
            } else {
                ProbeState::Off
            },
        })
        .collect();
    let mut storages: Vec<MaybeUninit<libbpf_rs::OpenObject>> =
        (0..=enabled.len()).map(|_| MaybeUninit::uninit()).collect();
    let skel = match load_probes(cfg, &mut states, &mut storages) {
        Ok(skel) => skel,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let links = match attach_probes(cfg, &skel, &mut states) {
        Ok(links) => links,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let maps = (|| -> Result<Maps> {
        Ok(Maps {
            counters: MapHandle::try_from(&skel.maps.counters).map_err(|e| load_error(&e))?,
            hists: MapHandle::try_from(&skel.maps.hists).map_err(|e| load_error(&e))?,
        })
    })();
    let maps = match maps {
        Ok(m) => m,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };

    // The callback only parses; events are applied and sent in batches after each poll.
    let batch: Rc<RefCell<Vec<Event>>> = Rc::new(RefCell::new(Vec::with_capacity(4096)));
    let sink = Rc::clone(&batch);
    let mut rb = RingBufferBuilder::new();
    rb.add(&skel.maps.events, move |data: &[u8]| {
        if let Some(ev) = Event::parse(data) {
            sink.borrow_mut().push(ev);
        }
        0
    })
    .map_err(|e| load_error(&e))?;
    let rb = match rb.build() {
        Ok(rb) => rb,
        Err(err) => {
            let _ = ready.send(Err(load_error(&err)));
            return Ok(());
        }
    };
    if let Err(err) = waiter.watch_ring(skel.maps.events.as_fd()) {
        let _ = ready.send(Err(Error::Poller(format!(
            "adding the ring buffer to its epoll set: {err}"
        ))));
        return Ok(());
    }

    // Seed after attaching, so no process falls between the /proc scan and the first event.
    // Without /proc (a bare chroot) the table starts empty and learns from events only.
    let seeded = {
        let mut table = shared.table();
        if table.has_procfs() {
            table.scan_procfs(false)
        } else {
            Ok(())
        }
    };
    if let Err(error) = seeded {
        let _ = ready.send(Err(Error::Procfs {
            path: cfg.proc_root.clone(),
            error,
        }));
        return Ok(());
    }
    shared.table().sample(true);
    let _ = ready.send(Ok(Started {
        maps: Some(maps),
        probes: states,
    }));

    // The ring buffer is read on a forced wakeup (fill threshold), when the poll timer runs out,
    // and once more when stopping; /proc samples have their own timer and read no records.
    let mut next_read = after(cfg.poll_interval);
    let mut next_sample = after(cfg.sample_interval);
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let mut read = stopping;
        if !stopping {
            let timeout = next_read
                .min(next_sample)
                .saturating_duration_since(Instant::now());
            let woken = waiter
                .wait(timeout)
                .map_err(|e| Error::Poller(format!("waiting on the ring buffer: {e}")))?;
            read = woken.ring || woken.stop || Instant::now() >= next_read;
        }
        if read {
            retry_eintr(rb.consume())?;
            let events = {
                let mut batch = batch.borrow_mut();
                let capacity = batch.len().max(64);
                std::mem::replace(&mut *batch, Vec::with_capacity(capacity))
            };
            deliver(shared, tx.as_ref(), events);
            next_read = after(cfg.poll_interval);
        }
        if Instant::now() >= next_sample {
            shared.table().sample(true);
            next_sample = after(cfg.sample_interval);
        }
        if stopping {
            break;
        }
    }
    drop(links);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_in_the_object_belongs_to_one_probe() {
        // Opening parses the object; it needs no privileges (nothing is loaded).
        let mut storage = MaybeUninit::uninit();
        let open = ProbesSkelBuilder::default()
            .open(&mut storage)
            .expect("open the object");
        let names: Vec<String> = open
            .open_object()
            .progs()
            .map(|p| p.name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.is_empty());
        for name in &names {
            assert!(Probe::of_program(name).is_some(), "{name} has no probe");
        }
        for probe in Probe::ALL {
            for (program, _) in probe.programs() {
                assert!(
                    names.iter().any(|n| n == program),
                    "{program} not in the object"
                );
            }
        }
    }

    #[test]
    fn the_failing_program_is_found_in_libbpf_s_log() {
        let log = "libbpf: prog 'handle_oom': BPF program load failed: Invalid argument\n\
                   libbpf: prog 'handle_oom': -- BEGIN PROG LOAD LOG --\nR1 type=ctx\n\
                   libbpf: prog 'handle_oom': failed to load: -22\n";
        assert_eq!(failed_program(log), Some(Probe::Oom));
        assert_eq!(failed_program("libbpf: prog 'nope': failed"), None);
        assert_eq!(failed_program("no program named"), None);
    }
}
