//! A good neighbour on a busy node: the model's threads run in the background by default
//! while the probes, rules and HTTP keep normal priority, and the default thread count
//! follows the cgroup's CPU quota.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{self, Daemon};

/// `(name, nice)` of every thread of process `pid`.
fn threads_of(pid: u32) -> Vec<(String, i32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (head, rest) = stat.rsplit_once(") ").unwrap();
        let name = head.split_once(" (").unwrap().1.to_string();
        // After the name: state is field 3, nice field 19.
        threads.push((name, rest.split(' ').nth(16).unwrap().parse().unwrap()));
    }
    threads
}

/// insightd with the test model (`/proc` polling, no insights) at model priority `priority`,
/// started through `wrapper` (see [`Daemon::start_wrapped`]), once ready; `None` (a skip)
/// without the model.
async fn start(wrapper: &[&str], priority: &str) -> Option<Daemon> {
    let model = common::model()?;
    let d = Daemon::start_wrapped(
        wrapper,
        "127.0.0.1:0",
        &[
            "--model",
            model.to_str().unwrap(),
            "--probe-mode",
            "procfs",
            "--ctx-size",
            "512",
            "--model-priority",
            priority,
        ],
        Some(common::NO_INSIGHTS),
    );
    d.wait_ready(Duration::from_secs(120)).await;
    Some(d)
}

#[tokio::test(flavor = "multi_thread")]
async fn background_model_threads_are_niced_and_ops_answer_while_the_model_works() {
    let Some(d) = start(&[], "background").await else {
        return;
    };
    let status: Value = d.get_json("/status").await;
    assert_eq!(status["model"]["priority"], "background", "{status}");
    assert!(
        status["model"]["threads"].as_i64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["model"]["threads_reason"]
            .as_str()
            .unwrap()
            .contains("affinity mask"),
        "{status}"
    );

    // A streamed generation (40 tokens: at nice 19 on a busy machine it crawls); /healthz,
    // /metrics and /status answer while it runs.
    let resp = reqwest::Client::new()
        .post(d.url("/v1/completions"))
        .json(
            &json!({"prompt": "Count from 1 to 500: 1, 2, 3,", "max_tokens": 40,
                      "temperature": 0, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut chunks = 0usize;
    let mut body = String::new();
    while chunks < 3 {
        let bytes = stream
            .next()
            .await
            .expect("the stream ended early")
            .unwrap();
        body.push_str(&String::from_utf8_lossy(&bytes));
        chunks = body.matches("data: ").count();
    }
    let threads = threads_of(d.pid());
    for path in ["/healthz", "/metrics", "/status"] {
        let r = reqwest::get(d.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let answered_at = body.matches("data: ").count();
    while let Some(bytes) = stream.next().await {
        body.push_str(&String::from_utf8_lossy(&bytes.unwrap()));
    }
    let total = body.matches("data: ").count();
    assert!(
        total > answered_at + 1,
        "the generation ended before the ops endpoints answered ({answered_at} of {total} events)"
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // The engine thread and the decode workers at nice 19; everything else at nice 0.
    eprintln!("threads while generating: {threads:?}");
    let model_threads: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name == "ember-engine" || name == "ggml-worker")
        .collect();
    assert!(
        model_threads.iter().any(|(n, _)| n == "ember-engine"),
        "{threads:?}"
    );
    assert!(
        model_threads.iter().all(|(_, nice)| *nice == 19),
        "{threads:?}"
    );
    assert!(
        threads
            .iter()
            .filter(|(name, _)| name != "ember-engine" && name != "ggml-worker")
            .all(|(_, nice)| *nice == 0),
        "{threads:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn normal_priority_leaves_the_model_threads_at_nice_0() {
    let Some(d) = start(&[], "normal").await else {
        return;
    };
    let status: Value = d.get_json("/status").await;
    assert_eq!(status["model"]["priority"], "normal", "{status}");
    let threads = threads_of(d.pid());
    assert!(threads.iter().any(|(n, _)| n == "ggml-worker") || status["model"]["threads"] == 1);
    assert!(threads.iter().all(|(_, nice)| *nice == 0), "{threads:?}");
}

/// A cgroup with a CPU quota made for the test (v1 `cpu` or v2 with the cpu controller),
/// removed on drop.
struct QuotaCgroup {
    dir: std::path::PathBuf,
}

impl QuotaCgroup {
    /// A cgroup limited to `quota_us` per 100 ms period, or `None` without a cpu controller.
    fn make(quota_us: u64) -> Option<QuotaCgroup> {
        let name = format!("ember-test-quota-{}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").ok()?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string()).ok()?;
            return Some(QuotaCgroup { dir });
        }
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let root = std::path::Path::new(root);
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers"));
            if controllers.is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu")) {
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
                let dir = root.join(&name);
                std::fs::create_dir_all(&dir).ok()?;
                std::fs::write(dir.join("cpu.max"), format!("{quota_us} 100000")).ok()?;
                return Some(QuotaCgroup { dir });
            }
        }
        None
    }

    /// A shell that joins the cgroup, then execs its arguments.
    fn wrapper(&self) -> [String; 4] {
        [
            "sh".into(),
            "-c".into(),
            format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                self.dir.display()
            ),
            "sh".into(),
        ]
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_cpu_quota_gives_one_thread_and_says_why() {
    if common::model().is_none() {
        return;
    }
    let Some(cgroup) = QuotaCgroup::make(50_000) else {
        let why = "no cgroup with the cpu controller to make (needs root and cgroup v1 cpu or v2)";
        assert!(!common::ci(), "CI=true and {why}");
        common::skipped(why);
        return;
    };
    let wrapper = cgroup.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let Some(d) = start(&wrapper, "normal").await else {
        return;
    };
    let status: Value = d.get_json("/status").await;
    eprintln!("model status in the cgroup: {}", status["model"]);
    assert_eq!(status["model"]["threads"], 1, "{status}");
    let reason = status["model"]["threads_reason"].as_str().unwrap();
    assert!(reason.contains("quota 0.5 CPUs"), "{reason}");
    if !reason.starts_with("1 CPUs") {
        assert!(reason.contains(": 1 by the quota"), "{reason}");
    }
    // It still generates.
    let v = d
        .post_json(
            "/v1/completions",
            &json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0}),
        )
        .await;
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{v}"
    );
    d.stop();
}
