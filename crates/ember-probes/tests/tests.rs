//! Integration tests: real BPF programs in the running kernel, real processes, loopback TCP.
//!
//! They need root (or CAP_BPF + CAP_PERFMON) and kernel BTF. Without them each BPF test prints
//! why and skips, unless `EMBER_REQUIRE_BPF=1` (set in CI), which makes that a failure.

use std::time::{Duration, Instant};

use ember_probes::{Builder, Error, Event, Handle, Probe, ProbeState};

/// Upper bound for any wait on the kernel; the tests never assert on speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// Says that the running test is skipped, and why, where `cargo test` shows it: straight to
/// stderr (libtest captures `eprintln!`, which would make the skip a silent pass).
fn skipped(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

fn require_bpf() -> bool {
    std::env::var("EMBER_REQUIRE_BPF").is_ok_and(|v| v == "1")
}

/// Starts the probes, or returns `None` (after saying why) when this host cannot run BPF and
/// `EMBER_REQUIRE_BPF` is not set.
fn start(builder: Builder) -> Option<Handle> {
    match builder.start() {
        Ok(handle) => Some(handle),
        Err(
            err @ (Error::MissingCapability { .. }
            | Error::NoBtf { .. }
            | Error::KernelTooOld { .. }),
        ) if !require_bpf() => {
            skipped(&format!(
                "BPF unavailable here ({err}); EMBER_REQUIRE_BPF=1 makes this fail"
            ));
            None
        }
        Err(err) => panic!("starting the probes failed: {err}"),
    }
}

/// Receives events until `pick` returns `Some`, or panics after [`PATIENCE`].
fn wait_for_event<T>(handle: &Handle, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        match handle.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                if let Some(found) = pick(&ev) {
                    return found;
                }
            }
            Err(ember_probes::RecvTimeoutError::Timeout) => {}
            Err(ember_probes::RecvTimeoutError::Disconnected) => {
                panic!("the poller stopped while waiting for {what}")
            }
        }
    }
}

