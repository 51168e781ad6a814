//! The five checks as pure functions over an account's facts and its client files.
//!
//! Each returns an [`Outcome`]: `Warn` with the template variables, `Clear` when the problem is
//! absent (so an earlier warning can be called resolved), or `Unknown` when the facts are not
//! there to judge (no quota set, no schedule uploaded): neither warn nor resolve.
//! Thresholds follow the account (or its reseller's defaults): `sstBackupWarningNumbers`
//! missed or failed runs, or `sstBackupWarningDays` days; 0 turns that limit off and both 0
//! turn the task off for that account. Neither set on account nor reseller: the first miss
//! or failure warns. `Clear` means the problem is gone (no miss, a success), never merely
//! "below the threshold".

use crate::client::PrefixFiles;
use crate::model::Account;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use holdfast_core::human_bytes;
use holdfast_stoney::{plan, Schedule};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Warn(Map<String, Value>),
    Clear,
    Unknown(String),
}

/// Limits the checks need besides the account's own attributes (`[notify]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// A planned run counts as missed only this long after its time.
    pub grace: Duration,
    /// A started backup with no matching end after this long counts as failed.
    pub started_timeout: Duration,
    /// An active account younger than this is not yet "never used".
    pub nobackup_grace: Duration,
    /// Lowest acceptable version per client identifier (lower case).
    pub min_versions: BTreeMap<String, String>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            grace: Duration::hours(2),
            started_timeout: Duration::hours(24),
            nobackup_grace: Duration::days(7),
            min_versions: BTreeMap::new(),
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

/// `(sstBackupWarningNumbers, sstBackupWarningDays)` after the reseller's defaults. Neither
/// set anywhere: warn on the first miss or failure. Both 0: the task is off for the account
/// (`None`), which neither warns nor calls an open warning resolved.
fn thresholds(a: &Account) -> Option<(u32, u32)> {
    match (a.warning_numbers, a.warning_days) {
        (None, None) => Some((1, 0)),
        (n, d) => Some((n.unwrap_or(0), d.unwrap_or(0))).filter(|&(n, d)| n > 0 || d > 0),
    }
}

const OFF: &str = "sstBackupWarningNumbers and sstBackupWarningDays are 0";

/// quota: used (backup + snapshots) above `sstNotificationWarningLevel` percent of `sstQuota`.
pub fn quota(a: &Account) -> Outcome {
    let Some(quota) = a.quota.filter(|q| *q > 0) else {
        return Outcome::Unknown("no sstQuota".into());
    };
    let Some(level) = a.warning_level else {
        return Outcome::Unknown("no sstNotificationWarningLevel".into());
    };
    if a.backup_size.is_none() && a.increment_size.is_none() {
        return Outcome::Unknown("sizes not measured yet (sstBackupSize)".into());
    }
    let backup = a.backup_size.unwrap_or(0);
    let snapshots = a.increment_size.unwrap_or(0);
    let used = backup + snapshots;
    let percent = used as f64 * 100.0 / quota as f64;
    if percent <= level as f64 {
        return Outcome::Clear;
    }
    let mut m = Map::new();
    m.insert("quota".into(), json!(quota));
    m.insert("quota_human".into(), json!(human_bytes(quota)));
    m.insert("used".into(), json!(used));
    m.insert("used_human".into(), json!(human_bytes(used)));
    m.insert("backup_size".into(), json!(backup));
    m.insert("snapshot_size".into(), json!(snapshots));
    m.insert(
        "free_human".into(),
        json!(human_bytes(quota.saturating_sub(used))),
    );
    m.insert("percent".into(), json!((percent * 10.0).round() / 10.0));
    m.insert("threshold".into(), json!(level));
    Outcome::Warn(m)
}

