//! OTLP export over HTTP with protobuf bodies (`application/x-protobuf`), the encoding from
//! the official definitions (`opentelemetry-proto`'s prost types):
//!
//! - **metrics**: every `otlp.interval_s`, the registry `/metrics` shows, converted family by
//!   family (counters to cumulative monotonic sums named without `_total`, gauges, histograms
//!   with their buckets, info metrics as gauges), so that a receiver that writes Prometheus
//!   series (Prometheus' own OTLP receiver, a Collector's `prometheusremotewrite`) gets the
//!   names and values a scrape gets;
//! - **logs**: alerts (raised and resolved), insights and, with `otlp.events`, probe events,
//!   each a log record with `event.name` (`insightd.alert`, `insightd.exec`, ...), its fields
//!   as attributes and `k8s.pod.uid`/`container.id` when the process runs in a pod.
//!
//! Resource attributes: `service.name` (`insightd`), `service.version`, `service.instance.id`
//! and `host.name` (the host name, `/proc/sys/kernel/hostname`), `k8s.node.name` (`$NODE_NAME`, the downward API's
//! `spec.nodeName`, when set). A Collector's `k8sattributes` processor adds pod and namespace
//! names by `k8s.pod.uid`.
//!
//! Log records wait in a bounded queue (`otlp.queue`): the telemetry thread never waits for
//! the receiver; a record that finds the queue full, and a batch the receiver refused or did
//! not take in `otlp.timeout_s`, are dropped and counted (`insightd_otlp_dropped_total`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::Severity;
use crate::metrics::OtlpLabel;
use crate::pod::Pod;
use crate::state::Shared;

/// OTLP/HTTP's binary encoding.
const PROTOBUF: &str = "application/x-protobuf";

/// One record for the logs export.
#[derive(Debug, Clone)]
pub struct Record {
    /// `alert`, `insight`, `exec`, ...: `event.name` is `insightd.<kind>`.
    pub kind: &'static str,
    /// When it happened.
    pub time: SystemTime,
    /// An alert's severity.
    pub severity: Option<Severity>,
    /// One line for people.
    pub body: String,
    /// Its fields (a JSON object: each top-level field one attribute).
    pub fields: Value,
    /// The process's pod.
    pub pod: Option<Pod>,
}

/// The bounded queue between the producers and the logs exporter.
#[derive(Debug)]
pub struct LogQueue {
    tx: mpsc::Sender<Record>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Record>>>,
}

