//! Bit rot on the backup target: one flipped byte in a snapshot file is reported by
//! `verify`, never carried into the next snapshot, and flagged (moved aside) by a restore.
//! The same over a real sshd, and in the pool layout where the damaged file is shared.

mod common;

use common::*;
use holdfast_backup::content::{self, Proof, VerifyOptions};
use holdfast_backup::{backup, BackupConfig};
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::{layout, LayoutKind, Store};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first content-named file of type `kind` under a repository copy.
fn first_named(repo: &Path, kind: &str) -> PathBuf {
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(repo)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            p.to_string_lossy().contains(&format!("/{kind}/"))
                && holdfast_site::pfile::PfileName::parse(&p.file_name().unwrap().to_string_lossy())
                    .is_some()
                && std::fs::metadata(p).unwrap().len() > 10
        })
        .collect();
    all.sort();
    all.into_iter().next().expect("a content-named file")
}

/// Flips one bit in the middle of `p`, in place (same inode, same size).
fn flip(p: &Path) {
    let mut d = std::fs::read(p).unwrap();
    let i = d.len() / 2;
    d[i] ^= 0x01;
    let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    std::io::Write::write_all(&mut f, &d).unwrap();
}

fn rel_in(repo: &Path, p: &Path) -> String {
    p.strip_prefix(repo).unwrap().display().to_string()
}

/// Every name of `p`'s inode under `repo` (a gold/files twin shares one), relative to it.
fn names_of_inode(repo: &Path, p: &Path) -> Vec<String> {
    let ino = std::fs::metadata(p).unwrap().ino();
    let mut names: Vec<String> = walkdir::WalkDir::new(repo)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.metadata().unwrap().ino() == ino)
        .map(|e| rel_in(repo, e.path()))
        .collect();
    names.sort();
    names
}

/// The rolling store's day before `current` (a test keeps at most one).
fn day_before(target: &holdfast_store::Target) -> holdfast_store::Snapshot {
    layout::snapshots(target)
        .unwrap()
        .into_iter()
        .find(|s| s.name.starts_with("day."))
        .unwrap()
}

/// A site backed up once over a real sshd into its `remote/` folder, with no nightly sample
/// (only what a test rots is damaged): the fixture, the sshd (keep it), that folder, the
/// configuration.
fn backed_up_over_ssh() -> (Fixture, holdfast_testkit::sshd::Sshd, PathBuf, BackupConfig) {
    let f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote_dir = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    over_ssh(&mut cfg, &sshd, &remote_dir);
    cfg.check_percent = 0.0;
    backup(f.site(), "s", &f.sched, &cfg).unwrap();
    (f, sshd, remote_dir, cfg)
}

/// A scratch restore of `snapshot` reports each of `rels` damaged and moves it aside: none is
/// served under its name.
fn restore_sets_aside(f: &Fixture, cfg: &BackupConfig, snapshot: Option<String>, rels: &[String]) {
    let (into, r) = f.restore_scratch(cfg, snapshot);
    assert!(!r.is_whole());
    let damaged: Vec<&str> = r.damaged.iter().map(|d| d.path.as_str()).collect();
    for rel in rels {
        assert!(damaged.contains(&rel.as_str()), "{damaged:?} lacks {rel}");
        assert!(!into.join("repository").join(rel).exists(), "{rel} served");
        assert!(into
            .join("repository")
            .join(holdfast_backup::restore::DAMAGED_DIR)
            .join(rel)
            .exists());
    }
    assert_eq!(
        damaged.len(),
        rels.len(),
        "only the rotten ones: {damaged:?}"
    );
}

