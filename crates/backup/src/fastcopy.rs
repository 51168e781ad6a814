//! Restoring a local snapshot at the speed of the disk: several files in flight, each copied
//! by the kernel (`std::io::copy` between files is `copy_file_range` on Linux), names that
//! share an inode in the snapshot made one inode again as they are written (no second pass),
//! and each file given the mode, owner and mtime its snapshot recorded (or, for lists
//! without them, the snapshot copy's own, as `rsync -a` would).

use crate::BackupError;
use holdfast_core::progress::{Progress, Unit};
use holdfast_store::pool::{Entry, Meta};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

/// Files in flight at once: a restore waits on the disk, not the CPU.
const IN_FLIGHT: usize = 8;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Names made hard links of an inode already written.
    pub linked: u64,
    /// Files already there with their size (an earlier, interrupted restore's).
    pub skipped: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Gives `path` its recorded owner, mode and mtime (owner first: chown clears set-group-id).
pub fn apply(path: &Path, m: &Meta) -> std::io::Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::chown(path, Some(m.uid), Some(m.gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.mode & 0o7777))?;
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::new(m.mtime.max(0) as u64, m.mtime_nsec.min(999_999_999));
    std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))?
        .set_times(std::fs::FileTimes::new().set_modified(t))
}

/// Copies `items` (paths relative to `src`) into `dst`. `make_dir` creates a folder the
/// way the site wants it (FOSSology's owner and modes). Returns what was done.
pub fn copy(
    src: &Path,
    dst: &Path,
    items: &[Entry],
    make_dir: &(dyn Fn(&Path) -> std::io::Result<()> + Sync),
    what: &str,
) -> Result<Copied, BackupError> {
    // Which names share an inode in the snapshot, and the source's own metadata.
    let stats: Vec<(u64, u64, Meta, u64)> = items
        .par_iter()
        .map(|e| {
            let p = src.join(&e.path);
            let m = std::fs::metadata(&p).map_err(io(&p))?;
            Ok((m.dev(), m.ino(), Meta::of(&m), m.len()))
        })
        .collect::<Result<_, BackupError>>()?;
    let mut groups: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    for (i, s) in stats.iter().enumerate() {
        groups.entry((s.0, s.1)).or_default().push(i);
    }
    // Folders first, once each.
    let mut made = HashSet::new();
    for e in items {
        if let Some(parent) = dst.join(&e.path).parent() {
            if made.insert(parent.to_path_buf()) {
                make_dir(parent).map_err(io(parent))?;
            }
        }
    }
    let total: u64 = stats.iter().map(|s| s.3).sum();
    let progress = Progress::new(what, total, Unit::Bytes);
    let done = Mutex::new(Copied::default());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(IN_FLIGHT)
        .build()
        .map_err(|e| BackupError::Io {
            path: dst.display().to_string(),
            source: std::io::Error::other(e),
        })?;
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    pool.install(|| {
        groups
            .par_iter()
            .try_for_each(|g| -> Result<(), BackupError> {
                holdfast_core::interrupt::check().map_err(|_| BackupError::Interrupted)?;
                let first = &items[g[0]];
                let (_, _, own, len) = stats[g[0]];
                let meta = first.meta.unwrap_or(own);
                let from = src.join(&first.path);
                let to = dst.join(&first.path);
                let mut c = Copied::default();
                let there = std::fs::symlink_metadata(&to)
                    .ok()
                    .filter(|m| m.is_file() && m.len() == len);
                if there.is_some() {
                    c.skipped += 1;
                } else {
                    let _ = std::fs::remove_file(&to);
                    let mut r = std::fs::File::open(&from).map_err(io(&from))?;
                    let mut w = std::fs::File::create(&to).map_err(io(&to))?;
                    std::io::copy(&mut r, &mut w).map_err(io(&to))?;
                    c.files += 1;
                    c.bytes += len;
                }
                apply(&to, &meta).map_err(io(&to))?;
                progress.inc(len);
                for &i in &g[1..] {
                    let other = dst.join(&items[i].path);
                    let same = std::fs::symlink_metadata(&other)
                        .ok()
                        .zip(std::fs::symlink_metadata(&to).ok())
                        .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
                    if !same {
                        let _ = std::fs::remove_file(&other);
                        std::fs::hard_link(&to, &other).map_err(io(&other))?;
                        c.linked += 1;
                    }
                }
                let mut d = done.lock().expect("not poisoned");
                d.files += c.files;
                d.bytes += c.bytes;
                d.linked += c.linked;
                d.skipped += c.skipped;
                Ok(())
            })
    })?;
    progress.finish();
    Ok(done.into_inner().expect("not poisoned"))
}

/// Gives every listed file under `root` its recorded metadata (after an rsync restore from
/// a remote target, which cannot know what the list recorded).
pub fn apply_all(root: &Path, items: &[Entry]) -> Result<u64, BackupError> {
    items
        .par_iter()
        .filter_map(|e| e.meta.map(|m| (root.join(&e.path), m)))
        .map(|(p, m)| apply(&p, &m).map_err(io(&p)).map(|_| 1))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_links_and_keeps_metadata() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/x"), vec![7u8; 300_000]).unwrap();
        std::fs::hard_link(src.join("a/b/x"), src.join("a/y")).unwrap();
        std::fs::write(src.join("a/z"), b"zz").unwrap();
        let recorded = Meta {
            mode: 0o100640,
            uid: nix::unistd::Uid::effective().as_raw(),
            gid: nix::unistd::Gid::effective().as_raw(),
            mtime: 1_600_000_000,
            mtime_nsec: 250_000_000,
        };
        let items = vec![
            Entry {
                path: "a/b/x".into(),
                meta: Some(recorded),
            },
            Entry {
                path: "a/y".into(),
                meta: Some(recorded),
            },
            Entry {
                path: "a/z".into(),
                meta: None,
            },
        ];
        let mk = |p: &Path| std::fs::create_dir_all(p);
        let c = copy(&src, &dst, &items, &mk, "test copy").unwrap();
        assert_eq!((c.files, c.linked, c.skipped), (2, 1, 0));
        let x = std::fs::metadata(dst.join("a/b/x")).unwrap();
        let y = std::fs::metadata(dst.join("a/y")).unwrap();
        assert_eq!(x.ino(), y.ino(), "one inode again");
        assert_eq!(x.len(), 300_000);
        assert_eq!(x.mode(), 0o100640);
        assert_eq!((x.mtime(), x.mtime_nsec()), (1_600_000_000, 250_000_000));
        let z = std::fs::metadata(dst.join("a/z")).unwrap();
        let zs = std::fs::metadata(src.join("a/z")).unwrap();
        assert_eq!(z.mtime(), zs.mtime(), "no record: the snapshot copy's own");
        // Run again (a resumed restore): nothing copied twice.
        let c = copy(&src, &dst, &items, &mk, "test copy").unwrap();
        assert_eq!((c.files, c.linked, c.skipped), (0, 0, 2));
    }
}
