//! Validation: every numeric setting within its documented range, and no non-loopback
//! bind without a token.

use anyhow::bail;

use super::probes::probe_names;
use super::{Config, MAX_THREADS};

/// `value` must lie in `lo..=hi`: every numeric setting has a documented range, so that no
/// arithmetic on it (durations, allocations, thread counts) can overflow or abort.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    lo: T,
    hi: T,
) -> anyhow::Result<()> {
    if value < lo || value > hi {
        bail!("{name} = {value} is out of range: it must be {lo}..={hi}");
    }
    Ok(())
}

/// As [`within`] for a float, which must also be finite.
fn within_f64(name: &str, value: f64, lo: f64, hi: f64) -> anyhow::Result<()> {
    if !value.is_finite() {
        bail!("{name} = {value} is not a finite number");
    }
    within(name, value, lo, hi)
}

impl Config {
    /// Checks the settings that would otherwise fail later or be unsafe: a non-loopback
    /// bind without a token, zero-sized limits.
    ///
    /// # Errors
    ///
    /// What is wrong and how to fix it.
    pub fn validate(&self) -> anyhow::Result<()> {
        for bind in std::iter::once(&self.bind).chain(&self.also_bind) {
            if !bind.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
                bail!(
                    "refusing to listen on {bind} without a token: anything but loopback needs \
                     --token (or INSIGHTD_TOKEN, or `token` in the config file)"
                );
            }
        }
        let m = &self.model;
        within("model.ctx_size (--ctx-size)", m.ctx_size, 16, 1 << 20)?;
        if let Some(threads) = m.threads {
            within("model.threads (--threads)", threads, 1, MAX_THREADS)?;
        }
        within(
            "model.max_concurrent (--max-concurrent)",
            m.max_concurrent,
            1,
            255,
        )?;
        within("model.queue (--queue)", m.queue, 0, 65_536)?;
        within("model.max_tokens", m.max_tokens, 1, 1 << 20)?;
        within(
            "model.default_max_tokens",
            m.default_max_tokens,
            1,
            m.max_tokens,
        )?;
        if !(0.0..=2.0).contains(&m.temperature) {
            bail!("model.temperature must be 0..=2, not {}", m.temperature);
        }
        let l = &self.limits;
        within("limits.body_bytes", l.body_bytes, 1, 64 << 20)?;
        within("limits.sse_queue", l.sse_queue, 1, 1 << 20)?;
        within("limits.sse_clients", l.sse_clients, 1, 10_000)?;
        let p = &self.probes;
        for name in &p.disable {
            if ember_probes::Probe::from_name(name).is_none() {
                bail!(
                    "probes.disable: no probe {name:?} (one of {})",
                    probe_names()
                );
            }
        }
        within("probes.tick_ms", p.tick_ms, 1, 3_600_000)?;
        within("probes.channel_capacity", p.channel_capacity, 1, 1 << 24)?;
        within(
            "probes.ring_buffer_bytes",
            p.ring_buffer_bytes,
            4096,
            1 << 30,
        )?;
        let r = &self.rules;
        for (name, rule) in r.named() {
            for (key, uids) in [("pods", &rule.pods), ("exclude_pods", &rule.exclude_pods)] {
                if let Some(bad) = uids.iter().find(|u| !ember_probes::pod::is_pod_uid(u)) {
                    bail!(
                        "rules.{name}.{key}: {bad:?} is not a pod UID (metadata.uid: hex digits \
                         and dashes, e.g. 3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8)"
                    );
                }
            }
            within_f64(
                &format!("rules.{name}.threshold"),
                rule.threshold,
                0.0,
                1e15,
            )?;
            within_f64(
                &format!("rules.{name}.window_s"),
                rule.window_s,
                0.001,
                86_400.0,
            )?;
        }
        within_f64(
            "rules.resolve_after_s",
            r.resolve_after_s,
            0.001,
            7.0 * 86_400.0,
        )?;
        within("rules.keep", r.keep, 1, 100_000)?;
        let i = &self.insights;
        within_f64("insights.min_interval_s", i.min_interval_s, 0.0, 86_400.0)?;
        within("insights.keep", i.keep, 1, 10_000)?;
        within("insights.max_tokens", i.max_tokens, 1, 1 << 20)?;
        let o = &self.otlp;
        for signal in ["metrics", "logs"] {
            if let Some(url) = o.url(signal) {
                http_url(&format!("otlp ({signal})"), &url)?;
            }
        }
        within_f64("otlp.interval_s", o.interval_s, 0.1, 86_400.0)?;
        within_f64("otlp.timeout_s", o.timeout_s, 0.1, 600.0)?;
        within("otlp.queue", o.queue, 1, 1 << 24)?;
        within("otlp.batch", o.batch, 1, 1 << 16)?;
        let am = &self.alertmanager;
        for url in &am.urls {
            http_url("alertmanager.urls", url)?;
        }
        within_f64("alertmanager.resend_s", am.resend_s, 0.1, 86_400.0)?;
        within_f64("alertmanager.timeout_s", am.timeout_s, 0.1, 600.0)?;
        let s = &self.state;
        within("state.max_alerts", s.max_alerts, 1, 10_000_000)?;
        within("state.max_insights", s.max_insights, 1, 10_000_000)?;
        within_f64("state.max_age_days", s.max_age_days, 0.001, 36_500.0)?;
        Ok(())
    }
}

/// Checks that `url` is plain `http://HOST[:PORT]/...`.
fn http_url(what: &str, url: &str) -> anyhow::Result<()> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{what}: {url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        bail!(
            "{what}: {url:?} must be http://HOST:PORT/... (https is not spoken: put a TLS proxy \
             in front, or reach it on the cluster network)"
        );
    }
    Ok(())
}
