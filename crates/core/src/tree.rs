//! Descriptor-relative directory walks: directories are opened with
//! `openat(O_NOFOLLOW|O_DIRECTORY)` and entries read with `getdents`, so a symlink swapped in
//! for a directory while we walk is never followed, and nothing is allocated per entry. The
//! backup server's tree walks build on these; [`remove_tree`] also deletes a backup target's
//! pruned days.

use crate::threads::io_pool;
use nix::dir::{Dir, Type};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use rayon::prelude::*;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An I/O failure at a path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TreeError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

pub type Result<T> = std::result::Result<T, TreeError>;

pub fn err(path: &Path, e: nix::errno::Errno) -> TreeError {
    TreeError {
        path: path.into(),
        source: std::io::Error::from_raw_os_error(e as i32),
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens `path` as a directory; fails (ELOOP/ENOTDIR) if its last component is a symlink.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| err(path, e))
}

pub fn open_dir_at(parent: impl AsFd, name: &CStr, path: &Path) -> Result<OwnedFd> {
    nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| err(path, e))
}

/// Fails with `ErrorKind::Interrupted` once a stop signal arrived (checked per directory,
/// so Ctrl-C stops a walk of millions of files quickly).
fn check_stop(path: &Path) -> Result<()> {
    if crate::interrupt::requested() {
        return Err(TreeError {
            path: path.into(),
            source: std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
        });
    }
    Ok(())
}

/// Calls `f` for each entry of an open directory (without `.` and `..`), allocating nothing
/// per entry.
pub fn each_entry(
    fd: &OwnedFd,
    path: &Path,
    mut f: impl FnMut(&CStr, Option<Type>) -> Result<()>,
) -> Result<()> {
    each_entry_ino(fd, path, |name, t, _| f(name, t))
}

/// [`each_entry`], with each entry's inode number as the directory lists it (`d_ino`).
pub fn each_entry_ino(
    fd: &OwnedFd,
    path: &Path,
    mut f: impl FnMut(&CStr, Option<Type>, u64) -> Result<()>,
) -> Result<()> {
    check_stop(path)?;
    let dup = fd.try_clone().map_err(|source| TreeError {
        path: path.into(),
        source,
    })?;
    let mut dir = Dir::from_fd(dup).map_err(|e| err(path, e))?;
    for ent in dir.iter() {
        let ent = ent.map_err(|e| err(path, e))?;
        let name = ent.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        f(name, ent.file_type(), ent.ino())?;
    }
    Ok(())
}

pub fn child(path: &Path, name: &CStr) -> PathBuf {
    path.join(OsStr::from_bytes(name.to_bytes()))
}

/// Removes the tree at `path` (which must be a directory, not a symlink), in parallel.
/// Returns the number of entries removed.
pub fn remove_tree(path: &Path) -> Result<u64> {
    io_pool().install(|| remove_tree_in_pool(path))
}

fn remove_tree_in_pool(path: &Path) -> Result<u64> {
    let fd = open_dir(path)?;
    let n = AtomicU64::new(0);
    remove_dir_contents(&fd, path, &n)?;
    drop(fd);
    std::fs::remove_dir(path).map_err(|source| TreeError {
        path: path.into(),
        source,
    })?;
    Ok(n.into_inner() + 1)
}

