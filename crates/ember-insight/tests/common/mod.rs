//! Starting and stopping a daemon, finding the model, reading SSE.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_insightd");

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says that the running test is skipped, and why, where `cargo test` shows it: straight to
/// stderr (libtest captures `eprintln!`, which would make the skip a silent pass).
pub fn skipped(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Prints a test's figures where `cargo test` shows them even when the test passes (straight
/// to stderr, past libtest's capture), for the tables an issue asks to see.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The test model, or `None` (skip) when it is missing outside CI.
pub fn model() -> Option<PathBuf> {
    match std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            let msg = format!(
                "test model not found (EMBER_TEST_MODEL={other:?}): run build-support/fetch-model"
            );
            assert!(!ci(), "{msg}");
            skipped(&msg);
            None
        }
    }
}

/// The probe mode tests ask for: `bpf` when BPF must work (EMBER_REQUIRE_BPF=1), else `auto`.
pub fn probe_mode() -> &'static str {
    if std::env::var("EMBER_REQUIRE_BPF").is_ok_and(|v| v == "1") {
        "bpf"
    } else {
        "auto"
    }
}

/// Whether a missing BPF must fail the test rather than skip it.
pub fn bpf_required() -> bool {
    probe_mode() == "bpf" || ci()
}

/// A running insightd.
/// A wait bounded by progress, not by a quiet machine: the engine's decode steps
/// (`insightd_batch_sequences_count`) must advance at least once per `stall` while a test
/// waits for a generation's result.
pub struct Progress<'a> {
    daemon: &'a Daemon,
    stall: Duration,
    steps: f64,
    since: Instant,
}

impl<'a> Progress<'a> {
    pub fn new(daemon: &'a Daemon, stall: Duration) -> Progress<'a> {
        Progress {
            daemon,
            stall,
            steps: -1.0,
            since: Instant::now(),
        }
    }

    /// Panics with `what` when no decode step ran for `stall`.
    pub async fn check(&mut self, what: &str) {
        let m = self.daemon.get_text("/metrics").await;
        let steps = metric(&m, "insightd_batch_sequences_count")
            .unwrap_or_else(|| panic!("no insightd_batch_sequences_count in /metrics:\n{m}"));
        if steps != self.steps {
            self.steps = steps;
            self.since = Instant::now();
        }
        assert!(
            self.since.elapsed() < self.stall,
            "the engine made no progress for {:?} ({steps} decode steps in all): {what}",
            self.stall
        );
    }
}

/// A config for tests that compare greedy answers: no insights, so that an alert about a
/// busy test machine cannot put an insight's sequence into the batch beside the test's own
/// (a batch of other sizes may round differently and change a near-tie).
pub const NO_INSIGHTS: &str = "[insights]\nenabled = false\n";

pub struct Daemon {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
    _config: Option<tempfile::NamedTempFile>,
}

impl Daemon {
    /// Starts `insightd --bind 127.0.0.1:0` with `args` and, when given, a TOML config.
    pub fn start(args: &[&str], config_toml: Option<&str>) -> Daemon {
        Daemon::start_on("127.0.0.1:0", args, config_toml)
    }

    /// As [`Daemon::start`] on `bind`.
    pub fn start_on(bind: &str, args: &[&str], config_toml: Option<&str>) -> Daemon {
        Daemon::start_wrapped(&[], bind, args, config_toml)
    }