/// Polls `check` on the table until it holds, or panics after [`PATIENCE`] with `what`.
fn wait_for_table(
    handle: &Handle,
    what: &str,
    check: impl Fn(&ember_probes::ProcessTable) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !handle.with_table(&check) {
        assert!(Instant::now() < deadline, "table never showed {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

mod lifecycle {
    use std::collections::HashMap;
    use std::process::{Child, Command, Stdio};

    use ember_probes::RecvTimeoutError;

    use super::*;

    const PROCESSES: usize = 2000;

    fn argv(nonce: u32, i: usize) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "exit $1".into(),
            format!("ember-{nonce}-{i}"),
            (i % 256).to_string(),
        ]
    }

    #[test]
    fn two_thousand_execs_and_exits_arrive_with_argv_exit_codes_and_no_drops() {
        let Some(handle) = start(Builder::new().oom(false)) else {
            return;
        };
        let nonce = std::process::id();

        // Spawn in waves so that at most 32 children run at once.
        let mut pids: HashMap<u32, usize> = HashMap::new();
        let mut running: Vec<Child> = Vec::new();
        let consumer = std::thread::scope(|s| {
            let collector = s.spawn(|| {
                let tag = format!("ember-{nonce}-");
                let mut ours = std::collections::HashSet::new();
                let mut events = Vec::new();
                let mut exits = 0;
                let deadline = Instant::now() + PATIENCE;
                while exits < PROCESSES && Instant::now() < deadline {
                    let ev = match handle.events().recv_timeout(Duration::from_millis(100)) {
                        Ok(ev) => ev,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break, // poller died: stop() says why
                    };
                    match &ev {
                        Event::Exec(e) if e.argv.get(3).is_some_and(|a| a.starts_with(&tag)) => {
                            ours.insert(e.pid);
                        }
                        Event::Exit(x) if ours.contains(&x.pid) => exits += 1,
                        _ => continue,
                    }
                    events.push(ev);
                }
                events
            });
            for i in 0..PROCESSES {
                if running.len() == 32 {
                    for mut c in running.drain(..) {
                        c.wait().expect("wait");
                    }
                }
                let a = argv(nonce, i);
                let child = Command::new(&a[0])
                    .args(&a[1..])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn /bin/sh");
                pids.insert(child.id(), i);
                running.push(child);
            }
            for mut c in running.drain(..) {
                c.wait().expect("wait");
            }
            collector.join().expect("collector thread")
        });

        let stats = handle.stats().expect("stats");
        let mut execs = vec![None; PROCESSES];
        let mut codes = vec![None; PROCESSES];
        for ev in &consumer {
            match ev {
                Event::Exec(e) => {
                    if let Some(&i) = pids.get(&e.pid) {
                        execs[i] = Some(e.argv.clone());
                    }
                }
                Event::Exit(x) => {
                    if let Some(&i) = pids.get(&x.pid) {
                        codes[i] = x.status.code();
                    }
                }
                _ => {}
            }
        }
        for i in 0..PROCESSES {
            assert_eq!(
                execs[i].as_ref(),
                Some(&argv(nonce, i)),
                "exec of child {i}"
            );
            assert_eq!(codes[i], Some((i % 256) as i32), "exit code of child {i}");
        }
        assert_eq!(stats.ring_drops, 0, "ring-buffer drops: {stats:?}");
        assert_eq!(stats.channel_drops, 0, "channel drops: {stats:?}");
        handle.stop().expect("poller ran without error");
    }
    #[test]
    fn fill_threshold_wakes_the_consumer() {
        // A 4 KiB threshold and a poll timer of an hour: within PATIENCE, records can only reach
        // the reader through fill-threshold wakeups (the records' own submits never wake it), so
        // if that wakeup is broken no exec arrives and the test fails. Below the threshold records
        // wait, so the test keeps starting processes until its first 50 have all been seen.
        let builder = Builder::new()
            .oom(false)
            .wakeup_threshold(4096)
            .poll_interval(Duration::from_secs(3600));
        let Some(handle) = start(builder) else { return };
        let mut burst = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut child = Command::new("/bin/true").spawn().expect("spawn /bin/true");
            burst.insert(child.id());
            child.wait().expect("wait");
        }
        let deadline = Instant::now() + PATIENCE;
        let mut extra = 0u32;
        while !burst.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} of the 50 execs never arrived although {extra} more processes ran: no \
                 fill-threshold wakeup reached the reader ({:?})",
                burst.len(),
                handle.stats()
            );
            for ev in handle.events().try_iter() {
                if let Event::Exec(e) = ev {
                    burst.remove(&e.pid);
                }
            }
            // Each process adds ~700 bytes of records: six more cross the threshold again.
            Command::new("/bin/true").status().expect("run /bin/true");
            extra += 1;
        }
        let stats = handle.stats().expect("stats");
        eprintln!("{extra} extra processes; {stats:?}");
        assert!(stats.wakeups > 0, "no threshold wakeup counted: {stats:?}");
        assert_eq!(stats.ring_drops, 0, "{stats:?}");
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn failed_execs_are_reported_with_their_errno() {
        let Some(handle) = start(Builder::new().oom(false).failed_execs(true)) else {
            return;
        };
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let missing = dir.join(format!("ember-missing-{}", std::process::id()));
        let not_exec = dir.join(format!("ember-not-exec-{}", std::process::id()));
        std::fs::write(&not_exec, "#!/bin/sh\n").expect("write a file without exec permission");
        for (path, errno) in [(&missing, libc::ENOENT), (&not_exec, libc::EACCES)] {
            let err = Command::new(path)
                .arg("first-arg")
                .spawn()
                .expect_err("exec must fail");
            assert_eq!(err.raw_os_error(), Some(errno), "{err}");
            let want = path.to_str().expect("UTF-8 path").to_owned();
            let failed = wait_for_event(&handle, "the failed exec", |ev| match ev {
                Event::ExecFailed(f) if f.filename == want => Some(f.clone()),
                _ => None,
            });
            assert_eq!(failed.ret, -errno, "{failed:?}");
            assert_eq!(failed.argv, [want.as_str(), "first-arg"], "{failed:?}");
            assert!(!failed.argv_truncated);
        }
        std::fs::remove_file(&not_exec).expect("remove");
        // A successful exec is still an Exec event, never an ExecFailed one.
        let mut child = Command::new("/bin/true").spawn().expect("spawn /bin/true");
        let pid = child.id();
        child.wait().expect("wait");
        wait_for_event(&handle, "the successful exec", |ev| match ev {
            Event::ExecFailed(f) if f.pid == pid => panic!("reported as failed: {f:?}"),
            Event::Exec(e) if e.pid == pid => Some(()),
            _ => None,
        });
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn ring_buffer_overflow_is_counted() {
        // One page of ring buffer (about 5 processes' records), read once a second, and a
        // threshold it cannot cross: 100 quick processes must overflow it.
        let builder = Builder::new()
            .oom(false)
            .ring_buffer_size(4096)
            .wakeup_threshold(4095)
            .poll_interval(Duration::from_secs(1));
        let Some(handle) = start(builder) else { return };
        for _ in 0..100 {
            Command::new("/bin/true").status().expect("run /bin/true");
        }
        let deadline = Instant::now() + PATIENCE;
        let stats = loop {
            let stats = handle.stats().expect("stats");
            // Every record that made it into the buffer is read by the next poll.
            if stats.received == stats.submitted {
                break stats;
            }
            assert!(
                Instant::now() < deadline,
                "records never all read: {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        eprintln!("{stats:?}");
        assert!(stats.ring_drops > 0, "no drop counted: {stats:?}");
        assert!(
            stats.submitted + stats.ring_drops >= 300,
            "3 records per process: {stats:?}"
        );
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn invalid_settings_are_rejected_before_loading() {
        let err = Builder::new()
            .ring_buffer_size(12345)
            .start()
            .expect_err("not a power of two");
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "ring_buffer_size",
                    ..
                }
            ),
            "{err}"
        );
        let err = Builder::new()
            .ring_buffer_size(1 << 16)
            .wakeup_threshold(1 << 16)
            .start()
            .expect_err("threshold not below size");
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "wakeup_threshold",
                    ..
                }
            ),
            "{err}"
        );
    }
}

