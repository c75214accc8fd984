//! [`CpuBudget`]: the CPUs this process may use, from its affinity mask and its cgroup CPU
//! quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`), the lowest quota
//! on the way from its cgroup up to the hierarchy's root.

use std::path::{Path, PathBuf};

/// The CPUs this process may use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuBudget {
    /// Threads a context should use: the CPUs in the affinity mask, capped by the cgroup
    /// quota rounded down (at least 1). A quota of 500m gives one thread.
    pub threads: usize,
    /// The CPU numbers of the affinity mask.
    pub cpus: Vec<usize>,
    /// The CPU quota in CPUs (e.g. 0.5 for `limits.cpu: 500m`), when a cgroup sets one.
    pub quota: Option<f64>,
    /// One line for a person: how the count was found.
    pub reason: String,
}

impl CpuBudget {
    /// Reads this process's budget from the kernel (`sched_getaffinity`, `/proc/self/cgroup`,
    /// `/proc/self/mountinfo` and the cgroup files). What cannot be read counts as no limit.
    pub fn current() -> CpuBudget {
        let cpus = match rustix::thread::sched_getaffinity(None) {
            Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&i| set.is_set(i))
                .collect(),
            Err(_) => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                (0..n).collect()
            }
        };
        let quota = cgroup_quota();
        CpuBudget::from_parts(cpus, quota)
    }

    /// The budget of `cpus` (the affinity mask) and an optional quota (CPUs, and the file
    /// that set it).
    fn from_parts(cpus: Vec<usize>, quota: Option<(f64, PathBuf)>) -> CpuBudget {
        let affinity = cpus.len().max(1);
        let mut reason = format!("{affinity} CPUs in the affinity mask");
        let mut threads = affinity;
        if let Some((q, file)) = &quota {
            let by_quota = (q.floor() as usize).max(1);
            reason.push_str(&format!(", cgroup CPU quota {q} CPUs ({})", file.display()));
            if by_quota < threads {
                threads = by_quota;
                reason.push_str(&format!(": {threads} by the quota"));
            }
        } else {
            reason.push_str(", no cgroup CPU quota");
        }
        CpuBudget {
            threads,
            cpus,
            quota: quota.map(|(q, _)| q),
            reason,
        }
    }
}

/// The lowest CPU quota of this process's cgroups (v2 and v1 `cpu`), with the file that
/// sets it.
fn cgroup_quota() -> Option<(f64, PathBuf)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(f64, PathBuf)> = None;
    for (dir, mount, version) in cgroup_dirs(&cgroups, &mountinfo) {
        // The quota of every ancestor limits this cgroup too, up to the mount point.
        for at in dir.ancestors().take_while(|a| a.starts_with(&mount)) {
            if let Some(q) = read_quota(at, version) {
                if best.as_ref().is_none_or(|(b, _)| q.0 < *b) {
                    best = Some(q);
                }
            }
        }
    }
    best
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// A cgroup file system mount: where, the path inside the hierarchy it shows, and for v1
/// whether it carries the `cpu` controller.
struct Mount {
    point: PathBuf,
    root: String,
    version: Version,
    cpu: bool,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "id parent maj:min root point opts [optional...] - fstype source superopts"
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let superopts = right.nth(1).unwrap_or("");
            let version = match fstype {
                "cgroup2" => Version::V2,
                "cgroup" => Version::V1,
                _ => return None,
            };
            Some(Mount {
                point: PathBuf::from(unescape(fields.get(4)?)),
                root: unescape(fields.get(3)?),
                version,
                cpu: superopts.split(',').any(|o| o == "cpu"),
            })
        })
        .collect()
}

