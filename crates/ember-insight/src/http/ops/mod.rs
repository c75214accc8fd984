//! Operations endpoints: health, status, processes, the event stream, alerts, insights,
//! metrics, version.

mod alerts;
mod health;
mod insights;
mod metrics;
mod processes;
mod status;
mod stream;

// Each handler comes with utoipa's `__path_<handler>`, which `paths(ops::<handler>)` of the
// OpenAPI document names.
pub use alerts::{__path_alerts, alerts, AlertList};
pub use health::{
    __path_healthz, __path_readyz, __path_version, healthz, not_ready, readyz, version, VersionInfo,
};
pub use insights::{__path_insights, insights, InsightList};
pub use metrics::{__path_metrics, metrics};
pub use processes::{
    __path_process, __path_processes, process, processes, ProcessDetail, ProcessInfo, ProcessList,
    ProcessQuery, Subtree,
};
pub use status::{
    __path_status, model_status, status, AlertCounts, Drops, ModelStatus, ProbeInfo, Status,
    StreamStatus, TelemetryStatus,
};
pub use stream::{__path_stream, stream};