mod tree {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use ember_probes::Mode;

    use super::*;

    /// Starts sh -> sh -> sleep and returns (gen1, gen2, gen3) pids.
    fn three_generations() -> (std::process::Child, u32, u32) {
        let mut gen1 = Command::new("/bin/sh")
            .args([
                "-c",
                "sh -c 'sleep 30 >/dev/null & echo g3 $!; wait' & echo g2 $!; wait",
            ])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let mut lines = BufReader::new(gen1.stdout.take().expect("stdout"));
        let (mut g2, mut g3) = (None, None);
        let mut line = String::new();
        while g2.is_none() || g3.is_none() {
            line.clear();
            assert!(
                lines.read_line(&mut line).expect("read pids") > 0,
                "sh exited early"
            );
            let mut words = line.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|p| p.parse::<u32>().ok()),
            ) {
                (Some("g2"), Some(pid)) => g2 = Some(pid),
                (Some("g3"), Some(pid)) => g3 = Some(pid),
                _ => panic!("unexpected line {line:?}"),
            }
        }
        (gen1, g2.expect("g2"), g3.expect("g3"))
    }

    fn reconstructs_tree(mode: Mode) {
        let builder = Builder::new()
            .mode(mode)
            .oom(false)
            .events(false)
            .sample_interval(Duration::from_millis(50));
        let Some(handle) = start(builder) else { return };
        let me = std::process::id();
        assert!(
            handle.table().get(me).is_some(),
            "the test process is seeded from /proc"
        );

        let (mut gen1, g2, g3) = three_generations();
        let g1 = gen1.id();
        wait_for_table(&handle, "the 3-generation tree", |t| {
            t.get(g3).is_some_and(|p| p.ppid == g2 && p.comm == "sleep")
                && t.get(g2).is_some_and(|p| p.ppid == g1)
                && t.get(g1).is_some_and(|p| p.ppid == me)
        });
        let table = handle.table();
        assert_eq!(&table.ancestors(g3)[..3], &[g2, g1, me]);
        assert!(table.children(me).contains(&g1));
        assert_eq!(table.children(g1), &[g2]);
        assert_eq!(table.descendants(g1), vec![g2, g3]);
        assert_eq!(&*table.get(g3).expect("g3").argv, ["sleep", "30"]);
        assert!(table.get(g3).expect("g3").is_running());

        // Killing the sleep ends the whole tree; the table sees all three go.
        // SAFETY: kill(2) on a pid this test started and has not reaped (g3's parent waits on it).
        assert_eq!(unsafe { libc::kill(g3 as i32, libc::SIGKILL) }, 0);
        assert!(gen1.wait().expect("wait gen1").success());
        wait_for_table(&handle, "the tree exited", |t| {
            [g1, g2, g3]
                .iter()
                .all(|pid| t.get(*pid).is_some_and(|p| !p.is_running()))
        });
        if mode == Mode::Bpf {
            let table = handle.table();
            assert_eq!(table.get(g1).and_then(|p| p.exit_code()), Some(0));
            let g3_exit = table.get(g3).and_then(|p| p.exit.clone()).expect("g3 exit");
            assert_eq!(g3_exit.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
        }
        handle.stop().expect("stop");
    }

    #[test]
    fn three_generation_tree_is_reconstructed_from_events() {
        reconstructs_tree(Mode::Bpf);
    }

    #[test]
    fn procfs_mode_reconstructs_the_same_tree() {
        reconstructs_tree(Mode::Procfs);
    }

    #[test]
    fn procfs_mode_has_no_histograms() {
        let handle = Builder::new()
            .mode(Mode::Procfs)
            .start()
            .expect("procfs mode starts");
        assert!(matches!(
            handle.histogram(ember_probes::HistogramKind::RunQueue),
            Err(Error::Unsupported { .. })
        ));
        assert!(handle.table().running() > 0);
    }
}

