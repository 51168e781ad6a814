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
use std::os::unix::ffi::OsStrExt;
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

/// True for names under `.snapshots/` that are not counted: the trash and unfinished trees
/// an older holdfast kept there, and only when the server made them (an account that names a
/// folder `.trash` is counted like any other).
pub fn not_counted(snaps: &Path, name: &[u8]) -> bool {
    (name == b".trash" || name.starts_with(b".incomplete."))
        && nix::sys::stat::lstat(&snaps.join(std::ffi::OsStr::from_bytes(name)))
            .is_ok_and(|st| st.st_uid == nix::unistd::geteuid().as_raw())
}

/// Measures one home by walking everything.
pub fn measure(home: &Path) -> Result<Sizes, SizeError> {
    measure_cached(home, None)
}

/// Measures one home; with `cache`, rotated snapshots (`<interval>.<n>`) are read from their
/// scan in that folder instead of being walked again.
///
/// Why this is sound: a rotated snapshot never changes after it is made (everything in it
/// is root's and read-only for the account, see [`crate::copy`]; rotation only renames it),
/// so its list of inodes and their sizes stays true. Its directories can only ever count for
/// it and are kept as a sum; every other inode is kept in a list and deduplicated against
/// `incoming/` (always walked) and the other snapshots at measuring time (a later snapshot
/// links to its unchanged files), so the result equals a full walk. A scan is keyed by the
/// snapshot folder's device, inode and mtime (a rename keeps all three) and used only for a
/// folder the server owns; scans of snapshots that are gone are deleted. Client-made dated
/// folders and anything else the account can write are always walked.
pub fn measure_cached(home: &Path, cache: Option<&Path>) -> Result<Sizes, SizeError> {
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
    let snapshots = match (snaps.exists(), cache) {
        (false, _) => Usage::default(),
        (true, None) => usage(&snaps, &seen, &|n| not_counted(&snaps, n))?,
        (true, Some(cache)) => cached_snapshots(&snaps, &seen, cache)?,
    };
    Ok(Sizes {
        backup,
        snapshots,
        layout: layout(home),
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError {
        path: path.into(),
        source,
    }
}

fn cached_snapshots(snaps: &Path, seen: &InodeSet, cache: &Path) -> Result<Usage, TreeError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(cache).map_err(io_err(cache))?;
    let meta = std::fs::symlink_metadata(snaps).map_err(io_err(snaps))?;
    // the .snapshots folder itself, as du counts it
    let mut total = Usage {
        apparent: meta.size(),
        allocated: meta.blocks() * 512,
        inodes: 1,
    };
    let mut used = std::collections::HashSet::new();
    let mut entries: Vec<_> = std::fs::read_dir(snaps)
        .map_err(io_err(snaps))?
        .collect::<Result<_, _>>()
        .map_err(io_err(snaps))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if not_counted(snaps, name.as_encoded_bytes()) {
            continue;
        }
        let path = e.path();
        let m = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if !m.is_dir() {
            if m.nlink() <= 1 || seen.insert(m.dev(), m.ino()) {
                total.apparent += m.size();
                total.allocated += m.blocks() * 512;
                total.inodes += 1;
            }
            continue;
        }
        // only a snapshot the server made (root's, so unchangeable by the account) is cached
        let ours = m.uid() == nix::unistd::geteuid().as_raw();
        if !crate::homes::is_rotating(&name.to_string_lossy()) || !ours {
            total += usage(&path, seen, &|_| false)?;
            continue;
        }
        let key = format!(
            "{}-{}-{}-{}.scan",
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec()
        );
        let file = cache.join(&key);
        let scan = match read_scan(&file) {
            Some(s) => s,
            None => {
                let s = crate::tree::scan(&path)?;
                if s.foreign {
                    // not ours throughout: walked again next time
                } else if let Err(e) = crate::directory::write_atomic(&file, &encode_scan(&s)) {
                    tracing::warn!("cannot keep size cache {}: {e}", file.display());
                }
                s
            }
        };
        crate::tree::add_scan(&mut total, &scan, seen);
        used.insert(key);
    }
    if let Ok(rd) = std::fs::read_dir(cache) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".scan") && !used.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(total)
}

