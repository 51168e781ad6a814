//! What was sent, in a small SQLite file, so a warning goes out at most once per period and a
//! problem that clears is reported as resolved exactly once.
//!
//! A warning is keyed by task, account and prefix (empty for account-wide tasks). It is
//! *active* from the run that first sends it until the run that finds the problem gone.
//! Runs are remembered by id per prefix so failures in a row can be counted across days.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("notification state {path}: {source} (check the [notify] state path and its permissions)")]
pub struct StateError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("another check run is using {0}; wait for it to finish")]
    Busy(String),
    #[error(transparent)]
    State(#[from] StateError),
}

pub struct State {
    db: Connection,
    path: String,
}

/// Identifies one warning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    pub task: &'a str,
    pub account: &'a str,
    pub prefix: &'a str,
}

impl State {
    pub fn open(path: &Path) -> Result<State, StateError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let err = |source| StateError {
            path: p.clone(),
            source,
        };
        let db = Connection::open(path).map_err(err)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS warnings(
                task TEXT NOT NULL, account TEXT NOT NULL, prefix TEXT NOT NULL,
                active INTEGER NOT NULL, first_sent TEXT NOT NULL, last_sent TEXT NOT NULL,
                PRIMARY KEY(task, account, prefix));
             CREATE TABLE IF NOT EXISTS runs(
                account TEXT NOT NULL, prefix TEXT NOT NULL, id TEXT NOT NULL,
                failed INTEGER NOT NULL, seen TEXT NOT NULL,
                PRIMARY KEY(account, prefix, id));",
        )
        .map_err(err)?;
        // Who the rules named at the last send (added later: older state files lack it).
        let has_recipients = db
            .prepare("SELECT 1 FROM pragma_table_info('warnings') WHERE name = 'recipients'")
            .and_then(|mut q| q.exists([]))
            .map_err(err)?;
        if !has_recipients {
            db.execute_batch("ALTER TABLE warnings ADD COLUMN recipients TEXT NOT NULL DEFAULT ''")
                .map_err(err)?;
        }
        Ok(State { db, path: p })
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// True when the warning was never sent, was resolved since, or was last sent a full
    /// period ago.
    /// Whether warning `k` is to be sent at `now`: new, or last sent at least `period` ago.
    /// A run up to 1/24 of the period early counts (an hour of a day): a daily check starts
    /// a little earlier or later each day and would otherwise skip every other reminder.
    pub fn due(&self, k: &Key, now: DateTime<Utc>, period: Duration) -> Result<bool, StateError> {
        let row: Option<(i64, String)> = self
            .db
            .prepare_cached(
                "SELECT active, last_sent FROM warnings WHERE task=?1 AND account=?2 AND prefix=?3",
            )
            .and_then(|mut q| {
                q.query_row(params![k.task, k.account, k.prefix], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(match row {
            None | Some((0, _)) => true,
            Some((_, last)) => DateTime::parse_from_rfc3339(&last)
                .map(|l| now - l.with_timezone(&Utc) >= period - period / 24)
                .unwrap_or(true),
        })
    }

    pub fn mark_sent(&self, k: &Key, now: DateTime<Utc>) -> Result<(), StateError> {
        let now = now.to_rfc3339();
        self.db
            .execute(
                "INSERT INTO warnings(task, account, prefix, active, first_sent, last_sent)
                 VALUES(?1, ?2, ?3, 1, ?4, ?4)
                 ON CONFLICT(task, account, prefix) DO UPDATE SET
                   first_sent = CASE WHEN active = 0 THEN ?4 ELSE first_sent END,
                   active = 1, last_sent = ?4",
                params![k.task, k.account, k.prefix, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records who the rules sent the warning to (customer and reseller addresses), for the
    /// dashboard: the outbox only shows mails not delivered yet.
    pub fn set_recipients(&self, k: &Key, to: &[String]) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE warnings SET recipients=?4 WHERE task=?1 AND account=?2 AND prefix=?3",
                params![k.task, k.account, k.prefix, to.join("\n")],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// If the warning is active, returns when it was first sent (the caller says "resolved").
    pub fn active_since(&self, k: &Key) -> Result<Option<DateTime<Utc>>, StateError> {
        let v: Option<String> = self
            .db
            .prepare_cached(
                "SELECT first_sent FROM warnings WHERE task=?1 AND account=?2 AND prefix=?3 AND active=1",
            )
            .and_then(|mut q| {
                q.query_row(params![k.task, k.account, k.prefix], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub fn mark_resolved(&self, k: &Key) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE warnings SET active=0 WHERE task=?1 AND account=?2 AND prefix=?3",
                params![k.task, k.account, k.prefix],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Closes every open warning of `account` without a "resolved" message; returns how many.
    pub fn close_account(&self, account: &str) -> Result<usize, StateError> {
        self.db
            .execute(
                "UPDATE warnings SET active=0 WHERE account=?1 AND active=1",
                params![account],
            )
            .map_err(|e| self.err(e))
    }

    /// Records a finished (or timed-out) run and returns how many runs in a row failed,
    /// counting back from the newest to the last success.
    pub fn record_run(
        &self,
        account: &str,
        prefix: &str,
        id: &str,
        failed: bool,
        now: DateTime<Utc>,
    ) -> Result<u32, StateError> {
        // Runs were keyed by the client's bare id before they were keyed by id and start: a
        // row an older holdfast wrote for this run becomes this run's, not a second one.
        let bare = id.split_once('@').map_or(id, |(b, _)| b);
        self.db
            .execute(
                "UPDATE OR IGNORE runs SET id = ?3 WHERE account = ?1 AND prefix = ?2 AND id = ?4",
                params![account, prefix, id, bare],
            )
            .map_err(|e| self.err(e))?;
        self.db
            .execute(
                "INSERT INTO runs(account, prefix, id, failed, seen) VALUES(?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(account, prefix, id) DO UPDATE SET failed = ?4",
                params![account, prefix, id, failed as i64, now.to_rfc3339()],
            )
            .map_err(|e| self.err(e))?;
        let mut q = self
            .db
            .prepare_cached(
                "SELECT failed FROM runs WHERE account=?1 AND prefix=?2 ORDER BY seen DESC, rowid DESC LIMIT 1000",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![account, prefix], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        let mut n = 0;
        for r in rows {
            if r.map_err(|e| self.err(e))? == 0 {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// A throwaway store (dry runs without a state file).
    pub fn in_memory() -> State {
        let mut s = State::open(Path::new(":memory:")).expect("in-memory SQLite");
        s.path = "(memory)".into();
        s
    }

    /// Failures in a row if run `id` ended `failed`, without recording anything (dry runs).
    pub fn failures_with(
        &self,
        account: &str,
        prefix: &str,
        id: &str,
        failed: bool,
    ) -> Result<u32, StateError> {
        if !failed {
            return Ok(0);
        }
        let bare = id.split_once('@').map_or(id, |(b, _)| b);
        let mut q = self
            .db
            .prepare_cached(
                "SELECT failed FROM runs WHERE account=?1 AND prefix=?2 AND id<>?3 AND id<>?4 ORDER BY seen DESC, rowid DESC LIMIT 1000",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![account, prefix, id, bare], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        let mut n = 1;
        for r in rows {
            if r.map_err(|e| self.err(e))? == 0 {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Runs every write of one check inside a transaction (much faster for many accounts).
    /// The write lock is taken at once, so a second check run on the same state waits a
    /// few seconds and then fails with [`BeginError::Busy`] instead of sending twice.
    pub fn begin(&self) -> Result<(), BeginError> {
        self.db
            .busy_timeout(std::time::Duration::from_secs(5))
            .and_then(|_| self.db.execute_batch("BEGIN IMMEDIATE"))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    BeginError::Busy(self.path.clone())
                }
                _ => BeginError::State(self.err(e)),
            })
    }

    pub fn commit(&self) -> Result<(), StateError> {
        self.db.execute_batch("COMMIT").map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn once_per_period_and_resolved_once() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("sub/state.sqlite")).unwrap();
        let k = Key {
            task: "quota",
            account: "4000001",
            prefix: "",
        };
        let day = Duration::hours(24);
        assert!(s.due(&k, t("2026-11-20T04:00:00Z"), day).unwrap());
        s.mark_sent(&k, t("2026-11-20T04:00:00Z")).unwrap();
        assert!(!s.due(&k, t("2026-11-20T20:00:00Z"), day).unwrap());
        assert!(s.due(&k, t("2026-11-21T04:00:00Z"), day).unwrap());
        // The next day's check, started half a second earlier than this one, reminds too.
        s.mark_sent(&k, t("2026-11-20T04:00:00.500Z")).unwrap();
        assert!(s.due(&k, t("2026-11-21T04:00:00.000Z"), day).unwrap());
        assert!(!s.due(&k, t("2026-11-21T02:59:00Z"), day).unwrap());
        assert_eq!(s.active_since(&k).unwrap(), Some(t("2026-11-20T04:00:00Z")));
        s.mark_resolved(&k).unwrap();
        assert_eq!(s.active_since(&k).unwrap(), None);
        // After resolution the same problem is news again at once.
        assert!(s.due(&k, t("2026-11-20T20:00:00Z"), day).unwrap());
        // Survives reopening.
        s.mark_sent(&k, t("2026-11-22T04:00:00Z")).unwrap();
        drop(s);
        let s = State::open(&d.path().join("sub/state.sqlite")).unwrap();
        assert_eq!(s.active_since(&k).unwrap(), Some(t("2026-11-22T04:00:00Z")));
    }

    #[test]
    fn failures_in_a_row() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let r = |id, f, at| s.record_run("a", "pc", id, f, t(at)).unwrap();
        assert_eq!(r("1", true, "2026-11-18T04:00:00Z"), 1);
        assert_eq!(r("2", false, "2026-11-19T04:00:00Z"), 0);
        assert_eq!(r("3", true, "2026-11-20T04:00:00Z"), 1);
        assert_eq!(
            r("3", true, "2026-11-20T05:00:00Z"),
            1,
            "the same run counts once"
        );
        assert_eq!(r("4", true, "2026-11-21T04:00:00Z"), 2);
        // A run an older holdfast recorded by its bare id, seen again under its id and
        // start: the same run, not a third failure.
        assert_eq!(
            r("4@2026-11-21T02:00:00+00:00", true, "2026-11-21T05:00:00Z"),
            2
        );
        assert_eq!(
            s.failures_with("a", "pc", "4@2026-11-21T02:00:00+00:00", true)
                .unwrap(),
            2
        );
        assert_eq!(
            s.record_run("a", "other", "4", true, t("2026-11-21T04:00:00Z"))
                .unwrap(),
            1
        );
    }

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_state() {
        let d = tempfile::tempdir().unwrap();
        let a = State::open(&d.path().join("state.sqlite")).unwrap();
        let b = State::open(&d.path().join("state.sqlite")).unwrap();
        a.begin().unwrap();
        let t0 = std::time::Instant::now();
        assert!(matches!(b.begin(), Err(BeginError::Busy(_))));
        assert!(t0.elapsed() >= std::time::Duration::from_secs(4));
        a.commit().unwrap();
        b.begin().unwrap();
        b.commit().unwrap();
    }
}

/// A warning that is active (sent and not resolved), for the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenWarning {
    pub task: String,
    pub account: String,
    pub prefix: String,
    pub first_sent: String,
    pub last_sent: String,
    /// Addresses the recipient rules named at the last send (empty: nobody, see the log).
    pub recipients: Vec<String>,
}

/// The newest client run the checks saw for one account and prefix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrefixRuns {
    pub account: String,
    pub prefix: String,
    /// When the checks first saw the newest run.
    pub last_seen: String,
    pub last_failed: bool,
    /// When the checks first saw the newest successful run.
    pub last_success: Option<String>,
}

impl State {
    /// Every active warning, oldest first.
    pub fn open_warnings(&self) -> Result<Vec<OpenWarning>, StateError> {
        let mut q = self
            .db
            .prepare(
                "SELECT task, account, prefix, first_sent, last_sent, recipients FROM warnings \
                 WHERE active = 1 ORDER BY first_sent, account, prefix",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok(OpenWarning {
                    task: r.get(0)?,
                    account: r.get(1)?,
                    prefix: r.get(2)?,
                    first_sent: r.get(3)?,
                    last_sent: r.get(4)?,
                    recipients: r.get::<_, String>(5)?.lines().map(String::from).collect(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Per account and prefix: the newest run and the newest successful one.
    pub fn prefix_runs(&self) -> Result<Vec<PrefixRuns>, StateError> {
        let mut q = self
            .db
            .prepare(
                "SELECT account, prefix, \
                   (SELECT seen FROM runs r2 WHERE r2.account = r.account AND r2.prefix = r.prefix \
                    ORDER BY seen DESC, rowid DESC LIMIT 1), \
                   (SELECT failed FROM runs r2 WHERE r2.account = r.account AND r2.prefix = r.prefix \
                    ORDER BY seen DESC, rowid DESC LIMIT 1), \
                   (SELECT max(seen) FROM runs r2 WHERE r2.account = r.account AND r2.prefix = r.prefix \
                    AND failed = 0) \
                 FROM runs r GROUP BY account, prefix ORDER BY account, prefix",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok(PrefixRuns {
                    account: r.get(0)?,
                    prefix: r.get(1)?,
                    last_seen: r.get(2)?,
                    last_failed: r.get::<_, i64>(3)? != 0,
                    last_success: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
