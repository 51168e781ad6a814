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
}
