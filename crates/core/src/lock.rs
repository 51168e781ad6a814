//! One lock for everything that changes a site or its backups: `backup`, `restore` and prune
//! take it exclusively, `recover` shared (several recoveries may run together, never beside
//! a backup or restore).
//!
//! The lock is an `flock` on a file in a folder only root (or the user running holdfast) can
//! write: `/run/holdfast/`, created 0700. A folder others can write (`/run/lock`, `/tmp`)
//! is refused, because there anyone could take the lock first and stop every backup, or
//! replace the file with a symlink. The kernel drops an `flock` when its holder dies, so a
//! killed run never leaves a stale lock behind.

use nix::fcntl::{Flock, FlockArg};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The folder for holdfast's locks and run-time markers.
pub const RUN_DIR: &str = "/run/holdfast";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody else, shared or exclusive.
    Exclusive,
    /// Others with a shared lock, no exclusive holder.
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another holdfast run holds the lock {}{}; wait for it to finish or check `ps`",
        .path.display(),
        .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("lock folder {} is not safe: {why}; use a folder only root can write, such as {RUN_DIR}", .dir.display())]
    UnsafeDir { dir: PathBuf, why: String },
    #[error("lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    _file: Flock<std::fs::File>,
    pub path: PathBuf,
}

/// Checks that `dir` is a real folder owned by root or us and writable by nobody else;
/// creates it 0700 when missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), LockError> {
    let unsafe_dir = |why: String| LockError::UnsafeDir {
        dir: dir.to_path_buf(),
        why,
    };
    match dir.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fs::create_dir_all_mode(dir, crate::fs::PRIVATE_DIR).map_err(|source| {
                LockError::Io {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
        }
        Err(source) => {
            return Err(LockError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
        Ok(m) if m.file_type().is_symlink() => return Err(unsafe_dir("it is a symlink".into())),
        Ok(_) => {}
    }
    ensure_private_dir_exists(dir)
}

fn ensure_private_dir_exists(dir: &Path) -> Result<(), LockError> {
    let m = dir.symlink_metadata().map_err(|source| LockError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let why = |why: String| LockError::UnsafeDir {
        dir: dir.to_path_buf(),
        why,
    };
    if !m.is_dir() {
        return Err(why("it is not a folder".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(why(format!("it belongs to uid {}", m.uid())));
    }
    if m.mode() & 0o022 != 0 {
        return Err(why(format!(
            "others can write it (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Takes the lock at `path` in `mode` without waiting (`LockError::Held` when taken).
/// The folder is created 0700 when missing and refused when others can write it.
pub fn acquire(path: &Path, mode: LockMode) -> Result<Lock, LockError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    let arg = match mode {
        LockMode::Exclusive => FlockArg::LockExclusiveNonblock,
        LockMode::Shared => FlockArg::LockSharedNonblock,
    };
    let mut file = match Flock::lock(file, arg) {
        Ok(f) => f,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(LockError::Held {
                path: path.to_path_buf(),
                holder,
            });
        }
        Err((_, e)) => return Err(io(e.into())),
    };
    if mode == LockMode::Exclusive {
        // Who holds it, for the message another run prints. Best effort: the lock is what counts.
        let _ = file.set_len(0);
        let _ = writeln!(&mut *file, "{}", std::process::id());
    }
    Ok(Lock {
        _file: file,
        path: path.to_path_buf(),
    })
}

/// True when someone holds `path` exclusively right now (a shared probe fails).
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return false;
    };
    Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn exclusive_and_shared() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/site.lock");
        let a = acquire(&p, LockMode::Exclusive).unwrap();
        assert!(is_held(&p));
        match acquire(&p, LockMode::Shared) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(a);
        assert!(!is_held(&p));
        let s1 = acquire(&p, LockMode::Shared).unwrap();
        let _s2 = acquire(&p, LockMode::Shared).unwrap();
        assert!(acquire(&p, LockMode::Exclusive).is_err());
        drop(s1);
        let mode = std::fs::metadata(d.path().join("run")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn refuses_a_folder_others_can_write() {
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = acquire(&open.join("x.lock"), LockMode::Exclusive).unwrap_err();
        assert!(matches!(e, LockError::UnsafeDir { .. }), "{e}");
        assert!(e.to_string().contains("others can write"), "{e}");
    }

    #[test]
    fn refuses_a_symlinked_lock_file() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("x.lock")).unwrap();
        assert!(acquire(&d.path().join("x.lock"), LockMode::Exclusive).is_err());
    }
}
