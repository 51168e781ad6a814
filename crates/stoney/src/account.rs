//! The stoney directory's model: backup accounts (`sstBackup`), people and resellers' notification
//! and settings entries, read from their LDAP attributes (see `/work/shared/spec/stoney.md`).
//!
//! Reading is forgiving: a value that cannot be read leaves its field `None` and is listed in
//! [`Account::problems`], so one bad attribute never hides an account from the warnings.
//! Where the entries come from (an LDAP server, an LDIF file) is the backup server's business
//! (`holdfast_server::directory`); it hands each entry over as [`Attributes`].

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One directory entry as the model reads it: its DN and its attributes' values (attribute
/// names case-insensitive, as in LDAP).
pub trait Attributes {
    fn dn(&self) -> &str;
    /// Every value of `attr`, in order; empty when the entry lacks it.
    fn all(&self, attr: &str) -> &[String];
    /// The first value of `attr`.
    fn get(&self, attr: &str) -> Option<&str> {
        self.all(attr).first().map(|s| s.as_str())
    }
}

/// The object class of a backup account entry.
pub const ACCOUNT_CLASS: &str = "sstBackup";
/// Attributes the backup server writes back: the sizes its size job measures, and the time
/// of each prefix's last successful backup.
pub const BACKUP_SIZE: &str = "sstBackupSize";
pub const INCREMENT_SIZE: &str = "sstIncrementSize";
pub const LAST_SUCCESSFUL: &str = "sstBackupLastSuccessfulBackup";

/// Snapshots to keep per interval (`sstBackupInterval*`); absent counts as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Intervals {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

/// The snapshot intervals in rotation order (shortest first).
pub const INTERVALS: [&str; 5] = ["hourly", "daily", "weekly", "monthly", "yearly"];

impl Intervals {
    /// How many snapshots of `interval` (`hourly` ... `yearly`) to keep; None if unknown name.
    pub fn keep(&self, interval: &str) -> Option<u32> {
        Some(match interval {
            "hourly" => self.hourly,
            "daily" => self.daily,
            "weekly" => self.weekly,
            "monthly" => self.monthly,
            "yearly" => self.yearly,
            _ => return None,
        })
    }
}

/// A backup account (`sstBackup`). Optional fields are None when the entry lacks them;
/// [`Account::apply_defaults`] fills the warning settings from the reseller's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Account {
    pub dn: String,
    pub uid: String,
    /// `sstQuota`, bytes.
    pub quota: Option<u64>,
    /// `sstNotificationWarningLevel`, percent.
    pub warning_level: Option<u32>,
    /// `sstBackupSize`, bytes (written by the size job).
    pub backup_size: Option<u64>,
    /// `sstIncrementSize`, bytes (written by the size job).
    pub increment_size: Option<u64>,
    pub warning_on: Option<bool>,
    /// `sstBackupWarningDays`: warn after N days without success; 0 = off.
    pub warning_days: Option<u32>,
    /// `sstBackupWarningNumbers`: warn after N missed or failed backups; 0 = off.
    pub warning_numbers: Option<u32>,
    /// `sstNotificationWarningMedium` (`mail`; `sms` reserved).
    pub medium: Option<String>,
    pub mail: Vec<String>,
    pub preferred_language: Option<String>,
    pub intervals: Intervals,
    /// True when the entry has any `sstBackupInterval*` of its own (else the reseller's
    /// defaults apply).
    pub intervals_set: bool,
    /// `sstBackupLastSuccessfulBackup`, by prefix.
    pub last_successful: BTreeMap<String, DateTime<Utc>>,
    /// `sstIsActive`; absent counts as active.
    pub active: bool,
    pub home_directory: Option<PathBuf>,
    pub host: Option<String>,
    pub reseller_uid: Option<String>,
    pub customer_uid: Option<String>,
    pub person_uid: Option<String>,
    pub service_uid: Option<String>,
    /// Values that could not be read (the field is then None); reported, never fatal.
    pub problems: Vec<String>,
}