#[test]
fn a_flipped_byte_is_reported_not_carried_forward_and_flagged_on_restore() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.check_percent = 0.0; // only the verification record may lead the next backup
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let target = cfg.target().unwrap();
    let repo = f.target_dir().join("current/repository");
    let victim = first_named(&repo, "files");
    let rel = rel_in(&repo, &victim);
    flip(&victim);

    // verify finds it, names it, and says the dump is fine.
    let snap = layout::find(&target, None).unwrap();
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(!rec.is_ok());
    assert!(rec.dump_problem.is_none(), "{:?}", rec.dump_problem);
    let bad: Vec<&str> = rec.bad.iter().map(|b| b.path.as_str()).collect();
    assert!(bad.contains(&rel.as_str()), "{bad:?} lacks {rel}");
    assert!(rec.checked_files >= 6 && rec.checked_bytes > 0);
    let rotten_inode = std::fs::metadata(&victim).unwrap().ino();

    // The next backup does not link the rotten copy: it copies the file again from the site.
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(out.manifest.repository.damaged.is_empty());
    let fresh = f.target_dir().join("current/repository").join(&rel);
    assert_ne!(std::fs::metadata(&fresh).unwrap().ino(), rotten_inode);
    assert!(matches!(content::prove_file(&fresh), Proof::Good(_)));
    let snap = layout::find(&target, None).unwrap();
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(rec.is_ok(), "new snapshot is whole: {:?}", rec.bad);

    // A restore of the old (rotten) snapshot moves the damaged copy aside and says so.
    let old = day_before(&target);
    let old_repo = f.target_dir().join(&old.name).join("repository");
    let rels = names_of_inode(&old_repo, &old_repo.join(&rel));
    assert!(rels.contains(&rel));
    restore_sets_aside(&f, &cfg, Some(old.name.clone()), &rels);
}

/// A rolling day, and a rotating base (a whole copy), are verified against their list, not
/// against what their folders hold: a file lost from the tree is reported, not silently left
/// out (and the tree is not walked, a folder per file, cold, before a restore either).
#[test]
fn a_file_lost_from_a_rolling_day_or_a_rotating_base_is_reported_by_verify() {
    for kind in [LayoutKind::Rolling, LayoutKind::Rotating] {
        let f = fixture(2, Behaviour::default(), 30);
        let site = f.site().clone();
        let cfg = BackupConfig {
            layout: kind,
            ..f.cfg.clone()
        };
        backup(&site, "s", &f.sched, &cfg).unwrap();
        let target = cfg.target().unwrap();
        let snap = layout::find(&target, None).unwrap();
        assert_eq!(snap.manifest.layout, kind.to_string());
        assert!(snap.manifest.builds_on.is_empty());
        let repo = f.target_dir().join(&snap.name).join("repository");
        let lost = first_named(&repo, "files");
        let rel = rel_in(&repo, &lost);
        std::fs::remove_file(&lost).unwrap();
        assert!(
            target.snapshot_files(&snap).unwrap().contains(&rel),
            "{kind}: the list names {rel}"
        );
        let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
        let bad: Vec<&str> = rec.bad.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(bad, vec![rel.as_str()], "{kind}: {:?}", rec.bad);
        assert!(!rec.is_ok());
    }
}

