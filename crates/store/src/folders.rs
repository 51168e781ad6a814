//! What a hard-linked day tree's folders cost on the target's file system.
//!
//! Folders cannot be hard-linked, so every day tree holds its own copy of each of the
//! repository's folders: about one per file, with FOSSology's three hashed levels. Where a
//! folder takes a block of its own (ext4 as mkfs makes it: 4 KiB) that is ~0.5 GB a day tree
//! for a repository of 124,000 folders, and each night's new folders are stored `keep + 1`
//! times. ext4 made with `-O inline_data -I 512` keeps a folder of a few entries inside its
//! inode (no block), and btrfs snapshot days share their folders.

use crate::target::{sh_quote, Target};

/// A name as long as a repository file's (`sha1.md5.size`), so the probe's folder holds
/// what a leaf folder of the repository holds.
const PROBE_FILE: &str =
    "0000000000000000000000000000000000000000.00000000000000000000000000000000.1234567";

/// Bytes the target's file system gives a new folder holding one repository file's name, or
/// None when that cannot be measured there (the probe is left out of every snapshot: it is
/// removed before this returns, and named so no layout lists it).
pub fn cost(target: &Target) -> Option<u64> {
    let probe = format!(".folder-probe.{}", std::process::id());
    match target.local_path(&probe) {
        Some(dir) => {
            let measured = local_cost(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            measured
        }
        None => {
            let d = sh_quote(&target.path(&probe));
            let script = format!(
                "mkdir {d} && : > {d}/{PROBE_FILE} && stat -c '%b %B' {d}; r=$?; rm -rf {d}; exit $r"
            );
            let out = target.run_script(&script).ok()?;
            let text = String::from_utf8_lossy(&out);
            let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
            Some(it.next()?? * it.next()??)
        }
    }
}

fn local_cost(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir(dir).ok()?;
    std::fs::File::create(dir.join(PROBE_FILE)).ok()?;
    // st_blocks counts 512-byte units whatever the file system's block size.
    Some(std::fs::metadata(dir).ok()?.blocks() * 512)
}

/// The warning for an operator whose hard-linked day trees pay for their folders, or None
/// when a folder costs no block of its own there.
pub fn advice(target: &Target) -> Option<String> {
    let c = cost(target).filter(|&c| c > 0)?;
    Some(advice_at(c, target))
}

/// The warning for a store whose folders take `cost` bytes each.
pub fn advice_at(cost: u64, target: &Target) -> String {
    format!(
        "each folder of a hard-linked day tree takes {} on {}: every day holds its own copy of each repository folder (about one per file), and each night's new folders are stored keep + 1 times; a store on ext4 made with `mkfs.ext4 -O inline_data -I 512` keeps such folders in their inodes, and one on btrfs shares them between days (docs/backup-layouts.md, \"The store's file system for hard-linked days\")",
        holdfast_core::bytes::human_bytes(cost),
        target.display()
    )
}
