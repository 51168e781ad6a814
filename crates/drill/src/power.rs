//! The power cut after the kill: what the disk holds when the machine comes back.
//!
//! A SIGKILL alone loses nothing the agent wrote: its data is in the page cache and reaches
//! the disk later. A power cut also loses the page cache. Neither FOSSology's `ununpack`
//! (`fo_RepImport`: a hard link of the extracted file, or a copy to `<name>.I` and a
//! rename) nor holdfast's unpacker (`<name>.part*` and a rename) calls `fsync`, and the
//! kernel writes dirty data back only after ~30 s (`vm.dirty_expire_centisecs`). On ext4
//! (`data=ordered`, delayed allocation) the journal commits the new name within ~5 s while
//! the data blocks are allocated and written at writeback: a file written in the last
//! seconds comes back under its final name with only part of its data, often none. The
//! drill reproduces that on the files the agent created (new inodes only: gold and older
//! files were synced long before): each one independently either reached the disk or was
//! cut to a random whole number of 4 KiB blocks below its size.

use anyhow::Result;
use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every repository-named file of `gold` and `files`: path -> (inode, size).
pub struct RepoFiles(pub BTreeMap<PathBuf, (u64, u64)>);

impl RepoFiles {
    pub fn read(repo: &Repository) -> Self {
        let mut out = BTreeMap::new();
        for host in repo.host_dirs() {
            for kind in ["gold", "files"] {
                let mut stack = vec![host.join(kind)];
                while let Some(d) = stack.pop() {
                    let Ok(rd) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for e in rd.flatten() {
                        let Ok(m) = e.metadata() else { continue };
                        if m.is_dir() {
                            stack.push(e.path());
                        } else if m.is_file()
                            && PfileName::parse(&e.file_name().to_string_lossy()).is_some()
                        {
                            out.insert(e.path(), (m.ino(), m.len()));
                        }
                    }
                }
            }
        }
        RepoFiles(out)
    }
}

/// What the power cut did.
pub struct Cut {
    /// Repository files the agent created before it died.
    pub written: Vec<PathBuf>,
    /// Those of them that came back short.
    pub truncated: Vec<PathBuf>,
    /// Every repository file and its size when the power came back.
    pub at_kill: BTreeMap<PathBuf, u64>,
}

impl Cut {
    pub fn state_at_kill(&self) -> BTreeMap<&Path, u64> {
        self.at_kill
            .iter()
            .map(|(p, s)| (p.as_path(), *s))
            .collect()
    }
}

/// Cuts short, at random, the files created between `before` and `after` (see the module
/// documentation); each inode once, whatever number of names it has.
pub fn lose_unsynced(before: &RepoFiles, after: &RepoFiles, rng: &mut impl Rng) -> Result<Cut> {
    let old: BTreeSet<u64> = before.0.values().map(|(ino, _)| *ino).collect();
    let mut done: BTreeMap<u64, u64> = BTreeMap::new();
    let mut cut = Cut {
        written: Vec::new(),
        truncated: Vec::new(),
        at_kill: BTreeMap::new(),
    };
    for (p, (ino, len)) in &after.0 {
        let mut now = *len;
        if !old.contains(ino) {
            cut.written.push(p.clone());
            let short = match done.get(ino) {
                Some(s) => Some(*s),
                None => {
                    let s = (*len > 0 && rng.random_bool(0.5))
                        .then(|| rng.random_range(0..*len) / 4096 * 4096);
                    if let Some(s) = s {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(p)?
                            .set_len(s)?;
                    }
                    done.insert(*ino, s.unwrap_or(*len));
                    s
                }
            };
            if let Some(s) = short {
                cut.truncated.push(p.clone());
                now = s;
            }
        }
        cut.at_kill.insert(p.clone(), now);
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_new_files_are_cut_and_each_inode_once() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        std::fs::write(&old, vec![1u8; 9000]).unwrap();
        let before =
            RepoFiles([(old.clone(), (std::fs::metadata(&old).unwrap().ino(), 9000))].into());
        let mut after = BTreeMap::new();
        after.insert(old.clone(), (std::fs::metadata(&old).unwrap().ino(), 9000));
        for i in 0..40 {
            let p = t.path().join(format!("new{i}"));
            std::fs::write(&p, vec![2u8; 5000 + i]).unwrap();
            after.insert(
                p.clone(),
                (std::fs::metadata(&p).unwrap().ino(), 5000 + i as u64),
            );
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let cut = lose_unsynced(&before, &RepoFiles(after), &mut rng).unwrap();
        assert_eq!(cut.written.len(), 40);
        assert!(cut.truncated.len() > 5 && cut.truncated.len() < 35);
        assert_eq!(std::fs::metadata(&old).unwrap().len(), 9000);
        for p in &cut.truncated {
            let n = std::fs::metadata(p).unwrap().len();
            assert!(n % 4096 == 0 && n < 5040, "{n}");
            assert_eq!(cut.at_kill[p], n);
        }
    }
}
