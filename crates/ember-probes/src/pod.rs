//! Kubernetes identity of a process, read from its cgroup path: the pod UID, the container id
//! and the QoS class, as the kubelet and the container runtime name the cgroups.
//!
//! The kubelet makes one cgroup per pod under `kubepods` (the QoS class as a level between,
//! except for Guaranteed pods) and the runtime one per container under the pod's. With the
//! `cgroupfs` driver the names are plain (`/kubepods/burstable/pod<uid>/<id>`); with the
//! `systemd` driver they are slices and scopes and the UID's dashes become underscores
//! (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/
//! cri-containerd-<id>.scope`). Both appear in cgroup v2 (`0::` in `/proc/<pid>/cgroup`) and in
//! every v1 hierarchy line, and relative (`/../..`) when read from inside a cgroup namespace.
//! Names (namespace, pod, container) are not in the path: the fleet's
//! collector adds them from the UID and id (see the insightd README).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pod's quality-of-service class, from the cgroup level the kubelet puts it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Requests equal limits for every container: directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable`.
    Burstable,
    /// Under `kubepods/besteffort`.
    BestEffort,
}

impl QosClass {
    /// Kubernetes' spelling (`status.qosClass`).
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Where a process runs in Kubernetes, as far as its cgroup path tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodIdentity {
    /// The pod's UID (`metadata.uid`, with dashes; a static pod's is a 32-digit hash).
    pub pod_uid: String,
    /// The container's id as the runtime reports it (`containerStatuses[].containerID` without
    /// the `containerd://` prefix); `None` for a process in the pod's cgroup itself (the pause
    /// sandbox under some runtimes) or in a runtime's monitor (CRI-O's `crio-conmon-`).
    pub container_id: Option<String>,
    /// The runtime, when the cgroup name says (`containerd`, `cri-o`, `docker`).
    pub runtime: Option<&'static str>,
    /// The QoS class.
    pub qos: QosClass,
}

/// The pod identity in one cgroup path (`/kubepods/...` in any of the namings above, after any
/// prefix such as a nested kubelet's); `None` for a path outside `kubepods`.
pub fn parse_cgroup_path(path: &str) -> Option<PodIdentity> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = match segments
        .iter()
        .position(|s| *s == "kubepods" || s.ends_with("kubepods.slice"))
    {
        Some(i) => i + 1,
        // Read from inside a cgroup namespace (insightd in a pod of its own), another pod's
        // path is relative to ours and starts below `kubepods`: `/../../besteffort/pod<uid>/..`.
        None => segments.iter().rposition(|s| *s == "..")? + 1,
    };
    let mut parts = segments[start..].iter().copied();
    let mut qos = QosClass::Guaranteed;
    let mut pod_uid = None;
    for part in parts.by_ref() {
        let name = part.strip_suffix(".slice").unwrap_or(part);
        // The systemd driver repeats the parents' names (`kubepods-burstable-pod<uid>`); the
        // cgroupfs driver's `pod<uid>` keeps the UID's dashes.
        let level = if name.starts_with("pod") {
            name
        } else {
            name.rsplit('-').next().unwrap_or(name)
        };
        match level {
            "burstable" => qos = QosClass::Burstable,
            "besteffort" => qos = QosClass::BestEffort,
            _ => {
                let uid = level.strip_prefix("pod")?.replace('_', "-");
                if !is_pod_uid(&uid) {
                    return None;
                }
                pod_uid = Some(uid);
                break;
            }
        }
    }
    let pod_uid = pod_uid?;
    let (container_id, runtime) = match parts.next() {
        Some(part) => container(part),
        None => (None, None),
    };
    Some(PodIdentity {
        pod_uid,
        container_id,
        runtime,
        qos,
    })
}

/// The container id and runtime in a container cgroup's name.
fn container(part: &str) -> (Option<String>, Option<&'static str>) {
    let name = part.strip_suffix(".scope").unwrap_or(part);
    const PREFIXES: [(&str, Option<&str>); 5] = [
        ("crio-conmon-", None),
        ("cri-containerd-", Some("containerd")),
        ("crio-", Some("cri-o")),
        ("cri-dockerd-", Some("docker")),
        ("docker-", Some("docker")),
    ];
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = name.strip_prefix(prefix) {
            // A monitor process belongs to the pod but is no container.
            let Some(runtime) = runtime else {
                return (None, Some("cri-o"));
            };
            return (valid_id(id).then(|| id.to_string()), Some(runtime));
        }
    }
    // The cgroupfs driver names the container cgroup by its bare id, whatever the runtime.
    (valid_id(name).then(|| name.to_string()), None)
}

