//! The repository on disk: `<root>/<host>/<type>/<aa>/<bb>/<cc>/<name>`, by the rules of
//! FOSSology's `libfossrepo.c`. Every command that reads, writes, copies or checks repository
//! files (`upload`, `unpack`, `verify`, `check-repo`, `recover`, `backup`, `restore`) asks
//! [`Repository`], so they cannot disagree about where a file is.
//!
//! The rules, as `_RepGetHost`, `fo_RepMkPathTmp` and `fo_RepMkPath` apply them:
//! - `[REPOSITORY]` lines are tried host by host in the order of the host names (FOSSology
//!   keeps them in a sorted tree), and a host's own lines in file order.
//! - A line holds a name when its type is `*` or the file's type, and its FROM and TO prefixes,
//!   each compared case-insensitively with as many leading characters of the name as it has,
//!   enclose the name (`* 0 7` and `* 00 7f` hold the same names).
//! - A file is read from the first matching host whose copy exists, else it is (to be)
//!   written under the first matching host.
//! - A type no line holds lives without a host folder: `<root>/<type>/<aa>/<bb>/<cc>/<name>`.
//! - The name and its hash folders are lower case; `depth` two-character levels.
//!
//! Files and folders holdfast creates here get FOSSology's owner and modes from [`perms`].

use crate::foconf::{FoConf, HostRange};
use crate::pfile::PfileName;
use std::path::{Path, PathBuf};

pub mod perms;
pub use perms::Owner;

/// Repository file types FOSSology knows; `license` is a legacy type some sites still have.
pub const TYPES: [&str; 4] = ["gold", "files", "logs", "license"];

#[derive(Debug, Clone)]
pub struct Repository {
    pub root: PathBuf,
    pub depth: usize,
    /// `[REPOSITORY]` lines in the order FOSSology tries them: by host name, then file order.
    pub hosts: Vec<HostRange>,
    /// Who owns what holdfast creates here (`[DIRECTORIES] PROJECTUSER`/`PROJECTGROUP`).
    pub owner: Owner,
}

/// `_RepCheckType`: a type is letters, digits and `@%_=+-`.
fn valid_type(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"@%_=+-".contains(&b))
}

/// `_RepCheckString`: a name is letters, digits and `@%_.=+-`, not starting with a dot.
fn valid_name(s: &str) -> bool {
    !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%_.=+-".contains(&b))
}

impl Repository {
    pub fn from_conf(conf: &FoConf) -> Self {
        let mut hosts = conf.hosts.clone();
        // Stable: a host's own lines keep their file order.
        hosts.sort_by(|a, b| a.host.as_bytes().cmp(b.host.as_bytes()));
        Repository {
            root: conf.path.clone(),
            depth: conf.depth,
            hosts,
            owner: Owner::named(&conf.project_user, &conf.project_group),
        }
    }