const SCAN_MAGIC: &[u8; 8] = b"hfscan02";

fn encode_scan(s: &crate::tree::Scan) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + s.shared.len() * 32);
    v.extend_from_slice(SCAN_MAGIC);
    for x in [
        s.own.apparent,
        s.own.allocated,
        s.own.inodes,
        s.shared.len() as u64,
    ] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    for &(a, b, c, d) in &s.shared {
        for x in [a, b, c, d] {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v
}

fn read_scan(path: &Path) -> Option<crate::tree::Scan> {
    let b = std::fs::read(path).ok()?;
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            b.get(8 + i * 8..16 + i * 8)?.try_into().ok()?,
        ))
    };
    if b.get(..8)? != SCAN_MAGIC {
        return None;
    }
    let n = word(3)? as usize;
    if b.len() != 40 + n * 32 {
        return None;
    }
    let mut shared = Vec::with_capacity(n);
    for i in 0..n {
        let w = 4 + i * 4;
        shared.push((word(w)?, word(w + 1)?, word(w + 2)?, word(w + 3)?));
    }
    Some(crate::tree::Scan {
        foreign: false,
        own: Usage {
            apparent: word(0)?,
            allocated: word(1)?,
            inodes: word(2)?,
        },
        shared,
    })
}

const MIB: u64 = 1024 * 1024;

/// The jail's `getQuota` line: `quota backup snapshot` in whole MiB, as sepiola reads it
/// (three integers; it shows free = quota - backup - snapshot). The quota is rounded down
/// and the used sizes up, so the free space a client shows is never more than there is.
pub fn quota_line(quota: u64, backup: u64, snapshots: u64) -> String {
    format!(
        "{} {} {}",
        quota / MIB,
        backup.div_ceil(MIB),
        snapshots.div_ceil(MIB)
    )
}

/// The file in each home the size job writes the account's [`quota_line`] to (root's,
/// group the account's, 0640), for the jail's `getQuota` to print.
pub const QUOTA_FILE: &str = ".quota";

/// `/bin/getQuota` for an account's jail (or anywhere on its PATH): prints the line the last
/// size job wrote. Plain `sh` and `cat`, which an rsync jail has anyway. Inside a
/// `ChrootDirectory` jail sshd starts in the home (`.`); outside, `$HOME` is it.
pub const GETQUOTA_SCRIPT: &str = r#"#!/bin/sh
# getQuota (holdfast): "quota backup snapshot" in MiB, as sepiola and the stoney self-care
# page read it. `holdfast server size` writes the line; this only prints it.
for f in ./.quota "$HOME/.quota"; do
  if [ -f "$f" ]; then exec cat "$f"; fi
done
echo "getQuota: no sizes measured yet for this account" >&2
exit 1
"#;