/// A person (`uid=<UID>,ou=people,<base>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Person {
    pub dn: String,
    pub uid: String,
    pub cn: Option<String>,
    pub mail: Vec<String>,
    pub preferred_language: Option<String>,
}

impl Person {
    /// Reads a person entry.
    pub fn from_entry(e: &impl Attributes) -> Person {
        Person {
            dn: e.dn().to_string(),
            uid: e.get("uid").unwrap_or_default().into(),
            cn: e.get("cn").map(Into::into),
            mail: e.all("mail").to_vec(),
            preferred_language: e.get("preferredLanguage").map(Into::into),
        }
    }
}

/// `ou=notifications,uid=<reseller>,...`: who at the reseller hears about which tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResellerNotifications {
    pub reseller_uid: String,
    /// `sstMailTo`, `Name <address>`.
    pub mail_to: Vec<String>,
    /// `sstNotificationWarning`: task keywords (quota, schedule, unsuccessful, upgrade, nobackup).
    pub warnings: Vec<String>,
}

impl ResellerNotifications {
    /// Reads the notification entry of reseller `reseller`.
    pub fn from_entry(reseller: &str, e: &impl Attributes) -> ResellerNotifications {
        ResellerNotifications {
            reseller_uid: reseller.into(),
            mail_to: e.all("sstMailTo").to_vec(),
            warnings: e.all("sstNotificationWarning").to_vec(),
        }
    }

    /// True when the reseller wants to hear about `task` (case-insensitive keyword).
    pub fn wants(&self, task: &str) -> bool {
        self.warnings.iter().any(|w| w.eq_ignore_ascii_case(task))
    }
}

/// `ou=settings,uid=<reseller>,...`: sender, language and account defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResellerSettings {
    pub reseller_uid: String,
    /// `sstMailFrom`.
    pub mail_from: Option<String>,
    pub preferred_language: Option<String>,
    pub warning_level: Option<u32>,
    pub warning_on: Option<bool>,
    pub warning_days: Option<u32>,
    pub warning_numbers: Option<u32>,
    pub medium: Option<String>,
    /// `sstBackupInterval*` defaults, when the settings entry has any.
    pub intervals: Option<Intervals>,
}

impl ResellerSettings {
    /// Reads the settings entry of reseller `reseller`: its sender, and the defaults it gives
    /// its accounts (the same attributes an account has, read the same way).
    pub fn from_entry(reseller: &str, e: &impl Attributes) -> ResellerSettings {
        let a = Account::from_entry(e);
        ResellerSettings {
            reseller_uid: reseller.into(),
            mail_from: e.get("sstMailFrom").map(Into::into),
            preferred_language: a.preferred_language,
            warning_level: a.warning_level,
            warning_on: a.warning_on,
            warning_days: a.warning_days,
            warning_numbers: a.warning_numbers,
            medium: a.medium,
            intervals: a.intervals_set.then_some(a.intervals),
        }
    }
}

/// A reseller as the notifications need it: its `ou=notifications` and `ou=settings`
/// entries together (either may be missing).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reseller {
    pub uid: String,
    pub notifications: ResellerNotifications,
    pub settings: ResellerSettings,
}

impl Reseller {
    /// True when the reseller wants to hear about `task` (its keyword, case-insensitive).
    pub fn wants(&self, task: &str) -> bool {
        self.notifications
            .warnings
            .iter()
            .any(|w| w.trim().eq_ignore_ascii_case(task.trim()))
    }
}

impl Account {
    /// The newest `sstBackupLastSuccessfulBackup` of a prefix.
    pub fn last_successful_at(&self, prefix: &str) -> Option<DateTime<Utc>> {
        self.last_successful.get(prefix).copied()
    }

