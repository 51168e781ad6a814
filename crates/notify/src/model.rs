//! What the checks know about an account, its person and its reseller, and the directory
//! trait the real LDAP directory (and the tests' in-memory one) implements.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

/// The five warnings. The keyword is what resellers list in `sstNotificationWarning`
/// and what template file names start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Quota,
    Schedule,
    Unsuccessful,
    Upgrade,
    Nobackup,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::Quota,
        Task::Schedule,
        Task::Unsuccessful,
        Task::Upgrade,
        Task::Nobackup,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Task::Quota => "quota",
            Task::Schedule => "schedule",
            Task::Unsuccessful => "unsuccessful",
            Task::Upgrade => "upgrade",
            Task::Nobackup => "nobackup",
        }
    }

    /// Tasks that are judged per computer (prefix) rather than per account.
    pub fn per_prefix(self) -> bool {
        matches!(self, Task::Schedule | Task::Unsuccessful | Task::Upgrade)
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Task, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.keyword().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown task {s:?}: use quota, schedule, unsuccessful, upgrade or nobackup"
                )
            })
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Who reads a message: the customer version or the reseller version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Customer,
    Reseller,
}

impl Audience {
    pub fn name(self) -> &'static str {
        match self {
            Audience::Customer => "customer",
            Audience::Reseller => "reseller",
        }
    }
}

/// One backup account (`uid=...,ou=accounts,ou=backup,ou=services,<base>`). Warning
/// attributes are `None` when the entry lacks them; the reseller's defaults then apply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Account {
    pub uid: String,
    pub home: PathBuf,
    pub active: bool,
    /// `sstQuota`, bytes.
    pub quota: Option<u64>,
    /// `sstBackupSize` + `sstIncrementSize`, bytes, as the size job wrote them.
    pub backup_size: Option<u64>,
    pub increment_size: Option<u64>,
    pub warning_level: Option<u32>,
    pub warning_on: Option<bool>,
    pub warning_days: Option<u32>,
    pub warning_numbers: Option<u32>,
    pub medium: Option<String>,
    pub mail: Vec<String>,
    pub language: Option<String>,
    /// `sstBackupLastSuccessfulBackup`, one per prefix.
    pub last_successful: Vec<(String, DateTime<Utc>)>,
    pub reseller: Option<String>,
    pub customer: Option<String>,
    pub person: Option<String>,
    /// When the account was made (`createTimestamp`), for `nobackup`.
    pub created: Option<DateTime<Utc>>,
}

impl Account {
    pub fn last_successful(&self, prefix: &str) -> Option<DateTime<Utc>> {
        self.last_successful
            .iter()
            .filter(|(p, _)| p == prefix)
            .map(|(_, t)| *t)
            .max()
    }

    /// Fills absent warning attributes from the reseller's settings.
    pub fn with_defaults(mut self, d: &WarningDefaults) -> Account {
        self.warning_level = self.warning_level.or(d.warning_level);
        self.warning_on = self.warning_on.or(d.warning_on);
        self.warning_days = self.warning_days.or(d.warning_days);
        self.warning_numbers = self.warning_numbers.or(d.warning_numbers);
        if self.medium.is_none() {
            self.medium.clone_from(&d.medium);
        }
        self
    }
}

/// `uid=...,ou=people,<base>`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Person {
    pub uid: String,
    pub mail: Vec<String>,
    pub language: Option<String>,
    /// `cn` or given name + surname, for the greeting.
    pub name: Option<String>,
}

/// The defaults a reseller's `ou=settings` entry gives for the account warning attributes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WarningDefaults {
    pub warning_level: Option<u32>,
    pub warning_on: Option<bool>,
    pub warning_days: Option<u32>,
    pub warning_numbers: Option<u32>,
    pub medium: Option<String>,
}

/// A reseller's `ou=notifications` and `ou=settings` entries together.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reseller {
    pub uid: String,
    /// `sstMailTo` values, `Name <address>` or a bare address.
    pub mail_to: Vec<String>,
    /// `sstNotificationWarning`: task keywords the reseller wants to hear about.
    pub warnings: Vec<String>,
    /// `sstMailFrom`.
    pub mail_from: Option<String>,
    pub language: Option<String>,
    pub defaults: WarningDefaults,
}

impl Reseller {
    pub fn wants(&self, task: Task) -> bool {
        self.warnings
            .iter()
            .any(|w| w.trim().eq_ignore_ascii_case(task.keyword()))
    }
}

/// Where accounts, persons and resellers come from. Errors are messages for the log: a
/// lookup that fails affects that one account only.
pub trait Directory {
    /// Every backup account this server checks.
    fn accounts(&self) -> Result<Vec<Account>, String>;
    fn person(&self, uid: &str) -> Result<Option<Person>, String>;
    fn reseller(&self, uid: &str) -> Result<Option<Reseller>, String>;
    /// Sets `sstBackupLastSuccessfulBackup` for these prefixes, keeping the other prefixes' values.
    fn set_last_successful(
        &self,
        uid: &str,
        values: &[(String, DateTime<Utc>)],
    ) -> Result<(), String>;
}

/// `<prefix>:<YYYYMMDDTHHMMSSZ>`, the value format of `sstBackupLastSuccessfulBackup`.
pub fn last_successful_value(prefix: &str, t: DateTime<Utc>) -> String {
    format!("{prefix}:{}", t.format("%Y%m%dT%H%M%SZ"))
}

/// Reads one `sstBackupLastSuccessfulBackup` value; `None` for a malformed one.
pub fn parse_last_successful(v: &str) -> Option<(String, DateTime<Utc>)> {
    let (p, t) = v.rsplit_once(':')?;
    let t = chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y%m%dT%H%M%SZ").ok()?;
    Some((p.to_string(), t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_successful_round_trip() {
        let t = "2026-11-21T03:04:05Z".parse::<DateTime<Utc>>().unwrap();
        let v = last_successful_value("pc-1", t);
        assert_eq!(v, "pc-1:20261121T030405Z");
        assert_eq!(parse_last_successful(&v), Some(("pc-1".into(), t)));
        assert_eq!(parse_last_successful("pc-1"), None);
        assert_eq!(parse_last_successful("pc:2026"), None);
    }

    #[test]
    fn tasks_parse_and_resellers_match_keywords() {
        assert_eq!("Quota".parse::<Task>(), Ok(Task::Quota));
        assert!("space".parse::<Task>().unwrap_err().contains("nobackup"));
        let r = Reseller {
            warnings: vec!["quota".into(), " Schedule ".into()],
            ..Default::default()
        };
        assert!(r.wants(Task::Quota) && r.wants(Task::Schedule) && !r.wants(Task::Upgrade));
    }
}