/// `verify --all` reads a file its snapshots share once (two rolling days' hard links, local
/// and over ssh, two pool snapshots' object), and a rotten shared file is still reported in
/// each snapshot.
#[test]
fn snapshots_that_share_a_file_read_it_once_and_each_reports_it_rotten() {
    let cases = [
        (LayoutKind::Rolling, false),
        (LayoutKind::Pool, false),
        (LayoutKind::Rolling, true),
    ];
    for (kind, ssh) in cases {
        let f = fixture(2, Behaviour::default(), 30);
        let site = f.site().clone();
        let mut cfg = BackupConfig {
            layout: kind,
            check_percent: 0.0,
            // Days of btrfs snapshots are separate file systems: nothing shared to prove once.
            day_trees: holdfast_store::DayTrees::HardLinks,
            ..f.cfg.clone()
        };
        let sshd =
            ssh.then(|| holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap());
        let store = match &sshd {
            Some(sshd) => {
                let remote = f.dir.path().join("remote");
                over_ssh(&mut cfg, sshd, &remote);
                remote
            }
            None => f.target_dir(),
        };
        backup(&site, "s", &f.sched, &cfg).unwrap();
        backup(&site, "s", &f.sched, &cfg).unwrap();
        let target = cfg.target().unwrap();
        let snaps = layout::snapshots(&target).unwrap();
        assert_eq!(snaps.len(), 2, "{kind:?} ssh {ssh}");
        let repo = &site.repo.root;
        let rel = rel_in(repo, &first_named(repo, "files"));
        // The names a flipped byte of the stored file rots: a pool object serves each name
        // of its content, a day tree's file each of its hard links.
        let (stored, rotten) = match kind {
            LayoutKind::Pool => (
                store
                    .join("pool")
                    .join(holdfast_store::objects::object_rel(&rel)),
                names_of_inode(repo, &repo.join(&rel)),
            ),
            _ => {
                let day = |s: &layout::Snapshot| store.join(&s.name).join("repository");
                let (a, b) = (day(&snaps[0]).join(&rel), day(&snaps[1]).join(&rel));
                let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
                assert_eq!(ino(&a), ino(&b), "the days share the file");
                let names = names_of_inode(&day(&snaps[0]), &a);
                (a, names)
            }
        };
        flip(&stored);

        let proven = content::Proven::default();
        let opts = VerifyOptions::default();
        let first = content::verify_snapshot_with(&target, &snaps[0], &opts, &proven).unwrap();
        let second = content::verify_snapshot_with(&target, &snaps[1], &opts, &proven).unwrap();
        let bad = |r: &content::VerifyRecord| {
            let mut b: Vec<String> = r.bad.iter().map(|b| b.path.clone()).collect();
            b.sort();
            b
        };
        assert_eq!(bad(&first), rotten, "{kind:?} ssh {ssh}");
        assert_eq!(bad(&second), rotten, "{kind:?} ssh {ssh}");
        assert!(
            first.shared_files < first.checked_files,
            "{kind:?} ssh {ssh}: {first:?}"
        );
        // Nothing changed between the backups: the second reads nothing again.
        assert_eq!(
            second.checked_files, first.checked_files,
            "{kind:?} ssh {ssh}"
        );
        assert_eq!(
            second.shared_files, second.checked_files,
            "{kind:?} ssh {ssh}: {second:?}"
        );
        assert!(second.shared_bytes > 0);
        assert_eq!(
            second.shared_bytes, second.checked_bytes,
            "{kind:?} ssh {ssh}"
        );

        // Alone, the second snapshot reads its files itself, to the same result.
        let alone = content::verify_snapshot(&target, &snaps[1], &opts).unwrap();
        assert_eq!(bad(&alone), rotten, "{kind:?} ssh {ssh}");
        assert_eq!(alone.checked_files, second.checked_files);
        assert!(
            alone.shared_files < alone.checked_files,
            "{kind:?} ssh {ssh}: {alone:?}"
        );
    }
}

/// A file lost from the store does not stop a restore: the rest comes back, that one is
/// reported (not whole) and nothing is set aside in its name. Restored again over a rotten
/// copy of a file (the live site's, say) of the right size, the store's good copy replaces it.
#[test]
fn a_restore_goes_on_past_a_file_lost_from_the_store_and_replaces_a_rotten_one() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = f.cfg.clone();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let repo = f.target_dir().join("current/repository");
    let lost = first_named(&repo, "files");
    let rel = rel_in(&repo, &lost);
    let lost_names = names_of_inode(&repo, &lost);
    std::fs::remove_file(&lost).unwrap();
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(!r.is_whole());
    let damaged: Vec<(&str, &str)> = r
        .damaged
        .iter()
        .map(|d| (d.path.as_str(), d.why.as_str()))
        .collect();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].0, rel);
    assert!(
        damaged[0].1.contains("missing from the snapshot"),
        "{damaged:?}"
    );
    let restored = into.join("repository");
    assert!(!restored.join(&rel).exists());
    assert!(!restored
        .join(holdfast_backup::restore::DAMAGED_DIR)
        .exists());
    let (site_files, _) = tree(&site.repo.root);
    let (got, _) = tree(&restored);
    let mut expected: Vec<&String> = site_files.keys().filter(|p| **p != rel).collect();
    expected.sort();
    assert_eq!(got.keys().collect::<Vec<_>>(), expected);
    // Its twin (another inode in the day tree) came back and proves.
    for n in lost_names.iter().filter(|n| **n != rel) {
        assert!(matches!(
            content::prove_file(&restored.join(n)),
            Proof::Good(_)
        ));
    }

    // The next night copies the file again; a restore over a rotten copy replaces it.
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    let victim = into.join("repository").join(&rel);
    flip(&victim);
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.damaged);
    assert!(matches!(
        content::prove_file(&into.join("repository").join(&rel)),
        Proof::Good(_)
    ));
    assert!(!into
        .join("repository")
        .join(holdfast_backup::restore::DAMAGED_DIR)
        .exists());
}

