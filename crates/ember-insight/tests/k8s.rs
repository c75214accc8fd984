//! Issue 33, must show 1: a process in a cgroup named as the kubelet and a container runtime
//! name them carries its pod UID and container id in `/processes/{pid}`, in its SSE events and
//! in the alert it raises, for each driver (systemd, cgroupfs), runtime (containerd, CRI-O,
//! Docker) and hierarchy (v2, v1) naming; a rule's `exclude_pods` keeps its pod's alerts out.
//!
//! The cgroups are real, made in this machine's hierarchies under `kubepods`/`kubepods.slice`
//! with fresh UIDs and ids, and removed afterwards. Each marker is a copy of /bin/sh that joins
//! its cgroup, then execs into a fork loop, so that the exec event, its children's fork and
//! exit events and the fork-rate alert all come from inside the pod's cgroup.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::{self, Daemon};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Hierarchy {
    V2,
    V1Cpu,
}

/// One naming scheme, as a cgroup path template: `{uid}` (dashes), `{uid_}` (underscores),
/// `{id}` (container id).
struct Scheme {
    name: &'static str,
    hierarchy: Hierarchy,
    template: &'static str,
    runtime: Option<&'static str>,
    qos: &'static str,
}

const SCHEMES: [Scheme; 6] = [
    Scheme {
        name: "v2 systemd containerd",
        hierarchy: Hierarchy::V2,
        template: "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope",
        runtime: Some("containerd"),
        qos: "Burstable",
    },
    Scheme {
        name: "v2 systemd cri-o",
        hierarchy: Hierarchy::V2,
        template: "kubepods.slice/kubepods-pod{uid_}.slice/crio-{id}.scope",
        runtime: Some("cri-o"),
        qos: "Guaranteed",
    },
    Scheme {
        name: "v2 systemd docker",
        hierarchy: Hierarchy::V2,
        template: "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/docker-{id}.scope",
        runtime: Some("docker"),
        qos: "BestEffort",
    },
    Scheme {
        name: "v2 cgroupfs",
        hierarchy: Hierarchy::V2,
        template: "kubepods/burstable/pod{uid}/{id}",
        runtime: None,
        qos: "Burstable",
    },
    Scheme {
        name: "v1 cgroupfs (cpu)",
        hierarchy: Hierarchy::V1Cpu,
        template: "kubepods/besteffort/pod{uid}/{id}",
        runtime: None,
        qos: "BestEffort",
    },
    Scheme {
        name: "v1 systemd containerd (cpu)",
        hierarchy: Hierarchy::V1Cpu,
        template: "kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{id}.scope",
        runtime: Some("containerd"),
        qos: "Guaranteed",
    },
];

/// The mount of a hierarchy on this machine, when it has one we can write.
fn hierarchy_root(h: Hierarchy) -> Option<PathBuf> {
    let candidates: &[&str] = match h {
        Hierarchy::V2 => &["/sys/fs/cgroup/unified", "/sys/fs/cgroup"],
        Hierarchy::V1Cpu => &["/sys/fs/cgroup/cpu"],
    };
    candidates.iter().map(PathBuf::from).find(|p| match h {
        Hierarchy::V2 => p.join("cgroup.controllers").exists(),
        Hierarchy::V1Cpu => p.join("tasks").exists(),
    })
}

