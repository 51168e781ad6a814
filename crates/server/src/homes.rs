//! Account homes: where an account's backups live and who may touch what.
//!
//! A home is the account's `homeDirectory` or the traditional sharded path
//! `<root>/<u[-1]>/<u[-3:]>/<u[-6:-3]>/<uid>` (last digit, last three digits, the three
//! before them). It holds `incoming/` (clients push here with rsync, one folder per prefix),
//! `.snapshots/` (the server's hard-linked snapshots, or the client's dated folders) and
//! `.ssh/authorized_keys`.
//!
//! Ownership, when the OS knows a user named like the account (LDAP nss or `useradd`):
//! the home and `.ssh/` belong to root with the account's group and mode 0750, so sshd's
//! StrictModes and a ChrootDirectory jail accept the home and the account cannot rename
//! anything in it; `incoming/` (0700) belongs to the account; `.snapshots/` is root's, group
//! the account's, mode 1770: the Perl client's default mode makes its dated folders
//! (`--backup-dir ~/.snapshots/YYYYMMDD`) there, and the sticky bit keeps the account from
//! renaming or removing the server's snapshots, whose files are root's copies (see
//! [`crate::snapshot`] and [`crate::copy`]). `.holdfast/` is the server's own (root, 0700).
//! Other accounts are neither owner nor group, so they cannot even list a home.
//! Without such a user everything is root's with mode 0700 and `account add` says so.

use holdfast_stoney::account::Account;
use nix::unistd::{Gid, Uid, User};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("account uid {uid:?} cannot name a home: use letters, digits, '.', '_' or '-', not starting with '.'")]
    BadUid { uid: String },
    #[error("account {uid}: homeDirectory {path} is not an absolute path without '..'; fix it in the directory")]
    BadHome { uid: String, path: PathBuf },
    #[error(
        "account {uid}: {path} is a symlink or not a directory; refusing to use it (move it away)"
    )]
    NotADir { uid: String, path: PathBuf },
    #[error("account {uid}: {path}: {source}")]
    Io {
        uid: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("account {uid}: public key line {line} of {file} is not an OpenSSH public key")]
    BadKey {
        uid: String,
        file: String,
        line: usize,
    },
}

type Result<T> = std::result::Result<T, HomeError>;

/// True for uids that are safe as one path component.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && !uid.starts_with('.')
        && uid.len() <= 128
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Python-style slice `s[start:end]` with negative indices from the end.
fn tail_slice(s: &str, from_end: usize, to_end: usize) -> &str {
    let n = s.len();
    let a = n.saturating_sub(from_end);
    let b = n.saturating_sub(to_end);
    &s[a..b.max(a)]
}

/// The traditional sharded home of `uid` under `root`.
pub fn sharded(root: &Path, uid: &str) -> Result<PathBuf> {
    if !valid_uid(uid) {
        return Err(HomeError::BadUid { uid: uid.into() });
    }
    let mut p = root.to_path_buf();
    for part in [
        tail_slice(uid, 1, 0),
        tail_slice(uid, 3, 0),
        tail_slice(uid, 6, 3),
    ] {
        if !part.is_empty() {
            p.push(part);
        }
    }
    p.push(uid);
    Ok(p)
}

/// The account's home: `homeDirectory` if set, else the sharded path under `root`.
pub fn home_of(acc: &Account, root: &Path) -> Result<PathBuf> {
    if !valid_uid(&acc.uid) {
        return Err(HomeError::BadUid {
            uid: acc.uid.clone(),
        });
    }
    match &acc.home_directory {
        Some(h) => {
            if !h.is_absolute() || h.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(HomeError::BadHome {
                    uid: acc.uid.clone(),
                    path: h.clone(),
                });
            }
            Ok(h.clone())
        }
        None => sharded(root, &acc.uid),
    }
}

/// The OS user for an account, if the system knows one by the account's uid.
pub fn os_user(uid: &str) -> Option<User> {
    User::from_name(uid).ok().flatten()
}

/// What `ensure_home` did.
#[derive(Debug, Clone, Serialize)]
pub struct HomeReport {
    pub uid: String,
    pub home: PathBuf,
    pub created: Vec<PathBuf>,
    /// (uid, gid) of the OS user the account maps to.
    pub owner: Option<(u32, u32)>,
    pub keys_added: usize,
    pub warnings: Vec<String>,
}

