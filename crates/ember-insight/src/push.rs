//! Pushing to the fleet's services (Alertmanager, OTLP receivers): one plain-HTTP client
//! (hyper's, already in the binary for the server) and a POST bounded in time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// This host's name as the fleet's services are told it (`/proc/sys/kernel/hostname`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The client (HTTP/1.1, no TLS), kept for the connections it pools.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs `body` as `content_type`; any 2xx is success. An error says what happened: no
/// connection, no answer within `timeout`, or the status with the start of the answer.
pub async fn post(
    client: &HttpClient,
    url: &hyper::Uri,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), String> {
    let request = hyper::Request::post(url.clone())
        .header("content-type", content_type)
        .header(
            "user-agent",
            concat!("insightd/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer in {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text: String = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|b| {
            String::from_utf8_lossy(&b.to_bytes())
                .chars()
                .take(300)
                .collect()
        })
        .unwrap_or_default();
    Err(format!("HTTP {status}: {text}"))
}