mod tcp {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};

    use super::*;

    const CLIENT_SENDS: usize = 123_457;
    const SERVER_SENDS: usize = 654_323;

    #[test]
    fn loopback_connection_is_reported_with_byte_counts_and_duration() {
        let Some(handle) = start(Builder::new().process(false).oom(false).tcp(true)) else {
            return;
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let server_port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; CLIENT_SENDS];
            conn.read_exact(&mut buf).expect("server read");
            conn.write_all(&vec![7u8; SERVER_SENDS])
                .expect("server write");
            // Wait for the client's FIN, then close: the client closes first.
            assert_eq!(conn.read(&mut [0u8; 1]).expect("read EOF"), 0);
        });
        let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, server_port)).expect("connect");
        let client_port = client.local_addr().expect("addr").port();
        client
            .write_all(&vec![1u8; CLIENT_SENDS])
            .expect("client write");
        let mut buf = vec![0u8; SERVER_SENDS];
        client.read_exact(&mut buf).expect("client read");
        client.shutdown(Shutdown::Both).expect("shutdown");
        drop(client);
        server.join().expect("server thread");

        let (mut client_side, mut server_side) = (None, None);
        wait_for_event(&handle, "both ends of the connection", |ev| {
            if let Event::Tcp(t) = ev {
                if t.sport == client_port && t.dport == server_port {
                    client_side = Some(t.clone());
                } else if t.sport == server_port && t.dport == client_port {
                    server_side = Some(t.clone());
                }
            }
            (client_side.is_some() && server_side.is_some()).then_some(())
        });
        let (client_side, server_side) =
            (client_side.expect("client"), server_side.expect("server"));
        let lo = std::net::IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!((client_side.saddr, client_side.daddr), (lo, lo));
        assert_eq!(client_side.tx_bytes, CLIENT_SENDS as u64, "{client_side:?}");
        assert_eq!(client_side.rx_bytes, SERVER_SENDS as u64, "{client_side:?}");
        assert_eq!(server_side.rx_bytes, CLIENT_SENDS as u64, "{server_side:?}");
        assert_eq!(server_side.tx_bytes, SERVER_SENDS as u64, "{server_side:?}");
        assert!(client_side.duration > Duration::ZERO);
        assert!(server_side.duration > Duration::ZERO);
        assert_eq!(
            client_side.pid,
            std::process::id(),
            "connect() ran in this process"
        );
        handle.stop().expect("poller ran without error");
    }
}

mod oom {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;

    const LIMIT: &str = "33554432"; // 32 MiB