fn describe(s: &Schedule) -> String {
    match s {
        Schedule::None => "no schedule".into(),
        Schedule::AfterStartup { minutes } => format!("{minutes} minutes after start-up"),
        Schedule::Custom(c) => {
            let times: Vec<String> = c
                .hours
                .iter()
                .flat_map(|h| c.minutes.iter().map(move |m| format!("{h:02}:{m:02}")))
                .collect();
            let days = match &c.days_of_week {
                None => "every day".to_string(),
                Some(d) => {
                    const N: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
                    d.iter()
                        .filter_map(|x| N.get((*x as usize).wrapping_sub(1)))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            format!("{days} at {} (UTC{})", times.join(", "), c.timezone)
        }
    }
}

/// schedule: planned runs since the last start that did not happen (after the grace time).
pub fn schedule(a: &Account, p: &PrefixFiles, now: DateTime<Utc>, l: &Limits) -> Outcome {
    let Some((numbers, days)) = thresholds(a) else {
        return Outcome::Unknown(OFF.into());
    };
    let Some(sf) = &p.scheduler else {
        return Outcome::Unknown("no scheduler.xml".into());
    };
    if sf.schedule == Schedule::None {
        return Outcome::Clear;
    }
    // The schedule is uploaded when a backup starts; without backupStarted.xml its upload
    // time is the best "last start" there is.
    let Some(last) = p
        .started
        .as_ref()
        .map(|s| s.start.with_timezone(&Utc))
        .or(p.scheduler_mtime)
    else {
        return Outcome::Unknown("no backupStarted.xml".into());
    };
    // counted, not listed: the client writes the schedule
    let missed = plan::count_runs(&sf.schedule, last, now - l.grace);
    let misses = u32::try_from(missed.count).unwrap_or(u32::MAX);
    let idle_days = (now - last).num_days();
    if misses == 0 {
        return Outcome::Clear;
    }
    let warn = (numbers > 0 && misses >= numbers) || (days > 0 && idle_days >= days as i64);
    if !warn {
        // missed, but not often enough yet: not a warning, and not resolved either
        return Outcome::Unknown(format!("{misses} missed, below the thresholds"));
    }
    let mut m = Map::new();
    m.insert("misses".into(), json!(misses));
    m.insert("first_missed".into(), opt_ts(missed.first));
    m.insert("last_missed".into(), opt_ts(missed.last));
    m.insert("last_start".into(), json!(ts(last)));
    m.insert("days_since_start".into(), json!(idle_days));
    m.insert("schedule".into(), json!(describe(&sf.schedule)));
    m.insert("threshold_numbers".into(), json!(numbers));
    m.insert("threshold_days".into(), json!(days));
    Outcome::Warn(m)
}

/// The newest run of a prefix, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub failed: bool,
    /// The client's run id, as it wrote it.
    pub id: String,
    /// The run in the state store: its id and when it started (or ended, with no start
    /// known). Ids repeat: sepiola seeds its random id with the current millisecond, so a
    /// client has at most 1000 of them (`backup_thread.cc`).
    pub key: String,
}

fn last_run(failed: bool, id: &str, at: DateTime<FixedOffset>) -> LastRun {
    LastRun {
        failed,
        id: id.to_string(),
        key: format!("{id}@{}", at.with_timezone(&Utc).to_rfc3339()),
    }
}

/// Whether the newest run of a prefix failed: the ended file says 0 for the started id (and
/// is not older than the start: an id can come again), or the started run never ended
/// within the timeout. `None` when there is nothing to judge or the run is still within its
/// timeout.
pub fn last_run_failed(p: &PrefixFiles, now: DateTime<Utc>, l: &Limits) -> Option<LastRun> {
    match (&p.started, &p.ended) {
        (Some(s), Some(e)) if s.id == e.id && e.end >= s.start => {
            Some(last_run(!e.success, &s.id, s.start))
        }
        (Some(s), _) => {
            let start = s.start.with_timezone(&Utc);
            if let Some(e) = &p.ended {
                // An end newer than the start with another id: a client that does not
                // pair ids; judge the end.
                if e.end.with_timezone(&Utc) >= start {
                    return Some(last_run(!e.success, &e.id, e.end));
                }
            }
            (now - start > l.started_timeout).then(|| last_run(true, &s.id, s.start))
        }
        (None, Some(e)) => Some(last_run(!e.success, &e.id, e.end)),
        (None, None) => None,
    }
}

/// unsuccessful: the last run failed (or never ended), `failures` runs in a row (counted by
/// the state store, at least 1), or no success for `sstBackupWarningDays` days.
pub fn unsuccessful(
    a: &Account,
    p: &PrefixFiles,
    failures: u32,
    now: DateTime<Utc>,
    l: &Limits,
) -> Outcome {
    let Some((numbers, days)) = thresholds(a) else {
        return Outcome::Unknown(OFF.into());
    };
    let Some(LastRun { failed, id, .. }) = last_run_failed(p, now, l) else {
        return Outcome::Unknown("no finished run to judge".into());
    };
    if !failed {
        return Outcome::Clear;
    }
    let failures = failures.max(1);
    let last_ok = a.last_successful_at(&p.prefix);
    let since_ok = last_ok.map(|t| (now - t).num_days());
    let warn = (numbers > 0 && failures >= numbers)
        || (days > 0 && since_ok.is_none_or(|d| d >= days as i64));
    if !warn {
        return Outcome::Unknown(format!("{failures} failed, below the thresholds"));
    }
    // The last end is older than the last start (whatever its id: ids come again).
    let never_ended = p
        .ended
        .as_ref()
        .is_none_or(|e| p.started.as_ref().is_some_and(|s| s.start > e.end));
    let mut m = Map::new();
    m.insert(
        "reason".into(),
        json!(if never_ended { "never_ended" } else { "failed" }),
    );
    m.insert("run_id".into(), json!(id));
    m.insert("failures".into(), json!(failures));
    m.insert(
        "last_start".into(),
        opt_ts(p.started.as_ref().map(|s| s.start.with_timezone(&Utc))),
    );
    m.insert(
        "last_end".into(),
        opt_ts(p.ended.as_ref().map(|e| e.end.with_timezone(&Utc))),
    );
    m.insert("last_success".into(), opt_ts(last_ok));
    m.insert("days_since_success".into(), json!(since_ok));
    m.insert("threshold_numbers".into(), json!(numbers));
    m.insert("threshold_days".into(), json!(days));
    Outcome::Warn(m)
}

/// Compares dotted versions numerically (`2.10` > `2.9`); text after the numbers is ignored.
pub fn version_lt(a: &str, b: &str) -> bool {
    let nums = |s: &str| -> Vec<u64> {
        s.trim()
            .trim_start_matches(['v', 'V'])
            .split(['.', '-', '_', ' '])
            .map_while(|p| p.parse::<u64>().ok())
            .collect()
    };
    let (mut x, mut y) = (nums(a), nums(b));
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    x < y
}

/// upgrade: the client's version is below the configured minimum for its identifier.
pub fn upgrade(p: &PrefixFiles, l: &Limits) -> Outcome {
    let Some(c) = p.client() else {
        return Outcome::Unknown("no client identifier uploaded".into());
    };
    let Some(min) = l.min_versions.get(&c.identifier.trim().to_lowercase()) else {
        return Outcome::Clear;
    };
    if c.version.trim().is_empty() {
        return Outcome::Unknown(format!("{} sent no version", c.identifier));
    }
    if !version_lt(&c.version, min) {
        return Outcome::Clear;
    }
    let mut m = Map::new();
    m.insert("client".into(), json!(c.identifier));
    m.insert("version".into(), json!(c.version));
    m.insert("minimum".into(), json!(min));
    m.insert("operating_system".into(), json!(c.operating_system));
    Outcome::Warn(m)
}

/// nobackup: an active account older than the grace period with no backup ever. `created`
/// is when the account was set up (its home's time). A prefix folder with anything in it
/// counts as a backup: clients before the XML files, and plain rsync, upload only data.
/// `sstBackupSize` does not tell: the size job counts the empty `incoming/` folder too.
pub fn nobackup(
    a: &Account,
    created: Option<DateTime<Utc>>,
    prefixes: &[PrefixFiles],
    now: DateTime<Utc>,
    l: &Limits,
) -> Outcome {
    if !a.active {
        return Outcome::Clear;
    }
    if !a.last_successful.is_empty() || prefixes.iter().any(|p| p.ever_ran() || p.uploaded) {
        return Outcome::Clear;
    }
    let Some(created) = created else {
        return Outcome::Unknown("account creation time unknown".into());
    };
    let age = now - created;
    if age < l.nobackup_grace {
        return Outcome::Clear;
    }
    let mut m = Map::new();
    m.insert("created".into(), json!(ts(created)));
    m.insert("days".into(), json!(age.num_days()));
    m.insert("grace_days".into(), json!(l.nobackup_grace.num_days()));
    Outcome::Warn(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_stoney::parse::{date, offset};
    use holdfast_stoney::{BackupEnded, BackupStarted, Client, CustomSchedule, SchedulerFile};

    fn t(s: &str) -> DateTime<Utc> {
        date(s).unwrap().with_timezone(&Utc)
    }

    fn acct() -> Account {
        Account {
            uid: "4000001".into(),
            active: true,
            warning_numbers: Some(2),
            warning_days: Some(0),
            ..Default::default()
        }
    }

    fn client(v: &str) -> Client {
        Client {
            identifier: "sepiola".into(),
            version: v.into(),
            operating_system: "Windows".into(),
        }
    }

    fn started(at: &str, id: &str) -> BackupStarted {
        BackupStarted {
            start: date(at).unwrap(),
            id: id.into(),
            client: client("2.4.0"),
        }
    }

    fn ended(at: &str, id: &str, ok: bool) -> BackupEnded {
        BackupEnded {
            end: date(at).unwrap(),
            id: id.into(),
            success: ok,
            client: client("2.4.0"),
        }
    }

    fn daily_0200_cet() -> SchedulerFile {
        SchedulerFile {
            schedule: Schedule::Custom(CustomSchedule {
                minutes: vec![0],
                hours: vec![2],
                days_of_month: None,
                months: None,
                days_of_week: None,
                timezone: offset("+01:00").unwrap(),
            }),
            client: client("2.4.0"),
        }
    }

    #[test]
    fn quota_above_level_only() {
        let mut a = acct();
        a.quota = Some(1000);
        a.warning_level = Some(85);
        a.backup_size = Some(800);
        a.increment_size = Some(50);
        assert_eq!(quota(&a), Outcome::Clear, "85% is not above 85");
        a.increment_size = Some(60);
        let Outcome::Warn(m) = quota(&a) else {
            panic!()
        };
        assert_eq!(
            (m["used"].clone(), m["percent"].clone()),
            (json!(860), json!(86.0))
        );
        a.quota = None;
        assert!(matches!(quota(&a), Outcome::Unknown(_)));
    }

    #[test]
    fn schedule_counts_missed_runs_after_grace() {
        let a = acct();
        let p = PrefixFiles {
            prefix: "pc".into(),
            started: Some(started("2026-11-18T02:00:10+01:00", "1")),
            scheduler: Some(daily_0200_cet()),
            ..Default::default()
        };
        let l = Limits::default();
        // 19th 02:00 missed; 20th 02:00 is inside the 2 h grace at 03:30: one miss is
        // below the threshold of 2, which is neither a warning nor a resolution.
        assert!(matches!(
            schedule(&a, &p, t("2026-11-20T03:30:00+01:00"), &l),
            Outcome::Unknown(_)
        ));
        assert_eq!(
            schedule(&a, &p, t("2026-11-19T03:30:00+01:00"), &l),
            Outcome::Clear
        );
        let mut unset = acct();
        (unset.warning_numbers, unset.warning_days) = (None, None);
        assert!(matches!(
            schedule(&unset, &p, t("2026-11-20T03:30:00+01:00"), &l),
            Outcome::Warn(_)
        ));
        let Outcome::Warn(m) = schedule(&a, &p, t("2026-11-20T04:30:00+01:00"), &l) else {
            panic!()
        };
        assert_eq!(m["misses"], json!(2));
        assert_eq!(m["last_missed"], json!("2026-11-20 01:00 UTC"));
        assert_eq!(m["schedule"], json!("every day at 02:00 (UTC+01:00)"));
        // Both thresholds off: never a warning, and no "resolved" either.
        let mut off = acct();
        off.warning_numbers = Some(0);
        assert!(matches!(
            schedule(&off, &p, t("2026-12-20T04:30:00+01:00"), &l),
            Outcome::Unknown(_)
        ));
        // Days threshold: 3 days idle with misses.
        let mut d = acct();
        d.warning_numbers = Some(0);
        d.warning_days = Some(3);
        assert!(matches!(
            schedule(&d, &p, t("2026-11-20T04:30:00+01:00"), &l),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            schedule(&d, &p, t("2026-11-21T04:30:00+01:00"), &l),
            Outcome::Warn(_)
        ));
        // A manual client never misses.
        let mut manual = p.clone();
        manual.scheduler.as_mut().unwrap().schedule = Schedule::None;
        assert_eq!(
            schedule(&a, &manual, t("2027-01-01T00:00:00Z"), &l),
            Outcome::Clear
        );
    }

    #[test]
    fn unsuccessful_failed_and_never_ended() {
        let a = acct();
        let l = Limits::default();
        let now = t("2026-11-20T12:00:00Z");
        let mut p = PrefixFiles {
            prefix: "pc".into(),
            started: Some(started("2026-11-20T02:00:00+01:00", "7")),
            ended: Some(ended("2026-11-20T02:10:00+01:00", "7", false)),
            ..Default::default()
        };
        // Threshold 2: one failure is not enough (nor resolved), two are.
        assert!(matches!(
            unsuccessful(&a, &p, 1, now, &l),
            Outcome::Unknown(_)
        ));
        // Unset everywhere: the first failure warns.
        let mut unset = acct();
        (unset.warning_numbers, unset.warning_days) = (None, None);
        assert!(matches!(
            unsuccessful(&unset, &p, 1, now, &l),
            Outcome::Warn(_)
        ));
        let Outcome::Warn(m) = unsuccessful(&a, &p, 2, now, &l) else {
            panic!()
        };
        assert_eq!(
            (m["reason"].clone(), m["failures"].clone()),
            (json!("failed"), json!(2))
        );
        // sepiola's ids come again: an old end with the new start's id is not its end, and
        // two runs with one id are two runs to the state store.
        let mut q = p.clone();
        q.started = Some(started("2026-11-20T02:00:00+01:00", "512"));
        q.ended = Some(ended("2026-03-02T02:10:00+01:00", "512", true));
        assert_eq!(last_run_failed(&q, now, &l), None, "within the timeout");
        let late = last_run_failed(&q, t("2026-11-21T03:00:00Z"), &l).unwrap();
        assert!(late.failed);
        let Outcome::Warn(m) = unsuccessful(&a, &q, 2, t("2026-11-21T03:00:00Z"), &l) else {
            panic!()
        };
        assert_eq!(m["reason"], json!("never_ended"));
        q.ended = Some(ended("2026-11-20T02:10:00+01:00", "512", true));
        let paired = last_run_failed(&q, now, &l).unwrap();
        q.started = Some(started("2026-03-02T02:00:00+01:00", "512"));
        q.ended = Some(ended("2026-03-02T02:10:00+01:00", "512", true));
        let march = last_run_failed(&q, now, &l).unwrap();
        assert_eq!((paired.id.as_str(), march.id.as_str()), ("512", "512"));
        assert_ne!(paired.key, march.key);
        // Started, not ended: only after the timeout.
        p.started = Some(started("2026-11-20T02:00:00+01:00", "8"));
        p.ended = Some(ended("2026-11-19T02:10:00+01:00", "6", true));
        assert_eq!(last_run_failed(&p, now, &l), None);
        let later = t("2026-11-21T03:00:00Z");
        assert_eq!(
            last_run_failed(&p, later, &l).map(|r| (r.failed, r.id)),
            Some((true, "8".into()))
        );
        let Outcome::Warn(m) = unsuccessful(&a, &p, 2, later, &l) else {
            panic!()
        };
        assert_eq!(m["reason"], json!("never_ended"));
        // Success clears.
        p.ended = Some(ended("2026-11-20T02:10:00+01:00", "8", true));
        assert_eq!(unsuccessful(&a, &p, 0, later, &l), Outcome::Clear);
    }

    #[test]
    fn upgrade_compares_versions_per_client() {
        let mut l = Limits::default();
        l.min_versions.insert("sepiola".into(), "2.10".into());
        assert!(version_lt("2.9.3", "2.10") && !version_lt("2.10.0", "2.10"));
        assert!(version_lt("v1", "1.0.1") && !version_lt("3", "2.99"));
        let p = PrefixFiles {
            started: Some(started("2026-11-20T02:00:00+01:00", "1")),
            ..Default::default()
        };
        let Outcome::Warn(m) = upgrade(&p, &l) else {
            panic!()
        };
        assert_eq!(
            (m["version"].clone(), m["minimum"].clone()),
            (json!("2.4.0"), json!("2.10"))
        );
        l.min_versions.insert("sepiola".into(), "2.4".into());
        assert_eq!(upgrade(&p, &l), Outcome::Clear);
        assert!(matches!(
            upgrade(&PrefixFiles::default(), &l),
            Outcome::Unknown(_)
        ));
    }

    #[test]
    fn nobackup_after_grace_for_active_accounts() {
        let l = Limits::default();
        let mut a = acct();
        let c = Some(t("2026-11-01T00:00:00Z"));
        let now = t("2026-11-20T00:00:00Z");
        let Outcome::Warn(m) = nobackup(&a, c, &[], now, &l) else {
            panic!()
        };
        assert_eq!(m["days"], json!(19));
        assert_eq!(
            nobackup(&a, c, &[], t("2026-11-05T00:00:00Z"), &l),
            Outcome::Clear
        );
        let ran = PrefixFiles {
            started: Some(started("2026-11-20T02:00:00+01:00", "1")),
            ..Default::default()
        };
        assert_eq!(nobackup(&a, c, &[ran], now, &l), Outcome::Clear);
        a.active = false;
        assert_eq!(nobackup(&a, c, &[], now, &l), Outcome::Clear);
    }
}
