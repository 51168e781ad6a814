//! One backup, restore or prune at a time, and no recovery beside them: the site lock
//! (`backup.lock_file`, default `/run/holdfast/backup.lock`), an `flock` in a folder only root
//! can write (see `holdfast_core::lock`).

use crate::BackupError;
pub use holdfast_core::lock::{Lock, LockMode};
use std::path::Path;

/// Exclusive: backup, restore, prune, slim.
pub fn acquire(path: &Path) -> Result<Lock, BackupError> {
    Ok(holdfast_core::lock::acquire(path, LockMode::Exclusive)?)
}

/// Shared: recoveries, which may run together but never beside a backup or restore.
pub fn acquire_shared(path: &Path) -> Result<Lock, BackupError> {
    Ok(holdfast_core::lock::acquire(path, LockMode::Shared)?)
}