/// mountinfo escapes spaces and a few other bytes as `\NNN` (octal).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// This process's cgroup folders that can hold a CPU quota, with their mount points: the v2
/// one, and the v1 one of the hierarchy with the `cpu` controller.
fn cgroup_dirs(cgroups: &str, mountinfo: &str) -> Vec<(PathBuf, PathBuf, Version)> {
    let mounts = cgroup_mounts(mountinfo);
    let mut dirs = Vec::new();
    for line in cgroups.lines() {
        // "hierarchy-id:controllers:path"; v2 is "0::path".
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            Version::V2
        } else if controllers.split(',').any(|c| c == "cpu") {
            Version::V1
        } else {
            continue;
        };
        let mount = mounts
            .iter()
            .filter(|m| m.version == version && (version == Version::V2 || m.cpu))
            // A mount that shows a sub-tree (a container's) holds the paths under its root.
            .filter(|m| path.starts_with(&m.root))
            .max_by_key(|m| m.root.len());
        if let Some(m) = mount {
            let inside = path[m.root.len()..].trim_start_matches('/');
            dirs.push((m.point.join(inside), m.point.clone(), version));
        }
    }
    dirs
}

/// The quota set in `dir`, in CPUs, with the file that sets it.
fn read_quota(dir: &Path, version: Version) -> Option<(f64, PathBuf)> {
    match version {
        Version::V2 => {
            let file = dir.join("cpu.max");
            let q = parse_cpu_max(&std::fs::read_to_string(&file).ok()?)?;
            Some((q, file))
        }
        Version::V1 => {
            let file = dir.join("cpu.cfs_quota_us");
            let quota = std::fs::read_to_string(&file).ok()?;
            let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
            Some((parse_cfs(&quota, &period)?, file))
        }
    }
}

/// cgroup v2 `cpu.max`: "QUOTA PERIOD" in µs, or "max PERIOD" for none.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    let quota: f64 = quota.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// cgroup v1: `cpu.cfs_quota_us` (-1 for none) over `cpu.cfs_period_us`.
fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_in_both_versions() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("100000\n", "100000\n"), Some(1.0));
    }

    #[test]
    fn the_quota_caps_the_affinity_mask_rounded_down_to_at_least_one() {
        let file = PathBuf::from("/sys/fs/cgroup/x/cpu.max");
        let b = CpuBudget::from_parts(vec![0, 1, 2, 3], Some((0.5, file.clone())));
        assert_eq!(b.threads, 1);
        assert!(b.reason.contains("quota 0.5 CPUs"), "{}", b.reason);
        assert_eq!(
            CpuBudget::from_parts(vec![0, 1, 2, 3], Some((2.5, file.clone()))).threads,
            2
        );
        assert_eq!(
            CpuBudget::from_parts(vec![0, 1], Some((8.0, file))).threads,
            2
        );
        let b = CpuBudget::from_parts(vec![0, 1], None);
        assert_eq!((b.threads, b.quota), (2, None));
        assert_eq!(b.reason, "2 CPUs in the affinity mask, no cgroup CPU quota");
    }

    #[test]
    fn cgroup_folders_come_from_the_paths_and_the_mounts() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
32 25 0:28 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct
33 25 0:29 /kubepods/pod1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let cgroups = "\
3:memory:/kubepods/pod1/c1
2:cpuacct:/
1:cpu:/kubepods/burstable/pod1/c1
0::/system.slice/x.scope
";
        let dirs = |c, m| -> Vec<(PathBuf, Version)> {
            cgroup_dirs(c, m)
                .into_iter()
                .map(|(d, _, v)| (d, v))
                .collect()
        };
        assert_eq!(
            dirs(cgroups, mountinfo),
            vec![
                (
                    PathBuf::from("/sys/fs/cgroup/cpu/kubepods/burstable/pod1/c1"),
                    Version::V1
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/unified/system.slice/x.scope"),
                    Version::V2
                ),
            ]
        );
        // A container's namespaced view: the mount shows the cgroup's own sub-tree.
        let mountinfo = "40 30 0:26 /kubepods/pod2/c2 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            dirs("0::/kubepods/pod2/c2\n", mountinfo),
            vec![(PathBuf::from("/sys/fs/cgroup"), Version::V2)]
        );
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn this_process_has_a_budget() {
        let b = CpuBudget::current();
        assert!(b.threads >= 1 && b.threads <= b.cpus.len().max(1), "{b:?}");
    }
}
