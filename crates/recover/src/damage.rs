//! What a killed writer or a power cut leaves in the repository, found by walking it.
//!
//! FOSSology's `ununpack` never writes a repository file in place: `fo_RepImport` hard-links
//! the fully extracted temporary file to its final name, or copies it to `<name>.I` and
//! renames; holdfast's unpacker writes `<name>.part<pid>-<n>` and renames. A `kill -9` of
//! either leaves only temporary files behind. A power cut is different: neither writer calls
//! `fsync`, so a file linked or renamed in the last seconds can come back under its final
//! name with less data than the name says (ext4 commits the name before delayed-allocation
//! data). Such a file looks present to anything that only tests existence, so it must not
//! keep its good name.
//!
//! [`scan`] compares every `gold` and `files` entry with the size in its name (hashes are not
//! computed: a power cut shortens files, it does not rewrite them) and lists writers'
//! temporary files. [`set_aside`] moves damaged files to `<repository>/.holdfast-damaged/`
//! (the folder a restore uses for copies that fail their hash; backups do not copy it), so
//! the bytes are kept for inspection, nothing trusts them, and a reunpack writes the real
//! file again.

use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where damaged repository files are moved, under the repository root, with their path
/// below the root kept.
pub const DAMAGED_DIR: &str = ".holdfast-damaged";

/// A file under a repository name whose size is not the one its name says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damaged {
    pub path: PathBuf,
    /// `gold` or `files`.
    pub kind: String,
    pub name: String,
    /// Size the name says.
    pub expected: u64,
    /// Size on disk.
    pub actual: u64,
}

/// The result of walking the repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scan {
    /// Files looked at.
    pub files: u64,
    pub damaged: Vec<Damaged>,
    /// Writers' temporary files (`*.I`, `*.part*`) and anything else without a repository
    /// name: never read by FOSSology, safe to delete once no agent runs.
    pub leftovers: Vec<PathBuf>,
    /// Damaged files set aside earlier (under [`DAMAGED_DIR`]).
    pub set_aside: Vec<PathBuf>,
}

impl Scan {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Walks `gold` and `files` of every repository host (and of the host-less fallback folder
/// FOSSology uses for names no `[REPOSITORY]` line covers).
pub fn scan(repo: &Repository) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    let mut dirs = repo.host_dirs();
    dirs.push(repo.root.clone());
    for dir in dirs {
        for kind in ["gold", "files"] {
            walk(&dir.join(kind), kind, repo, &mut out)?;
        }
    }
    let mut stack = vec![repo.root.join(DAMAGED_DIR)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.set_aside.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    out.leftovers.sort();
    out.set_aside.sort();
    Ok(out)
}

fn walk(dir: &Path, kind: &str, repo: &Repository, out: &mut Scan) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), kind, repo, out)?;
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        out.files += 1;
        let name = e.file_name().to_string_lossy().to_string();
        match PfileName::parse(&name) {
            // A good name: a place FOSSology looks for the file (any line that covers it).
            Some(p) if repo.candidates(kind, &name).contains(&e.path()) => {
                let actual = e.metadata()?.len();
                if actual != p.size {
                    out.damaged.push(Damaged {
                        path: e.path(),
                        kind: kind.to_string(),
                        name,
                        expected: p.size,
                        actual,
                    });
                }
            }
            _ => out.leftovers.push(e.path()),
        }
    }
    Ok(())
}

/// Moves each damaged file into [`DAMAGED_DIR`] (replacing an older copy of the same
/// path); returns the new paths. A file that changed since the scan (rewritten whole
/// meanwhile) is left alone.
pub fn set_aside(repo: &Repository, damaged: &[Damaged]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in damaged {
        match std::fs::metadata(&d.path) {
            Ok(m) if m.len() != d.expected => {}
            _ => continue,
        }
        let rel = d.path.strip_prefix(&repo.root).unwrap_or(&d.path);
        let to = repo
            .root
            .join(DAMAGED_DIR)
            .join(rel.strip_prefix("/").unwrap_or(rel));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&d.path, &to)?;
        tracing::warn!(
            "{}: {} of {} bytes: set aside as {}",
            d.path.display(),
            d.actual,
            d.expected,
            to.display()
        );
        out.push(to);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_site::foconf::FoConf;

    #[test]
    fn finds_short_files_under_good_names_and_sets_them_aside() {
        let t = tempfile::tempdir().unwrap();
        let conf = FoConf::parse(
            &format!(
                "[FOSSOLOGY]\npath={}\ndepth=3\n[REPOSITORY]\nlocalhost[] = * 00 ff\n",
                t.path().display()
            ),
            Path::new("c"),
        )
        .unwrap();
        let repo = Repository::from_conf(&conf);
        let name =
            |size: u64, c: char| format!("{}.{}.{size}", c.to_string().repeat(40), "0".repeat(32));
        let good = name(5, 'a');
        let short = name(9, 'b');
        for n in [&good, &short] {
            let p = repo.path("files", n).unwrap();
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        std::fs::write(repo.path("files", &good).unwrap(), b"12345").unwrap();
        std::fs::write(repo.path("files", &short).unwrap(), b"123").unwrap();
        let part = repo.path("files", &good).unwrap().with_extension("part7-1");
        std::fs::write(&part, b"12").unwrap();
        let s = scan(&repo).unwrap();
        assert_eq!(s.files, 3);
        assert_eq!(s.damaged.len(), 1);
        assert_eq!((s.damaged[0].expected, s.damaged[0].actual), (9, 3));
        assert_eq!(s.damaged[0].name, short);
        assert_eq!(s.leftovers, vec![part]);
        let moved = set_aside(&repo, &s.damaged).unwrap();
        assert!(moved[0].starts_with(t.path().join(DAMAGED_DIR)));
        assert_eq!(std::fs::read(&moved[0]).unwrap(), b"123");
        assert!(!repo.path("files", &short).unwrap().exists());
        let again = scan(&repo).unwrap();
        assert!(again.is_clean());
        assert_eq!(again.set_aside, moved);
    }
}
