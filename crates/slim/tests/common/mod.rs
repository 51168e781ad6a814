//! Shared helpers: independent counts from the database and the disk, checked against what
//! the slim crate reports.
#![allow(dead_code)]

use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use md5::Md5;
use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub fn name_of(data: &[u8]) -> PfileName {
    PfileName::new(
        &hex::encode(Sha1::digest(data)),
        &hex::encode(Md5::digest(data)),
        data.len() as u64,
    )
}

/// Apparent bytes of every regular file under `root`, each inode counted once: what the
/// repository occupies, measured on disk independently of the database.
pub fn disk_bytes(root: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, sum: &mut u64) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                walk(&e.path(), seen, sum);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                *sum += m.len();
            }
        }
    }
    let mut seen = HashSet::new();
    let mut sum = 0;
    walk(root, &mut seen, &mut sum);
    sum
}

/// Per class, distinct (files, bytes) of one upload, counted by SQL alone: a pfile counts in
/// the first of leaf, artifact, container it has in that upload.
pub fn sql_counts(c: &mut postgres::Client, upload: Option<i32>) -> [(u64, u64); 3] {
    let rows = c
        .query(
            "WITH r AS ( \
               SELECT t.upload_fk, t.pfile_fk, \
                 CASE WHEN t.ufile_mode & (1<<29) = 0 AND t.ufile_mode & (1<<28) = 0 THEN 0 \
                      WHEN t.ufile_mode & (1<<29) = 0 THEN 1 ELSE 2 END AS cls \
               FROM uploadtree t \
               WHERE t.pfile_fk <> 0 AND t.ufile_mode & (1<<18) = 0 \
                 AND ($1::int4 IS NULL OR t.upload_fk = $1)), \
             best AS (SELECT pfile_fk, min(cls) AS cls FROM r \
                      GROUP BY pfile_fk, CASE WHEN $1::int4 IS NULL THEN 0 ELSE upload_fk END) \
             SELECT b.cls, count(*), COALESCE(sum(p.pfile_size), 0)::int8 \
             FROM best b JOIN pfile p ON p.pfile_pk = b.pfile_fk GROUP BY b.cls",
            &[&upload],
        )
        .unwrap();
    let mut out = [(0, 0); 3];
    for r in rows {
        let cls: i32 = r.get(0);
        let n: i64 = r.get(1);
        let b: i64 = r.get(2);
        out[cls as usize] = (n as u64, b as u64);
    }
    out
}

/// Reads every leaf and artifact of the site from the repository and checks that its content
/// hashes to its name; returns how many there are.
pub fn assert_leaves_readable(c: &mut postgres::Client, repo: &Repository) -> usize {
    let rows = c
        .query(
            "SELECT DISTINCT p.pfile_sha1, p.pfile_md5, p.pfile_size FROM uploadtree t \
             JOIN pfile p ON p.pfile_pk = t.pfile_fk \
             WHERE t.ufile_mode & ((1<<29) | (1<<18)) = 0",
            &[],
        )
        .unwrap();
    for r in &rows {
        let size: i64 = r.get(2);
        let want = PfileName::new(r.get(0), r.get(1), size as u64);
        let path = repo.path("files", &want.to_string()).unwrap();
        let data = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("leaf {} unreadable: {e}", path.display()));
        assert_eq!(name_of(&data), want, "leaf {} content", path.display());
    }
    rows.len()
}

/// Runs a tool the tests use (tar, gzip, zip) in `dir`; it must succeed.
pub fn run(dir: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let st = std::process::Command::new(prog)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{prog} {args:?}");
}

/// Every regular file below `root` (none when it does not exist).
pub fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
