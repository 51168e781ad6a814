//! Shared helpers: a scratch site, real tools, and an independent recursive extractor.
#![allow(dead_code)]

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_unpack::{classify, Class};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn site(dir: &Path) -> ScratchSite {
    ScratchSite::create(&dir.join("site"), "UTF8").expect("scratch site")
}

/// Runs a tool in `cwd`; panics with its stderr when it fails.
pub fn run(cwd: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let out = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh(cwd: &Path, script: &str) {
    run(cwd, "sh", &["-c", script]);
}

/// Writes a small source tree with text, binary and empty files and a subfolder.
pub fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    std::fs::write(dir.join("README"), "hello holdfast\n").unwrap();
    std::fs::write(dir.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    std::fs::write(dir.join("src/sub/empty"), "").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("src/sub/big.bin"), big).unwrap();
    let text = "GPL-2.0 license text line\n".repeat(2000);
    std::fs::write(dir.join("COPYING"), text).unwrap();
    std::os::unix::fs::symlink("main.c", dir.join("src/link")).unwrap();
}

/// Sorted SHA-1s of the leaf files of an upload, from the database.
pub fn db_leaves(s: &ScratchSite, upload: i32) -> Vec<String> {
    let mut c = s.site.connect().unwrap();
    let mut out: Vec<String> = c
        .query(
            "SELECT lower(p.pfile_sha1), t.ufile_mode FROM uploadtree_a t
             JOIN pfile p ON p.pfile_pk = t.pfile_fk WHERE t.upload_fk = $1",
            &[&upload],
        )
        .unwrap()
        .iter()
        .filter(|r| classify(r.get(1)) == Class::Leaf)
        .map(|r| r.get::<_, String>(0).trim().to_string())
        .collect();
    out.sort();
    out
}

pub fn sha1_of(p: &Path) -> String {
    holdfast_unpack::hash::hash_file(p).unwrap().sha1
}

/// Extracts `archive` with `bsdtar` (or `7z` for 7z files) into `dir`, then every member
/// whose name ends in one of `nested` again, and returns the sorted SHA-1s of the files that
/// are left: what an independent extractor sees as the leaves.
pub fn independent_leaves(archive: &Path, work: &Path, nested: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    extract_rec(archive, work, nested, &mut out, 0);
    out.sort();
    out
}

