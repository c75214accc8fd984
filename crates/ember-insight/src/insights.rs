//! Insights: for a new alert, a prompt built from its evidence and the process context goes
//! to the model under a JSON grammar; the reply is an [`InsightBody`]. A worker thread with its
//! own context does this; the telemetry thread queues at most one alert per rule and command
//! per `min_interval_s` ([`RateLimit`]). The last `keep` insights are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use ember_llama::ChatMessage;
use ember_probes::ProcessTable;
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::engine::Priority;
use crate::llm::{GenRequest, Llm};
use crate::state::{ModelState, Shared};
use crate::time::rfc3339;

/// The grammar of an insight: one JSON object with exactly these fields, strings short and
/// without escapes so that the answer fits the token budget. The grammar is checked against
/// the whole vocabulary at every step (262k tokens for Gemma 3, the dominant cost of an
/// insight), so fewer tokens is faster. `{SUBJECT}` is replaced by the
/// alert's command name (see [`grammar_for`]).
const GRAMMAR: &str = r#"
root ::= "{" ws "\"summary\": \"" subject chr{1,100} "\"," ws "\"likely_cause\":" ws str "," ws "\"suggested_actions\":" ws actions "," ws "\"confidence\":" ws conf ws "}"
subject ::= {SUBJECT}
actions ::= "[" ws act ( "," ws act )? ( "," ws act )? ws "]"
act ::= "\"" chr{1,60} "\""
conf ::= "0." [0-9] [0-9]? | "1.0"
str ::= "\"" chr{1,80} "\""
chr ::= [^"\\\x00-\x1f]
ws ::= [ \n]{0,2}
"#;

/// The insight grammar for an alert about `comm`: the summary opens with the command name
/// (when it is plain enough to quote), so that every insight says what it is about even when
/// a small model would not; the model writes the rest.
pub fn grammar_for(comm: &str) -> String {
    let plain = !comm.is_empty()
        && comm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+ ".contains(c));
    let subject = if plain {
        format!("\"{comm} \"")
    } else {
        "\"\"".to_string()
    };
    GRAMMAR.replace("{SUBJECT}", &subject)
}

/// What the model answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InsightBody {
    /// One sentence.
    pub summary: String,
    /// The most likely cause.
    pub likely_cause: String,
    /// What to do.
    pub suggested_actions: Vec<String>,
    /// 0 to 1.
    pub confidence: f64,
}

/// One insight.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Insight {
    /// The alert it explains.
    pub alert_id: u64,
    /// The alert's rule.
    #[serde(deserialize_with = "crate::history::interned")]
    #[schema(value_type = String)]
    pub rule: crate::history::Name,
    /// The alert's subject command.
    pub subject_comm: String,
    /// The alert's subject's pod, when it runs in one.
    pub subject_pod: Option<crate::pod::Pod>,
    /// The model's answer.
    pub insight: InsightBody,
    /// The model.
    pub model: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Generation time in milliseconds.
    pub took_ms: u64,
    /// Tokens generated.
    pub tokens: usize,
}

/// The process facts given to the model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessContext {
    /// Lines of `name: value`.
    pub lines: Vec<String>,
}

impl ProcessContext {
    /// Facts about `pid` from the table (none for pid 0).
    pub fn from_table(table: &ProcessTable, pid: u32) -> ProcessContext {
        let mut lines = Vec::new();
        if let Some(p) = table.get(pid).filter(|_| pid != 0) {
            lines.push(format!("process: {} (pid {})", quoted(&p.comm), p.pid));
            if !p.argv.is_empty() {
                lines.push(format!("command line: {}", quoted(&p.argv.join(" "))));
            }
            if let Some(parent) = table.get(p.ppid) {
                lines.push(format!(
                    "parent: {} (pid {})",
                    quoted(&parent.comm),
                    parent.pid
                ));
            }
            lines.push(format!(
                "children: {}, descendants: {}",
                p.children.len(),
                table.descendants(pid).len()
            ));
            lines.push(format!(
                "cpu: {:.0}% of one core, rss: {:.0} MB",
                p.cpu_percent,
                p.rss_bytes as f64 / 1e6
            ));
        }
        ProcessContext { lines }
    }
}

/// At most one insight per rule and subject command per interval: a burst of alerts about
/// sibling processes of one program gets one explanation, not one each.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    last: HashMap<(&'static str, String), Instant>,
}

impl RateLimit {
    /// One per `interval_s` seconds per key.
    pub fn new(interval_s: f64) -> RateLimit {
        RateLimit {
            interval: Duration::try_from_secs_f64(interval_s.max(0.0))
                .unwrap_or(Duration::from_secs(30)),
            last: HashMap::new(),
        }
    }

    /// Whether `alert` may get an insight now (and if so, records it).
    pub fn admit(&mut self, alert: &Alert) -> bool {
        let now = Instant::now();
        let interval = self.interval;
        self.last.retain(|_, t| now.duration_since(*t) < interval);
        let key = (alert.rule, alert.subject.comm.clone());
        if self.last.contains_key(&key) {
            return false;
        }
        self.last.insert(key, now);
        true
    }
}

