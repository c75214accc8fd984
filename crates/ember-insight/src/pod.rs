//! A process's Kubernetes pod as insightd's records carry it (processes, SSE events, alerts,
//! insights), from [`ember_probes::PodIdentity`].

use ember_probes::PodIdentity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The pod and container a process runs in, read from its cgroup path. Names (namespace, pod,
/// container) are not there: an OpenTelemetry Collector's `k8sattributes` adds them by UID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pod {
    /// The pod's UID (`metadata.uid`).
    pub uid: String,
    /// The container's id, when the process is in a container's cgroup.
    pub container_id: Option<String>,
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    pub qos_class: String,
    /// `containerd`, `cri-o` or `docker`, when the cgroup name says.
    pub runtime: Option<String>,
}

impl From<&PodIdentity> for Pod {
    fn from(p: &PodIdentity) -> Pod {
        Pod {
            uid: p.pod_uid.clone(),
            container_id: p.container_id.clone(),
            qos_class: p.qos.as_str().to_string(),
            runtime: p.runtime.map(str::to_string),
        }
    }
}

/// The pod of `pid` in `table`, when it runs in one.
pub fn of(table: &ember_probes::ProcessTable, pid: u32) -> Option<Pod> {
    table.get(pid)?.pod.as_deref().map(Pod::from)
}
