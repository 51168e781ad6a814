//! The stoney directory: where backup accounts, people and reseller settings come from (an
//! LDAP server or an LDIF file) and what is written back (sizes, last successful backup).
//! What an entry means is the stoney model's business ([`holdfast_stoney::account`]).
//!
//! The tree (see `crates/server/ldap/example.ldif` and `/work/shared/spec/stoney.md`):
//! accounts are `uid=<UID>,ou=accounts,ou=backup,ou=services,<base>`, people
//! `uid=<UID>,ou=people,<base>`, and each reseller has `ou=notifications` and `ou=settings`
//! below `uid=<R>,ou=reseller,ou=configuration,ou=backup,ou=services,<base>`. A backup server
//! handles the accounts whose `host` names it.
//!
//! [`Directory::open`] picks the source from `[server]`: an LDAP server (`ldap_url`), else an
//! LDIF file (`ldif`), else the example tree embedded in the binary (for trying things out;
//! writes then stay in memory). Filters are built with [`ldap3::ldap_escape`] and DNs with
//! [`ldap3::dn_escape`], so a uid like `*)(uid=*` matches nothing instead of everything.
//! An unreachable server is one clear error before anything is changed.
//!
//! The LDAP client is `ldap3`'s sync `LdapConn`, which runs its own tokio runtime: never call
//! a [`Directory`] from inside a tokio task (use `spawn_blocking` or a plain thread).