impl LogQueue {
    /// A queue of `capacity` records.
    pub fn new(capacity: usize) -> LogQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        LogQueue {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    /// Queues `record`, or returns false when the queue is full (the caller counts it).
    pub fn push(&self, record: Record) -> bool {
        self.tx.try_send(record).is_ok()
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

/// The resource every export carries.
pub fn resource() -> Resource {
    let host = crate::push::host_name();
    let mut attributes = vec![
        string("service.name", "insightd"),
        string("service.version", crate::state::VERSION),
        string("service.instance.id", host.clone()),
        string("host.name", host),
    ];
    if let Ok(node) = std::env::var("NODE_NAME") {
        if !node.is_empty() {
            attributes.push(string("k8s.node.name", node));
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "insightd".into(),
        version: crate::state::VERSION.into(),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// One sample: its name (the family's, with a suffix), labels and value.
type Sample = (String, Labels, f64);

/// One sample line of an OpenMetrics text: name, labels, value.
fn sample(line: &str) -> Option<(&str, Labels, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => val.push('\n'),
                    c => val.push(c),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

fn attributes(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| string(k, v.clone())).collect()
}

fn point(labels: &[(String, String)], value: f64, start: u64, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// The metrics of an OpenMetrics text (what `/metrics` shows) as one OTLP request; `start`
/// is when the cumulative counters began (the daemon's start).
pub fn metrics_request(
    openmetrics: &str,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (nanos(start), nanos(now));
    // Families in order, with their type and help.
    let mut families: Vec<(String, String, String)> = Vec::new();
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut help = BTreeMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                families.push((name.to_string(), kind.to_string(), String::new()));
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = rest.split_once(' ') {
                help.insert(name.to_string(), text.to_string());
            }
        } else if !line.starts_with('#') {
            if let (Some((name, labels, value)), Some((family, _, _))) =
                (sample(line), families.last())
            {
                samples
                    .entry(family.clone())
                    .or_default()
                    .push((name.to_string(), labels, value));
            }
        }
    }
    let mut metrics = Vec::new();
    for (family, kind, _) in families {
        let list = samples.remove(&family).unwrap_or_default();
        let description = help.get(&family).cloned().unwrap_or_default();
        let data = match kind.as_str() {
            "counter" => metric::Data::Sum(Sum {
                data_points: list
                    .iter()
                    .filter(|(n, _, _)| n.ends_with("_total"))
                    .map(|(_, l, v)| point(l, *v, start, now))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            "histogram" => metric::Data::Histogram(Histogram {
                data_points: histogram_points(&family, &list, start, now),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
            _ => {
                // Gauges, info metrics (`<family>_info`), unknown: one gauge per sample name.
                let name = list.first().map_or(family.clone(), |(n, _, _)| n.clone());
                metrics.push(Metric {
                    name,
                    description,
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: list
                            .iter()
                            .map(|(_, l, v)| point(l, *v, start, now))
                            .collect(),
                    })),
                    ..Default::default()
                });
                continue;
            }
        };
        metrics.push(Metric {
            name: family,
            description,
            data: Some(data),
            ..Default::default()
        });
    }
    let scope_metrics = vec![ScopeMetrics {
        scope: Some(scope()),
        metrics,
        ..Default::default()
    }];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics,
            ..Default::default()
        }],
    }
}

/// The histogram's series (label sets without `le`): cumulative `_bucket` counts become
/// OTLP's per-bucket counts.
fn histogram_points(
    family: &str,
    list: &[Sample],
    start: u64,
    now: u64,
) -> Vec<HistogramDataPoint> {
    type Series = (Vec<(f64, f64)>, f64, f64);
    let mut series: BTreeMap<Labels, Series> = BTreeMap::new();
    for (name, labels, value) in list {
        let mut key: Vec<(String, String)> =
            labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        key.sort();
        let entry = series.entry(key).or_default();
        match name.strip_prefix(family) {
            Some("_bucket") => {
                let le = labels.iter().find(|(k, _)| k == "le").and_then(|(_, v)| {
                    if v == "+Inf" {
                        Some(f64::INFINITY)
                    } else {
                        v.parse().ok()
                    }
                });
                if let Some(le) = le {
                    entry.0.push((le, *value));
                }
            }
            Some("_sum") => entry.1 = *value,
            Some("_count") => entry.2 = *value,
            _ => {}
        }
    }
    series
        .into_iter()
        .map(|(labels, (mut buckets, sum, count))| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut below = 0.0;
            let bucket_counts = buckets
                .iter()
                .map(|(_, cumulative)| {
                    let n = (cumulative - below).max(0.0);
                    below = *cumulative;
                    n as u64
                })
                .collect();
            HistogramDataPoint {
                attributes: attributes(&labels),
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: count as u64,
                sum: Some(sum),
                bucket_counts,
                explicit_bounds: buckets
                    .iter()
                    .map(|(le, _)| *le)
                    .filter(|le| le.is_finite())
                    .collect(),
                ..Default::default()
            }
        })
        .collect()
}

fn json_attribute(key: &str, value: &Value) -> Option<KeyValue> {
    let v = match value {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    Some(kv(key, v))
}

/// OTLP severity numbers (logs data model): INFO 9, WARN 13, ERROR 17.
fn severity_number(s: Option<Severity>) -> (i32, &'static str) {
    match s {
        None => (9, "INFO"),
        Some(Severity::Info) => (9, "INFO"),
        Some(Severity::Warning) => (13, "WARN"),
        Some(Severity::Critical) => (17, "ERROR"),
    }
}

/// Log records as one OTLP request.
pub fn logs_request(records: &[Record]) -> ExportLogsServiceRequest {
    let observed = nanos(SystemTime::now());
    let log_records = records
        .iter()
        .map(|r| {
            let mut attributes = vec![string("event.name", format!("insightd.{}", r.kind))];
            if let Value::Object(fields) = &r.fields {
                attributes.extend(fields.iter().filter_map(|(k, v)| json_attribute(k, v)));
            }
            if let Some(pod) = &r.pod {
                attributes.push(string("k8s.pod.uid", pod.uid.clone()));
                if let Some(id) = &pod.container_id {
                    attributes.push(string("container.id", id.clone()));
                }
            }
            let (number, text) = severity_number(r.severity);
            LogRecord {
                time_unix_nano: nanos(r.time),
                observed_time_unix_nano: observed,
                severity_number: number,
                severity_text: text.into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(r.body.clone())),
                }),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    let scope_logs = vec![ScopeLogs {
        scope: Some(scope()),
        log_records,
        ..Default::default()
    }];
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs,
            ..Default::default()
        }],
    }
}

fn count(shared: &Shared, signal: &'static str, outcome: &'static str) {
    shared
        .metrics
        .otlp_exports
        .get_or_create(&OtlpLabel { signal, outcome })
        .inc();
}