    /// A memory cgroup with a 32 MiB limit: cgroup v2 where its memory controller is usable,
    /// otherwise the v1 memory hierarchy (on hybrid hosts that keep memory on v1).
    struct Group {
        dir: PathBuf,
    }

    impl Group {
        fn create() -> Group {
            let name = format!("ember-oom-test-{}", std::process::id());
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
            let mount_of = |fstype: &str, option: &str| {
                mounts.lines().find_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    let mut r = right.split_whitespace();
                    let ok =
                        r.next()? == fstype && (option.is_empty() || r.nth(1)?.contains(option));
                    let mount_point = left.split_whitespace().nth(4)?;
                    ok.then(|| PathBuf::from(mount_point))
                })
            };
            if let Some(root) = mount_of("cgroup2", "") {
                let controllers = std::fs::read_to_string(root.join("cgroup.controllers"));
                if controllers.is_ok_and(|c| c.split_whitespace().any(|c| c == "memory")) {
                    let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
                    let dir = root.join(&name);
                    std::fs::create_dir_all(&dir).expect("create cgroup v2 group");
                    std::fs::write(dir.join("memory.max"), LIMIT).expect("memory.max");
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    eprintln!("cgroup v2 group {}", dir.display());
                    return Group { dir };
                }
            }
            let root = mount_of("cgroup", "memory")
                .expect("no cgroup v2 memory controller and no v1 memory hierarchy");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).expect("create cgroup v1 memory group");
            std::fs::write(dir.join("memory.limit_in_bytes"), LIMIT)
                .expect("memory.limit_in_bytes");
            eprintln!(
                "cgroup v2 has no memory controller here; using v1 group {}",
                dir.display()
            );
            Group { dir }
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    /// Joins the cgroup whose `cgroup.procs` is `procs`, then touches memory until killed.
    /// Runs between fork and exec, so it uses only raw system calls (no allocation, no locks).
    fn join_and_hog(procs: &CString) -> std::io::Result<()> {
        // SAFETY: `procs` is a valid NUL-terminated path; open/write/close are async-signal-safe.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
        const SIZE: usize = 1 << 30;
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        for offset in (0..SIZE).step_by(4096) {
            // SAFETY: `offset` is inside the SIZE-byte mapping made just above.
            unsafe { mem.cast::<u8>().add(offset).write_volatile(1) };
        }
        Ok(()) // not reached under a 32 MiB limit; exec of `true` then fails the test
    }

    #[test]
    fn process_killed_in_a_small_memory_cgroup_is_reported_with_its_pid() {
        let Some(handle) = start(Builder::new().process(false)) else {
            return;
        };
        let group = Group::create();
        let procs = CString::new(
            group
                .dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("path without NUL");
        let mut cmd = Command::new("/bin/true");
        // SAFETY: the closure only makes async-signal-safe system calls (see join_and_hog).
        unsafe { cmd.pre_exec(move || join_and_hog(&procs)) };
        let mut child = cmd.spawn().expect("spawn the memory hog");
        let pid = child.id();
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "the hog should be OOM-killed"
        );
        let oom = wait_for_event(&handle, "the OOM kill", |ev| match ev {
            Event::Oom(o) if o.pid == pid => Some(o.clone()),
            _ => None,
        });
        assert!(oom.anon_rss_bytes > 0 || oom.total_vm_bytes > 0, "{oom:?}");
        assert!(Path::new(&group.dir).exists());
        handle.stop().expect("poller ran without error");
    }
}

mod histograms {
    use ember_probes::HistogramKind;

    use super::*;