/// Whether `uid` is spelled as a pod UID (`metadata.uid`): a UUID, or a static pod's 32-digit
/// hash; hex digits and dashes.
pub fn is_pod_uid(uid: &str) -> bool {
    (8..=64).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn valid_id(id: &str) -> bool {
    (12..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a `/proc/<pid>/cgroup` file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup<'a> {
    /// The pod identity: from the v2 line (`0::`) first, then the v1 hierarchies in order.
    pub pod: Option<PodIdentity>,
    /// The v2 path, when there is a v2 line.
    pub v2_path: Option<&'a str>,
    /// Whether the v2 cgroup stands for the answer: it came from the v2 line, or no line names
    /// a pod and v2 is the only hierarchy. On a hybrid host (pods in v1 hierarchies) processes
    /// outside pods share v2 cgroups with pods' processes.
    pub by_v2: bool,
}

/// Parses the text of a `/proc/<pid>/cgroup` file.
pub fn parse_proc_cgroup(text: &str) -> ProcCgroup<'_> {
    let mut v2_path = None;
    let mut has_v1 = false;
    let mut v1 = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(_), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let v2 = id == "0";
        if v2 {
            v2_path = Some(path);
        } else {
            has_v1 = true;
        }
        match parse_cgroup_path(path) {
            Some(pod) if v2 => {
                return ProcCgroup {
                    pod: Some(pod),
                    v2_path,
                    by_v2: true,
                }
            }
            Some(pod) => v1 = v1.or(Some(pod)),
            None => {}
        }
    }
    let by_v2 = v1.is_none() && v2_path.is_some() && !has_v1;
    ProcCgroup {
        pod: v1,
        v2_path,
        by_v2,
    }
}

/// The pod identity of a live process (`None` outside a pod or when it is gone).
pub fn pod_identity(pid: u32) -> Option<PodIdentity> {
    read(Path::new("/proc"), pid)
}

/// [`pod_identity`] under another `/proc`.
pub(crate) fn read(proc_root: &Path, pid: u32) -> Option<PodIdentity> {
    parse_proc_cgroup(&proc_cgroup_file(proc_root, pid)?).pod
}

/// The text of `<proc_root>/<pid>/cgroup` (`None` once the process is gone).
fn proc_cgroup_file(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()
}

/// Most cgroup ids kept by [`PodCache`] before it starts over: a node has a few hundred
/// containers, and a miss costs one read of `/proc/<pid>/cgroup`.
const CACHE_CAP: usize = 4096;

/// Pod identities by cgroup v2 id, so that the processes of one container cost one read of
/// `/proc/<pid>/cgroup` between them, and one that has exited by the time its exec event is
/// read still gets the identity its cgroup had.
///
/// An event's cgroup id is from the time of the event, `/proc` is read later: a process may
/// have moved in between (a runtime's shell joins the container's cgroup, then execs). An
/// entry is kept only when the cgroup it was read from is the event's, checked by the inode of
/// its directory under the cgroup v2 mount, which is the cgroup id.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodCache {
    by_cgroup: HashMap<u64, Option<Arc<PodIdentity>>>,
    /// The cgroup v2 mount (found at the first miss; `Some(None)` when there is none).
    v2_mount: Option<Option<PathBuf>>,
}

impl PodCache {
    /// The identity of `pid`, whose v2 cgroup id is `cgroup_id` when known.
    pub(crate) fn resolve(
        &mut self,
        proc_root: &Path,
        pid: u32,
        cgroup_id: Option<u64>,
    ) -> Option<Arc<PodIdentity>> {
        if let Some(known) = cgroup_id.and_then(|id| self.by_cgroup.get(&id)) {
            return known.clone();
        }
        let text = proc_cgroup_file(proc_root, pid)?;
        let read = parse_proc_cgroup(&text);
        let pod = read.pod.map(Arc::new);
        let mount = self
            .v2_mount
            .get_or_insert_with(|| cgroup2_mount(proc_root))
            .as_deref();
        if let (Some(id), true, Some(path), Some(mount)) =
            (cgroup_id, read.by_v2, read.v2_path, mount)
        {
            if cgroup_inode(mount, path) == Some(id) {
                if self.by_cgroup.len() >= CACHE_CAP {
                    self.by_cgroup.clear();
                }
                self.by_cgroup.insert(id, pod.clone());
            }
        }
        pod
    }
}