    /// Fills warning settings and snapshot intervals the account entry lacks from its
    /// reseller's defaults. (The language is not filled: for a message the person's comes
    /// before the reseller's.)
    pub fn apply_defaults(&mut self, s: &ResellerSettings) {
        self.warning_level = self.warning_level.or(s.warning_level);
        self.warning_on = self.warning_on.or(s.warning_on);
        self.warning_days = self.warning_days.or(s.warning_days);
        self.warning_numbers = self.warning_numbers.or(s.warning_numbers);
        if self.medium.is_none() {
            self.medium = s.medium.clone();
        }
        if !self.intervals_set {
            if let Some(i) = s.intervals {
                self.intervals = i;
            }
        }
    }

    /// Reads an `sstBackup` entry (or a reseller's settings entry, which carries the same
    /// default attributes).
    pub fn from_entry(e: &impl Attributes) -> Account {
        let uid = e.get("uid").unwrap_or_default().to_string();
        let mut problems = Vec::new();
        let mut num = |attr: &str| -> Option<u64> {
            let v = e.get(attr)?;
            match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{attr}: {v:?} is not a whole number"));
                    None
                }
            }
        };
        let quota = num("sstQuota");
        let warning_level = num("sstNotificationWarningLevel").map(clamp32);
        let backup_size = num(BACKUP_SIZE);
        let increment_size = num(INCREMENT_SIZE);
        let warning_days = num("sstBackupWarningDays").map(clamp32);
        let warning_numbers = num("sstBackupWarningNumbers").map(clamp32);
        let intervals_set = [
            "sstBackupIntervalHourly",
            "sstBackupIntervalDaily",
            "sstBackupIntervalWeekly",
            "sstBackupIntervalMonthly",
            "sstBackupIntervalYearly",
        ]
        .iter()
        .any(|a| e.get(a).is_some());
        let intervals = Intervals {
            hourly: num("sstBackupIntervalHourly").map(clamp32).unwrap_or(0),
            daily: num("sstBackupIntervalDaily").map(clamp32).unwrap_or(0),
            weekly: num("sstBackupIntervalWeekly").map(clamp32).unwrap_or(0),
            monthly: num("sstBackupIntervalMonthly").map(clamp32).unwrap_or(0),
            yearly: num("sstBackupIntervalYearly").map(clamp32).unwrap_or(0),
        };
        let mut boolean = |attr: &str| -> Option<bool> {
            let v = e.get(attr)?;
            match v.trim().to_ascii_uppercase().as_str() {
                "TRUE" => Some(true),
                "FALSE" => Some(false),
                _ => {
                    problems.push(format!("{attr}: {v:?} is neither TRUE nor FALSE"));
                    None
                }
            }
        };
        let warning_on = boolean("sstBackupWarningOn");
        let active = boolean("sstIsActive").unwrap_or(true);
        let mut last_successful = BTreeMap::new();
        for v in e.all(LAST_SUCCESSFUL) {
            match parse_last_successful(v) {
                Some((prefix, t)) => {
                    last_successful.insert(prefix, t);
                }
                None => problems.push(format!(
                    "sstBackupLastSuccessfulBackup: {v:?} is not <prefix>:<YYYYMMDDTHHMMSSZ>"
                )),
            }
        }
        let s = |attr: &str| e.get(attr).map(|v| v.to_string());
        Account {
            dn: e.dn().to_string(),
            quota,
            warning_level,
            backup_size,
            increment_size,
            warning_on,
            warning_days,
            warning_numbers,
            medium: s("sstNotificationWarningMedium"),
            mail: e.all("mail").to_vec(),
            preferred_language: s("preferredLanguage"),
            intervals,
            intervals_set,
            last_successful,
            active,
            home_directory: s("homeDirectory").map(PathBuf::from),
            host: s("host"),
            reseller_uid: s("sstBelongsToResellerUID"),
            customer_uid: s("sstBelongsToCustomerUID"),
            person_uid: s("sstBelongsToPersonUID"),
            service_uid: s("sstBelongsToServiceUID"),
            problems,
            uid,
        }
    }
}

fn clamp32(n: u64) -> u32 {
    n.min(u32::MAX as u64) as u32
}

