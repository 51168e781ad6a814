//! Backup server: the stoney backup service's server side. Accounts come from the LDAP
//! directory ([`directory`]); each account has a home ([`homes`]) that clients push into
//! with rsync over SSH (`incoming/<prefix>/`); [`snapshot`] rotates `incoming/` into
//! hard-linked `.snapshots/<interval>.<n>` trees; [`size`] counts each inode once and writes
//! `sstBackupSize`/`sstIncrementSize` back; [`jobs`] runs both over all accounts of this
//! host and records them in [`status`]; [`metrics`] renders that for Prometheus. The
//! descriptor-relative parallel walks that never follow a client's symlink are in [`tree`];
//! single client files and templates are read through [`safe`].

pub mod copy;
pub mod directory;
pub mod homes;
pub mod jobs;
pub mod ldif;
pub mod metrics;
pub mod recycle;
pub mod safe;
pub mod size;
pub mod snapshot;
pub mod status;
pub mod tree;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[server]` in holdfast.toml: the backup server side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// LDAP server, e.g. `ldap://ldap.example.org` or `ldaps://...`. Unset: use `ldif`.
    pub ldap_url: Option<String>,
    /// DN to bind as (unset: anonymous bind).
    pub bind_dn: Option<String>,
    /// File holding the bind password (mode 0600). The password is never logged.
    pub password_file: Option<PathBuf>,
    /// Base DN of the stoney tree (default `dc=stoney-cloud,dc=org`).
    pub base_dn: Option<String>,
    /// LDIF file used as the directory when `ldap_url` is unset; unset too: the embedded
    /// example tree (for trying things out).
    pub ldif: Option<PathBuf>,
    /// Seconds to wait for the LDAP server.
    pub ldap_timeout_secs: u64,
    /// This server's name in the accounts' `host` attribute (default: the host name).
    pub host: Option<String>,
    /// Root of the traditional sharded homes `<root>/<u[-1]>/<u[-3:]>/<u[-6:-3]>/<uid>`.
    pub homes_root: PathBuf,
    /// Where the jobs keep `server-status.json` (read by `holdfast serve` for /metrics).
    pub state_dir: PathBuf,
    /// The cron file `holdfast server schedule install` writes the jobs into (without
    /// systemd).
    pub cron_file: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ldap_url: None,
            bind_dn: None,
            password_file: None,
            base_dn: None,
            ldif: None,
            ldap_timeout_secs: 10,
            cron_file: PathBuf::from("/etc/cron.d/holdfast-server"),
            host: None,
            homes_root: PathBuf::from("/var/backup"),
            state_dir: PathBuf::from("/var/lib/holdfast/server"),
        }
    }
}

impl ServerConfig {
    /// This server's host name as the directory knows it.
    pub fn host_name(&self) -> String {
        if let Some(h) = &self.host {
            return h.clone();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    }
}