/// Exports metrics every `otlp.interval_s` until shutdown (nothing without a metrics URL).
pub async fn run_metrics(shared: Arc<Shared>) {
    let config = shared.config.otlp.clone();
    let Some(url) = config
        .url("metrics")
        .and_then(|u| u.parse::<hyper::Uri>().ok())
    else {
        return;
    };
    let client = crate::push::client();
    let timeout = Duration::from_secs_f64(config.timeout_s);
    let interval = Duration::from_secs_f64(config.interval_s);
    let started = SystemTime::now() - shared.started.elapsed();
    log::info!(
        "exporting metrics by OTLP to {url} every {:.1} s",
        config.interval_s
    );
    let mut failures = 0u32;
    while !shared.stopping.load(Ordering::Relaxed) {
        // A first export after one interval, as a scraper's first scrape: the receiver may
        // start beside insightd.
        sleep_unless_stopping(&shared, interval).await;
        if shared.stopping.load(Ordering::Relaxed) {
            break;
        }
        // The time before the read: a scrape that ends before it read no later values.
        let now = SystemTime::now();
        let request = metrics_request(&shared.metrics_text(), started, now);
        match crate::push::post(&client, &url, PROTOBUF, request.encode_to_vec(), timeout).await {
            Ok(()) => {
                count(&shared, "metrics", "ok");
                failures = 0;
            }
            Err(e) => {
                count(&shared, "metrics", "error");
                failures += 1;
                if failures.is_power_of_two() {
                    log::warn!("OTLP metrics export to {url}: {e} ({failures} in a row)");
                }
            }
        }
    }
}

async fn sleep_unless_stopping(shared: &Shared, total: Duration) {
    let end = tokio::time::Instant::now() + total;
    while !shared.stopping.load(Ordering::Relaxed) && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200).min(end - tokio::time::Instant::now())).await;
    }
}

/// Exports queued log records in batches until shutdown (nothing without a logs URL).
pub async fn run_logs(shared: Arc<Shared>) {
    let config = shared.config.otlp.clone();
    let (Some(url), Some(queue)) = (
        config
            .url("logs")
            .and_then(|u| u.parse::<hyper::Uri>().ok()),
        shared.otlp_logs.as_ref(),
    ) else {
        return;
    };
    let Some(mut rx) = queue.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let client = crate::push::client();
    let timeout = Duration::from_secs_f64(config.timeout_s);
    log::info!(
        "exporting alerts, insights{} by OTLP logs to {url}",
        if config.events { " and events" } else { "" }
    );
    let mut batch = Vec::with_capacity(config.batch);
    let mut failures = 0u32;
    while !shared.stopping.load(Ordering::Relaxed) {
        // The first record waits up to a second (to see shutdown); then up to 200 ms more
        // gathers a batch.
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(r)) => batch.push(r),
            Ok(None) => break,
            Err(_) => continue,
        }
        let linger = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < config.batch {
            match tokio::time::timeout_at(linger, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        let body = logs_request(&batch).encode_to_vec();
        match crate::push::post(&client, &url, PROTOBUF, body, timeout).await {
            Ok(()) => {
                count(&shared, "logs", "ok");
                failures = 0;
            }
            Err(e) => {
                count(&shared, "logs", "error");
                shared
                    .metrics
                    .otlp_dropped
                    .get_or_create(&crate::metrics::DropLabel {
                        reason: "export_failed",
                    })
                    .inc_by(batch.len() as u64);
                failures += 1;
                if failures.is_power_of_two() {
                    log::warn!(
                        "OTLP logs export to {url}: {e}; {} records dropped ({failures} failures in a row)",
                        batch.len()
                    );
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_families_become_otlp_metrics() {
        let text = "# HELP insightd_events Probe events.\n# TYPE insightd_events counter\n\
                    insightd_events_total{kind=\"exec\"} 5\ninsightd_events_total{kind=\"a\\\"b\"} 1\n\
                    # TYPE insightd_processes gauge\ninsightd_processes 42\n\
                    # TYPE insightd_build info\ninsightd_build_info{version=\"1\"} 1\n\
                    # TYPE insightd_lat histogram\ninsightd_lat_sum 3.5\ninsightd_lat_count 4\n\
                    insightd_lat_bucket{le=\"1.0\"} 1\ninsightd_lat_bucket{le=\"2.0\"} 3\n\
                    insightd_lat_bucket{le=\"+Inf\"} 4\n# EOF\n";
        let req = metrics_request(text, UNIX_EPOCH, SystemTime::now());
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "insightd_events",
                "insightd_processes",
                "insightd_build_info",
                "insightd_lat"
            ]
        );
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
        let label = &sum.data_points[1].attributes[0];
        assert_eq!(label.key, "kind");
        assert_eq!(
            label.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("a\"b".into()))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[3].data else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (4, Some(3.5)));
        assert_eq!(p.bucket_counts, [1, 2, 1]);
        assert_eq!(p.explicit_bounds, [1.0, 2.0]);
    }
}
