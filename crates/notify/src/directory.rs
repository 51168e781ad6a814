//! The real directory: [`holdfast_server::directory::Directory`] (LDAP, or an LDIF file)
//! behind the [`Directory`](crate::Directory) trait the checks use.
//!
//! Homes come from `homeDirectory`, else the traditional sharding under `[server]
//! homes_root`. The account's age (for *nobackup*) is the modification time of its home,
//! which for an account that never received a backup is when it was set up.

use crate::model::{Account, Directory, Person, Reseller, WarningDefaults};
use chrono::{DateTime, Utc};
use holdfast_server::directory as srv;
use std::path::{Path, PathBuf};

pub struct LdapDirectory {
    pub inner: srv::Directory,
    pub homes_root: PathBuf,
    /// Only accounts whose `host` is this (None: every account).
    pub host: Option<String>,
}

/// `<root>/<u[-1]>/<u[-3:]>/<u[-6:-3]>/<uid>`; short uids use what they have.
pub fn sharded_home(root: &Path, uid: &str) -> PathBuf {
    let c: Vec<char> = uid.chars().collect();
    let n = c.len();
    let s = |a: usize, b: usize| c[a.min(n)..b.min(n)].iter().collect::<String>();
    let last = s(n.saturating_sub(1), n);
    let last3 = s(n.saturating_sub(3), n);
    let mid3 = s(n.saturating_sub(6), n.saturating_sub(3));
    let mut p = root.join(last).join(last3);
    if !mid3.is_empty() {
        p = p.join(mid3);
    }
    p.join(uid)
}

impl LdapDirectory {
    pub fn new(cfg: &holdfast_server::ServerConfig) -> Result<LdapDirectory, srv::Error> {
        Ok(LdapDirectory {
            inner: srv::Directory::open(cfg)?,
            homes_root: cfg.homes_root.clone(),
            // Like every server command: only the accounts whose `host` names this server.
            host: Some(cfg.host_name()),
        })
    }

    fn convert(&self, a: srv::Account) -> Account {
        let home = a
            .home_directory
            .clone()
            .unwrap_or_else(|| sharded_home(&self.homes_root, &a.uid));
        let created = std::fs::metadata(&home)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        for p in &a.problems {
            tracing::warn!("account {}: {p}", a.uid);
        }
        Account {
            uid: a.uid,
            home,
            active: a.active,
            quota: a.quota,
            backup_size: a.backup_size,
            increment_size: a.increment_size,
            warning_level: a.warning_level,
            warning_on: a.warning_on,
            warning_days: a.warning_days,
            warning_numbers: a.warning_numbers,
            medium: a.medium,
            mail: a.mail,
            language: a.preferred_language,
            last_successful: a.last_successful.into_iter().collect(),
            reseller: a.reseller_uid,
            customer: a.customer_uid,
            person: a.person_uid,
            created,
        }
    }
}

impl Directory for LdapDirectory {
    fn accounts(&self) -> Result<Vec<Account>, String> {
        let v = match &self.host {
            Some(h) => self.inner.accounts_for_host(h),
            None => self.inner.accounts(),
        }
        .map_err(|e| e.to_string())?;
        Ok(v.into_iter().map(|a| self.convert(a)).collect())
    }

    fn person(&self, uid: &str) -> Result<Option<Person>, String> {
        Ok(self
            .inner
            .person(uid)
            .map_err(|e| e.to_string())?
            .map(|p| Person {
                uid: p.uid,
                mail: p.mail,
                language: p.preferred_language,
                name: p.cn,
            }))
    }

    fn reseller(&self, uid: &str) -> Result<Option<Reseller>, String> {
        let n = self
            .inner
            .reseller_notifications(uid)
            .map_err(|e| e.to_string())?;
        let s = self
            .inner
            .reseller_settings(uid)
            .map_err(|e| e.to_string())?;
        if n.is_none() && s.is_none() {
            return Ok(None);
        }
        let n = n.unwrap_or_default();
        let s = s.unwrap_or_default();
        Ok(Some(Reseller {
            uid: uid.into(),
            mail_to: n.mail_to,
            warnings: n.warnings,
            mail_from: s.mail_from,
            language: s.preferred_language,
            defaults: WarningDefaults {
                warning_level: s.warning_level,
                warning_on: s.warning_on,
                warning_days: s.warning_days,
                warning_numbers: s.warning_numbers,
                medium: s.medium,
            },
        }))
    }

    fn set_last_successful(
        &self,
        uid: &str,
        values: &[(String, DateTime<Utc>)],
    ) -> Result<(), String> {
        for (prefix, t) in values {
            self.inner
                .set_last_successful_backup(uid, prefix, *t)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_sharding() {
        let r = Path::new("/var/backup");
        assert_eq!(
            sharded_home(r, "4000123"),
            PathBuf::from("/var/backup/3/123/000/4000123")
        );
        assert_eq!(sharded_home(r, "12"), PathBuf::from("/var/backup/2/12/12"));
    }
}