    /// The host directory of the first line that holds `name` of `kind`.
    pub fn host_for(&self, kind: &str, name: &str) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.covers(kind, name))
            .map(|h| h.host.as_str())
    }

    /// `fo_RepMkPathTmp` with no extension: the path under `host` (none: the fallback).
    fn build(&self, host: Option<&str>, kind: &str, name: &str) -> PathBuf {
        let lower = name.to_ascii_lowercase();
        let mut p = self.root.clone();
        if let Some(h) = host {
            p.push(h);
        }
        p.push(kind);
        let chars: Vec<char> = lower.chars().collect();
        for level in 0..self.depth {
            // A name shorter than the hash levels is padded with `_`.
            let pick = |i: usize| chars.get(i).copied().unwrap_or('_');
            p.push(format!("{}{}", pick(level * 2), pick(level * 2 + 1)));
        }
        p.push(lower);
        p
    }

    /// Every place FOSSology would look for `name` of `kind`, in its order: one per matching
    /// line, or the host-less fallback when no line matches. Empty for an invalid name.
    pub fn candidates(&self, kind: &str, name: &str) -> Vec<PathBuf> {
        if !valid_type(kind) || !valid_name(name) || name.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for h in self.hosts.iter().filter(|h| h.covers(kind, name)) {
            let p = self.build(Some(&h.host), kind, name);
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            out.push(self.build(None, kind, name));
        }
        out
    }

    /// Path of a stored file as `fo_RepMkPath` gives it: the first candidate that exists,
    /// else the first candidate (where a writer puts it). `None` only for a name FOSSology
    /// rejects.
    pub fn path(&self, kind: &str, name: &str) -> Option<PathBuf> {
        let c = self.candidates(kind, name);
        c.iter().find(|p| p.exists()).or(c.first()).cloned()
    }

    pub fn pfile_path(&self, kind: &str, pfile: &PfileName) -> Option<PathBuf> {
        self.path(kind, &pfile.to_string())
    }

    /// Every host directory named in `[REPOSITORY]`, whether it exists yet or not.
    pub fn host_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for h in &self.hosts {
            let d = self.root.join(&h.host);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// Whether every possible name of `kind` is held by some line (so the host-less fallback
    /// folder is never used). Decided over every prefix as wide as the widest FROM/TO.
    pub fn covers_all(&self, kind: &str) -> bool {
        let lines: Vec<&HostRange> = self.hosts.iter().filter(|h| h.matches_kind(kind)).collect();
        let width = lines
            .iter()
            .map(|h| h.from.len().max(h.to.len()))
            .max()
            .unwrap_or(0);
        if lines.is_empty() || width > 4 {
            return false;
        }
        (0..16u32.pow(width as u32)).all(|n| {
            let prefix = format!("{n:0width$x}");
            lines.iter().any(|h| h.covers(kind, &prefix))
        })
    }

    /// The folders (relative to the root) where files of these types can live: each
    /// `<host>/<type>` a line names, in FOSSology's order, then the host-less `<type>` when
    /// some names of that type are held by no line, or when it exists anyway.
    pub fn data_dirs(&self, types: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &self.hosts {
            for t in types {
                let d = format!("{}/{t}", h.host);
                if h.matches_kind(t) && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        for t in types {
            if !self.covers_all(t) || self.root.join(t).is_dir() {
                out.push(t.to_string());
            }
        }
        out
    }

    /// Whether a stored file exists with the size its name says (a truncated copy is missing).
    pub fn has(&self, kind: &str, pfile: &PfileName) -> bool {
        self.pfile_path(kind, pfile)
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == pfile.size)
    }

    /// Creates the folders a file needs as FOSSology's `_RepMkDirs` does, owned by the
    /// site's user and group (see [`perms`]).
    pub fn ensure_parent(&self, path: &Path) -> std::io::Result<()> {
        match path.parent() {
            Some(parent) => self.create_dir_all(parent),
            None => Ok(()),
        }
    }

    /// Creates a folder (and the missing ones above it) with FOSSology's owner and modes.
    pub fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        perms::create_dir_all(&self.root, dir, &self.owner)
    }

    /// Creates one folder whose parent exists, with FOSSology's owner and modes (a restore
    /// makes its many folders parents first, without walking each path again); `false` when
    /// it was there already.
    pub fn make_dir(&self, dir: &Path) -> std::io::Result<bool> {
        self.owner.make_dir(dir, None)
    }

    /// Gives everything under the root to the FOSSology user and group (after a restore from
    /// a server that could not keep owners); see [`Owner::chown_tree`].
    pub fn chown_all(&self) -> std::io::Result<u64> {
        self.owner.chown_tree(&self.root)
    }

    /// Gives a file holdfast stored the owner and mode FOSSology's import gives it.
    pub fn finish_file(&self, path: &Path) -> std::io::Result<()> {
        self.owner.finish_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(text: &str) -> Repository {
        Repository::from_conf(&FoConf::parse(text, Path::new("c")).unwrap())
    }

    const NAME: &str =
        "abcdef0123456789abcdef0123456789abcdef01.0123456789abcdef0123456789abcdef.42";

    #[test]
    fn paths_follow_depth_and_ranges() {
        let r = repo("[FOSSOLOGY]\npath=/r\ndepth=3\n[REPOSITORY]\na[] = * 00 7f\nb[] = * 80 ff\n");
        assert_eq!(
            r.path("files", NAME).unwrap(),
            PathBuf::from(format!("/r/b/files/ab/cd/ef/{NAME}"))
        );
        assert_eq!(r.host_for("gold", "12"), Some("a"));
        assert_eq!(
            r.host_dirs(),
            vec![PathBuf::from("/r/a"), PathBuf::from("/r/b")]
        );
        // Upper-case names (as the database has them) land on the lower-case path.
        assert_eq!(
            r.path("files", &NAME.to_ascii_uppercase()),
            r.path("files", NAME)
        );
        let r = repo("[FOSSOLOGY]\npath=/r\ndepth=1\n[REPOSITORY]\na[] = * 00 ff\n");
        assert_eq!(
            r.path("gold", NAME).unwrap(),
            PathBuf::from(format!("/r/a/gold/ab/{NAME}"))
        );
        assert_eq!(
            r.path("gold", "a").unwrap(),
            PathBuf::from("/r/a/gold/a_/a")
        );
    }

    #[test]
    fn hosts_are_tried_by_name_not_file_order() {
        let r = repo("[FOSSOLOGY]\npath=/r\n[REPOSITORY]\nzeta[] = * 00 ff\nalpha[] = * 00 ff\n");
        assert_eq!(r.host_for("files", NAME), Some("alpha"));
        assert_eq!(
            r.candidates("files", NAME),
            vec![
                PathBuf::from(format!("/r/alpha/files/ab/cd/ef/{NAME}")),
                PathBuf::from(format!("/r/zeta/files/ab/cd/ef/{NAME}")),
            ]
        );
    }

    #[test]
    fn a_file_is_read_from_the_second_host_when_the_first_lacks_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&format!(
            "[FOSSOLOGY]\npath={}\n[REPOSITORY]\nb[] = * 00 ff\na[] = * 00 ff\n",
            dir.path().display()
        ));
        let name = "ab.cd.2";
        let second = dir.path().join("b/gold/ab/.c/d./ab.cd.2");
        std::fs::create_dir_all(second.parent().unwrap()).unwrap();
        std::fs::write(&second, "xy").unwrap();
        assert_eq!(r.path("gold", name).unwrap(), second);
        assert!(r.has(
            "gold",
            &PfileName {
                sha1: "ab".into(),
                md5: "cd".into(),
                size: 2
            }
        ));
        // Absent everywhere: the first host, where a writer puts it.
        assert_eq!(
            r.path("files", name).unwrap(),
            dir.path().join("a/files/ab/.c/d./ab.cd.2")
        );
    }

    #[test]
    fn an_uncovered_type_lives_without_a_host_folder() {
        let r = repo("[FOSSOLOGY]\npath=/r\n[REPOSITORY]\na[] = gold 00 ff\n");
        assert_eq!(
            r.path("files", NAME).unwrap(),
            PathBuf::from(format!("/r/files/ab/cd/ef/{NAME}"))
        );
        assert!(r.covers_all("gold") && !r.covers_all("files"));
        assert_eq!(r.data_dirs(&["gold", "files"]), vec!["a/gold", "files"]);
        // Part of a range uncovered: those names fall back too.
        let r = repo("[FOSSOLOGY]\npath=/r\n[REPOSITORY]\na[] = * 0 7\n");
        assert_eq!(
            r.path("gold", "80aa").unwrap(),
            PathBuf::from("/r/gold/80/aa/__/80aa")
        );
        assert_eq!(r.data_dirs(&["gold"]), vec!["a/gold", "gold"]);
        let r = repo("[FOSSOLOGY]\npath=/r\n[REPOSITORY]\na[] = * 0 7\nb[] = * 8 f\n");
        assert!(r.covers_all("files"));
        assert_eq!(r.data_dirs(&["files"]), vec!["a/files", "b/files"]);
    }

    #[test]
    fn every_path_lies_in_a_data_dir() {
        for conf in [
            "a[] = * 00 7f\nb[] = gold 80 ff\n",
            "z[] = * 0 7\ny[] = files 8 f\nx[] = gold 000 fff\n",
            "a[] = logs 00 ff\n",
        ] {
            let r = repo(&format!("[FOSSOLOGY]\npath=/r\n[REPOSITORY]\n{conf}"));
            let dirs = r.data_dirs(&TYPES);
            for first in 0..256 {
                let name = format!("{first:02x}{}", &NAME[2..]);
                for t in TYPES {
                    let p = r.path(t, &name).unwrap();
                    let rel = p.strip_prefix("/r").unwrap();
                    assert!(
                        dirs.iter().any(|d| rel.starts_with(d)),
                        "{conf}: {p:?} not in {dirs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_fossology_rejects_have_no_path() {
        let r = repo("[REPOSITORY]\na[] = * 00 ff\n");
        assert!(r.path("files", "../x").is_none());
        assert!(r.path("files", ".hidden").is_none());
        assert!(r.path("fi/les", "ab").is_none());
    }
}
