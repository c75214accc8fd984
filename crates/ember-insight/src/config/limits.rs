//! `[limits]`: HTTP request and stream limits.

use serde::{Deserialize, Serialize};

/// HTTP limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, in bytes (413 beyond).
    pub body_bytes: usize,
    /// Messages queued per `/stream` client; a client that falls this far behind is dropped.
    pub sse_queue: usize,
    /// Most `/stream` clients at once (503 beyond).
    pub sse_clients: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_bytes: 1 << 20,
            sse_queue: 1024,
            sse_clients: 64,
        }
    }
}
