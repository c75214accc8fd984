//! llama-server's slot actions: a slot's cache saved to `model.slot_save_path`, erased, and
//! restored into a daemon started afresh, whose next request with the same prompt decodes
//! only what the restored cache lacks and answers the same (greedy) text; and the refusals.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Daemon};

/// A daemon with two API slots, and slot actions in `folder` when given.
fn start(folder: Option<&std::path::Path>) -> Option<Daemon> {
    let model = common::model()?;
    let mut config = format!(
        "{}[model]\nslots = true\nmax_concurrent = 2\n",
        common::NO_INSIGHTS
    );
    if let Some(folder) = folder {
        config.push_str(&format!(
            "slot_save_path = {:?}\n",
            folder.to_str().unwrap()
        ));
    }
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--probe-mode",
        "procfs",
        "--ctx-size",
        "1024",
        "--threads",
        "2",
    ];
    Some(Daemon::start(&args, Some(&config)))
}

async fn post(d: &Daemon, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(d.url(path));
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn completion() -> Value {
    let mut prompt = String::from("Fleet report. Read the lines and answer briefly.\n");
    for i in 0..12 {
        prompt.push_str(&format!(
            "node {i}: load {}.{} over 5 min\n",
            i % 4,
            i * 7 % 10
        ));
    }
    prompt.push_str("Which node has the highest load? Answer:");
    json!({"model": "m", "prompt": prompt, "max_tokens": 12, "temperature": 0})
}

#[tokio::test]
async fn a_saved_slot_restored_after_a_restart_serves_the_same_prompt() {
    let folder = tempfile::tempdir().unwrap();
    let Some(d) = start(Some(folder.path())) else {
        return;
    };
    d.wait_ready(Duration::from_secs(120)).await;
    let (status, first) = post(&d, "/v1/completions", Some(&completion())).await;
    assert_eq!(status, 200, "{first}");
    let prompt_tokens = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 100, "{first}");

    let slots = d.get_json("/slots").await;
    assert_eq!(slots.as_array().unwrap().len(), 2, "{slots}");
    assert!(
        slots
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["is_processing"] == false),
        "{slots}"
    );

    // The request went to one of the two slots: save both, one holds the prompt.
    let mut saved = None;
    for slot in 0..2 {
        let file = format!("slot{slot}.bin");
        let (status, body) = post(
            &d,
            &format!("/slots/{slot}?action=save"),
            Some(&json!({"filename": file})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id_slot"], slot, "{body}");
        assert_eq!(body["filename"], file.as_str(), "{body}");
        assert!(body["timings"]["save_ms"].as_f64().is_some(), "{body}");
        assert!(folder.path().join(&file).is_file());
        if body["n_saved"].as_u64().unwrap() >= prompt_tokens - 1 {
            assert!(body["n_written"].as_u64().unwrap() > 0, "{body}");
            saved = Some(file);
        }
        let (status, body) = post(&d, &format!("/slots/{slot}?action=erase"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id_slot"], slot, "{body}");
    }
    let saved = saved.expect("one slot held the prompt's cache");

    // Refusals, as llama-server's: no such action, slot or plain file name; not a slot file.
    for (path, body, want) in [
        (
            "/slots/0?action=fly",
            r#"{"filename": "x"}"#,
            "Invalid action",
        ),
        (
            "/slots/2?action=save",
            r#"{"filename": "x"}"#,
            "Invalid slot ID",
        ),
        (
            "/slots/x?action=save",
            r#"{"filename": "x"}"#,
            "Invalid slot ID",
        ),
        (
            "/slots/0?action=save",
            r#"{"filename": "../x"}"#,
            "Invalid filename",
        ),
        (
            "/slots/0?action=restore",
            r#"{"filename": ".hidden"}"#,
            "Invalid filename",
        ),
        (
            "/slots/0?action=restore",
            r#"{"filename": "none.bin"}"#,
            "Unable to restore",
        ),
        ("/slots/0?action=save", r#"{"name": "x"}"#, "filename"),
    ] {
        let body: Value = serde_json::from_str(body).unwrap();
        let (status, got) = post(&d, path, Some(&body)).await;
        assert_eq!(status, 400, "{path} {body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{path} {body}: {message}");
        assert!(
            !message.contains(folder.path().to_str().unwrap()),
            "the folder leaked: {message}"
        );
    }
    assert!(!folder.path().join("x").exists());
    d.stop();

    // A new daemon: the restored cache serves the prompt, and the answer is the same.
    let d = start(Some(folder.path())).unwrap();
    d.wait_ready(Duration::from_secs(120)).await;
    let (status, body) = post(
        &d,
        "/slots/1?action=restore",
        Some(&json!({"filename": saved})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["n_restored"].as_u64().unwrap() >= prompt_tokens - 1,
        "{body}"
    );
    assert!(body["n_read"].as_u64().unwrap() > 0, "{body}");
    let (status, again) = post(&d, "/v1/completions", Some(&completion())).await;
    assert_eq!(status, 200, "{again}");
    let cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= prompt_tokens - 1, "{again}");
    assert_eq!(
        again["choices"][0]["text"], first["choices"][0]["text"],
        "{again}"
    );
    d.stop();
}

#[tokio::test]
async fn slot_actions_are_off_without_a_folder() {
    let Some(d) = start(None) else {
        return;
    };
    d.wait_ready(Duration::from_secs(120)).await;
    let (status, body) = post(&d, "/slots/0?action=erase", None).await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slot_save_path"),
        "{body}"
    );
    d.stop();
}
