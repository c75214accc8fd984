//! The probes one [`Builder`](crate::Builder) can switch on, and what became of each.
//!
//! A probe is a group of BPF programs that stand or fall together (the run-queue histogram needs
//! all three scheduler tracepoints). Each one attaches on its own: one that the running kernel
//! refuses (a tracepoint it lacks, a verifier refusal) is reported [`ProbeState::Down`] with the
//! reason, and the others run, unless [`Builder::require_all_probes`](crate::Builder::require_all_probes)
//! asks for all or nothing.

use std::fmt;

/// One probe: the BPF programs behind one kind of event or histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Probe {
    /// [`Event::Exec`](crate::Event::Exec), from `sched:sched_process_exec`.
    Exec,
    /// [`Event::Fork`](crate::Event::Fork), from `sched:sched_process_fork`.
    Fork,
    /// [`Event::Exit`](crate::Event::Exit), from `sched:sched_process_exit`.
    Exit,
    /// [`Event::ExecFailed`](crate::Event::ExecFailed), from `raw_syscalls:sys_exit`.
    ExecFailed,
    /// [`Event::Oom`](crate::Event::Oom), from `oom:mark_victim`.
    Oom,
    /// [`Event::Tcp`](crate::Event::Tcp), from `sock:inet_sock_set_state`.
    Tcp,
    /// The run-queue latency histogram, from `sched_wakeup`, `sched_wakeup_new` and
    /// `sched_switch`.
    RunQueue,
    /// The block I/O latency histogram, from `block_rq_issue` and `block_rq_complete`.
    BlockIo,
}

impl Probe {
    /// Every probe, in the order [`Handle::probes`](crate::Handle::probes) lists them.
    pub const ALL: [Probe; 8] = [
        Probe::Exec,
        Probe::Fork,
        Probe::Exit,
        Probe::ExecFailed,
        Probe::Oom,
        Probe::Tcp,
        Probe::RunQueue,
        Probe::BlockIo,
    ];

    /// The probe's name, as `/status` and metrics labels show it (`exec`, `oom`, `run_queue`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Probe::Exec => "exec",
            Probe::Fork => "fork",
            Probe::Exit => "exit",
            Probe::ExecFailed => "exec_failed",
            Probe::Oom => "oom",
            Probe::Tcp => "tcp",
            Probe::RunQueue => "run_queue",
            Probe::BlockIo => "block_io",
        }
    }

    /// The probe named `name` (see [`Probe::name`]).
    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `(BPF program, raw tracepoint)` for each program of the probe.
    pub(crate) fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Probe::Exec => &[("handle_exec", "sched_process_exec")],
            Probe::Fork => &[("handle_fork", "sched_process_fork")],
            Probe::Exit => &[("handle_exit", "sched_process_exit")],
            Probe::ExecFailed => &[("handle_sys_exit", "sys_exit")],
            Probe::Oom => &[("handle_oom", "mark_victim")],
            Probe::Tcp => &[("handle_set_state", "inet_sock_set_state")],
            Probe::RunQueue => &[
                ("handle_wakeup", "sched_wakeup"),
                ("handle_wakeup_new", "sched_wakeup_new"),
                ("handle_switch", "sched_switch"),
            ],
            Probe::BlockIo => &[
                ("handle_rq_issue", "block_rq_issue"),
                ("handle_rq_complete", "block_rq_complete"),
            ],
        }
    }

    /// The probe a BPF program belongs to.
    pub(crate) fn of_program(program: &str) -> Option<Probe> {
        Probe::ALL
            .into_iter()
            .find(|p| p.programs().iter().any(|(prog, _)| *prog == program))
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What became of a probe when the programs were loaded and attached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeState {
    /// Not asked for (or the probes run in [`Mode::Procfs`](crate::Mode::Procfs)).
    Off,
    /// Loaded and attached: its events or histogram are live.
    Up,
    /// Asked for, but the kernel refused it; the other probes run.
    Down {
        /// What failed and what would fix it.
        reason: String,
    },
}

/// A probe and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The probe.
    pub probe: Probe,
    /// Its state.
    pub state: ProbeState,
}

impl ProbeStatus {
    /// `"off"`, `"up"` or `"down"`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            ProbeState::Off => "off",
            ProbeState::Up => "up",
            ProbeState::Down { .. } => "down",
        }
    }

    /// The reason it is down, if it is.
    pub fn reason(&self) -> Option<&str> {
        match &self.state {
            ProbeState::Down { reason } => Some(reason),
            _ => None,
        }
    }
}

/// What would fix an attach that failed with `kind`, for the probe's message.
pub(crate) fn attach_hint(kind: libbpf_rs::ErrorKind, tracepoint: &str) -> String {
    match kind {
        libbpf_rs::ErrorKind::NotFound => format!(
            "this kernel has no raw tracepoint {tracepoint} (too old, or its subsystem is not \
             built in): switch the probe off, or run a kernel that has it"
        ),
        libbpf_rs::ErrorKind::PermissionDenied => "attaching needs CAP_BPF and CAP_PERFMON \
             (or root): grant both, e.g. securityContext.capabilities.add [BPF, PERFMON]"
            .into(),
        _ => "see the libbpf log above; switch the probe off to run without it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_programs_belong_to_one_probe() {
        for probe in Probe::ALL {
            assert_eq!(Probe::from_name(probe.name()), Some(probe));
            for (program, _) in probe.programs() {
                assert_eq!(Probe::of_program(program), Some(probe), "{program}");
            }
        }
        assert_eq!(Probe::from_name("nope"), None);
    }
}