/// A fresh hex string of `n` digits (not cryptographic: unique per run and scheme).
fn hex(n: usize, salt: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = String::new();
    while out.len() < n {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(n);
    out
}

/// A fresh pod UID, as `metadata.uid` spells one.
fn pod_uid(n: u64) -> String {
    let h = hex(32, n);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A marker process in a pod's cgroup, and the cgroup, removed on drop.
struct Marker {
    scheme: &'static Scheme,
    uid: String,
    id: String,
    path: String,
    dir: PathBuf,
    child: Child,
}

impl Marker {
    /// A marker in pod `uid` (a fresh container id), running `bin`, a copy of /bin/sh.
    fn start(scheme: &'static Scheme, root: &Path, uid: String, n: u64, bin: &Path) -> Marker {
        let id = hex(64, n + 100);
        let path = scheme
            .template
            .replace("{uid_}", &uid.replace('-', "_"))
            .replace("{uid}", &uid)
            .replace("{id}", &id);
        let dir = root.join(&path);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("making the cgroup {}: {e}", dir.display()));
        let child = Command::new("sh")
            .args([
                "-c",
                &format!("echo $$ > {}/cgroup.procs && exec \"$@\"", dir.display()),
                "sh",
            ])
            .arg(bin)
            .args(["-c", "while :; do /bin/true; done"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Marker {
            scheme,
            uid,
            id,
            path: format!("/{path}"),
            dir,
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        self.stop();
        // The loop's last /bin/true may still be exiting: retry, then remove the now empty
        // parents this run made (a parent another run still uses is not empty and stays).
        let root = hierarchy_root(self.scheme.hierarchy).unwrap();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut dir = self.dir.parent();
        while let Some(d) = dir.filter(|d| *d != root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

fn config(excluded_uid: &str) -> String {
    format!(
        r#"
[rules]
resolve_after_s = 600.0

[rules.fork_rate]
threshold = 20.0
window_s = 2.0
severity = "warning"
exclude_pods = ["{excluded_uid}"]
"#
    ) + &common::rules_off_except(&["fork_rate"])
}

/// Reads the SSE stream at `url` for `for_` and returns its events' `data` as JSON.
async fn stream(url: String, for_: Duration) -> Vec<Value> {
    let mut resp = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    let end = tokio::time::Instant::now() + for_;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(end, resp.chunk()).await {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    // The last event may be cut off by the deadline: keep whole ones.
    let whole = &text[..text.rfind("\n\n").map_or(0, |i| i + 2)];
    common::sse_events(whole)
        .iter()
        .filter_map(|ev| ev.iter().find(|(k, _)| k == "data"))
        .filter_map(|(_, v)| serde_json::from_str(v).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_from_kubelet_cgroups_on_processes_events_and_alerts() {
    let roots: Vec<Option<PathBuf>> = [Hierarchy::V2, Hierarchy::V1Cpu]
        .into_iter()
        .map(hierarchy_root)
        .collect();
    let root_of = |h: Hierarchy| roots[usize::from(h == Hierarchy::V1Cpu)].clone();
    // cgroupfs directories read r-x, yet root may make cgroups in them: try.
    let writable = is_root()
        && root_of(Hierarchy::V2).is_some_and(|r| {
            let probe = r.join(format!("ember-test-k8s-{}", std::process::id()));
            std::fs::create_dir(&probe).is_ok() && std::fs::remove_dir(&probe).is_ok()
        });
    if !writable {
        let why = "needs root and a cgroup v2 hierarchy to make pods' cgroups in";
        assert!(!common::ci(), "CI=true and {why}");
        common::skipped(why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One more pod (v2 systemd containerd) that the rule excludes.
    let mut plan: Vec<(&'static Scheme, bool)> = SCHEMES.iter().map(|s| (s, false)).collect();
    plan.push((&SCHEMES[0], true));
    plan.retain(|(s, _)| {
        let have = root_of(s.hierarchy).is_some();
        if !have {
            crate::report!("no {:?} hierarchy here: {} not tested", s.hierarchy, s.name);
        }
        have
    });
    let uids: Vec<String> = (0..plan.len() as u64).map(pod_uid).collect();
    let excluded_uid = uids.last().unwrap().clone();
    let d = Daemon::start(
        &["--probe-mode", common::probe_mode()],
        Some(&config(&excluded_uid)),
    );
    d.wait_ready(Duration::from_secs(60)).await;
    if !common::runs_bpf(&d, "fork events and alerts need BPF").await {
        return;
    }
    let sse = tokio::spawn(stream(d.url("/stream"), Duration::from_secs(6)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut markers = Vec::new();
    for (n, ((scheme, excluded), uid)) in plan.iter().zip(uids).enumerate() {
        let bin = dir.path().join(format!("emberpod{n}"));
        std::fs::copy("/bin/sh", &bin).unwrap();
        let root = root_of(scheme.hierarchy).unwrap();
        markers.push((Marker::start(scheme, &root, uid, n as u64, &bin), *excluded));
    }

    // Every pod that is not excluded raises its alert.
    let start = Instant::now();
    let alerts = loop {
        let list: Value = d.get_json("/alerts").await;
        let list = list["alerts"].as_array().unwrap().clone();
        let raised = markers
            .iter()
            .filter(|(m, excluded)| {
                !excluded && list.iter().any(|a| a["subject"]["pid"] == m.pid())
            })
            .count();
        if raised == markers.iter().filter(|(_, e)| !e).count() {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every pod's fork loop raised a fork_rate alert in 60 s: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Each marker's own view, while it runs.
    let mut processes = Vec::new();
    for (m, _) in &markers {
        let p: Value = d.get_json(&format!("/processes/{}", m.pid())).await;
        processes.push(p);
    }
    let events = sse.await.unwrap();
    for (m, _) in markers.iter_mut() {
        m.stop();
    }

    crate::report!(
        "{:<33} {:<8} {:<10} {:<10} {:>10} {:<8} {:<10} {:<10}",
        "scheme",
        "uid",
        "/processes",
        "container",
        "sse events",
        "with pod",
        "alert",
        "qos"
    );
    let mut failures = Vec::new();
    for ((m, excluded), p) in markers.iter().zip(&processes) {
        let pid = m.pid();
        let pod = &p["pod"];
        // Its events once in the pod: the exec into the loop (comm emberpodN), the loop's
        // forks (the same comm) and its children's execs and exits (`true`); not the fork
        // and first exec (`sh`) that happened before the shell joined the cgroup.
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["pid"] == pid || e["ppid"] == pid)
            .filter(|e| {
                e["comm"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("emberpod") || c == "true")
            })
            .collect();
        let with_pod = mine
            .iter()
            .filter(|e| {
                e["pod"]["uid"] == m.uid.as_str() && e["pod"]["container_id"] == m.id.as_str()
            })
            .count();
        let alert = alerts.iter().find(|a| a["subject"]["pid"] == pid);
        let alert_ok = alert.is_some_and(|a| {
            a["subject"]["pod"]["uid"] == m.uid.as_str()
                && a["subject"]["pod"]["container_id"] == m.id.as_str()
        });
        let name = if *excluded {
            format!("{} [excluded]", m.scheme.name)
        } else {
            m.scheme.name.to_string()
        };
        crate::report!(
            "{:<33} {:<8} {:<10} {:<10} {:>10} {:<8} {:<10} {:<10}",
            name,
            &m.uid[..8],
            if pod["uid"] == m.uid.as_str() {
                "uid ok"
            } else {
                "WRONG"
            },
            if pod["container_id"] == m.id.as_str() {
                &m.id[..8]
            } else {
                "WRONG"
            },
            mine.len(),
            with_pod,
            match (alert, alert_ok) {
                (None, _) => "none",
                (Some(_), true) => "pod ok",
                (Some(_), false) => "WRONG",
            },
            pod["qos_class"].as_str().unwrap_or("-"),
        );
        crate::report!("    {} (cgroup id {})", m.path, p["cgroup_id"]);
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("{}: {what}", name));
            }
        };
        check(
            pod["uid"] == m.uid.as_str(),
            format!("/processes/{pid} pod {pod}"),
        );
        check(
            pod["container_id"] == m.id.as_str(),
            format!("/processes/{pid} pod {pod}"),
        );
        check(pod["qos_class"] == m.scheme.qos, format!("qos {pod}"));
        check(
            pod["runtime"] == serde_json::json!(m.scheme.runtime),
            format!("runtime {pod}"),
        );
        // The exec into the loop and the loop's children's forks and exits, all in the pod.
        check(mine.len() >= 10, format!("only {} SSE events", mine.len()));
        check(
            with_pod == mine.len(),
            format!("{} of {} SSE events carry the pod", with_pod, mine.len()),
        );
        if *excluded {
            check(alert.is_none(), format!("an excluded pod raised {alert:?}"));
        } else {
            check(alert_ok, format!("alert {alert:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // A process outside any pod carries none.
    let me: Value = d.get_json(&format!("/processes/{}", d.pid())).await;
    assert!(me["pod"].is_null(), "{me}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}
