//! The history on disk: alerts and insights in SQLite (`state.dir/insightd.db`), so that they
//! are back in `/alerts`, `/insights` and the dashboard after a restart, a rollout or a crash.
//!
//! SQLite is bundled and linked statically (rusqlite's `bundled`): no shared library in the
//! `FROM scratch` image. The database is in WAL mode with `synchronous = NORMAL`: a committed
//! transaction survives the process being killed at any point (it is in the kernel's page
//! cache), and the store always opens consistent; a power loss may take the last
//! transactions. Alerts are written before the API or a stream can show them (the telemetry
//! thread commits while it holds the alert store), so whatever a client saw was on disk.
//! Each row is the record's JSON as the API shows it, with the columns retention needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;

use crate::alerts::Alert;
use crate::config::StateConfig;
use crate::insights::Insight;

/// The file in `state.dir`.
pub const FILE: &str = "insightd.db";

/// The schema's version (`PRAGMA user_version`); a newer one is refused.
const VERSION: i64 = 1;

/// How often retention runs: at most once a minute, on a write.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The open store.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
    max_alerts: usize,
    max_insights: usize,
    max_age: Duration,
    last_prune: Option<Instant>,
}

impl History {
    /// Opens (or makes) the store in `config.dir`, checks it and applies retention.
    ///
    /// # Errors
    ///
    /// The directory cannot be made or written, the file is not a database or fails its
    /// integrity check, or it was written by a newer insightd.
    pub fn open(config: &StateConfig) -> anyhow::Result<Option<History>> {
        let Some(dir) = &config.dir else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "making state.dir {}: create it writable for insightd's user, or unset state.dir",
                dir.display()
            )
        })?;
        let path = dir.join(FILE);
        let conn = Connection::open(&path)
            .with_context(|| format!("opening the history {}", path.display()))?;
        let mut history = History {
            conn,
            path,
            max_alerts: config.max_alerts,
            max_insights: config.max_insights,
            max_age: Duration::from_secs_f64(config.max_age_days * 86_400.0),
            last_prune: None,
        };
        history.prepare().with_context(|| {
            format!(
                "the history {} cannot be used: move it away to start a new one",
                history.path.display()
            )
        })?;
        history.prune()?;
        Ok(Some(history))
    }

    fn prepare(&mut self) -> anyhow::Result<()> {
        let c = &self.conn;
        c.busy_timeout(Duration::from_secs(5))?;
        let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "journal mode {mode}, not WAL"
        );
        c.pragma_update(None, "synchronous", "NORMAL")?;
        let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        anyhow::ensure!(check == "ok", "integrity check: {check}");
        let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        anyhow::ensure!(
            version <= VERSION,
            "written by a newer insightd (schema {version}, this one knows {VERSION})"
        );
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS alerts (
                 id INTEGER PRIMARY KEY,
                 key TEXT NOT NULL,
                 written_ms INTEGER NOT NULL,
                 body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS insights (
                 alert_id INTEGER PRIMARY KEY,
                 written_ms INTEGER NOT NULL,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS alerts_written ON alerts(written_ms);
             CREATE INDEX IF NOT EXISTS insights_written ON insights(written_ms);",
        )?;
        c.pragma_update(None, "user_version", VERSION)?;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest `limit` alerts, with their keys. A row that does not parse (written by
    /// another version) is skipped with a warning.
    ///
    /// # Errors
    ///
    /// A read error.
    pub fn alerts(&self, limit: usize) -> anyhow::Result<Vec<Alert>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, key, body FROM alerts ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, key, body) = row?;
            match serde_json::from_str::<Alert>(&body) {
                Ok(mut alert) => {
                    alert.key = key;
                    out.push(alert);
                }
                Err(e) => log::warn!("history: alert {id} skipped: {e}"),
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` insights, oldest first.
    ///
    /// # Errors
    ///
    /// A read error.
    pub fn insights(&self, limit: usize) -> anyhow::Result<Vec<Insight>> {
        let mut stmt = self
            .conn
            .prepare("SELECT alert_id, body FROM insights ORDER BY alert_id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row?;
            match serde_json::from_str::<Insight>(&body) {
                Ok(insight) => out.push(insight),
                Err(e) => log::warn!("history: insight for alert {id} skipped: {e}"),
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Writes these alerts (new or changed) in one transaction.
    ///
    /// # Errors
    ///
    /// A write error (disk full, read-only file system).
    pub fn save_alerts(&mut self, alerts: &[Alert]) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO alerts (id, key, written_ms, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET key = excluded.key,
                     written_ms = excluded.written_ms, body = excluded.body",
            )?;
            for alert in alerts {
                stmt.execute(params![
                    alert.id as i64,
                    alert.key,
                    now,
                    serde_json::to_string(alert)?
                ])?;
            }
        }
        tx.commit()?;
        self.prune_now_and_then()
    }

    /// Writes one insight.
    ///
    /// # Errors
    ///
    /// A write error.
    pub fn save_insight(&mut self, insight: &Insight) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO insights (alert_id, written_ms, body) VALUES (?1, ?2, ?3)",
            params![
                insight.alert_id as i64,
                now_ms(),
                serde_json::to_string(insight)?
            ],
        )?;
        self.prune_now_and_then()
    }

    fn prune_now_and_then(&mut self) -> anyhow::Result<()> {
        if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.prune()?;
        }
        Ok(())
    }

    /// Retention: the newest `max_alerts`/`max_insights`, none older than `max_age_days`.
    ///
    /// # Errors
    ///
    /// A write error.
    pub fn prune(&mut self) -> anyhow::Result<()> {
        self.last_prune = Some(Instant::now());
        let oldest = now_ms() - self.max_age.as_millis() as i64;
        let tx = self.conn.transaction()?;
        for (table, id, keep) in [
            ("alerts", "id", self.max_alerts),
            ("insights", "alert_id", self.max_insights),
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE written_ms < ?1"),
                [oldest],
            )?;
            let cut: Option<i64> = tx
                .query_row(
                    &format!("SELECT {id} FROM {table} ORDER BY {id} DESC LIMIT 1 OFFSET ?1"),
                    [keep as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(cut) = cut {
                tx.execute(&format!("DELETE FROM {table} WHERE {id} <= ?1"), [cut])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Rows kept: (alerts, insights).
    ///
    /// # Errors
    ///
    /// A read error.
    pub fn counts(&self) -> anyhow::Result<(u64, u64)> {
        let count = |table: &str| -> rusqlite::Result<u64> {
            self.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
        };
        Ok((count("alerts")?, count("insights")?))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A name the code spells as a literal (a rule, a unit). An alias, not `&'static str` written
/// out, so that serde's derive does not take such a field for one borrowed from the input
/// (which would tie every record to the text it was read from); the history reads it through a
/// private interner.
pub type Name = &'static str;

/// Deserializes a name the code spells as `&'static str` (a rule, a unit) from the history:
/// each distinct name is allocated once and kept (a handful: the rules and their units).
pub(crate) fn interned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let name = String::deserialize(d)?;
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name.as_str()) {
        return Ok(known);
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Evidence, Subject};
    use crate::config::Severity;

    fn alert(id: u64) -> Alert {
        let mut a = Alert::new(
            id,
            "fork_rate",
            Severity::Warning,
            Subject {
                pid: 7,
                comm: "x".into(),
                cgroup: None,
                pod: None,
            },
            Evidence {
                value: 1.0,
                threshold: 1.0,
                unit: "forks/s",
                window_s: 1.0,
                details: Vec::new(),
            },
            format!("alert {id}"),
        );
        a.key = format!("fork_rate:{id}");
        a
    }

    fn config(dir: &Path, max_alerts: usize) -> StateConfig {
        StateConfig {
            dir: Some(dir.to_path_buf()),
            max_alerts,
            ..StateConfig::default()
        }
    }

    #[test]
    fn alerts_round_trip_upsert_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&config(dir.path(), 5)).unwrap().unwrap();
        let alerts: Vec<Alert> = (1..=8).map(alert).collect();
        h.save_alerts(&alerts).unwrap();
        let mut repeat = alert(8);
        repeat.count = 3;
        h.save_alerts(&[repeat]).unwrap();
        h.prune().unwrap();
        drop(h);
        let h = History::open(&config(dir.path(), 5)).unwrap().unwrap();
        let back = h.alerts(100).unwrap();
        let ids: Vec<u64> = back.iter().map(|a| a.id).collect();
        assert_eq!(ids, [4, 5, 6, 7, 8]);
        assert_eq!(back[4].count, 3);
        assert_eq!(back[4].key, "fork_rate:8");
        assert_eq!(back[4].rule, "fork_rate");
        assert_eq!(back[4].evidence.unit, "forks/s");
        assert_eq!(h.counts().unwrap(), (5, 0));
    }

    #[test]
    fn old_rows_go_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&config(dir.path(), 100)).unwrap().unwrap();
        h.save_alerts(&[alert(1), alert(2)]).unwrap();
        h.conn
            .execute("UPDATE alerts SET written_ms = 0 WHERE id = 1", [])
            .unwrap();
        h.prune().unwrap();
        assert_eq!(h.alerts(10).unwrap().len(), 1);
        h.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(h);
        let err = History::open(&config(dir.path(), 100)).unwrap_err();
        assert!(format!("{err:#}").contains("newer insightd"), "{err:#}");
    }

    #[test]
    fn a_file_that_is_no_database_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), vec![b'x'; 8192]).unwrap();
        let err = History::open(&config(dir.path(), 100)).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("move it away"), "{text}");
    }
}
