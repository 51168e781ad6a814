//! The pool layout's file lists and garbage collection (see [`crate::layout`]).
//!
//! A list is the repository's regular files at backup time, one path per line relative to the
//! repository root, sorted, gzip-compressed. Restoring a snapshot is `rsync --files-from` of
//! its list out of the pool; hard links between listed files (gold and its `files` twin) come
//! back because the pool keeps them.

use crate::layout::{FILE_LIST, POOL};
use crate::manifest::REPO_DIR;
use crate::target::{sh_quote, Target};
use crate::StoreError;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// Lists the regular files under `root/<dir>` for each of `dirs` (relative paths), sorted.
pub fn list_files(root: &Path, dirs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        for e in walkdir::WalkDir::new(root.join(d)).into_iter().flatten() {
            if e.file_type().is_file() {
                if let Ok(rel) = e.path().strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

/// The gzip-compressed text of a list.
pub fn encode(list: &[String]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in list {
        let _ = enc.write_all(l.as_bytes());
        let _ = enc.write_all(b"\n");
    }
    enc.finish().expect("in-memory gzip")
}

pub fn decode(r: impl Read) -> std::io::Result<Vec<String>> {
    BufReader::new(flate2::read::MultiGzDecoder::new(r))
        .lines()
        .collect()
}

/// Reads snapshot `name`'s list from the target.
pub fn read_list(target: &Target, name: &str) -> Result<Vec<String>, StoreError> {
    let rel = format!("{name}/{FILE_LIST}");
    let r = target.open(&rel)?;
    decode(r).map_err(|e| StoreError::Io {
        path: format!("{} {rel}", target.display()),
        source: e,
    })
}

/// Deletes pool files that no kept snapshot lists; returns how many.
pub fn collect_garbage(target: &Target) -> Result<u64, StoreError> {
    let snaps: Vec<String> = target
        .list("")?
        .into_iter()
        .filter(|n| n.starts_with("snap."))
        .collect();
    match target.local_path(&format!("{POOL}/{REPO_DIR}")) {
        Some(pool) => {
            let mut keep = HashSet::new();
            for s in &snaps {
                keep.extend(read_list(target, s)?);
            }
            let mut removed = 0;
            for e in walkdir::WalkDir::new(&pool).into_iter().flatten() {
                if !e.file_type().is_dir() {
                    let rel = e
                        .path()
                        .strip_prefix(&pool)
                        .map(|r| r.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if !keep.contains(&rel) && std::fs::remove_file(e.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        }
        None => {
            // On the backup server, with the tools every system has.
            let root = sh_quote(&target.path(""));
            let script = format!(
                "set -e; cd {root}; t=$(mktemp -d); \
                 (cd {POOL}/{REPO_DIR} && find . ! -type d | sed 's|^\\./||' | LC_ALL=C sort) > $t/all; \
                 for s in snap.*; do [ -f \"$s/{FILE_LIST}\" ] && gzip -dc \"$s/{FILE_LIST}\"; done | LC_ALL=C sort -u > $t/keep; \
                 LC_ALL=C comm -23 $t/all $t/keep > $t/gone; \
                 (cd {POOL}/{REPO_DIR} && tr '\\n' '\\0' < $t/gone | xargs -0 -r rm -f); \
                 wc -l < $t/gone; rm -rf $t"
            );
            let out = target.run_script(&script)?;
            Ok(String::from_utf8_lossy(&out).trim().parse().unwrap_or(0))
        }
    }
}
