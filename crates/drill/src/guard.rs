//! The guard that keeps a drill inside its scratch folder and scratch database.
//!
//! A drill destroys things on purpose, so it must prove it destroyed only its own. Before the
//! drill, [`ScratchGuard::admit`] refuses any path (configuration folder, repository root, host
//! folders, backup target, holdfast.toml) outside the scratch folder and any database that is
//! not the scratch cluster on loopback. Around the drill, the guard fingerprints the places a
//! production site lives (FOSSology's configuration folders, the default repository, holdfast's
//! own configuration and cron file, plus any folder the caller names) and
//! [`ScratchGuard::verify_untouched`] fails if any entry there appeared, vanished or changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("drill refused: {what} {path} is outside the scratch folder {root} (drills only touch their scratch folder; use --production to drill a real site)")]
    OutsidePath {
        what: String,
        path: String,
        root: String,
    },
    #[error("drill refused: the database {host}:{port} is not the scratch cluster (127.0.0.1:{expected})")]
    ForeignDatabase {
        host: String,
        port: u16,
        expected: u16,
    },
    #[error("the drill touched {} place(s) outside its scratch folder: {}", .0.len(), .0.join("; "))]
    Touched(Vec<String>),
}

/// FOSSology's default repository root.
pub const PRODUCTION_REPOSITORY: &str = "/srv/fossology/repository";

/// (size, mtime in ns, inode, mode) of one entry; a change in any is a touch.
type Print = (u64, i128, u64, u32);

/// Entries per watched folder at most: production repositories are huge, and a drill that
/// wrote into one would show in the first levels anyway.
const MAX_ENTRIES: usize = 20_000;

pub struct ScratchGuard {
    root: PathBuf,
    watched: BTreeMap<PathBuf, BTreeMap<PathBuf, Print>>,
    /// Repositories of a live site: FOSSology adds files and resets mtimes on reads while a
    /// drill runs, so only a file that vanished or changed (size, inode) counts as a touch:
    /// FOSSology never rewrites a stored file, a drill that wrote there would.
    repositories: BTreeMap<PathBuf, BTreeMap<PathBuf, Print>>,
}

/// Lexical normalisation: `a/./b/../c` -> `a/c` (paths may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn fingerprint(path: &Path) -> BTreeMap<PathBuf, Print> {
    let mut out = BTreeMap::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if out.len() >= MAX_ENTRIES {
            break;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        // A folder's own times change when a probe file comes and goes (a restore checks that
        // it can reach the target); what counts is its entries, which are compared one by one.
        let (size, mtime) = if m.is_dir() {
            (0, 0)
        } else {
            (
                m.len(),
                m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            )
        };
        out.insert(p.clone(), (size, mtime, m.ino(), m.mode()));
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                let mut kids: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                kids.sort();
                stack.extend(kids.into_iter().rev());
            }
        }
    }
    out
}

/// The places a production FOSSology site and holdfast live by default.
pub fn production_places() -> Vec<PathBuf> {
    let mut v = Vec::new();
    // (The default repository is watched as a repository; see `PRODUCTION_REPOSITORY`.)
    if let Some(d) = std::env::var_os("FO_SYSCONFDIR") {
        v.push(PathBuf::from(d));
    }
    v.push(PathBuf::from("/usr/local/etc/fossology"));
    v.push(PathBuf::from("/etc/fossology"));
    v.push(PathBuf::from("/etc/holdfast"));
    v.push(PathBuf::from("/etc/cron.d/holdfast"));
    v
}

impl ScratchGuard {
    /// Fingerprints `watch` (and the production places) now.
    pub fn new(root: &Path, watch: &[PathBuf]) -> ScratchGuard {
        Self::with_repositories(root, watch, &[])
    }