/// An alert waiting for its insight.
#[derive(Debug)]
pub struct InsightJob {
    /// The alert.
    pub alert: Alert,
    /// Facts about its subject, taken when it fired.
    pub context: ProcessContext,
}

/// The last insights.
#[derive(Debug)]
pub struct InsightStore {
    items: VecDeque<Insight>,
    keep: usize,
}

impl InsightStore {
    /// Keeps the last `keep`.
    pub fn new(keep: usize) -> InsightStore {
        InsightStore {
            items: VecDeque::new(),
            keep: keep.max(1),
        }
    }

    /// Adds one, forgetting the oldest beyond `keep`.
    pub fn push(&mut self, insight: Insight) {
        self.items.push_back(insight);
        while self.items.len() > self.keep {
            self.items.pop_front();
        }
    }

    /// Puts back insights from the history (oldest first), the newest `keep`.
    pub fn restore(&mut self, insights: Vec<Insight>) {
        for insight in insights {
            self.push(insight);
        }
    }

    /// Oldest first.
    pub fn all(&self) -> impl DoubleEndedIterator<Item = &Insight> {
        self.items.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// None yet.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Most characters of one piece of telemetry text (argv, comm, cgroup path) in a prompt.
pub const UNTRUSTED_TEXT_CHARS: usize = 200;

/// Telemetry text as the prompt shows it: any local user chooses argv, comm and cgroup names,
/// so it is capped at [`UNTRUSTED_TEXT_CHARS`] and quoted as a JSON string (quotes, newlines
/// and control characters escaped), and the prompt's tokens never parse special tokens in it
/// ([`Llm::chat_prompt_tokens`](crate::llm::Llm::chat_prompt_tokens)).
pub fn quoted(text: &str) -> String {
    let capped: String = text.chars().take(UNTRUSTED_TEXT_CHARS).collect();
    let ellipsis = if capped.len() < text.len() { "…" } else { "" };
    serde_json::to_string(&format!("{capped}{ellipsis}")).unwrap_or_default()
}

/// The prompt for `job`.
pub fn prompt_messages(job: &InsightJob) -> Vec<ChatMessage> {
    let a = &job.alert;
    let mut text = String::from(
        "You are a Linux operations assistant. An alert fired on this host. \
         Explain it briefly in JSON with the fields summary (one sentence that names the \
         process), likely_cause, suggested_actions (one to three short items) and \
         confidence (0 to 1).\n\n",
    );
    text.push_str(&format!(
        "alert: {} ({})\nwhat happened: {}\n",
        a.rule,
        a.severity.as_str(),
        a.message
    ));
    text.push_str(&format!(
        "subject: {} (pid {})\n",
        quoted(&a.subject.comm),
        a.subject.pid
    ));
    if let Some(cg) = &a.subject.cgroup {
        text.push_str(&format!("cgroup: {}\n", quoted(cg)));
    }
    text.push_str(&format!(
        "measured: {} {} (threshold {} {}, window {} s)\n",
        a.evidence.value,
        a.evidence.unit,
        a.evidence.threshold,
        a.evidence.unit,
        a.evidence.window_s
    ));
    for (k, v) in &a.evidence.details {
        text.push_str(&format!("{k}: {v}\n"));
    }
    for line in &job.context.lines {
        text.push_str(line);
        text.push('\n');
    }
    // One example of the same kind of alert: a small model copies its shape closely, so the
    // example has no figures that could be mistaken for this alert's.
    text.push_str("\nExample answer for the same kind of alert about another program:\n");
    text.push_str(example_answer(a.rule));
    text.push_str("\n\nNow the answer for this alert, about ");
    text.push_str(&quoted(&a.subject.comm));
    text.push_str(":\n");
    vec![ChatMessage::user(text)]
}

/// A short example answer per rule, given in the prompt.
fn example_answer(rule: &str) -> &'static str {
    match rule {
        "fork_rate" => {
            r#"{"summary": "make (pid 4410) starts new processes much faster than normal.", "likely_cause": "A build or a shell loop in make that starts many short-lived commands.", "suggested_actions": ["Check what make runs in a loop", "Lower its parallelism or stop it"], "confidence": 0.7}"#
        }
        "subtree_rss_mb" => {
            r#"{"summary": "java (pid 812) and its children use more memory than allowed.", "likely_cause": "A memory leak or a heap size set too large in java.", "suggested_actions": ["Check the heap settings of java", "Restart java if memory keeps growing"], "confidence": 0.6}"#
        }
        "subtree_cpu_percent" => {
            r#"{"summary": "ffmpeg (pid 2301) and its children keep the CPUs busy.", "likely_cause": "A heavy job in ffmpeg or a busy loop.", "suggested_actions": ["Check what ffmpeg is working on", "Lower its priority with renice"], "confidence": 0.6}"#
        }
        "oom_kills" => {
            r#"{"summary": "postgres (pid 977) was killed because memory ran out.", "likely_cause": "The memory limit of postgres or of its cgroup is too low for its load.", "suggested_actions": ["Raise the memory limit of postgres", "Look for queries that use much memory"], "confidence": 0.7}"#
        }
        "failing_exits" => {
            r#"{"summary": "curl keeps failing again and again.", "likely_cause": "A retry loop calling curl against a service that is down.", "suggested_actions": ["Check the service curl calls", "Look at the script that runs curl"], "confidence": 0.6}"#
        }
        _ => {
            r#"{"summary": "The system makes runnable tasks wait long for a CPU.", "likely_cause": "More busy threads than CPUs.", "suggested_actions": ["Find the busiest processes", "Add CPUs or move work away"], "confidence": 0.5}"#
        }
    }
}

/// The prompt's tokens for `job`: the template's own text may become special tokens, the
/// telemetry in the messages never does ([`Llm::chat_prompt_tokens`]).
///
/// # Errors
///
/// The template rejects the messages, or tokenizing fails.
pub fn prompt_tokens(llm: &Llm, job: &InsightJob) -> anyhow::Result<Vec<ember_llama::Token>> {
    llm.chat_prompt_tokens(&prompt_messages(job))
}

/// Generates the insight for `job` through the engine, as background work (blocking).
///
/// # Errors
///
/// Generation failed, or the output is not the JSON the grammar promises.
pub fn generate(llm: &Llm, job: &InsightJob, max_tokens: usize) -> anyhow::Result<Insight> {
    let started = Instant::now();
    // Tokens, not text: telemetry never becomes special tokens (see `quoted`).
    let tokens = prompt_tokens(llm, job)?;
    let req = GenRequest {
        prompt: String::new(),
        prompt_tokens: Some(tokens),
        max_tokens,
        stops: Vec::new(),
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
        stages: Default::default(),
        grammar: Some(grammar_for(&job.alert.subject.comm)),
        chat_grammar: None,
        logprobs: None,
        token_ids: false,
    };
    let (out, summary) = llm.generate_blocking(req, Priority::Background)?;
    let body: InsightBody = serde_json::from_str(&out).with_context(|| {
        format!(
            "the model's insight is not valid JSON after {} tokens (finish: {}; raise insights.max_tokens): {out}",
            summary.completion_tokens, summary.finish_reason
        )
    })?;
    Ok(Insight {
        alert_id: job.alert.id,
        rule: job.alert.rule,
        subject_comm: job.alert.subject.comm.clone(),
        subject_pod: job.alert.subject.pod.clone(),
        insight: body,
        model: llm.name().to_string(),
        created: rfc3339(SystemTime::now()),
        took_ms: started.elapsed().as_millis() as u64,
        tokens: summary.completion_tokens,
    })
}

/// The insight worker: waits for the model, then turns jobs into insights until shutdown.
pub fn run_worker(shared: Arc<Shared>, jobs: Receiver<InsightJob>) {
    while !shared.stopping.load(Ordering::Relaxed) {
        let job = match jobs.recv_timeout(Duration::from_millis(250)) {
            Ok(job) => {
                shared.metrics.insight_queue.dec();
                job
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Wait for a model that is still loading; give up on one that failed.
        let llm = loop {
            match shared.model_state() {
                ModelState::Ready(llm) => break Some(llm),
                ModelState::Loading(_) if !shared.stopping.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => break None,
            }
        };
        let Some(llm) = llm else { continue };
        let started = Instant::now();
        let result = generate(&llm, &job, shared.config.insights.max_tokens);
        shared
            .metrics
            .insight_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(insight) => {
                log::info!(
                    "insight for alert {} in {} ms: {}",
                    insight.alert_id,
                    insight.took_ms,
                    insight.insight.summary
                );
                shared.metrics.insights.inc();
                let text = serde_json::to_string(&insight);
                shared.export_insight(&insight);
                {
                    let mut store = shared.insights.lock().unwrap_or_else(|e| e.into_inner());
                    shared.persist_insight(&insight);
                    store.push(insight);
                }
                shared.alert_news.notify_one();
                if let Ok(text) = text {
                    shared.hub.publish("insight", text);
                }
            }
            Err(e) => {
                shared.metrics.insight_failures.inc();
                log::warn!("insight for alert {} failed: {e:#}", job.alert.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_opens_with_plain_command_names_only() {
        assert!(grammar_for("emberstorm").contains("subject ::= \"emberstorm \""));
        assert!(grammar_for("we\"ird").contains("subject ::= \"\""));
        assert!(!grammar_for("x").contains("{SUBJECT}"));
    }

    #[test]
    fn the_grammar_shape_deserializes() {
        let text = r#"{"summary": "a", "likely_cause": "b", "suggested_actions": ["c", "d"], "confidence": 0.7}"#;
        let body: InsightBody = serde_json::from_str(text).unwrap();
        assert_eq!(body.suggested_actions.len(), 2);
    }
}