fn remove_dir_contents(fd: &OwnedFd, path: &Path, n: &AtomicU64) -> Result<()> {
    let mut subdirs = Vec::new();
    let mut removed = 0;
    each_entry(fd, path, |name, t| {
        if t == Some(Type::Directory) {
            subdirs.push(name.to_owned());
            return Ok(());
        }
        match nix::unistd::unlinkat(fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => removed += 1,
            // d_type unknown and it is a directory
            Err(nix::errno::Errno::EISDIR) => subdirs.push(name.to_owned()),
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(err(&child(path, name), e)),
        }
        Ok(())
    })?;
    n.fetch_add(removed, Ordering::Relaxed);
    subdirs.par_iter().try_for_each(|name| -> Result<()> {
        let p = child(path, name);
        let sub = open_dir_at(fd, name, &p)?;
        remove_dir_contents(&sub, &p, n)?;
        drop(sub);
        nix::unistd::unlinkat(fd, name.as_c_str(), UnlinkatFlags::RemoveDir)
            .map_err(|e| err(&p, e))?;
        n.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// A regular file found by [`files`]: its path relative to the walk's root and its status
/// (of the file itself: nothing is followed below the top folders).
#[derive(Debug)]
pub struct Found {
    pub rel: PathBuf,
    pub stat: nix::sys::stat::FileStat,
}

/// The regular files under `root/<dir>` for each of `dirs`, unordered, their folders read in
/// parallel in the io pool. On a cold cache a serial walk waits for each folder and inode
/// read in turn: a FOSSology repository of 80,000 files in 127,000 folders took 3.5 s with
/// `find`, 1.2 s with 16 reads in flight. A top folder may be a symlink (a type folder moved
/// to another disk); a missing one is skipped; a folder that cannot be read is named in a
/// warning and skipped, as the serial walks did.
pub fn files(root: &Path, dirs: &[String]) -> Vec<Found> {
    let out = std::sync::Mutex::new(Vec::new());
    walk_tops(
        root,
        dirs,
        &|found| out.lock().unwrap_or_else(|p| p.into_inner()).append(found),
        &|e| {
            // A stop signal ends the walk; the caller checks it at its next step.
            if e.source.kind() != std::io::ErrorKind::Interrupted {
                tracing::warn!(
                    "cannot read a folder of the repository, its files are left out: {e}"
                );
            }
        },
    );
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Reads the folders and inodes of `root/<dir>` for each of `dirs` into the cache, as
/// [`files`] does, keeping nothing: for a reader that walks a tree one folder and inode at a
/// time (rsync), so that its reads find them cached. What cannot be read is left to it.
pub fn read_ahead(root: &Path, dirs: &[String]) {
    walk_tops(root, dirs, &|_| {}, &|_| {});
}

type OnFound<'a> = &'a (dyn Fn(&mut Vec<Found>) + Sync);
type OnError<'a> = &'a (dyn Fn(&TreeError) + Sync);

fn walk_tops(root: &Path, dirs: &[String], found: OnFound, failed: OnError) {
    io_pool().install(|| {
        dirs.par_iter().for_each(|d| {
            let top = root.join(d);
            let flags = DIR_FLAGS.difference(OFlag::O_NOFOLLOW);
            match nix::fcntl::open(&top, flags, Mode::empty()) {
                Ok(fd) => files_in(&fd, &top, Path::new(d), found, failed),
                Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => failed(&err(&top, e)),
            }
        })
    });
}

fn files_in(fd: &OwnedFd, path: &Path, rel: &Path, on_found: OnFound, failed: OnError) {
    use nix::sys::stat::SFlag;
    let mut subdirs = Vec::new();
    let mut found = Vec::new();
    let listed = each_entry(fd, path, |name, t| {
        match t {
            Some(Type::Directory) => subdirs.push(name.to_owned()),
            Some(Type::File) | None => {
                let st =
                    nix::sys::stat::fstatat(fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|e| err(&child(path, name), e))?;
                match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                    SFlag::S_IFREG => found.push(Found {
                        rel: child(rel, name),
                        stat: st,
                    }),
                    SFlag::S_IFDIR => subdirs.push(name.to_owned()),
                    _ => {}
                }
            }
            Some(_) => {}
        }
        Ok(())
    });
    if let Err(e) = listed {
        failed(&e);
    }
    if !found.is_empty() {
        on_found(&mut found);
    }
    subdirs.par_iter().for_each(|name| {
        let p = child(path, name);
        match open_dir_at(fd, name, &p) {
            Ok(sub) => files_in(&sub, &p, &child(rel, name), on_found, failed),
            Err(e) => failed(&e),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_removes_everything_and_follows_no_symlink() {
        let t = tempfile::tempdir().unwrap();
        let keep = t.path().join("keep");
        std::fs::create_dir(&keep).unwrap();
        std::fs::write(keep.join("precious"), b"x").unwrap();
        let day = t.path().join("day");
        for d in ["a/b/c", "a/d", "e"] {
            std::fs::create_dir_all(day.join(d)).unwrap();
        }
        std::fs::write(day.join("a/b/c/f"), b"f").unwrap();
        std::fs::hard_link(day.join("a/b/c/f"), day.join("e/f-again")).unwrap();
        std::os::unix::fs::symlink(&keep, day.join("a/d/to-keep")).unwrap();
        let n = remove_tree(&day).unwrap();
        assert_eq!(n, 9, "6 folders (the root too), 2 links, 1 symlink");
        assert!(!day.exists());
        assert!(
            keep.join("precious").is_file(),
            "the symlink's target stays"
        );
        std::os::unix::fs::symlink(&keep, &day).unwrap();
        assert!(
            remove_tree(&day).is_err(),
            "a symlink is not a folder to empty"
        );
        assert!(keep.join("precious").is_file());
    }

    #[test]
    fn files_lists_regular_files_only_and_follows_only_the_top() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        for d in ["files/ab/cd", "files/ef", "gold-elsewhere/12"] {
            std::fs::create_dir_all(t.path().join(if d.starts_with("gold") {
                d.to_string()
            } else {
                format!("repo/{d}")
            }))
            .unwrap();
        }
        std::fs::write(root.join("files/ab/cd/one"), b"1").unwrap();
        std::fs::write(root.join("files/ef/two"), b"22").unwrap();
        std::fs::write(t.path().join("gold-elsewhere/12/three"), b"333").unwrap();
        std::os::unix::fs::symlink(t.path().join("gold-elsewhere"), root.join("gold")).unwrap();
        std::os::unix::fs::symlink(t.path().join("gold-elsewhere"), root.join("files/ab/loop"))
            .unwrap();
        nix::unistd::mkfifo(&root.join("files/ef/fifo"), Mode::S_IRUSR).unwrap();
        let dirs = ["files".to_string(), "gold".into(), "absent".into()];
        let mut got: Vec<(String, i64)> = files(&root, &dirs)
            .into_iter()
            .map(|f| (f.rel.display().to_string(), f.stat.st_size))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("files/ab/cd/one".to_string(), 1),
                ("files/ef/two".into(), 2),
                ("gold/12/three".into(), 3)
            ],
            "the symlinked top folder is read, a symlink below it is not followed, a fifo is no file"
        );
    }
}