    /// Like [`ScratchGuard::new`], with live repositories watched leniently (files may
    /// appear and mtimes move; none may vanish or change). FOSSology's default repository
    /// is always among them.
    pub fn with_repositories(root: &Path, watch: &[PathBuf], repos: &[PathBuf]) -> ScratchGuard {
        let root = normalize(&root.canonicalize().unwrap_or_else(|_| root.to_path_buf()));
        let mut watched = BTreeMap::new();
        for p in production_places().iter().chain(watch) {
            let p = normalize(p);
            if p.starts_with(&root) {
                continue; // the scratch folder itself is the drill's to change
            }
            let print = fingerprint(&p);
            watched.insert(p, print);
        }
        let mut repositories = BTreeMap::new();
        for p in std::iter::once(&PathBuf::from(PRODUCTION_REPOSITORY)).chain(repos) {
            let p = normalize(p);
            if !p.starts_with(&root) && !watched.contains_key(&p) {
                let print = fingerprint(&p);
                repositories.insert(p, print);
            }
        }
        ScratchGuard {
            root,
            watched,
            repositories,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses `path` unless it lies inside the scratch folder.
    pub fn admit_path(&self, what: &str, path: &Path) -> Result<(), GuardError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(path)
        };
        // Resolve symlinks of the existing part: a link inside scratch may point outside.
        let mut existing = abs.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (
                existing.file_name().map(|s| s.to_owned()),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        for n in rest.into_iter().rev() {
            resolved.push(n);
        }
        let resolved = normalize(&resolved);
        if resolved.starts_with(&self.root) {
            Ok(())
        } else {
            Err(GuardError::OutsidePath {
                what: what.to_string(),
                path: path.display().to_string(),
                root: self.root.display().to_string(),
            })
        }
    }

    /// Refuses a site whose configuration, repository or database are not the scratch ones
    /// (`db_port`: the scratch cluster's port on loopback).
    pub fn admit_site(&self, site: &holdfast_site::Site, db_port: u16) -> Result<(), GuardError> {
        self.admit_path("FOSSology configuration folder", &site.conf_dir)?;
        self.admit_path("repository", &site.repo.root)?;
        for d in site.repo.host_dirs() {
            self.admit_path("repository host folder", &d)?;
        }
        let host = site.db.host().to_string();
        let port = site.db.port();
        let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
        if !loopback || port != db_port {
            return Err(GuardError::ForeignDatabase {
                host,
                port,
                expected: db_port,
            });
        }
        Ok(())
    }

    /// Fails when anything watched changed since [`ScratchGuard::new`].
    pub fn verify_untouched(&self) -> Result<(), GuardError> {
        let mut touched = Vec::new();
        for (place, before) in &self.watched {
            let after = fingerprint(place);
            for (p, print) in &after {
                match before.get(p) {
                    None => touched.push(format!("{} appeared", p.display())),
                    Some(b) if b != print => touched.push(format!("{} changed", p.display())),
                    _ => {}
                }
            }
            for p in before.keys() {
                if !after.contains_key(p) {
                    touched.push(format!("{} vanished", p.display()));
                }
            }
        }
        for (place, before) in &self.repositories {
            let after = fingerprint(place);
            for (p, b) in before {
                match after.get(p) {
                    None => touched.push(format!("{} vanished", p.display())),
                    Some(a) if (a.0, a.2) != (b.0, b.2) => {
                        touched.push(format!("{} changed", p.display()))
                    }
                    _ => {}
                }
            }
        }
        if touched.is_empty() {
            Ok(())
        } else {
            touched.truncate(20);
            Err(GuardError::Touched(touched))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_scratch_and_sees_touches() {
        let t = tempfile::tempdir().unwrap();
        let scratch = t.path().join("scratch");
        let prod = t.path().join("prod");
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::create_dir_all(prod.join("repo")).unwrap();
        std::fs::write(prod.join("repo/f"), "x").unwrap();
        let g = ScratchGuard::new(&scratch, std::slice::from_ref(&prod));
        g.admit_path("x", &scratch.join("a/b/../c")).unwrap();
        let err = g
            .admit_path("repository", &scratch.join("../prod/repo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the scratch folder"), "{err}");
        // A symlink inside scratch that leads out is refused too.
        std::os::unix::fs::symlink(&prod, scratch.join("link")).unwrap();
        assert!(g.admit_path("x", &scratch.join("link/repo")).is_err());
        g.verify_untouched().unwrap();
        std::fs::write(prod.join("repo/g"), "y").unwrap();
        let err = g.verify_untouched().unwrap_err().to_string();
        assert!(err.contains("repo/g appeared"), "{err}");
    }

    #[test]
    fn a_live_repository_may_grow_but_not_change() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("a"), "x").unwrap();
        let g = ScratchGuard::with_repositories(
            &t.path().join("scratch"),
            &[],
            std::slice::from_ref(&repo),
        );
        // FOSSology at work: a new file, an mtime reset by a read.
        std::fs::write(repo.join("b"), "new").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(repo.join("a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        g.verify_untouched().unwrap();
        // A rewritten file is a touch.
        std::fs::remove_file(repo.join("a")).unwrap();
        std::fs::write(repo.join("a"), "xy").unwrap();
        let err = g.verify_untouched().unwrap_err().to_string();
        assert!(err.contains("changed"), "{err}");
    }
}
