//! The restore verification of a slimmed site: a full backup taken after `slim apply` and
//! restored over a destroyed site (real PostgreSQL dump and load, real rsync, the scheduler
//! stand-in) is whole, with the slimmed containers reported as slimmed, not missing; and a
//! gold-only restore of the same site rebuilds every leaf (and the containers, which a second
//! `slim apply` removes again).

mod common;

use common::{assert_leaves_readable, run, walk_files};
use holdfast_backup::{backup, restore, BackupConfig, Mode, RestoreOptions, RestoreOutcome};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_slim::{apply, ApplyOptions};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::collections::BTreeSet;
use std::path::Path;

fn names(root: &Path) -> BTreeSet<String> {
    walk_files(root)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect()
}

fn slimmed_site(dir: &Path) -> (ScratchSite, BTreeSet<i32>) {
    let s = ScratchSite::create(&dir.join("site"), "UTF8").unwrap();
    let w = dir.join("w");
    std::fs::create_dir_all(w.join("p/src")).unwrap();
    std::fs::write(w.join("p/src/a.c"), b"int a;\n".repeat(100)).unwrap();
    std::fs::write(w.join("note.txt"), b"a note\n".repeat(100)).unwrap();
    run(&w, "gzip", &["-n", "note.txt"]);
    run(&w, "zip", &["-X", "-q", "p/src/n.zip", "note.txt.gz"]);
    run(&w, "tar", &["czf", "p.tar.gz", "p"]);
    upload_files(
        &s.site,
        &[w.join("p.tar.gz")],
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    let mut c = s.site.connect().unwrap();
    let done = apply(&mut c, &s.site.repo, &ApplyOptions::default()).unwrap();
    let removed: BTreeSet<i32> = done.removed.iter().map(|r| r.pfile_pk).collect();
    assert!(removed.len() >= 2, "{done:?}");
    (s, removed)
}

/// Backs the site up in `mode` (the scheduler stand-in stopped and started by the backup),
/// destroys its database and repository, and restores it.
fn round_trip(dir: &Path, s: &ScratchSite, mode: Mode) -> RestoreOutcome {
    let standin = StandIn::create(
        &dir.join("standin"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    standin.start().unwrap();
    let sched = standin.config(30);
    let cfg = BackupConfig {
        target: dir.join("target").display().to_string(),
        lock_file: dir.join("backup.lock"),
        mode,
        ..Default::default()
    };
    backup(&s.site, "slim-site", &sched, &cfg).unwrap();
    s.cluster
        .superuser_client()
        .unwrap()
        .batch_execute("DROP DATABASE fossology WITH (FORCE)")
        .unwrap();
    std::fs::remove_dir_all(&s.site.repo.root).unwrap();
    restore(
        &s.site,
        &sched,
        &cfg,
        &UnpackConfig::default(),
        &RestoreOptions::default(),
    )
    .unwrap()
}

#[test]
fn full_restore_of_a_slimmed_site_verifies_whole() {
    holdfast_testkit::require("rsync");
    let dir = tempfile::tempdir().unwrap();
    let (s, removed) = slimmed_site(dir.path());
    let files = s.site.repo.root.join("localhost/files");
    let before = names(&files);
    let r = round_trip(dir.path(), &s, Mode::Full);
    assert!(r.is_whole(), "missing: {:?}", r.verify.missing);
    let slimmed: BTreeSet<i32> = r.verify.slimmed.iter().map(|x| x.pfile_pk).collect();
    assert_eq!(slimmed, removed, "the record came back with the database");
    assert_eq!(
        names(&files),
        before,
        "the restored repository is the slim one"
    );
    let mut c = s.site.connect().unwrap();
    assert!(assert_leaves_readable(&mut c, &s.site.repo) >= 2);
}

#[test]
fn gold_only_restore_of_a_slimmed_site_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (s, removed) = slimmed_site(dir.path());
    let r = round_trip(dir.path(), &s, Mode::Gold);
    assert!(r.is_whole(), "missing: {:?}", r.verify.missing);
    let mut c = s.site.connect().unwrap();
    assert!(assert_leaves_readable(&mut c, &s.site.repo) >= 2);
    // The rebuild unpacks whole uploads, containers included; slimming again removes the
    // same containers (their records came back with the database).
    let again = apply(&mut c, &s.site.repo, &ApplyOptions::default()).unwrap();
    let again: BTreeSet<i32> = again.removed.iter().map(|x| x.pfile_pk).collect();
    assert_eq!(again, removed);
}