/// Over ssh too, a restore over a rotten copy of the right size (which rsync's size check
/// keeps) fetches the store's good copy instead of setting the file aside; and a link planted
/// in the store for a file is not made in the site: the file is reported, the link's target
/// left alone.
#[test]
fn over_ssh_a_restore_replaces_a_rotten_copy_and_makes_no_link_the_store_holds() {
    let (f, _sshd, remote_dir, cfg) = backed_up_over_ssh();
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    let restored = into.join("repository");
    let rel = rel_in(&restored, &first_named(&restored, "files"));
    flip(&restored.join(&rel));
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    let restored = into.join("repository");
    assert!(matches!(
        content::prove_file(&restored.join(&rel)),
        Proof::Good(_)
    ));
    assert!(!restored
        .join(holdfast_backup::restore::DAMAGED_DIR)
        .exists());

    // A link in the store's day tree where a file was.
    let secret = f.dir.path().join("secret");
    std::fs::write(&secret, b"not the site's").unwrap();
    let stored = remote_dir.join("current/repository").join(&rel);
    let twins = names_of_inode(&remote_dir.join("current/repository"), &stored);
    for t in &twins {
        let p = remote_dir.join("current/repository").join(t);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&secret, &p).unwrap();
    }
    let fresh = f.dir.path().join("fresh");
    let opts = holdfast_backup::RestoreOptions {
        scratch: Some(fresh.clone()),
        dbname: Some("restored_fresh".into()),
        ..Default::default()
    };
    let r = holdfast_backup::restore(f.site(), &f.sched, &cfg, &Default::default(), &opts).unwrap();
    assert!(!r.is_whole());
    for t in &twins {
        let p = fresh.join("repository").join(t);
        assert!(std::fs::symlink_metadata(&p).is_err(), "{t} made");
    }
    assert_eq!(std::fs::read(&secret).unwrap(), b"not the site's");
}

/// A link in a local store where a file was is not followed: the file is reported, the rest
/// restored, the link's target neither copied nor changed.
#[test]
fn a_link_in_a_local_store_is_reported_not_followed() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = f.cfg.clone();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let repo = f.target_dir().join("current/repository");
    let victim = first_named(&repo, "files");
    let rel = rel_in(&repo, &victim);
    let secret = f.dir.path().join("secret");
    std::fs::write(&secret, b"not the site's").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(&secret, &victim).unwrap();
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(!r.is_whole());
    let bad: Vec<&str> = r.damaged.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(bad, vec![rel.as_str()]);
    assert!(
        r.damaged[0].why.contains("not a regular file"),
        "{:?}",
        r.damaged
    );
    assert!(std::fs::symlink_metadata(into.join("repository").join(&rel)).is_err());
    assert_eq!(std::fs::read(&secret).unwrap(), b"not the site's");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn the_backup_sample_heals_rot_that_no_verification_saw() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.check_percent = 100.0;
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let repo = f.target_dir().join("current/repository");
    let victim = first_named(&repo, "gold");
    let rel = rel_in(&repo, &victim);
    flip(&victim);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let fresh = f.target_dir().join("current/repository").join(&rel);
    assert!(matches!(content::prove_file(&fresh), Proof::Good(_)));
    // The old snapshot keeps its own (rotten) copy: nothing was rewritten behind its back.
    let day = f.target_dir().join(day_before(&cfg.target().unwrap()).name);
    assert!(matches!(
        content::prove_file(&day.join("repository").join(&rel)),
        Proof::Bad(_)
    ));
}