    #[test]
    fn run_queue_latency_histogram_fills() {
        let Some(handle) = start(
            Builder::new()
                .process(false)
                .oom(false)
                .run_queue_latency(true),
        ) else {
            return;
        };
        // Sleeps wake this thread up again: each wakeup is one run-queue latency sample.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let hist = handle
                .histogram(HistogramKind::RunQueue)
                .expect("read histogram");
            if hist.count() >= 10 {
                assert!(hist.buckets().all(|(lo, hi, n)| lo <= hi && n > 0));
                break;
            }
            assert!(Instant::now() < deadline, "no run-queue samples: {hist:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            handle
                .histogram(HistogramKind::BlockIo)
                .expect("read")
                .count(),
            0,
            "not enabled"
        );
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn block_io_latency_histogram_counts_synced_writes() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;

        let Some(handle) = start(
            Builder::new()
                .process(false)
                .oom(false)
                .block_io_latency(true),
        ) else {
            return;
        };
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dev = std::fs::metadata(&dir).expect("stat the target dir").dev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        if major == 0 {
            skipped(&format!(
                "{} is not on a block device (tmpfs/overlay)",
                dir.display()
            ));
            return;
        }
        let path = dir.join(format!("ember-block-{}", std::process::id()));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut file = std::fs::File::create(&path).expect("create");
            file.write_all(&vec![0x5a; 1 << 20]).expect("write 1 MiB");
            file.sync_all().expect("fsync");
            let hist = handle
                .histogram(HistogramKind::BlockIo)
                .expect("read histogram");
            if hist.count() > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "fsync issued no block request: {hist:?}"
            );
        }
        std::fs::remove_file(&path).expect("remove");
        handle.stop().expect("poller ran without error");
    }
}

/// Every probe attaches without tracefs; one the kernel refuses is down while the others run.
mod probe_states {
    use std::process::Command;

    use super::*;

    const MISSING: &str = "ember_test_no_such_tracepoint";

    #[test]
    fn every_probe_attaches_without_tracefs() {
        let tracefs = std::path::Path::new("/sys/kernel/tracing/events");
        eprintln!("tracefs mounted: {}", tracefs.exists());
        let builder = Builder::new()
            .failed_execs(true)
            .tcp(true)
            .run_queue_latency(true)
            .block_io_latency(true)
            .require_all_probes(true);
        let Some(handle) = start(builder) else { return };
        let states: Vec<_> = handle
            .probes()
            .iter()
            .map(|s| (s.probe, s.state.clone()))
            .collect();
        assert_eq!(states.len(), Probe::ALL.len());
        for (probe, state) in &states {
            assert_eq!(*state, ProbeState::Up, "{probe}: {state:?}");
        }
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn a_probe_on_a_missing_tracepoint_is_down_and_the_others_run() {
        let Some(handle) = start(Builder::new().retarget(Probe::Oom, MISSING)) else {
            return;
        };
        let oom = handle
            .probes()
            .iter()
            .find(|s| s.probe == Probe::Oom)
            .expect("oom listed");
        assert_eq!(oom.state_name(), "down");
        let reason = oom.reason().expect("a reason");
        assert!(reason.contains(MISSING), "{reason}");
        assert!(reason.contains("handle_oom"), "{reason}");
        assert!(reason.contains("switch the probe off"), "{reason}");
        for s in handle.probes() {
            match s.probe {
                Probe::Oom => {}
                Probe::Exec | Probe::Fork | Probe::Exit => assert_eq!(s.state, ProbeState::Up),
                _ => assert_eq!(s.state, ProbeState::Off, "{s:?}"),
            }
        }
        // The others still deliver events.
        let mut child = Command::new("/bin/true").spawn().expect("spawn /bin/true");
        let pid = child.id();
        child.wait().expect("wait");
        wait_for_event(&handle, "the exec of /bin/true", |ev| match ev {
            Event::Exec(e) if e.pid == pid => Some(()),
            _ => None,
        });
        handle.stop().expect("poller ran without error");
    }

    #[test]
    fn with_every_probe_required_a_missing_tracepoint_fails_the_start_naming_it() {
        let builder = Builder::new()
            .retarget(Probe::Oom, MISSING)
            .require_all_probes(true);
        match builder.start() {
            Err(Error::ProbeDown { probe, reason }) => {
                assert_eq!(probe, Probe::Oom);
                assert!(reason.contains(MISSING), "{reason}");
                let text = Error::ProbeDown { probe, reason }.to_string();
                assert!(text.starts_with("probe oom is down"), "{text}");
            }
            Err(
                err @ (Error::MissingCapability { .. }
                | Error::NoBtf { .. }
                | Error::KernelTooOld { .. }),
            ) if !require_bpf() => skipped(&format!("BPF unavailable here ({err})")),
            Err(err) => panic!("expected ProbeDown, got {err}"),
            Ok(_) => panic!("started with a probe on a missing tracepoint"),
        }
    }
}
