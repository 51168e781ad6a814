//! The repository on disk: `<root>/<host>/<type>/<aa>/<bb>/<cc>/<name>`.

use crate::foconf::{FoConf, HostRange};
use crate::pfile::PfileName;
use std::path::{Path, PathBuf};

/// Repository file types FOSSology knows; `license` is a legacy type some sites still have.
pub const TYPES: [&str; 4] = ["gold", "files", "logs", "license"];

#[derive(Debug, Clone)]
pub struct Repository {
    pub root: PathBuf,
    pub depth: usize,
    pub hosts: Vec<HostRange>,
}

impl Repository {
    pub fn from_conf(conf: &FoConf) -> Self {
        Repository {
            root: conf.path.clone(),
            depth: conf.depth,
            hosts: conf.hosts.clone(),
        }
    }

    /// The host directory that holds `name` of `kind`, as FOSSology's first matching line says.
    pub fn host_for(&self, kind: &str, name: &str) -> Option<&str> {
        let prefix = u8::from_str_radix(name.get(..2)?, 16).ok()?;
        self.hosts
            .iter()
            .find(|h| h.covers(kind, prefix))
            .map(|h| h.host.as_str())
    }

    /// Path of a stored file, or `None` when no `[REPOSITORY]` line covers it.
    pub fn path(&self, kind: &str, name: &str) -> Option<PathBuf> {
        let host = self.host_for(kind, name)?;
        let mut p = self.root.join(host).join(kind);
        for level in 0..self.depth {
            p.push(name.get(level * 2..level * 2 + 2)?);
        }
        p.push(name);
        Some(p)
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

    /// Whether a stored file exists with the size its name says (a truncated copy is missing).
    pub fn has(&self, kind: &str, pfile: &PfileName) -> bool {
        self.pfile_path(kind, pfile)
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == pfile.size)
    }

    /// Creates the directories a file needs, with FOSSology's modes (0770, setgid root).
    pub fn ensure_parent(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_depth_and_ranges() {
        let conf = FoConf::parse(
            "[FOSSOLOGY]\npath=/r\ndepth=3\n[REPOSITORY]\na[] = * 00 7f\nb[] = * 80 ff\n",
            Path::new("c"),
        )
        .unwrap();
        let r = Repository::from_conf(&conf);
        let name = "abcdef0123456789abcdef0123456789abcdef01.0123456789abcdef0123456789abcdef.42";
        assert_eq!(
            r.path("files", name).unwrap(),
            PathBuf::from(format!("/r/b/files/ab/cd/ef/{name}"))
        );
        assert_eq!(r.host_for("gold", "12"), Some("a"));
        assert_eq!(
            r.host_dirs(),
            vec![PathBuf::from("/r/a"), PathBuf::from("/r/b")]
        );
    }

    #[test]
    fn no_matching_line_means_no_path() {
        let conf = FoConf::parse("[REPOSITORY]\na[] = gold 00 ff\n", Path::new("c")).unwrap();
        let r = Repository::from_conf(&conf);
        assert!(r.path("files", "00aa").is_none());
    }
}