use crate::ldif::{normalize_dn, Entry, Ldif};
use crate::ServerConfig;
use chrono::{DateTime, Utc};
use holdfast_stoney::account::{
    with_last_successful, Account, Person, Reseller, ResellerNotifications, ResellerSettings,
    ACCOUNT_CLASS, BACKUP_SIZE, INCREMENT_SIZE, LAST_SUCCESSFUL,
};
use ldap3::{dn_escape, ldap_escape, LdapConn, LdapConnSettings, Mod, Scope, SearchEntry};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The example tree shipped in `crates/server/ldap/example.ldif`.
pub const EXAMPLE_LDIF: &str = include_str!("../ldap/example.ldif");
/// Default base DN of a stoney tree.
pub const DEFAULT_BASE: &str = "dc=stoney-cloud,dc=org";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach LDAP server {url}: {source} (is it running? check [server] ldap_url)")]
    Down {
        url: String,
        source: Box<ldap3::LdapError>,
    },
    #[error("LDAP server {url} refused the bind as {dn}: {source} (check [server] bind_dn and password_file)")]
    Bind {
        url: String,
        dn: String,
        source: Box<ldap3::LdapError>,
    },
    #[error("LDAP server {url} failed to {what}: {source}")]
    Ldap {
        url: String,
        what: String,
        source: Box<ldap3::LdapError>,
    },
    #[error("cannot read the LDAP password file {path}: {source} (create it with mode 0600, or fix [server] password_file)")]
    Password {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[server] bind_dn is set but password_file is not: add password_file (a file holding the password)")]
    NoPassword,
    #[error("cannot read LDIF directory {path}: {source} (fix [server] ldif)")]
    LdifRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("LDIF directory {path}, {source}")]
    LdifParse {
        path: PathBuf,
        source: crate::ldif::ParseError,
    },
    #[error("cannot write LDIF directory {path}: {source}")]
    LdifWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("LDAP server {url} stopped the search under {base} at its size limit: allow the bind DN more (slapd: `limits dn.exact=\"<bind_dn>\" size=unlimited`), or set [server] bind_dn")]
    SizeLimit { url: String, base: String },
    #[error("no backup account {uid} in the directory (under {base})")]
    NoAccount { uid: String, base: String },
    #[error("bad {attr} value {value:?} for account {uid}: {why}")]
    BadValue {
        uid: String,
        attr: String,
        value: String,
        why: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

enum Backend {
    Ldap {
        url: String,
        conn: Mutex<LdapConn>,
        /// How to bind again after the connection is lost (slapd restarted, an idle
        /// timeout): the DN and its password, kept in memory only.
        bind: Option<(String, String)>,
    },
    Ldif {
        path: Option<PathBuf>,
        ldif: Mutex<Ldif>,
    },
}

/// Connects to `url` and binds as `bind` (anonymously when None).
fn open_ldap(url: &str, bind: Option<&(String, String)>, timeout: Duration) -> Result<LdapConn> {
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let mut conn = LdapConn::with_settings(settings, url).map_err(|source| Error::Down {
        url: url.into(),
        source: Box::new(source),
    })?;
    if let Some((dn, password)) = bind {
        conn.with_timeout(timeout)
            .simple_bind(dn, password)
            .and_then(|r| r.success())
            .map_err(|source| Error::Bind {
                url: url.into(),
                dn: dn.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(conn)
}

/// Handle on the directory. Methods take `&self`; LDAP requests are serialised internally.
pub struct Directory {
    base: String,
    timeout: Duration,
    backend: Backend,
}

impl Directory {
    /// Opens the directory `[server]` names (LDAP, else LDIF file, else embedded example).
    /// For LDAP this connects and binds, so an unreachable server fails here.
    pub fn open(cfg: &ServerConfig) -> Result<Directory> {
        let base = cfg.base_dn.clone().unwrap_or_else(|| DEFAULT_BASE.into());
        let timeout = Duration::from_secs(cfg.ldap_timeout_secs.max(1));
        if let Some(url) = &cfg.ldap_url {
            let password = match (&cfg.bind_dn, &cfg.password_file) {
                (Some(_), Some(p)) => Some(read_password(p)?),
                (Some(_), None) => return Err(Error::NoPassword),
                (None, _) => None,
            };
            return Self::connect(
                url,
                cfg.bind_dn.as_deref(),
                password.as_deref(),
                &base,
                timeout,
            );
        }
        match &cfg.ldif {
            Some(path) => Self::from_ldif_file(path, &base),
            None => {
                // Said every time: on a real server it means [server] was never finished.
                tracing::warn!(
                    "[server] names neither ldap_url nor ldif: using the embedded example \
                     directory (accounts 4000001-4000003), not your accounts"
                );
                Ok(Self::embedded(&base))
            }
        }
    }

    /// Connects to `url` and binds (anonymously when `bind_dn` is None).
    pub fn connect(
        url: &str,
        bind_dn: Option<&str>,
        password: Option<&str>,
        base: &str,
        timeout: Duration,
    ) -> Result<Directory> {
        let bind = bind_dn.map(|dn| (dn.to_string(), password.unwrap_or_default().to_string()));
        let conn = open_ldap(url, bind.as_ref(), timeout)?;
        tracing::debug!(url, bind_dn, "connected to LDAP");
        Ok(Directory {
            base: base.into(),
            timeout,
            backend: Backend::Ldap {
                url: url.into(),
                conn: Mutex::new(conn),
                bind,
            },
        })
    }

    /// Runs `op` on the LDAP connection; when the connection itself failed (not an answer
    /// of the server), connects and binds again and runs it once more: a slapd restarted
    /// during a run costs one retry, not every later look-up of the run.
    fn with_ldap<T>(
        &self,
        url: &str,
        conn: &Mutex<LdapConn>,
        bind: Option<&(String, String)>,
        op: impl Fn(&mut LdapConn) -> std::result::Result<T, ldap3::LdapError>,
    ) -> std::result::Result<T, ldap3::LdapError> {
        let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        match op(&mut conn) {
            Err(e) if !matches!(e, ldap3::LdapError::LdapResult { .. }) => {
                tracing::warn!(url, "LDAP connection lost ({e}); connecting again");
                match open_ldap(url, bind, self.timeout) {
                    Ok(fresh) => {
                        *conn = fresh;
                        op(&mut conn)
                    }
                    Err(_) => Err(e),
                }
            }
            r => r,
        }
    }

    /// Reads the directory from an LDIF file; writes rewrite that file (atomically).
    pub fn from_ldif_file(path: &Path, base: &str) -> Result<Directory> {
        let ldif = Ldif::read(path)?;
        Ok(Directory {
            base: base.into(),
            timeout: Duration::from_secs(10),
            backend: Backend::Ldif {
                path: Some(path.into()),
                ldif: Mutex::new(ldif),
            },
        })
    }

    /// The example tree embedded in the binary; writes stay in memory.
    pub fn embedded(base: &str) -> Directory {
        let ldif = Ldif::parse(EXAMPLE_LDIF).expect("embedded example.ldif parses");
        Directory {
            base: base.into(),
            timeout: Duration::from_secs(10),
            backend: Backend::Ldif {
                path: None,
                ldif: Mutex::new(ldif),
            },
        }
    }

    /// Where the entries come from, for messages: the LDAP URL or the LDIF file.
    pub fn source(&self) -> String {
        match &self.backend {
            Backend::Ldap { url, .. } => url.clone(),
            Backend::Ldif { path: Some(p), .. } => p.display().to_string(),
            Backend::Ldif { path: None, .. } => "embedded example directory".into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn accounts_base(&self) -> String {
        format!("ou=accounts,ou=backup,ou=services,{}", self.base)
    }

    pub fn people_base(&self) -> String {
        format!("ou=people,{}", self.base)
    }

    /// DN of a backup account.
    pub fn account_dn(&self, uid: &str) -> String {
        format!("uid={},{}", dn_escape(uid), self.accounts_base())
    }

    fn reseller_dn(&self, reseller: &str) -> String {
        format!(
            "uid={},ou=reseller,ou=configuration,ou=backup,ou=services,{}",
            dn_escape(reseller),
            self.base
        )
    }

    /// Backup accounts whose `host` is `host`, sorted by uid.
    pub fn accounts_for_host(&self, host: &str) -> Result<Vec<Account>> {
        let base = self.accounts_base();
        let mut v: Vec<Account> = self
            .search(
                &base,
                Scope::OneLevel,
                &[("objectClass", ACCOUNT_CLASS), ("host", host)],
            )?
            .iter()
            .map(Account::from_entry)
            .collect();
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(v)
    }

    /// All backup accounts, sorted by uid.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        let base = self.accounts_base();
        let mut v: Vec<Account> = self
            .search(&base, Scope::OneLevel, &[("objectClass", ACCOUNT_CLASS)])?
            .iter()
            .map(Account::from_entry)
            .collect();
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(v)
    }

    /// One backup account by uid.
    pub fn account(&self, uid: &str) -> Result<Option<Account>> {
        let base = self.accounts_base();
        Ok(self
            .search(
                &base,
                Scope::OneLevel,
                &[("objectClass", ACCOUNT_CLASS), ("uid", uid)],
            )?
            .first()
            .map(Account::from_entry))
    }

    /// A person by uid.
    pub fn person(&self, uid: &str) -> Result<Option<Person>> {
        let base = self.people_base();
        Ok(self
            .search(&base, Scope::OneLevel, &[("uid", uid)])?
            .first()
            .map(Person::from_entry))
    }

    /// The reseller's notification and settings entries; None when it has neither.
    pub fn reseller(&self, uid: &str) -> Result<Option<Reseller>> {
        let n = self.reseller_notifications(uid)?;
        let s = self.reseller_settings(uid)?;
        if n.is_none() && s.is_none() {
            return Ok(None);
        }
        Ok(Some(Reseller {
            uid: uid.into(),
            notifications: n.unwrap_or_default(),
            settings: s.unwrap_or_default(),
        }))
    }

    /// The reseller's notification entry, if it has one.
    pub fn reseller_notifications(&self, reseller: &str) -> Result<Option<ResellerNotifications>> {
        let dn = format!("ou=notifications,{}", self.reseller_dn(reseller));
        Ok(self
            .search(&dn, Scope::Base, &[])?
            .first()
            .map(|e| ResellerNotifications::from_entry(reseller, e)))
    }

    /// The reseller's settings entry, if it has one.
    pub fn reseller_settings(&self, reseller: &str) -> Result<Option<ResellerSettings>> {
        let dn = format!("ou=settings,{}", self.reseller_dn(reseller));
        Ok(self
            .search(&dn, Scope::Base, &[])?
            .first()
            .map(|e| ResellerSettings::from_entry(reseller, e)))
    }

    /// Writes `sstBackupSize` and `sstIncrementSize` (bytes) of an account.
    pub fn set_sizes(&self, uid: &str, backup: u64, increment: u64) -> Result<()> {
        self.replace(
            uid,
            &[
                (BACKUP_SIZE, vec![backup.to_string()]),
                (INCREMENT_SIZE, vec![increment.to_string()]),
            ],
        )
    }

    /// Sets the `sstBackupLastSuccessfulBackup` value of one prefix, keeping the others.
    pub fn set_last_successful_backup(
        &self,
        uid: &str,
        prefix: &str,
        when: DateTime<Utc>,
    ) -> Result<()> {
        if prefix.is_empty() || prefix.contains(['\n', '\r']) {
            return Err(Error::BadValue {
                uid: uid.into(),
                attr: LAST_SUCCESSFUL.into(),
                value: prefix.into(),
                why: "the prefix must be a non-empty single line".into(),
            });
        }
        let raw = self.search(
            &self.accounts_base(),
            Scope::OneLevel,
            &[("objectClass", ACCOUNT_CLASS), ("uid", uid)],
        )?;
        let Some(entry) = raw.first() else {
            return Err(Error::NoAccount {
                uid: uid.into(),
                base: self.accounts_base(),
            });
        };
        let values = with_last_successful(entry.all(LAST_SUCCESSFUL), prefix, when);
        self.replace(uid, &[(LAST_SUCCESSFUL, values)])
    }

    fn search(&self, base: &str, scope: Scope, conds: &[(&str, &str)]) -> Result<Vec<Entry>> {
        match &self.backend {
            Backend::Ldap { url, conn, bind } => {
                let filter = filter(conds);
                let res = self.with_ldap(url, conn, bind.as_ref(), |c| {
                    paged_search(c, self.timeout, base, scope, &filter)
                });
                let res = match res {
                    Ok(entries) => entries,
                    // noSuchObject: the base (e.g. a reseller's settings) does not exist
                    Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => vec![],
                    Err(ldap3::LdapError::LdapResult { result }) if result.rc == 4 => {
                        return Err(Error::SizeLimit {
                            url: url.clone(),
                            base: base.into(),
                        })
                    }
                    Err(source) => {
                        return Err(Error::Ldap {
                            url: url.clone(),
                            what: format!("search {base} for {filter}"),
                            source: Box::new(source),
                        })
                    }
                };
                Ok(res
                    .into_iter()
                    .map(|re| {
                        let se = SearchEntry::construct(re);
                        let mut e = Entry::new(&se.dn);
                        for (k, vs) in se.attrs {
                            for v in vs {
                                e.push(&k, v);
                            }
                        }
                        e
                    })
                    .collect())
            }
            Backend::Ldif { ldif, .. } => {
                let ldif = ldif.lock().unwrap_or_else(|e| e.into_inner());
                let nbase = normalize_dn(base);
                Ok(ldif
                    .entries()
                    .filter(|e| {
                        let dn = normalize_dn(&e.dn);
                        let in_scope = match scope {
                            Scope::Base => dn == nbase,
                            Scope::OneLevel => dn
                                .split_once(',')
                                .is_some_and(|(_, parent)| parent == nbase),
                            Scope::Subtree => dn == nbase || dn.ends_with(&format!(",{nbase}")),
                        };
                        in_scope && conds.iter().all(|(a, v)| e.has(a, v))
                    })
                    .cloned()
                    .collect())
            }
        }
    }

    fn replace(&self, uid: &str, mods: &[(&str, Vec<String>)]) -> Result<()> {
        let dn = self.account_dn(uid);
        match &self.backend {
            Backend::Ldap { url, conn, bind } => {
                let m: Vec<Mod<String>> = mods
                    .iter()
                    .map(|(a, vs)| {
                        Mod::Replace(a.to_string(), vs.iter().cloned().collect::<HashSet<_>>())
                    })
                    .collect();
                match self.with_ldap(url, conn, bind.as_ref(), |c| {
                    c.with_timeout(self.timeout)
                        .modify(&dn, m.clone())
                        .and_then(|r| r.success())
                }) {
                    Ok(_) => Ok(()),
                    Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => {
                        Err(Error::NoAccount {
                            uid: uid.into(),
                            base: self.accounts_base(),
                        })
                    }
                    Err(source) => Err(Error::Ldap {
                        url: url.clone(),
                        what: format!("modify {dn}"),
                        source: Box::new(source),
                    }),
                }
            }
            Backend::Ldif { path, ldif } => {
                let mut ldif = ldif.lock().unwrap_or_else(|e| e.into_inner());
                let mut next = ldif.clone();
                let Some(e) = next.entry_mut(&dn) else {
                    return Err(Error::NoAccount {
                        uid: uid.into(),
                        base: self.accounts_base(),
                    });
                };
                for (a, vs) in mods {
                    e.replace(a, vs.clone());
                }
                if let Some(p) = path {
                    write_atomic(p, next.to_text().as_bytes()).map_err(|source| {
                        Error::LdifWrite {
                            path: p.clone(),
                            source,
                        }
                    })?;
                }
                *ldif = next;
                Ok(())
            }
        }
    }
}

/// Pages of 500 entries (RFC 2696), for servers that cap a page (Active Directory's
/// MaxPageSize). slapd caps the total of a paged search too (`size.prtotal`, by default its
/// size limit of 500 for ordinary binds): that is reported as [`Error::SizeLimit`].
fn paged_search(
    conn: &mut LdapConn,
    timeout: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
) -> ldap3::result::Result<Vec<ldap3::ResultEntry>> {
    use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let mut stream = conn.with_timeout(timeout).streaming_search_with(
        adapters,
        base,
        scope,
        filter,
        vec!["*"],
    )?;
    let mut out = Vec::new();
    while let Some(re) = stream.next()? {
        out.push(re);
    }
    stream.result().success()?;
    Ok(out)
}

/// `(&(a=v)(b=w))` with every value escaped; `(objectClass=*)` when there are no conditions.
pub fn filter(conds: &[(&str, &str)]) -> String {
    match conds {
        [] => "(objectClass=*)".into(),
        [(a, v)] => format!("({a}={})", ldap_escape(*v)),
        _ => {
            let parts: String = conds
                .iter()
                .map(|(a, v)| format!("({a}={})", ldap_escape(*v)))
                .collect();
            format!("(&{parts})")
        }
    }
}

fn read_password(path: &Path) -> Result<String> {
    let s = holdfast_core::fs::read_secret(path).map_err(|source| Error::Password {
        path: path.into(),
        source,
    })?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Directory>();
    }

    #[test]
    fn filters_escape_values() {
        assert_eq!(filter(&[("uid", "4000001")]), "(uid=4000001)");
        assert_eq!(
            filter(&[("objectClass", ACCOUNT_CLASS), ("uid", "*)(uid=*")]),
            "(&(objectClass=sstBackup)(uid=\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(filter(&[]), "(objectClass=*)");
    }

    #[test]
    fn embedded_example_has_accounts_people_and_reseller() {
        let d = Directory::embedded(DEFAULT_BASE);
        let accs = d.accounts_for_host("backup-01.stoney-cloud.org").unwrap();
        assert_eq!(
            accs.iter().map(|a| a.uid.as_str()).collect::<Vec<_>>(),
            ["4000001", "4000002"]
        );
        let a = &accs[0];
        assert_eq!(a.quota, Some(1 << 30));
        assert_eq!(a.intervals.daily, 7);
        assert_eq!(a.mail, ["it@muster-treuhand.example.com"]);
        assert_eq!(
            a.last_successful["pc-anna"],
            "2026-11-20T02:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert!(d.account("*").unwrap().is_none());
        let p = d.person("3000001").unwrap().unwrap();
        assert_eq!(p.mail.len(), 2);
        let n = d.reseller_notifications("1000001").unwrap().unwrap();
        assert!(n.wants("QUOTA") && !n.wants("schedule"));
        let s = d.reseller_settings("1000001").unwrap().unwrap();
        assert_eq!(
            s.mail_from.as_deref(),
            Some("Reseller Backup <backup@reseller.example.org>")
        );
        assert!(d.reseller_settings("nobody").unwrap().is_none());
        let mut b = d.account("4000003").unwrap().unwrap();
        assert_eq!(b.warning_days, None);
        b.apply_defaults(&s);
        assert_eq!((b.warning_days, b.warning_on), (Some(3), Some(false)));
        // intervals: the reseller's only when the account has none of its own
        assert_eq!((b.intervals.daily, b.intervals.monthly), (7, 12));
        let mut none = Account::default();
        none.apply_defaults(&s);
        assert_eq!(
            (
                none.intervals.daily,
                none.intervals.weekly,
                none.intervals.monthly
            ),
            (7, 4, 3)
        );
    }

    #[test]
    fn ldif_file_writes_are_persisted_and_other_text_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dir.ldif");
        std::fs::write(&p, EXAMPLE_LDIF).unwrap();
        let d = Directory::from_ldif_file(&p, DEFAULT_BASE).unwrap();
        d.set_sizes("4000002", 123, 45).unwrap();
        let t = "2026-11-21T03:04:05Z".parse().unwrap();
        d.set_last_successful_backup("4000001", "pc-anna", t)
            .unwrap();
        d.set_last_successful_backup("4000001", "srv:1", t).unwrap();
        assert!(matches!(
            d.set_sizes("9999999", 1, 1),
            Err(Error::NoAccount { .. })
        ));
        let again = Directory::from_ldif_file(&p, DEFAULT_BASE).unwrap();
        let a = again.account("4000002").unwrap().unwrap();
        assert_eq!((a.backup_size, a.increment_size), (Some(123), Some(45)));
        let b = again.account("4000001").unwrap().unwrap();
        assert_eq!(b.last_successful.len(), 2);
        assert_eq!(b.last_successful["pc-anna"], t);
        assert_eq!(b.last_successful["srv:1"], t);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# Example stoney backup tree"));
    }
}