/// Creates (or repairs) the home of `acc`: folders, ownership, modes and authorized keys.
/// Existing content is never removed; keys are added once.
pub fn ensure_home(acc: &Account, root: &Path, keys: &[String]) -> Result<HomeReport> {
    let uid = acc.uid.clone();
    let home = home_of(acc, root)?;
    let io = |path: &Path, source| HomeError::Io {
        uid: uid.clone(),
        path: path.into(),
        source,
    };
    let user = os_user(&acc.uid);
    let owner = user.as_ref().map(|u| (u.uid.as_raw(), u.gid.as_raw()));
    let mut report = HomeReport {
        uid: uid.clone(),
        home: home.clone(),
        created: vec![],
        owner,
        keys_added: 0,
        warnings: vec![],
    };
    if user.is_none() {
        report.warnings.push(format!(
            "no OS user named {uid}: the home stays root's (mode 0700) until the user exists \
             (LDAP nss or useradd) and `holdfast server account add {uid}` runs again"
        ));
    }
    let group = owner.map(|(_, g)| Gid::from_raw(g));
    let account = owner.map(|(u, _)| Uid::from_raw(u));
    let (shared_mode, root_owner) = if owner.is_some() {
        (0o750, Some(Uid::from_raw(0)))
    } else {
        (0o700, None)
    };
    if let Some(parent) = home.parent() {
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
    }
    // group-writable with the sticky bit: the client's dated folders, not the server's
    let snaps_mode = if owner.is_some() { 0o1770 } else { 0o700 };
    let dirs: [(PathBuf, Option<Uid>, Option<Gid>, u32); 4] = [
        (home.clone(), root_owner, group, shared_mode),
        (home.join("incoming"), account, group, 0o700),
        (home.join(".snapshots"), root_owner, group, snaps_mode),
        (home.join(".ssh"), root_owner, group, shared_mode),
    ];
    for (dir, u, g, mode) in &dirs {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HomeError::NotADir {
                    uid: uid.clone(),
                    path: dir.clone(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(dir).map_err(|e| io(dir, e))?;
                report.created.push(dir.clone());
            }
            Err(e) => return Err(io(dir, e)),
        }
        if u.is_some() || g.is_some() {
            nix::unistd::chown(dir.as_path(), *u, *g)
                .map_err(|e| io(dir, std::io::Error::from_raw_os_error(e as i32)))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| io(dir, e))?;
    }
    let ak = home.join(".ssh/authorized_keys");
    match std::fs::symlink_metadata(&ak) {
        Ok(m) if !m.is_file() => {
            return Err(HomeError::NotADir {
                uid: uid.clone(),
                path: ak,
            })
        }
        _ => {}
    }
    let existing = std::fs::read_to_string(&ak).unwrap_or_default();
    let mut text = existing.clone();
    for k in keys {
        let k = k.trim();
        if k.is_empty()
            || existing.lines().any(|l| l.trim() == k)
            || text.lines().any(|l| l.trim() == k)
        {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(k);
        text.push('\n');
        report.keys_added += 1;
    }
    if text != existing || !ak.exists() {
        crate::directory::write_atomic(&ak, text.as_bytes()).map_err(|e| io(&ak, e))?;
    }
    if owner.is_some() {
        nix::unistd::chown(ak.as_path(), root_owner, group)
            .map_err(|e| io(&ak, std::io::Error::from_raw_os_error(e as i32)))?;
    }
    let ak_mode = if owner.is_some() { 0o640 } else { 0o600 };
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(ak_mode))
        .map_err(|e| io(&ak, e))?;
    Ok(report)
}

/// Reads OpenSSH public keys from a file (one per line; `#` comments and blanks skipped).
pub fn read_keys(uid: &str, file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|source| HomeError::Io {
        uid: uid.into(),
        path: file.into(),
        source,
    })?;
    let mut keys = vec![];
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let looks_like_key = l
            .split_whitespace()
            .any(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-sha2-") || w.starts_with("sk-"));
        if !looks_like_key {
            return Err(HomeError::BadKey {
                uid: uid.into(),
                file: file.display().to_string(),
                line: i + 1,
            });
        }
        keys.push(l.to_string());
    }
    Ok(keys)
}

/// How an account keeps its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// No snapshots yet.
    Empty,
    /// Server-made `<interval>.<n>` folders.
    Rotating,
    /// Client-made `YYYYMMDD` folders (rsync --backup-dir): left alone, counted.
    Dated,
    /// Both kinds: rotation still runs, the dated folders are left alone.
    Mixed,
}

/// True for `YYYYMMDD` folder names.
pub fn is_dated(name: &str) -> bool {
    name.len() == 8
        && name.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(name, "%Y%m%d").is_ok()
}

/// True for `<interval>.<n>` folder names.
pub fn is_rotating(name: &str) -> bool {
    name.split_once('.').is_some_and(|(i, n)| {
        holdfast_stoney::account::INTERVALS.contains(&i)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The layout of a home's `.snapshots/`.
pub fn layout(home: &Path) -> Layout {
    let mut rot = false;
    let mut dated = false;
    if let Ok(rd) = std::fs::read_dir(home.join(".snapshots")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            rot |= is_rotating(&n);
            dated |= is_dated(&n);
        }
    }
    match (rot, dated) {
        (false, false) => Layout::Empty,
        (true, false) => Layout::Rotating,
        (false, true) => Layout::Dated,
        (true, true) => Layout::Mixed,
    }
}

/// The prefixes (computers) under `incoming/`, sorted.
pub fn prefixes(home: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(home.join("incoming"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_paths_follow_the_tradition() {
        let r = Path::new("/var/backup");
        assert_eq!(
            sharded(r, "4000123").unwrap(),
            Path::new("/var/backup/3/123/000/4000123")
        );
        assert_eq!(
            sharded(r, "12345").unwrap(),
            Path::new("/var/backup/5/345/12/12345")
        );
        assert_eq!(sharded(r, "7").unwrap(), Path::new("/var/backup/7/7/7"));
        assert!(sharded(r, "../etc").is_err());
        assert!(sharded(r, "a/b").is_err());
        assert!(sharded(r, "").is_err());
    }

    #[test]
    fn home_directory_wins_but_must_be_sane() {
        let mut a = Account {
            uid: "4000003".into(),
            home_directory: Some("/srv/b/4000003".into()),
            ..Account::default()
        };
        assert_eq!(
            home_of(&a, Path::new("/x")).unwrap(),
            Path::new("/srv/b/4000003")
        );
        a.home_directory = Some("/srv/../etc".into());
        assert!(home_of(&a, Path::new("/x")).is_err());
        a.home_directory = Some("relative".into());
        assert!(home_of(&a, Path::new("/x")).is_err());
    }

    #[test]
    fn names_of_snapshot_folders() {
        assert!(is_dated("20261121") && !is_dated("20261341") && !is_dated("2026112"));
        assert!(is_rotating("daily.0") && is_rotating("weekly.12"));
        assert!(!is_rotating("daily.") && !is_rotating("often.1") && !is_rotating(".trash"));
    }
}