    /// As [`Daemon::start_on`], run through `wrapper` (a command that execs its arguments,
    /// e.g. a shell that joins a cgroup first).
    pub fn start_wrapped(
        wrapper: &[&str],
        bind: &str,
        args: &[&str],
        config_toml: Option<&str>,
    ) -> Daemon {
        let config = config_toml.map(|text| {
            let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
            f.write_all(text.as_bytes()).unwrap();
            f
        });
        let mut cmd = match wrapper {
            [] => Command::new(BIN),
            [program, rest @ ..] => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(BIN);
                cmd
            }
        };
        cmd.arg("--bind").arg(bind).args(args);
        // The model at normal priority unless a test asks otherwise: in background (the
        // default) a busy test machine would starve the generations the tests wait for.
        if !args.contains(&"--model-priority") {
            cmd.args(["--model-priority", "normal"]);
        }
        // Where BPF must work, every probe must attach too: a probe down fails the test.
        if args.windows(2).any(|w| w == ["--probe-mode", "bpf"]) {
            cmd.arg("--require-all-probes");
        }
        if let Some(f) = &config {
            cmd.arg("--config").arg(f.path());
        }
        let mut child = cmd
            .env("INSIGHTD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start insightd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                eprintln!("[insightd] {line}");
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "insightd did not report its address; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _config: config,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` and parses its body as JSON, whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = reqwest::get(self.url(path)).await.unwrap();
        resp.json().await.unwrap()
    }

    /// GETs `path` and returns its body, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        let resp = reqwest::get(self.url(path)).await.unwrap();
        resp.text().await.unwrap()
    }

    /// POSTs `body` as JSON to `path` and parses the answer as JSON, whatever the status.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until /readyz says ready (panics after `limit`).
    pub async fn wait_ready(&self, limit: Duration) {
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                start.elapsed() < limit,
                "insightd not ready after {limit:?}; log: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The telemetry mode /status reports.
    pub async fn probe_mode(&self) -> String {
        let status: serde_json::Value = reqwest::get(self.url("/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["telemetry"]["mode"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    /// SIGKILL, as an OOM kill or a node's crash would end it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// `program`'s path on PATH, as a shell finds it.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// Prometheus' `promtool`, or `None` (skip, said on stderr) when it is not on PATH outside CI;
/// in CI a missing promtool fails the test.
pub fn promtool() -> Option<PathBuf> {
    let found = which("promtool");
    if found.is_none() {
        let msg =
            "promtool not found: install the apt package prometheus (build-support/apt-packages)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        skipped(msg);
    }
    found
}

/// Value of a metric sample line (`name{labels} value`) in OpenMetrics text.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// Splits an SSE body into events, each the list of its `field: value` lines.
pub fn sse_events(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter(|l| !l.starts_with(':'))
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap_or((l, ""));
                    (k.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string())
                })
                .collect()
        })
        .collect()
}

/// TOML tables that turn off every rule but those in `keep` (which the caller configures), so
/// that nothing else fires or competes for the model in a test.
pub fn rules_off_except(keep: &[&str]) -> String {
    [
        "fork_rate",
        "subtree_rss_mb",
        "subtree_cpu_percent",
        "oom_kills",
        "failing_exits",
        "runq_p99_us",
    ]
    .iter()
    .filter(|r| !keep.contains(r))
    .map(|r| {
        format!(
            "\n[rules.{r}]\nenabled = false\nthreshold = 1.0\nwindow_s = 1.0\nseverity = \"info\"\n"
        )
    })
    .collect()
}

/// Whether `d` runs its probes with BPF; when not, fails if BPF is required and otherwise says
/// the test is skipped because of `what` (e.g. "fork events need BPF").
pub async fn runs_bpf(d: &Daemon, what: &str) -> bool {
    if d.probe_mode().await == "bpf" {
        return true;
    }
    assert!(
        !bpf_required(),
        "BPF is required but insightd runs in procfs mode"
    );
    skipped(&format!("{what} (run as root)"));
    false
}

/// A child process killed and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fork storm under the command name `name`: a copy of /bin/sh in `dir` looping over
/// /bin/true, until dropped.
pub fn fork_storm(dir: &std::path::Path, name: &str) -> KillOnDrop {
    let sh = dir.join(name);
    std::fs::copy("/bin/sh", &sh).unwrap();
    let child = Command::new(&sh)
        .args(["-c", "while :; do /bin/true; done"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}