/// A rotating incremental holds only what its chain lacked: the backup's sample proves each
/// file in the piece holding it, so a sound file of the base is not copied again, and a
/// rotten one is copied fresh into the incremental, which a restore takes it from.
#[test]
fn a_rotating_incremental_samples_its_chain_and_heals_rot_in_its_base() {
    rotating_chain_heals(false);
}

/// The same over ssh, where one script on the server says which piece holds each file.
#[test]
fn over_ssh_a_rotating_incremental_samples_its_chain() {
    rotating_chain_heals(true);
}

fn rotating_chain_heals(ssh: bool) {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    let remote = f.dir.path().join("remote");
    let _sshd = ssh.then(|| {
        let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
        over_ssh(&mut cfg, &sshd, &remote);
        sshd
    });
    let store_dir = if ssh { remote } else { f.target_dir() };
    cfg.layout = LayoutKind::Rotating;
    cfg.full_every = 4;
    cfg.check_percent = 100.0;
    let b1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    let base = store_dir.join(&b1.snapshot).join("repository");
    let victim = first_named(&base, "gold");
    let rotten = names_of_inode(&base, &victim);
    assert_eq!(
        rotten.len(),
        2,
        "the gold file and its files twin: {rotten:?}"
    );
    flip(&victim);
    let new = f.add_uploads_listing(1);
    let i1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(i1.snapshot.starts_with("incr."));
    let held: BTreeSet<String> = tree(&store_dir.join(&i1.snapshot).join("repository"))
        .0
        .into_keys()
        .collect();
    let want: BTreeSet<String> = new.iter().chain(&rotten).cloned().collect();
    assert_eq!(
        held, want,
        "the new upload and fresh copies of the rotten pair, nothing else"
    );
    for p in &rotten {
        let fresh = store_dir.join(&i1.snapshot).join("repository").join(p);
        assert!(matches!(content::prove_file(&fresh), Proof::Good(_)), "{p}");
    }
    let (into, r) = f.restore_scratch(&cfg, None);
    assert_eq!(r.snapshot, i1.snapshot);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert!(r.damaged.is_empty(), "{:?}", r.damaged);
    assert_eq!(tree(&into.join("repository")).0, tree(&site.repo.root).0);
}

#[test]
fn pool_rot_is_found_and_the_pool_copy_replaced() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = BackupConfig {
        layout: LayoutKind::Pool,
        check_percent: 0.0,
        ..f.cfg.clone()
    };
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let target = cfg.target().unwrap();
    // The pool keeps one object for every name of a content (a gold file and its files
    // twin): verify hashes it once and reports it under each name.
    let repo = &site.repo.root;
    let rel = rel_in(repo, &first_named(repo, "gold"));
    let twins = names_of_inode(repo, &repo.join(&rel));
    assert_eq!(twins.len(), 2, "the gold file has a files twin: {twins:?}");
    let victim = f
        .target_dir()
        .join("pool")
        .join(holdfast_store::objects::object_rel(&rel));
    flip(&victim);
    let snap = layout::find(&target, None).unwrap();
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    let mut bad: Vec<String> = rec.bad.iter().map(|b| b.path.clone()).collect();
    bad.sort();
    assert_eq!(bad, twins);
    // A restore hashes each pool file as it copies it: the rotten one, under each of its
    // names (gold/files twins are one inode), is set aside.
    restore_sets_aside(&f, &cfg, None, &names_of_inode(repo, &repo.join(&rel)));
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(matches!(content::prove_file(&victim), Proof::Good(_)));
    // Every snapshot listing it now proves whole: the pool holds one copy for all.
    for s in layout::snapshots(&target).unwrap() {
        let rec = content::verify_snapshot(&target, &s, &VerifyOptions::default()).unwrap();
        assert!(rec.is_ok(), "{}: {:?}", s.name, rec.bad);
    }
}

