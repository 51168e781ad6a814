//! The server jobs over all accounts of this host: snapshot rotation and size accounting.
//! One account's failure (missing home, I/O error, LDAP write refused) is reported in its
//! outcome and the others are still processed; an unreachable directory fails before
//! anything is touched. Both jobs record what they saw in the status file.

use crate::directory::Directory;
use crate::homes::home_of;
use crate::status::{AccountStatus, RunStatus, Status};
use crate::ServerConfig;
use chrono::{DateTime, Utc};
use holdfast_stoney::account::Account;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Why a job did not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Directory(#[from] crate::directory::Error),
    #[error(transparent)]
    Lock(#[from] holdfast_core::lock::LockError),
}

/// One run of a job at a time: `<state_dir>/<job>.lock` (a second run stops with
/// `LockError::Held`, exit code 4 in the CLI).
pub fn job_lock(cfg: &ServerConfig, job: &str) -> Result<holdfast_core::lock::Lock, JobError> {
    let path = cfg.state_dir.join(format!("{job}.lock"));
    Ok(holdfast_core::lock::acquire(
        &path,
        holdfast_core::lock::LockMode::Exclusive,
    )?)
}

/// What a job did for one account.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub uid: String,
    pub home: Option<PathBuf>,
    /// None when it went fine.
    pub error: Option<String>,
    /// Job-specific details (rotation report, sizes).
    pub detail: serde_json::Value,
}

/// A job's outcomes, in uid order.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    pub host: String,
    pub outcomes: Vec<Outcome>,
    /// Entries removed from the trash after rotation.
    pub purged: u64,
    /// A stop signal ended the run early (the remaining accounts were not processed).
    pub interrupted: bool,
}

impl JobReport {
    pub fn errors(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
    }
}

fn to_utc(t: std::time::SystemTime) -> DateTime<Utc> {
    t.into()
}

fn missing_home_hint(acc: &Account, home: &std::path::Path) -> String {
    format!(
        "account {}: home {} is missing (create it with `holdfast server account add {}`)",
        acc.uid,
        home.display(),
        acc.uid
    )
}

/// A job's pass over the accounts, before its report is written.
struct Pass {
    started: Instant,
    host: String,
    status: Status,
    accounts: usize,
    outcomes: Vec<Outcome>,
    interrupted: bool,
}

/// The loop both jobs share: select this host's accounts (or `only`), resolve each home and
/// hand it to `per_home`, which fills the account's outcome and status entry. A stop signal
/// ends the pass between accounts.
fn each_account(
    cfg: &ServerConfig,
    dir: &Directory,
    only: Option<&str>,
    mut per_home: impl FnMut(&Account, PathBuf, &mut AccountStatus, &mut Outcome),
) -> Result<Pass, JobError> {
    let started = Instant::now();
    let host = cfg.host_name();
    let mut accounts = select(dir, &host, only)?;
    // the reseller's defaults (snapshot intervals, warning settings) where the account has none
    let mut settings = std::collections::HashMap::new();
    for acc in &mut accounts {
        let Some(r) = acc.reseller_uid.clone() else {
            continue;
        };
        let s = settings.entry(r.clone()).or_insert_with(|| {
            dir.reseller_settings(&r).unwrap_or_else(|e| {
                tracing::warn!("reseller {r}: cannot read its settings: {e}");
                None
            })
        });
        if let Some(s) = s {
            acc.apply_defaults(s);
        }
    }
    let mut status = Status::load(&cfg.state_dir);
    status.host = host.clone();
    let mut outcomes = vec![];
    let mut interrupted = false;
    for acc in &accounts {
        if holdfast_site::interrupt::requested() {
            interrupted = true;
            break;
        }
        let mut o = Outcome {
            uid: acc.uid.clone(),
            home: None,
            error: None,
            detail: serde_json::Value::Null,
        };
        let st = status.accounts.entry(acc.uid.clone()).or_default();
        st.quota = acc.quota;
        match home_of(acc, &cfg.homes_root) {
            Err(e) => o.error = Some(e.to_string()),
            Ok(home) => {
                o.home = Some(home.clone());
                st.home = home.clone();
                per_home(acc, home, st, &mut o);
            }
        }
        if let Some(e) = &o.error {
            tracing::debug!("{e}");
        }
        st.error = o.error.clone();
        outcomes.push(o);
    }
    Ok(Pass {
        started,
        host,
        status,
        accounts: accounts.len(),
        outcomes,
        interrupted,
    })
}

/// Records the pass under `key` in the status file and makes its report.
fn finish(cfg: &ServerConfig, mut pass: Pass, key: &str, job: String, purged: u64) -> JobReport {
    let report = JobReport {
        job,
        host: pass.host,
        outcomes: pass.outcomes,
        purged,
        interrupted: pass.interrupted,
    };
    pass.status.runs.insert(
        key.into(),
        RunStatus {
            at: Some(Utc::now()),
            accounts: pass.accounts as u32,
            errors: report.errors() as u32,
            seconds: pass.started.elapsed().as_secs_f64(),
        },
    );
    if let Err(e) = pass.status.save(&cfg.state_dir) {
        tracing::warn!(
            "cannot write the status file in {}: {e}",
            cfg.state_dir.display()
        );
    }
    report
}