/// Where cgroup v2 is mounted, from `/proc/self/mountinfo`.
fn cgroup2_mount(proc_root: &Path) -> Option<PathBuf> {
    let info = std::fs::read_to_string(proc_root.join("self/mountinfo")).ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// The cgroup id of `path` (a `/proc/<pid>/cgroup` v2 path) under `mount`: its directory's
/// inode number. `None` for a path outside this mount's view (`/..` under a cgroup namespace).
fn cgroup_inode(mount: &Path, path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    if path.split('/').any(|s| s == "..") {
        return None;
    }
    std::fs::metadata(mount.join(path.trim_start_matches('/')))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8";
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pod(container: Option<&str>, runtime: Option<&'static str>, qos: QosClass) -> PodIdentity {
        PodIdentity {
            pod_uid: UID.into(),
            container_id: container.map(str::to_string),
            runtime,
            qos,
        }
    }

    #[test]
    fn every_driver_and_runtime_naming() {
        let u = UID.replace('-', "_");
        let cases = [
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"),
                pod(Some(ID), Some("containerd"), QosClass::Burstable),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope"),
                pod(Some(ID), Some("cri-o"), QosClass::Guaranteed),
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/docker-{ID}.scope"),
                pod(Some(ID), Some("docker"), QosClass::BestEffort),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                pod(Some(ID), None, QosClass::Burstable),
            ),
            (
                format!("/kubepods/pod{UID}/{ID}"),
                pod(Some(ID), None, QosClass::Guaranteed),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
                pod(Some(ID), Some("cri-o"), QosClass::BestEffort),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{ID}.scope"),
                pod(None, Some("cri-o"), QosClass::Guaranteed),
            ),
            (
                format!("/kubepods/burstable/pod{UID}"),
                pod(None, None, QosClass::Burstable),
            ),
            // A kubelet nested in a container (kind): a prefix before kubepods.
            (
                format!("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u}.slice/cri-containerd-{ID}.scope"),
                pod(Some(ID), Some("containerd"), QosClass::BestEffort),
            ),
            // Seen from inside another pod's cgroup namespace.
            (
                format!("/../../../kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{ID}.scope"),
                pod(Some(ID), Some("containerd"), QosClass::BestEffort),
            ),
            (
                format!("/../../kubepods-pod{u}.slice/crio-{ID}.scope"),
                pod(Some(ID), Some("cri-o"), QosClass::Guaranteed),
            ),
            (
                format!("/../../burstable/pod{UID}/{ID}"),
                pod(Some(ID), None, QosClass::Burstable),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_cgroup_path(&path), Some(want), "{path}");
        }
    }

    #[test]
    fn paths_outside_pods() {
        for path in [
            "/",
            "/user.slice/user-0.slice/session-1.scope",
            "/system.slice/containerd.service",
            "/kubepods.slice",
            "/kubepods/burstable",
            "/kubepods/burstable/notapod",
            "/kubepods/podxyz/abc",
            "/../..",
            "/../../system.slice/containerd.service",
        ] {
            assert_eq!(parse_cgroup_path(path), None, "{path}");
        }
    }

    #[test]
    fn proc_file_prefers_v2_then_v1() {
        let v1 =
            format!("4:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/\n0::/\n");
        let read = parse_proc_cgroup(&v1);
        assert_eq!(read.pod.unwrap().qos, QosClass::BestEffort);
        assert_eq!((read.v2_path, read.by_v2), (Some("/"), false));
        let v2 = format!("0::/kubepods/pod{UID}/{ID}\n");
        let read = parse_proc_cgroup(&v2);
        assert_eq!(read.pod.unwrap().qos, QosClass::Guaranteed);
        assert!(read.by_v2);
        let read = parse_proc_cgroup("0::/user.slice\n");
        assert_eq!((read.pod, read.by_v2), (None, true));
        let read = parse_proc_cgroup("1:cpu:/\n0::/user.slice\n");
        assert_eq!((read.pod, read.by_v2), (None, false));
        assert_eq!(parse_proc_cgroup("").v2_path, None);
    }

    #[test]
    fn the_cgroup_id_is_the_inode_under_the_v2_mount() {
        let Some(mount) = cgroup2_mount(Path::new("/proc")) else {
            eprintln!("no cgroup v2 mount here");
            return;
        };
        let me = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = parse_proc_cgroup(&me).v2_path.unwrap().to_string();
        let ino = cgroup_inode(&mount, &path).unwrap();
        assert!(ino >= 1, "{mount:?} {path}");
        assert_eq!(cgroup_inode(&mount, "/../x"), None);
    }
}