/// Flips a byte of the stored copies (at `stored(path)`) of `kept` and of one of `gone` (the
/// last upload's files), then deletes that upload from the site; returns that file.
fn rot_and_delete_the_last_upload(
    site: &holdfast_site::Site,
    gone: &[String],
    kept: &str,
    stored: impl Fn(&str) -> PathBuf,
) -> String {
    let doomed = gone
        .iter()
        .find(|p| std::fs::metadata(stored(p)).unwrap().len() > 10)
        .unwrap()
        .clone();
    flip(&stored(kept));
    flip(&stored(&doomed));
    delete_last_upload(site);
    for p in gone {
        std::fs::remove_file(site.repo.root.join(p)).unwrap();
    }
    doomed
}

/// Backs up a small night (the database names the change) that records no damage.
fn small_night_without_damage(f: &Fixture, cfg: &BackupConfig) {
    let out = backup(f.site(), "s", &f.sched, cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "database");
    assert_eq!(out.manifest.timings.precopy_secs, 0.0, "a small night");
    assert!(
        out.manifest.repository.damaged.is_empty(),
        "{:?}",
        out.manifest.repository.damaged
    );
}

/// A night's sample proves the files it keeps: a rotten copy of a file deleted that night is
/// no damage of the new snapshot (it leaves it), while a rotten kept one is healed.
#[test]
fn a_rotten_copy_of_a_file_deleted_that_night_is_no_damage_of_the_new_snapshot() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = BackupConfig {
        layout: LayoutKind::Pool,
        check_percent: 100.0,
        ..f.cfg.clone()
    };
    let gone = f.add_uploads_listing(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let pool = f.target_dir().join("pool");
    let object = |rel: &str| pool.join(holdfast_store::objects::object_rel(rel));
    let repo = &site.repo.root;
    let kept = rel_in(repo, &first_named(repo, "gold"));
    assert!(!gone.contains(&kept));
    let doomed = rot_and_delete_the_last_upload(&site, &gone, &kept, object);
    small_night_without_damage(&f, &cfg);
    let target = cfg.target().unwrap();
    let snap = layout::find(&target, None).unwrap();
    let listed = target.snapshot_files(&snap).unwrap();
    assert!(!listed.contains(&doomed), "{doomed} left the snapshot");
    assert!(matches!(
        content::prove_file(&object(&kept)),
        Proof::Good(_)
    ));
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(rec.is_ok(), "{:?}", rec.bad);
}

/// A day begun as a btrfs snapshot shares the previous day's files (their blocks too): the
/// sample heals a rotten kept file with a new copy of the new day's own, and a rotten copy of
/// a file deleted that night is no damage of the new day.
#[test]
fn a_btrfs_day_heals_its_rotten_kept_files_and_leaves_the_day_before_alone() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let fs = holdfast_testkit::LoopFs::btrfs(&f.dir.path().join("btrfs"), 512);
    let cfg = BackupConfig {
        target: fs.mount.join("target").display().to_string(),
        keep: 2,
        check_percent: 100.0,
        ..f.cfg.clone()
    };
    let gone = f.add_uploads_listing(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let dir = PathBuf::from(&cfg.target);
    let copy = dir.join("current/repository");
    let repo = &site.repo.root;
    let kept = rel_in(repo, &first_named(repo, "gold"));
    assert!(!gone.contains(&kept));
    let doomed = rot_and_delete_the_last_upload(&site, &gone, &kept, |p| copy.join(p));
    small_night_without_damage(&f, &cfg);
    // `current` is now the new day, at the same path.
    assert!(matches!(
        content::prove_file(&copy.join(&kept)),
        Proof::Good(_)
    ));
    assert!(!copy.join(&doomed).exists(), "{doomed} left the new day");
    let target = cfg.target().unwrap();
    let snap = layout::find(&target, None).unwrap();
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(rec.is_ok(), "{:?}", rec.bad);
    // The day before keeps its own rotten copy: the fresh one is a new file of the new day.
    let day = day_before(&target);
    assert!(matches!(
        content::prove_file(&dir.join(&day.name).join("repository").join(&kept)),
        Proof::Bad(_)
    ));
}

