//! The Grafana dashboard (build-support/grafana/insightd.json): its data source is the
//! `${datasource}` variable everywhere, its queries parse as PromQL (`promtool`), and every
//! `insightd_*` metric they name is one a real insightd exports.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, Daemon};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../build-support/grafana/insightd.json"
);

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD)
        .unwrap_or_else(|e| panic!("cannot read the dashboard {DASHBOARD}: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}: fix the file"))
}

/// Every panel, those inside (collapsed) rows included.
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

fn title(panel: &Value) -> String {
    panel["title"].as_str().unwrap_or("(untitled)").to_string()
}

/// (where, PromQL) of every query: each panel target, and each query variable.
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            let owner = format!("panel {:?} target {}", title(p), t["refId"]);
            out.push((owner, expr.to_string()));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            // Grafana 10 writes the query as an object; older exports as a string.
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            out.push((
                format!("variable {}", v["name"]),
                q.unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

/// The `insightd_[a-z0-9_]+` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = BTreeSet::new();
    for (at, _) in expr.match_indices("insightd_") {
        // `foo_insightd_x` is another metric.
        if expr[..at].chars().next_back().is_some_and(ident) {
            continue;
        }
        let name: String = expr[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// The series names the `# TYPE` lines of an OpenMetrics text export: a counter family
/// `x` has samples `x_total`, a histogram `x_bucket`, `x_sum` and `x_count`, anything else `x`.
fn exported(openmetrics: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in openmetrics.lines() {
        let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        else {
            continue;
        };
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// One line per metric a query names that `exported` lacks.
fn unknown_metrics(queries: &[(String, String)], exported: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (owner, expr) in queries {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                out.push(format!(
                    "{owner}: {name} is not exported by insightd's /metrics \
                     (rename it to a metric of crates/ember-insight/src/metrics.rs)"
                ));
            }
        }
    }
    out
}

/// The data source is the `datasource` variable (type prometheus) in every panel and every
/// target, so that an import binds the dashboard to any Prometheus; each query filters on the
/// `instance` variable.
#[test]
fn dashboard_takes_its_datasource_and_instances_from_variables() {
    let dash = dashboard();
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{DASHBOARD}: schemaVersion {} is older than Grafana 10's",
        dash["schemaVersion"]
    );
    let vars = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    let ds = var("datasource").expect("no `datasource` variable in templating.list");
    assert_eq!(ds["type"], "datasource", "the datasource variable: {ds}");
    assert_eq!(ds["query"], "prometheus", "the datasource variable: {ds}");
    let instance = var("instance").expect("no `instance` variable in templating.list");
    assert_eq!(instance["multi"], true, "the instance variable: {instance}");
    assert_eq!(
        instance["includeAll"], true,
        "the instance variable: {instance}"
    );

    let want = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let mut wrong = Vec::new();
    let all = panels(&dash);
    for p in &all {
        if p["datasource"] != want {
            wrong.push(format!(
                "panel {:?}: datasource {} (want {want})",
                title(p),
                p["datasource"]
            ));
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if !t["datasource"].is_null() && t["datasource"] != want {
                wrong.push(format!(
                    "panel {:?} target {}: datasource {}",
                    title(p),
                    t["refId"],
                    t["datasource"]
                ));
            }
            let expr = t["expr"].as_str().unwrap_or_default();
            if !expr.contains(r#"instance=~"$instance""#) {
                wrong.push(format!(
                    "panel {:?} target {}: {expr:?} does not filter on instance=~\"$instance\"",
                    title(p),
                    t["refId"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{DASHBOARD}:\n{}", wrong.join("\n"));
    let with_queries = all.iter().filter(|p| p["targets"].is_array()).count();
    assert!(
        with_queries >= 10,
        "only {with_queries} panels have queries"
    );
}

/// Every `insightd_*` name in the dashboard's queries is a series a real insightd exports.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_names_only_metrics_insightd_exports() {
    let dash = dashboard();
    let queries = queries(&dash);
    let named: BTreeSet<String> = queries.iter().flat_map(|(_, e)| metric_names(e)).collect();
    assert!(named.len() >= 10, "the dashboard names only {named:?}");

    // /proc polling is enough: the families are registered whatever the probe mode.
    let d = Daemon::start(&["--probe-mode", "procfs"], None);
    d.wait_ready(Duration::from_secs(60)).await;
    let resp = reqwest::Client::new()
        .get(d.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();

    // The check reads `# TYPE` lines, not samples, because a labelled family without series
    // yet (no generation was asked for here) still prints them.
    assert!(
        text.contains("# TYPE insightd_generations_rejected counter\n")
            && !text.contains("insightd_generations_rejected_total"),
        "expected insightd_generations_rejected's TYPE line without samples:\n{text}"
    );
    let exported = exported(&text);
    let unknown = unknown_metrics(&queries, &exported);
    assert!(
        unknown.is_empty(),
        "{DASHBOARD}:\n{}\nexported: {exported:?}",
        unknown.join("\n")
    );
    // The check itself can fail.
    let bogus = [(
        "panel \"x\"".to_string(),
        "rate(insightd_nope_total[1m])".into(),
    )];
    assert_eq!(unknown_metrics(&bogus, &exported).len(), 1);
    eprintln!(
        "{} queries name {} metrics, all exported: {named:?}",
        queries.len(),
        named.len()
    );
}

/// Every query parses as PromQL: written as recording rules (Grafana's variables replaced by
/// what they expand to) for `promtool check rules`.
#[test]
fn dashboard_queries_parse_as_promql() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let queries = queries(&dashboard());
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            // label_values() is Grafana's, not PromQL: its metric is what it reads.
            let expr = match expr.strip_prefix("label_values(") {
                Some(rest) => rest.split(',').next().unwrap_or(rest).to_string(),
                None => expr,
            };
            serde_json::json!({"record": format!("grafana:query{i}"), "expr": expr})
        })
        .collect();
    // JSON is YAML: promtool reads it as a rules file.
    let file = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    let doc = serde_json::json!({"groups": [{"name": "grafana", "rules": rules}]});
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(file.path())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run promtool");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // promtool names a failing rule by its record name: map that back to its panel.
    let failing: Vec<String> = queries
        .iter()
        .enumerate()
        .filter(|(i, _)| report.contains(&format!("\"grafana:query{i}\"")))
        .map(|(_, (owner, expr))| format!("{owner}: {expr}"))
        .collect();
    assert!(
        out.status.success(),
        "{DASHBOARD}: a query is not PromQL:\n{}\npromtool check rules says:\n{report}",
        failing.join("\n")
    );
    assert!(
        report.contains(&format!("{} rules found", queries.len())),
        "{report}"
    );
}