/// Writes [`quota_line`] to `<home>/.quota`, readable by the account's group only.
pub fn write_quota_file(home: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let p = home.join(QUOTA_FILE);
    let text = format!("{line}\n");
    // Written only when it changes: each write renames into the home, renewing its time,
    // and an account that never backs up keeps the same sizes (nobackup reads its age).
    let same = crate::safe::read_beneath(home, Path::new(QUOTA_FILE), 256)
        .is_ok_and(|f| f.bytes == text.as_bytes());
    if !same {
        holdfast_core::fs::write_atomic(&p, text.as_bytes(), 0o640)?;
    }
    if nix::unistd::geteuid().is_root() {
        let gid = std::fs::metadata(home.join("incoming"))
            .or_else(|_| std::fs::metadata(home))?
            .gid();
        std::os::unix::fs::lchown(&p, Some(0), Some(gid))?;
    }
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_measure_equals_full_walk_through_rotations() {
        use holdfast_stoney::account::Intervals;
        let t = tempfile::tempdir().unwrap();
        let h = t.path().join("home");
        std::fs::create_dir_all(h.join("incoming/pc/sub")).unwrap();
        std::fs::create_dir_all(h.join(".snapshots")).unwrap();
        let cache = t.path().join("cache");
        let iv = Intervals {
            daily: 3,
            weekly: 1,
            ..Intervals::default()
        };
        let mut recycled = 0;
        for day in 0..6 {
            std::fs::write(h.join(format!("incoming/pc/d{day}")), vec![1u8; 1000 * day]).unwrap();
            if day > 1 {
                std::fs::remove_file(h.join(format!("incoming/pc/d{}", day - 2))).unwrap();
            }
            if day == 4 {
                crate::snapshot::rotate(&h, &iv, "weekly").unwrap();
            }
            let r = crate::snapshot::rotate(&h, &iv, "daily").unwrap();
            recycled += usize::from(r.recycled.is_some());
            crate::snapshot::purge_trash(&h).unwrap();
            if day == 0 {
                // a client-made dated folder beside the rotated ones (mixed layout)
                std::fs::create_dir_all(h.join(".snapshots/20261101/pc")).unwrap();
                std::fs::write(h.join(".snapshots/20261101/pc/old"), vec![3u8; 999]).unwrap();
            }
            let full = measure(&h).unwrap();
            let first = measure_cached(&h, Some(&cache)).unwrap();
            let again = measure_cached(&h, Some(&cache)).unwrap();
            assert_eq!(
                (full.backup, full.snapshots),
                (first.backup, first.snapshots),
                "day {day}"
            );
            assert_eq!(
                (full.backup, full.snapshots),
                (again.backup, again.snapshots)
            );
        }
        // an expired daily became a new one (same folder, new contents): its scan was not
        // reused
        assert!(recycled > 0);
        // one scan per rotated snapshot; stale scans are gone
        let n = std::fs::read_dir(&cache).unwrap().count();
        assert_eq!(n, 4, "daily.0-2 and weekly.0");
        // a damaged scan is ignored and rebuilt
        for e in std::fs::read_dir(&cache).unwrap() {
            std::fs::write(e.unwrap().path(), b"junk").unwrap();
        }
        let full = measure(&h).unwrap();
        let c = measure_cached(&h, Some(&cache)).unwrap();
        assert_eq!((full.backup, full.snapshots), (c.backup, c.snapshots));
    }

    #[test]
    fn snapshots_holding_the_accounts_files_are_never_cached() {
        if !nix::unistd::geteuid().is_root() {
            return; // needs chown
        }
        // a snapshot made by an older holdfast: its files are the account's (hard links)
        let t = tempfile::tempdir().unwrap();
        let h = t.path().join("home");
        std::fs::create_dir_all(h.join("incoming")).unwrap();
        std::fs::create_dir_all(h.join(".snapshots/daily.0/pc")).unwrap();
        let f = h.join(".snapshots/daily.0/pc/old");
        std::fs::write(&f, vec![1u8; 1000]).unwrap();
        std::os::unix::fs::lchown(&f, Some(65534), Some(65534)).unwrap();
        let cache = t.path().join("cache");
        let first = measure_cached(&h, Some(&cache)).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
        // the account rewrites it in place: the next measure sees it
        std::fs::write(&f, vec![1u8; 50_000]).unwrap();
        let again = measure_cached(&h, Some(&cache)).unwrap();
        assert_eq!(again.snapshots.apparent, first.snapshots.apparent + 49_000);
        assert_eq!(again.snapshots, measure(&h).unwrap().snapshots);
    }

    #[test]
    fn quota_line_is_three_mib_integers() {
        assert_eq!(quota_line(1 << 30, 5 * MIB + 7, MIB - 1), "1024 6 1");
        assert_eq!(quota_line(4 * MIB, 3 * MIB + 800 * 1024, 0), "4 4 0");
        assert_eq!(quota_line(4 * MIB - 1, 0, 0), "3 0 0");
    }
}