#[test]
fn verify_over_ssh_and_resume() {
    let (f, _sshd, remote_dir, cfg) = backed_up_over_ssh();
    let site = f.site().clone();
    let target = cfg.target().unwrap();
    let repo = remote_dir.join("current/repository");
    let victim = first_named(&repo, "files");
    let rel = rel_in(&repo, &victim);
    flip(&victim);
    let snap = layout::find(&target, None).unwrap();
    let rec = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(rec.bad.iter().any(|b| b.path == rel), "{:?}", rec.bad);
    // and the server's hashes of every other file match their names
    let victims = names_of_inode(&repo, &victim);
    assert!(
        rec.bad.iter().all(|b| victims.contains(&b.path)),
        "only the flipped file is bad: {:?}",
        rec.bad
    );
    assert!(rec.checked_files >= 4);

    // Secrets and records stay private on the server: dump and manifest 0600, folders 0700.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    let dump = std::fs::read_dir(remote_dir.join("current/db"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert_eq!(mode(&dump), 0o600);
    assert_eq!(mode(&remote_dir.join("current/manifest.json")), 0o600);
    assert_eq!(mode(&remote_dir.join("current/db")), 0o700);

    // A run that stopped after its last chunk resumes: it skips the files already done.
    let rec_path = remote_dir
        .join(content::VERIFY_DIR)
        .join(format!("{}.json", content::stamp_of(&snap)));
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    v["finished"] = serde_json::Value::Null;
    v["bad"] = serde_json::json!([]);
    std::fs::write(&rec_path, serde_json::to_vec(&v).unwrap()).unwrap();
    let resumed = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(
        resumed.bad.is_empty(),
        "resumed past the files already done"
    );
    assert_eq!(resumed.checked_files, rec.checked_files);
    let again = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(!again.bad.is_empty(), "a finished record is not resumed");
    // A record counted in another order (an older holdfast's, by path) starts again: its
    // count would skip other files.
    v["order"] = serde_json::json!(0);
    std::fs::write(&rec_path, serde_json::to_vec(&v).unwrap()).unwrap();
    let other = content::verify_snapshot(&target, &snap, &VerifyOptions::default()).unwrap();
    assert!(
        !other.bad.is_empty(),
        "a record in another order is not resumed"
    );
    assert_eq!(other.done, other.total_files);

    // A restore over ssh checks the restored tree afterwards and sets the rotten copy aside.
    restore_sets_aside(&f, &cfg, None, &victims);

    // The next backup over ssh re-copies the damaged file too.
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(matches!(
        content::prove_file(&remote_dir.join("current/repository").join(&rel)),
        Proof::Good(_)
    ));
}

/// Verify takes no lock: a snapshot a backup prunes while it is verified (its manifest gone,
/// then its files) is not reported as damage of the store.
#[test]
fn a_snapshot_pruned_while_it_is_verified_is_no_damage() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = f.cfg.clone();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let target = cfg.target().unwrap();
    let snap = layout::find(&target, None).unwrap();
    let dir = f.target_dir().join(&snap.name);
    // The prune's first step (the manifest goes first), and files going after it.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let victim = first_named(&dir.join("repository"), "files");
    std::fs::remove_file(&victim).unwrap();
    let e = content::verify_snapshot(&target, &snap, &VerifyOptions::default())
        .map(|r| format!("{} bad", r.bad.len()))
        .unwrap_or_else(|e| e.to_string());
    assert!(e.contains("pruned or replaced"), "{e}");
}