/// Rotates `interval` for every account of this host (optionally only `only`), then empties
/// the trash unless `keep_trash`.
pub fn snapshot_all(
    cfg: &ServerConfig,
    dir: &Directory,
    interval: &str,
    only: Option<&str>,
    keep_trash: bool,
) -> Result<JobReport, JobError> {
    let _lock = job_lock(cfg, &format!("snapshot-{interval}"))?;
    let mut homes = vec![];
    let pass = each_account(cfg, dir, only, |acc, home, st, o| {
        if !home.is_dir() {
            o.error = Some(missing_home_hint(acc, &home));
        } else if !acc.active {
            o.detail = serde_json::json!({"skipped": "sstIsActive is FALSE"});
        } else {
            match crate::snapshot::rotate(&home, &acc.intervals, interval) {
                Ok(r) => {
                    o.detail = serde_json::to_value(&r).unwrap_or_default();
                    homes.push(home.clone());
                }
                Err(e) => o.error = Some(format!("account {}: {e}", acc.uid)),
            }
            st.last_snapshot = crate::snapshot::last_snapshot(&home).map(to_utc);
            st.layout = Some(
                serde_json::to_value(crate::homes::layout(&home))
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            );
        }
    })?;
    let mut purged = 0;
    if !keep_trash && !pass.interrupted {
        // every home's trash at once: the removals share the tree walks' I/O pool
        use rayon::prelude::*;
        let done: Vec<_> = crate::tree::io_pool().install(|| {
            homes
                .par_iter()
                .map(|h| (h, crate::snapshot::purge_trash(h)))
                .collect()
        });
        for (h, r) in done {
            match r {
                Ok(n) => purged += n,
                Err(e) => tracing::warn!(
                    "emptying the trash of {}: {e} (retried next run)",
                    h.display()
                ),
            }
        }
    }
    Ok(finish(
        cfg,
        pass,
        "snapshot",
        format!("snapshot {interval}"),
        purged,
    ))
}

/// Measures every account of this host (optionally only `only`) and, if `write`, stores
/// `sstBackupSize`/`sstIncrementSize` in the directory. Unless `full`, rotated snapshots are
/// read from their scans in `<state_dir>/size-cache/<uid>/` (see [`crate::size::measure_cached`]).
pub fn size_all(
    cfg: &ServerConfig,
    dir: &Directory,
    only: Option<&str>,
    write: bool,
    full: bool,
) -> Result<JobReport, JobError> {
    let _lock = job_lock(cfg, "size")?;
    let pass = each_account(cfg, dir, only, |acc, home, st, o| {
        let cache = cfg.state_dir.join("size-cache").join(&acc.uid);
        let cache = (!full).then_some(cache.as_path());
        match crate::size::measure_cached(&home, cache) {
            Err(crate::size::SizeError::MissingHome(_)) => {
                o.error = Some(missing_home_hint(acc, &home))
            }
            Err(e) => o.error = Some(format!("account {}: {e}", acc.uid)),
            Ok(s) => {
                o.detail = serde_json::to_value(s).unwrap_or_default();
                st.backup_bytes = Some(s.backup.apparent);
                st.snapshot_bytes = Some(s.snapshots.apparent);
                st.backup_allocated = Some(s.backup.allocated);
                st.snapshot_allocated = Some(s.snapshots.allocated);
                st.measured_at = Some(Utc::now());
                let line = crate::size::quota_line(
                    acc.quota.unwrap_or(0),
                    s.backup.apparent,
                    s.snapshots.apparent,
                );
                if let Err(e) = crate::size::write_quota_file(&home, &line) {
                    o.error = Some(format!(
                        "account {}: cannot write {}: {e}",
                        acc.uid,
                        home.join(crate::size::QUOTA_FILE).display()
                    ));
                }
                st.last_snapshot = crate::snapshot::last_snapshot(&home).map(to_utc);
                if write {
                    if let Err(e) = dir.set_sizes(&acc.uid, s.backup.apparent, s.snapshots.apparent)
                    {
                        o.error = Some(format!("account {}: {e}", acc.uid));
                    }
                }
            }
        }
    })?;
    Ok(finish(cfg, pass, "size", "size".into(), 0))
}

fn select(
    dir: &Directory,
    host: &str,
    only: Option<&str>,
) -> Result<Vec<Account>, crate::directory::Error> {
    match only {
        Some(uid) => match dir.account(uid)? {
            Some(a) => Ok(vec![a]),
            None => Err(crate::directory::Error::NoAccount {
                uid: uid.into(),
                base: dir.accounts_base(),
            }),
        },
        None => dir.accounts_for_host(host),
    }
}

/// The server jobs: cron time, unit name and `holdfast server` arguments. Like rsnapshot,
/// the longer intervals run a little before the shorter ones (they take over the oldest
/// snapshot of the interval below before that one rotates it away); sizes are counted after
/// the snapshots, and the warning checks run after the sizes. The daily snapshots run at
/// 05:30, three hours after the clients' default backup time (02:30), so a client's nightly
/// push has landed before it is snapshotted.
pub const JOBS: &[(&str, &str, &str)] = &[
    ("0 * * * *", "snapshot-hourly", "snapshot --interval hourly"),
    ("0 5 1 1 *", "snapshot-yearly", "snapshot --interval yearly"),
    (
        "10 5 1 * *",
        "snapshot-monthly",
        "snapshot --interval monthly",
    ),
    (
        "20 5 * * 1",
        "snapshot-weekly",
        "snapshot --interval weekly",
    ),
    ("30 5 * * *", "snapshot-daily", "snapshot --interval daily"),
    ("30 6 * * *", "size", "size"),
    ("0 7 * * *", "check", "check"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn longer_intervals_rotate_first() {
        let pos = |s: &str| super::JOBS.iter().position(|j| j.2.ends_with(s)).unwrap();
        assert!(pos("yearly") < pos("monthly"));
        assert!(pos("monthly") < pos("weekly"));
        assert!(pos("weekly") < pos("daily"));
        for (when, _, _) in super::JOBS {
            let f: Vec<&str> = when.split_whitespace().collect();
            assert_eq!(f.len(), 5, "{when}");
            assert!(f.iter().all(|x| x
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '-' | ',' | '/'))));
        }
    }
}
