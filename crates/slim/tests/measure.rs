//! Measurement, not a check (ignored by default): how much slimming saves on real archives.
//! A "vendored sources" bundle, a tar.gz of real `.crate` files (each a tar.gz of sources)
//! from cargo's download cache, is uploaded and unpacked by the real unpacker, then slimmed.
//!
//! `cargo test -p holdfast-slim --release --test measure -- --ignored --nocapture`
//! (`SLIM_MEASURE_CRATES=N` picks how many `.crate` files, default 60).

mod common;

use common::disk_bytes;
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_slim::{apply, site_report, ApplyOptions};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::time::Instant;

#[test]
#[ignore]
fn measure_slimming_on_vendored_crates() {
    let n: usize = std::env::var("SLIM_MEASURE_CRATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")
        });
    let mut crates: Vec<_> = common::walk_files(&home.join("registry/cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "crate"))
        .collect();
    crates.sort();
    crates.truncate(n);
    assert!(
        !crates.is_empty(),
        "no .crate files under {}",
        home.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let vendor = dir.path().join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    for c in &crates {
        std::fs::copy(c, vendor.join(c.file_name().unwrap())).unwrap();
    }
    let st = std::process::Command::new("tar")
        .args(["czf", "vendor.tar.gz", "vendor"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let t = Instant::now();
    let up = upload_files(
        &s.site,
        &[dir.path().join("vendor.tar.gz")],
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    let unpack_s = t.elapsed().as_secs_f64();
    let repo = &s.site.repo;
    let files_dir = repo.root.join("localhost/files");
    let gold = disk_bytes(&repo.root.join("localhost/gold"));
    let before = disk_bytes(&files_dir);
    let mut c = s.site.connect().unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM uploadtree", &[])
        .unwrap()
        .get(0);
    // Baseline: `du` walking the same repository (stat only, no database).
    let t = Instant::now();
    let du = std::process::Command::new("du")
        .args(["-sb"])
        .arg(&repo.root)
        .output()
        .unwrap();
    assert!(du.status.success());
    let du_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = site_report(&mut c, repo, None).unwrap();
    let report_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let done = apply(&mut c, repo, &ApplyOptions::default()).unwrap();
    let apply_s = t.elapsed().as_secs_f64();
    let after = disk_bytes(&files_dir);
    assert_eq!(before - after, r.total.removable.bytes);
    assert_eq!(done.freed_bytes, r.total.removable.bytes);
    println!(
        "{} .crate files in one tar.gz, {} uploadtree rows, unpacked in {unpack_s:.1} s ({} errors)",
        crates.len(),
        rows,
        up[0].1.errors.len()
    );
    println!(
        "gold {gold} B; files before {before} B ({:.2}x gold), after {after} B ({:.2}x gold); \
         slimming freed {} B = {:.1}% of files ({} containers, {} kept)",
        before as f64 / gold as f64,
        after as f64 / gold as f64,
        done.freed_bytes,
        100.0 * done.freed_bytes as f64 / before as f64,
        done.removed.len(),
        r.total.kept.files,
    );
    println!(
        "report {report_s:.2} s = {:.1}x `du -sb` of the repository ({du_s:.2} s), apply {apply_s:.2} s \
         ({:.0} rows/s for the report)",
        report_s / du_s,
        rows as f64 / report_s
    );
}
