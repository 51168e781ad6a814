//! Size accounting (the plan's writeAccountSize): per account, the bytes of the current
//! backup (`incoming/`) and the bytes only the snapshots hold, each inode counted once.
//!
//! One pass walks `incoming/` and then `.snapshots/` with a shared set of seen inodes, so a
//! file that is in `incoming/` and in seven snapshots counts once, for the backup; a file
//! that left `incoming/` but lives on in snapshots counts once, for the snapshots. That is
//! what `du -sb incoming .snapshots` prints in one invocation (du also counts each inode
//! once, and counts directories and symlinks by their own size). holdfast stores the
//! apparent size (`st_size`, like `du -sb`) in `sstBackupSize`/`sstIncrementSize`: it is what
//! clients sent, independent of the filesystem's block size; the allocated size
//! (`st_blocks`, like `du -s -B1`) is measured in the same walk and kept in the status file.
//! Symlinks are counted as links and never followed, so a link to `/etc` costs a few bytes.
//! Client-made dated folders (`.snapshots/YYYYMMDD`) are counted like rotated snapshots;
//! `.snapshots/.trash` (expired, being deleted) and unfinished `.incomplete.*` trees are not.

use crate::homes::{layout, Layout};
use crate::tree::{usage, InodeSet, TreeError, Usage};
use serde::Serialize;
use std::path::Path;

/// Sizes of one account.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    /// `incoming/`.
    pub backup: Usage,
    /// `.snapshots/`, minus everything `incoming/` already holds.
    pub snapshots: Usage,
    pub layout: Layout,
}

#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    #[error("home {0} is missing")]
    MissingHome(std::path::PathBuf),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// True for names under `.snapshots/` that are not counted.
pub fn not_counted(name: &[u8]) -> bool {
    name == b".trash" || name.starts_with(b".incomplete.")
}

/// Measures one home.
pub fn measure(home: &Path) -> Result<Sizes, SizeError> {
    match std::fs::symlink_metadata(home) {
        Ok(m) if m.is_dir() => {}
        _ => return Err(SizeError::MissingHome(home.into())),
    }
    let seen = InodeSet::default();
    let incoming = home.join("incoming");
    let backup = if incoming.exists() {
        usage(&incoming, &seen, &|_| false)?
    } else {
        Usage::default()
    };
    let snaps = home.join(".snapshots");
    let snapshots = if snaps.exists() {
        usage(&snaps, &seen, &not_counted)?
    } else {
        Usage::default()
    };
    Ok(Sizes {
        backup,
        snapshots,
        layout: layout(home),
    })
}

const MIB: u64 = 1024 * 1024;

/// The jail's `getQuota` line: `quota backup snapshot` in whole MiB (rounded down).
pub fn quota_line(quota: u64, backup: u64, snapshots: u64) -> String {
    format!("{} {} {}", quota / MIB, backup / MIB, snapshots / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_line_is_three_mib_integers() {
        assert_eq!(quota_line(1 << 30, 5 * MIB + 7, MIB - 1), "1024 5 0");
    }
}
