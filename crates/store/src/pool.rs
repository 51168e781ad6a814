//! The pool layout's file lists and garbage collection (see [`crate::layout`]).
//!
//! A list is the repository's regular files at backup time, one path per line relative to the
//! repository root, sorted, gzip-compressed. Restoring a snapshot is `rsync --files-from` of
//! its list out of the pool; hard links between listed files (gold and its `files` twin) come
//! back because the pool keeps them.

use crate::layout::{FILE_LIST, PARTIAL, POOL};
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
///
/// Fails closed: the kept set is built in Rust from every `snap.*` list (and the list of a
/// `.partial` waiting to be committed), and any list that cannot be read or decoded, or a
/// pool listing that fails, ends the collection before anything is deleted. Only then are
/// the unlisted files removed (over ssh: their names on `rm`'s stdin, NUL-separated).
pub fn collect_garbage(target: &Target) -> Result<u64, StoreError> {
    let names = target.list("")?;
    let mut keep = HashSet::new();
    for s in names.iter().filter(|n| n.starts_with("snap.")) {
        keep.extend(read_list(target, s)?);
    }
    if target.exists(&format!("{PARTIAL}/{FILE_LIST}"))? {
        keep.extend(read_list(target, PARTIAL)?);
    }
    let pool_rel = format!("{POOL}/{REPO_DIR}");
    let all = match target.local_path(&pool_rel) {
        Some(pool) => {
            let mut all = Vec::new();
            for e in walkdir::WalkDir::new(&pool) {
                let e = e.map_err(|e| StoreError::Io {
                    path: pool.display().to_string(),
                    source: e.into(),
                })?;
                if !e.file_type().is_dir() {
                    if let Ok(rel) = e.path().strip_prefix(&pool) {
                        all.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
            all
        }
        None => {
            let out = target.run_script(&format!(
                "cd {} && find . ! -type d -print0",
                sh_quote(&target.path(&pool_rel))
            ))?;
            out.split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    let n = String::from_utf8_lossy(n);
                    n.strip_prefix("./").unwrap_or(&n).to_string()
                })
                .collect()
        }
    };
    let gone: Vec<String> = all.into_iter().filter(|p| !keep.contains(p)).collect();
    if gone.is_empty() {
        return Ok(0);
    }
    match target.local_path(&pool_rel) {
        Some(pool) => {
            for g in &gone {
                match std::fs::remove_file(pool.join(g)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(StoreError::Io {
                            path: pool.join(g).display().to_string(),
                            source: e,
                        })
                    }
                }
            }
        }
        None => {
            let mut input = Vec::new();
            for g in &gone {
                input.extend_from_slice(g.as_bytes());
                input.push(0);
            }
            target.run_script_with_input(
                &format!(
                    "cd {} && xargs -0 -r rm -f --",
                    sh_quote(&target.path(&pool_rel))
                ),
                &input,
            )?;
        }
    }
    Ok(gone.len() as u64)
}
