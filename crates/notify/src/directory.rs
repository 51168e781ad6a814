//! The real directory: [`holdfast_server::directory::Directory`] (LDAP, or an LDIF file)
//! behind the [`Directory`](crate::Directory) trait the checks use. Accounts come back with
//! their reseller's defaults applied by the run; homes are resolved and validated by
//! [`holdfast_server::homes::home_of`] (`homeDirectory`, else the traditional sharding under
//! `[server] homes_root`).

use crate::model::{Account, Directory, Person, Reseller};
use chrono::{DateTime, Utc};
use holdfast_server::directory as srv;
use std::path::PathBuf;

pub struct LdapDirectory {
    pub inner: srv::Directory,
    pub homes_root: PathBuf,
    /// Only accounts whose `host` is this (None: every account).
    pub host: Option<String>,
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
}

impl Directory for LdapDirectory {
    fn accounts(&self) -> Result<Vec<Account>, String> {
        let v = match &self.host {
            Some(h) => self.inner.accounts_for_host(h),
            None => self.inner.accounts(),
        }
        .map_err(|e| e.to_string())?;
        for a in &v {
            for p in &a.problems {
                tracing::warn!("account {}: {p}", a.uid);
            }
        }
        Ok(v)
    }

    fn person(&self, uid: &str) -> Result<Option<Person>, String> {
        self.inner.person(uid).map_err(|e| e.to_string())
    }

    fn reseller(&self, uid: &str) -> Result<Option<Reseller>, String> {
        self.inner.reseller(uid).map_err(|e| e.to_string())
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

    fn home(&self, a: &Account) -> Result<PathBuf, String> {
        holdfast_server::homes::home_of(a, &self.homes_root).map_err(|e| e.to_string())
    }
}