fn extract_rec(archive: &Path, work: &Path, nested: &[&str], out: &mut Vec<String>, n: usize) {
    let dir = work.join(format!("x{n}-{}", out.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = archive.file_name().unwrap().to_string_lossy().to_string();
    if name.ends_with(".7z") {
        run(
            &dir,
            "7z",
            &["x", "-y", "-bd", &archive.display().to_string()],
        );
    } else if name.ends_with(".gz") && !name.ends_with(".tar.gz") {
        let base = name.trim_end_matches(".gz");
        sh(
            &dir,
            &format!("gzip -dc '{}' > '{base}'", archive.display()),
        );
    } else if name.ends_with(".dsc") {
        // Handled by the caller (dpkg-source); nothing to count here.
        return;
    } else {
        run(&dir, "bsdtar", &["-xf", &archive.display().to_string()]);
    }
    let files: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    for (i, f) in files.iter().enumerate() {
        let fname = f.file_name().unwrap().to_string_lossy().to_string();
        if nested.iter().any(|s| fname.ends_with(s)) {
            extract_rec(f, work, nested, out, n * 1000 + i + 1);
        } else {
            out.push(sha1_of(f));
        }
    }
}

/// Every row's nested-set numbers lie inside its parent's; every pfile is in `files`.
pub fn check_shape(s: &ScratchSite, upload: i32) {
    let mut c = s.site.connect().unwrap();
    let rows = c
        .query(
            "SELECT t.uploadtree_pk, t.parent, t.lft, t.rgt, t.ufile_mode, t.pfile_fk, t.ufile_name,
                    lower(p.pfile_sha1) || '.' || lower(p.pfile_md5) || '.' || p.pfile_size
             FROM uploadtree_a t LEFT JOIN pfile p ON p.pfile_pk = t.pfile_fk
             WHERE t.upload_fk = $1",
            &[&upload],
        )
        .unwrap();
    assert!(!rows.is_empty());
    let by_pk: std::collections::HashMap<i32, (i32, i32)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(2), r.get(3))))
        .collect();
    let mut roots = 0;
    for r in &rows {
        let (lft, rgt): (i32, i32) = (r.get(2), r.get(3));
        assert!(lft < rgt);
        let mode: i32 = r.get(4);
        let name: String = r.get(6);
        match r.get::<_, Option<i32>>(1) {
            None => roots += 1,
            Some(p) => {
                let (pl, pr) = by_pk[&p];
                assert!(pl < lft && rgt < pr, "{name} not inside its parent");
            }
        }
        if name.starts_with("artifact.") {
            assert!(mode & (1 << 28) != 0, "{name} lacks the artifact bit");
        }
        let pfile: i32 = r.get(5);
        if classify(mode) == Class::Directory {
            assert_eq!(pfile, 0, "{name}: folders have no pfile");
        } else if pfile != 0 {
            let fname: String = r.get(7);
            assert!(
                s.site.repo.path("files", &fname).unwrap().is_file(),
                "{name}: {fname} missing from files"
            );
        }
    }
    assert_eq!(roots, 1);
    let mode: i32 = c
        .query_one(
            "SELECT upload_mode FROM upload WHERE upload_pk = $1",
            &[&upload],
        )
        .unwrap()
        .get(0);
    assert_eq!(mode & 0x60, 0x60, "upload_mode bits 1<<5 and 1<<6");
    // Success, or a partial unpack recorded as such (see `assert_partial`).
    let ok: bool = c
        .query_one(
            "SELECT bool_and(ars_success OR ars_status LIKE 'Completed with % member error%')
             FROM ununpack_ars WHERE upload_fk = $1",
            &[&upload],
        )
        .unwrap()
        .get(0);
    assert!(ok);
}

/// An upload with member errors reads as incomplete where FOSSology keeps an agent's
/// outcome: `ununpack_ars` not successful (first error as status), the ununpack queue row's
/// end text counting the errors.
pub fn assert_partial(s: &ScratchSite, upload: i32, errors: usize) {
    let mut c = s.site.connect().unwrap();
    let r = c
        .query_one(
            "SELECT a.ars_success, a.ars_status, q.jq_endtext, q.jq_end_bits
             FROM ununpack_ars a, jobqueue q JOIN job j ON j.job_pk = q.jq_job_fk
             WHERE a.upload_fk = $1 AND j.job_upload_fk = $1 AND q.jq_type = 'ununpack'",
            &[&upload],
        )
        .unwrap();
    let (ok, status, text, bits): (bool, String, String, i16) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    assert!(!ok, "{status}");
    let s = if errors == 1 { "" } else { "s" };
    assert_eq!(text, format!("Completed with {errors} member error{s}"));
    assert!(status.starts_with(&text), "{status}");
    assert_eq!(bits, 1, "scanners still run on what was unpacked");
}

/// (name, ufile_mode) of an upload's rows, sorted by lft.
pub fn rows(s: &ScratchSite, upload: i32) -> Vec<(String, i32)> {
    let mut c = s.site.connect().unwrap();
    c.query(
        "SELECT ufile_name, ufile_mode FROM uploadtree_a WHERE upload_fk = $1 ORDER BY lft",
        &[&upload],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The rows of the upload made from the file named `filename` (the latest such upload).
pub fn rows_of(s: &ScratchSite, filename: &str) -> Vec<(String, i32)> {
    let mut c = s.site.connect().unwrap();
    let up: i32 = c
        .query_one(
            "SELECT max(upload_pk) FROM upload WHERE upload_filename = $1",
            &[&filename],
        )
        .unwrap()
        .get::<_, Option<i32>>(0)
        .unwrap_or_else(|| panic!("no upload of {filename}"));
    rows(s, up)
}