/// Parses `<prefix>:<YYYYMMDDTHHMMSSZ>` (the prefix may itself contain `:`).
pub fn parse_last_successful(v: &str) -> Option<(String, DateTime<Utc>)> {
    let (prefix, ts) = v.rsplit_once(':')?;
    let t = NaiveDateTime::parse_from_str(ts.trim(), "%Y%m%dT%H%M%SZ").ok()?;
    Some((prefix.to_string(), t.and_utc()))
}

/// The `sstBackupLastSuccessfulBackup` values after a successful backup of `prefix` at
/// `when`: that prefix's value replaced, every other value (unreadable ones too) kept.
pub fn with_last_successful(values: &[String], prefix: &str, when: DateTime<Utc>) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .filter(|v| parse_last_successful(v).is_none_or(|(p, _)| p != prefix))
        .cloned()
        .collect();
    out.push(format_last_successful(prefix, when));
    out
}

/// Formats one `sstBackupLastSuccessfulBackup` value.
pub fn format_last_successful(prefix: &str, t: DateTime<Utc>) -> String {
    format!("{prefix}:{}", t.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(BTreeMap<String, Vec<String>>);
    impl Attributes for E {
        fn dn(&self) -> &str {
            "uid=4000002,ou=accounts,ou=backup,ou=services,dc=stoney-cloud,dc=org"
        }
        fn all(&self, attr: &str) -> &[String] {
            self.0
                .get(&attr.to_ascii_lowercase())
                .map(|v| v.as_slice())
                .unwrap_or(&[])
        }
    }
    fn entry(pairs: &[(&str, &str)]) -> E {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.to_string());
        }
        E(m)
    }

    #[test]
    fn bad_values_are_problems_not_failures() {
        let a = Account::from_entry(&entry(&[
            ("uid", "4000002"),
            ("sstQuota", "lots"),
            ("sstBackupIntervalDaily", "7"),
            ("sstBackupWarningOn", "maybe"),
            ("sstBackupLastSuccessfulBackup", "pc-anna:yesterday"),
            ("sstBackupLastSuccessfulBackup", "srv:1:20261121T030405Z"),
        ]));
        assert_eq!(
            (a.uid.as_str(), a.quota, a.warning_on),
            ("4000002", None, None)
        );
        assert_eq!(a.problems.len(), 3, "{:?}", a.problems);
        assert!(a.problems[0].contains("sstQuota"), "{:?}", a.problems);
        assert!(a.intervals_set && a.intervals.daily == 7 && a.active);
        assert_eq!(
            a.last_successful_at("srv:1"),
            Some("2026-11-21T03:04:05Z".parse().unwrap())
        );
    }

    #[test]
    fn a_settings_entry_gives_defaults_an_account_lacks() {
        let s = ResellerSettings::from_entry(
            "1000001",
            &entry(&[
                ("sstBackupWarningDays", "3"),
                ("sstBackupIntervalMonthly", "12"),
            ]),
        );
        let mut own = Account::from_entry(&entry(&[("sstBackupIntervalDaily", "7")]));
        own.apply_defaults(&s);
        assert_eq!(
            (own.warning_days, own.intervals.daily, own.intervals.monthly),
            (Some(3), 7, 0)
        );
        let mut none = Account::default();
        none.apply_defaults(&s);
        assert_eq!(none.intervals.monthly, 12);
    }

    #[test]
    fn last_successful_values_round_trip() {
        let t: DateTime<Utc> = "2026-11-21T03:04:05Z".parse().unwrap();
        let v = format_last_successful("srv:1", t);
        assert_eq!(v, "srv:1:20261121T030405Z");
        assert_eq!(parse_last_successful(&v), Some(("srv:1".into(), t)));
        let old = vec![
            "pc-anna:20260101T000000Z".to_string(),
            "srv:1:20260101T000000Z".to_string(),
            "garbled".to_string(),
        ];
        assert_eq!(
            with_last_successful(&old, "srv:1", t),
            [
                "pc-anna:20260101T000000Z",
                "garbled",
                "srv:1:20261121T030405Z"
            ]
        );
    }
}
