//! One backup or restore at a time: an exclusive `flock` on the lock file.

use crate::BackupError;
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct Lock {
    _file: std::fs::File,
}

pub fn acquire(path: &Path) -> Result<Lock, BackupError> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| BackupError::Io {
            path: path.display().to_string(),
            source,
        })?;
    // SAFETY: plain syscall on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(BackupError::Locked(path.display().to_string()));
    }
    let _ = std::fs::write(path, format!("{}\n", std::process::id()));
    Ok(Lock { _file: file })
}
