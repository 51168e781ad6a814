//! Backup server warnings: the stoney notification tasks.
//!
//! A check run ([`run::check`]) reads every backup account from the directory, the client
//! files of each computer (prefix) in its home ([`client`]), and judges five tasks with pure
//! functions ([`checks`]): *quota* (used space above the warning level), *schedule* (planned
//! runs that did not happen), *unsuccessful* (the last run failed or never ended), *upgrade*
//! (client older than a configured minimum) and *nobackup* (an account never used). It writes
//! each prefix's `sstBackupLastSuccessfulBackup` back. A warning goes to the recipients the
//! plan names ([`recipients`]), rendered from per-reseller templates with built-in fallbacks
//! ([`templates`]), through an outbox and SMTP ([`mail`]). A small SQLite store ([`state`])
//! remembers what was sent: the same warning at most once per period, and one "resolved"
//! message when the problem clears. [`sync`] copies the resellers' templates the way the
//! plan's `distributeTemplates.sh` does and checks that each renders.

pub mod checks;
pub mod client;
pub mod dashboard;
pub mod directory;
pub mod mail;
pub mod model;
pub mod recipients;
pub mod run;
pub mod state;
pub mod sync;
pub mod templates;

pub use model::{Account, Audience, Directory, Person, Reseller, Task};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[notify]` in holdfast.toml: warnings, mail and templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// What was sent when (SQLite).
    pub state: PathBuf,
    /// Messages wait here until the SMTP server accepts them; without `[notify.smtp]` this
    /// folder is the delivery.
    pub outbox: PathBuf,
    /// SMTP relay; unset: messages stay in the outbox.
    pub smtp: Option<mail::SmtpConfig>,
    /// The same warning goes out at most once per this many hours (a check up to 1/24 of it
    /// early counts: a daily check that starts a second early still reminds).
    pub period_hours: u64,
    /// A planned run counts as missed only this many minutes after its time.
    pub grace_minutes: u64,
    /// A started backup that has not ended after this many hours counts as failed.
    pub started_timeout_hours: u64,
    /// An active account younger than this many days is not warned as never used.
    pub nobackup_grace_days: u64,
    /// Lowest acceptable client version per client identifier, e.g. `sepiola = "2.4.0"`.
    pub min_versions: BTreeMap<String, String>,
    /// Sender when the reseller has no `sstMailFrom`.
    pub default_from: String,
    /// Template language when neither account, person nor reseller names one.
    pub default_language: String,
    /// Root of the resellers' theme folders (`<theme>/templates/services/backup/`).
    pub themes_dir: Option<PathBuf>,
    /// Reseller uid -> theme folder name (default: a folder named by the reseller uid).
    pub themes: BTreeMap<String, String>,
    /// Reseller whose templates are every reseller's default.
    pub default_reseller: Option<String>,
    /// Name of this server in messages (default: the host name).
    pub server_name: Option<String>,
    /// `holdfast templates sync`.
    pub sync: sync::SyncConfig,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            state: "/var/lib/holdfast/notify.sqlite".into(),
            outbox: "/var/spool/holdfast/outbox".into(),
            smtp: None,
            period_hours: 24,
            grace_minutes: 120,
            started_timeout_hours: 24,
            nobackup_grace_days: 7,
            min_versions: BTreeMap::new(),
            default_from: "stoney backup <backup@localhost>".into(),
            default_language: "en".into(),
            themes_dir: None,
            themes: BTreeMap::new(),
            default_reseller: None,
            server_name: None,
            sync: sync::SyncConfig::default(),
        }
    }
}

impl NotifyConfig {
    pub fn limits(&self) -> checks::Limits {
        checks::Limits {
            grace: chrono::Duration::minutes(self.grace_minutes as i64),
            started_timeout: chrono::Duration::hours(self.started_timeout_hours as i64),
            nobackup_grace: chrono::Duration::days(self.nobackup_grace_days as i64),
            min_versions: self
                .min_versions
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect(),
        }
    }

    pub fn templates(&self) -> templates::Templates {
        templates::Templates {
            themes_dir: self.themes_dir.clone(),
            themes: self.themes.clone(),
            default_reseller: self.default_reseller.clone(),
            default_language: self.default_language.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The configuration example in docs/templates.md is what the code reads (unknown keys
    /// are refused), so the guide cannot drift from the settings.
    #[test]
    fn the_guides_configuration_example_parses() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            notify: super::NotifyConfig,
        }
        let md = include_str!("../../../docs/templates.md");
        let block = md
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block in docs/templates.md");
        let f: File = toml::from_str(block).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.notify.sync.push_to, ["sync@backup-01.example.org"]);
        assert_eq!(f.notify.sync.port, Some(22));
        assert!(f
            .notify
            .min_versions
            .contains_key("Online Backup Perl Script"));
    }
}
