//! The notification tasks and audiences, and the directory trait the real LDAP directory
//! (and the tests' in-memory one) implements. Accounts, persons and resellers are the one
//! stoney model of [`holdfast_server::directory`].

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

/// The stoney model is [`holdfast_server::directory`]'s, one for every crate: the account
/// (with its reseller's defaults applied by [`Account::apply_defaults`]), the person and the
/// reseller.
pub use holdfast_stoney::account::{Account, Person, Reseller};

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
    /// The account's home, validated ([`holdfast_server::homes::home_of`]).
    fn home(&self, a: &Account) -> Result<PathBuf, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_and_resellers_match_keywords() {
        assert_eq!("Quota".parse::<Task>(), Ok(Task::Quota));
        assert!("space".parse::<Task>().unwrap_err().contains("nobackup"));
        let mut r = Reseller::default();
        r.notifications.warnings = vec!["quota".into(), " Schedule ".into()];
        assert!(r.wants("quota") && r.wants(Task::Schedule.keyword()) && !r.wants("upgrade"));
    }
}
