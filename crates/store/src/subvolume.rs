//! The rolling layout's day trees as btrfs snapshots.
//!
//! A hard-linked day tree costs a new folder for every folder of the repository each night
//! (about one per file with FOSSology's three hashed levels), however little changed. On
//! btrfs a snapshot of the previous day is one metadata operation that shares every folder
//! and file until one changes, so a night costs its new files. The snapshot is as browsable
//! and as independent as a hard-linked tree: deleting one day leaves the others whole.
//!
//! Commands go through the `btrfs` tool on the machine that holds the target (locally, or
//! over the target's ssh), so local and remote targets behave alike.

use crate::target::{sh_quote, Target};
use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};

/// How the rolling layout makes each day's whole tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DayTrees {
    /// btrfs snapshots when the target is on btrfs and the `btrfs` tool works there, else
    /// hard links.
    #[default]
    Auto,
    /// Hard-linked trees (`rsync --link-dest`, the plan's Solution 1 as written).
    HardLinks,
    /// btrfs snapshots; a backup fails when the target cannot make them.
    Btrfs,
}

/// Runs `argv` where the target lives; returns its stdout.
fn run(target: &Target, argv: &[&str]) -> Result<Vec<u8>, StoreError> {
    if target.is_remote() {
        let script: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
        return target.run_script(&script.join(" "));
    }
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    holdfast_core::child::tie_to_parent(&mut c);
    let out = c.output().map_err(|e| StoreError::Remote {
        target: target.display(),
        what: argv.join(" "),
        why: format!("cannot run {}: {e}", argv[0]),
    })?;
    if !out.status.success() {
        return Err(StoreError::Remote {
            target: target.display(),
            what: argv.join(" "),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// True when `rel` (relative to the target) is on btrfs and the `btrfs` tool answers there.
pub fn usable(target: &Target, rel: &str) -> bool {
    let p = target.path(rel);
    let on_btrfs = run(target, &["stat", "-f", "-c", "%T", &p])
        .map(|o| o.trim_ascii() == b"btrfs")
        .unwrap_or(false);
    on_btrfs && run(target, &["btrfs", "--version"]).is_ok()
}

/// True when `rel` is the root of a btrfs subvolume (a snapshot or a created subvolume).
pub fn is_subvolume(target: &Target, rel: &str) -> Result<bool, StoreError> {
    // Every subvolume's root folder, and nothing else on btrfs, is inode 256.
    if !target.is_remote() {
        // Here, two system calls rather than a shell and two `stat`s (a nightly start-up cost).
        use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC};
        use std::os::unix::fs::MetadataExt;
        let p = target.path(rel);
        let io = |e: std::io::Error| StoreError::Io {
            path: p.clone(),
            source: e,
        };
        let fs = statfs(p.as_str()).map_err(|e| io(e.into()))?;
        let m = std::fs::symlink_metadata(&p).map_err(io)?;
        return Ok(fs.filesystem_type() == BTRFS_SUPER_MAGIC && m.ino() == 256);
    }
    let p = sh_quote(&target.path(rel));
    // One command, so one ssh round trip: the file system's type, then the inode.
    let script = format!("stat -f -c %T -- {p} && stat -c %i -- {p}");
    let out = run(target, &["sh", "-c", &script])?;
    let mut lines = out.split(|b| *b == b'\n').map(|l| l.trim_ascii());
    Ok(lines.next() == Some(b"btrfs".as_slice()) && lines.next() == Some(b"256".as_slice()))
}

/// Creates an empty subvolume at `rel`.
pub fn create(target: &Target, rel: &str) -> Result<(), StoreError> {
    run(
        target,
        &["btrfs", "-q", "subvolume", "create", &target.path(rel)],
    )
    .map(|_| ())
}

/// Makes `to` a writable snapshot of the subvolume `from`.
pub fn snapshot(target: &Target, from: &str, to: &str) -> Result<(), StoreError> {
    run(
        target,
        &[
            "btrfs",
            "-q",
            "subvolume",
            "snapshot",
            &target.path(from),
            &target.path(to),
        ],
    )
    .map(|_| ())
}

/// Removes `rel`: a subvolume at once (the file system frees its blocks in the background),
/// anything else file by file.
pub fn remove(target: &Target, rel: &str) -> Result<(), StoreError> {
    // (A missing `rel` is no subvolume, and nothing for remove_all to do.)
    if is_subvolume(target, rel).unwrap_or(false) {
        let deleted = run(
            target,
            &["btrfs", "-q", "subvolume", "delete", &target.path(rel)],
        );
        match deleted {
            Ok(_) => return Ok(()),
            // Without the right to delete subvolumes (a non-root user on a file system not
            // mounted with user_subvol_rm_allowed) emptying it and rmdir still work.
            Err(e) => tracing::warn!(
                "{e}: removing its files one by one instead (as root, or on a file system mounted with user_subvol_rm_allowed, a day is deleted at once)"
            ),
        }
    }
    target.remove_all(rel)
}
