//! Snapshot layouts on real targets: rolling over a real sshd keeps exactly N, rotating
//! replaces its base only once the new one is complete, and restores work from both.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::{layout, LayoutKind};

#[test]
fn rolling_over_ssh_keeps_exactly_n_and_restores() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote_dir = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    over_ssh(&mut cfg, &sshd, &remote_dir);
    cfg.keep = 2;
    let site = f.site().clone();
    let mut names = Vec::new();
    // Four runs: the third prunes the first day and keeps it aside, the fourth begins as it.
    for round in 0..4 {
        if round > 0 {
            f.add_uploads(1);
        }
        let t0 = std::time::Instant::now();
        let out = backup(&site, "remote-site", &f.sched, &cfg).unwrap();
        eprintln!(
            "round {round}: {:.2}s total, {:?}",
            t0.elapsed().as_secs_f64(),
            out.manifest.timings
        );
        assert_eq!(out.snapshot, "current");
        assert_eq!(out.manifest.repository.files, 6 + 3 * round as u64);
        names.push(out.manifest.started);
    }
    let target = cfg.target().unwrap();
    let snaps = layout::snapshots(&target).unwrap();
    let got: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(got.len(), 2, "keep = 2: {got:?}");
    assert!(got[0].starts_with("day.") && got[1] == "current");
    // The day copy is the third run, current the fourth.
    assert_eq!(snaps[0].manifest.started, names[2]);
    assert_eq!(snaps[1].manifest.started, names[3]);
    assert!(!remote_dir.join(".partial").exists());
    // The second run's day, kept aside for the next night; the fourth began as the first's.
    assert!(remote_dir.join(layout::SPARE).join("repository").is_dir());
    assert!(!remote_dir.join("current/.recycled.list.gz").exists());
    assert_eq!(
        tree(&remote_dir.join("current/repository")),
        tree(&f.site().repo.root)
    );
    for f in ["backupStarted.xml", "backupEnded.xml", "scheduler.xml"] {
        assert!(remote_dir.join(".sepiola_backup").join(f).is_file(), "{f}");
    }

    // Restore the older snapshot over SSH into a scratch folder.
    let (_, r) = f.restore_scratch(&cfg, Some(got[0].to_string()));
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(r.verify.checked, 4 * 3, "4 uploads in the third run");
}

/// A rolling day and a rotating chain (a base and an incremental) come back from a server as
/// tar streams where its `tar` is GNU tar, and by rsync where it is not; every restore is
/// whole and gives the site's tree, its twins one file, each file's mode and owner as the
/// site has them and folders as FOSSology makes them.
#[test]
fn over_ssh_a_restore_is_whole_streamed_or_by_rsync() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let no_gnu_tar =
        holdfast_testkit::sshd::tool_first(&f.dir.path().join("no-gnu-tar"), "tar", "exit 1\n")
            .unwrap();
    let site = f.site().clone();
    for (layout, gnu_tar) in [
        (LayoutKind::Rolling, true),
        (LayoutKind::Rolling, false),
        (LayoutKind::Rotating, true),
        (LayoutKind::Rotating, false),
    ] {
        let case = format!("{layout:?}, GNU tar {gnu_tar}");
        let extra = if gnu_tar { "" } else { &no_gnu_tar };
        let sshd = holdfast_testkit::sshd::Sshd::start_with(
            &f.dir.path().join(format!("sshd-{layout:?}-{gnu_tar}")),
            extra,
        )
        .unwrap();
        let remote_dir = f.dir.path().join(format!("remote-{layout:?}-{gnu_tar}"));
        let mut cfg = f.cfg.clone();
        over_ssh(&mut cfg, &sshd, &remote_dir);
        cfg.layout = layout;
        backup(&site, "remote-site", &f.sched, &cfg).unwrap();
        if layout == LayoutKind::Rotating {
            f.add_uploads(1);
            let incr = backup(&site, "remote-site", &f.sched, &cfg).unwrap();
            assert!(incr.snapshot.starts_with("incr."), "{case}");
        }
        let (into, r) = f.restore_scratch(&cfg, None);
        assert!(
            r.is_whole(),
            "{case}: {:?} {:?}",
            r.verify.missing,
            r.damaged
        );
        let back = into.join("repository");
        assert_eq!(tree(&back), tree(&site.repo.root), "{case}");
        let files_only = |root: &std::path::Path| {
            let mut m = modes(root);
            m.retain(|p, _| root.join(p).is_file());
            m
        };
        assert_eq!(files_only(&back), files_only(&site.repo.root), "{case}");
        // Folders as FOSSology makes them: 0770, the site's owner.
        let owner = modes(&site.repo.root)["localhost/files"];
        for (p, m) in modes(&back) {
            if back.join(&p).is_dir() {
                assert_eq!(m, (0o770, owner.1, owner.2), "{case}: {p}");
            }
        }
    }
}

/// A file deleted since the base stays in the base's tree: restoring or copying the
/// incremental takes what the incremental's own list names, not the union of the pieces.
#[test]
fn a_rotating_incremental_does_not_bring_back_what_was_deleted_since_its_base() {
    deleted_since_the_base_stays_deleted(false);
}

/// The same over ssh, where the restore fetches each piece of the chain with rsync.
#[test]
fn over_ssh_a_rotating_incremental_does_not_bring_back_what_was_deleted() {
    deleted_since_the_base_stays_deleted(true);
}

/// A site of two uploads and a rotating configuration for it (a cycle of `full_every`), on
/// a local target or over a real sshd (kept running while the result lives).
fn rotating(
    ssh: bool,
    full_every: usize,
) -> (
    Fixture,
    holdfast_backup::BackupConfig,
    Option<holdfast_testkit::sshd::Sshd>,
) {
    let f = fixture(2, Behaviour::default(), 30);
    let mut cfg = f.cfg.clone();
    let sshd = ssh.then(|| {
        let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
        over_ssh(&mut cfg, &sshd, &f.dir.path().join("remote"));
        sshd
    });
    cfg.layout = LayoutKind::Rotating;
    cfg.full_every = full_every;
    (f, cfg, sshd)
}

fn deleted_since_the_base_stays_deleted(ssh: bool) {
    let (mut f, cfg, _sshd) = rotating(ssh, 4);
    let site = f.site().clone();
    let gone = f.add_uploads_listing(1);
    let b1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(b1.snapshot.starts_with("base."));
    // FOSSology's delete agent: the upload's rows, then its files.
    delete_last_upload(&site);
    for rel in &gone {
        std::fs::remove_file(site.repo.root.join(rel)).unwrap();
    }
    f.add_uploads(1);
    let i1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(i1.snapshot.starts_with("incr."));

    let (into, r) = f.restore_scratch(&cfg, None);
    assert_eq!(r.snapshot, i1.snapshot);
    let restored = tree(&into.join("repository")).0;
    assert!(
        !gone.iter().any(|p| restored.contains_key(p)),
        "deleted files came back: {gone:?}"
    );
    assert_eq!(restored, tree(&site.repo.root).0);
}

#[test]
fn rotating_replaces_the_base_once_the_new_one_is_complete() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Rotating;
    cfg.full_every = 3;
    // Every file sampled: a sample that took the base's files for missing copied them again.
    cfg.check_percent = 100.0;
    let site = f.site().clone();
    let target = cfg.target().unwrap();
    let b1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(b1.snapshot.starts_with("base."));
    assert_eq!(b1.manifest.kind, "full");
    f.add_uploads(1);
    let i1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(i1.snapshot.starts_with("incr."));
    assert_eq!(i1.manifest.builds_on, vec![b1.snapshot.clone()]);
    // The incremental holds only the new upload: its gold, the gold's `files` twin, its leaf.
    let (incr_files, incr_links) = tree(&f.target_dir().join(&i1.snapshot).join("repository"));
    assert_eq!(incr_files.len(), 3, "{incr_files:?}");
    assert_eq!(incr_links.len(), 1, "gold and files twin stay one inode");
    f.add_uploads(1);
    let i2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        i2.manifest.builds_on,
        vec![b1.snapshot.clone(), i1.snapshot.clone()]
    );

    // Restoring the last incremental brings base + both incrementals.
    let (into, r) = f.restore_scratch(&cfg, None);
    assert_eq!(r.snapshot, i2.snapshot);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(r.verify.checked, 5 * 3);
    assert_eq!(tree(&into.join("repository")).0, tree(&site.repo.root).0);

    // The cycle is over: a new base, and the old base and its incrementals are gone.
    f.add_uploads(1);
    let b2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(b2.snapshot.starts_with("base."));
    let names: Vec<String> = layout::snapshots(&target)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec![b2.snapshot.clone()]);
    assert_eq!(
        b2.manifest.repository.new_files,
        b2.manifest.repository.files - 6,
        "a base is a full, independent copy (hard-linked twins transfer once)"
    );
}

#[test]
fn pool_grows_by_new_files_only_prunes_and_restores() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Pool;
    cfg.keep = 2;
    let site = f.site().clone();
    let junk = site.repo.root.join("localhost/files/00/00/00/junk");
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, b"a file a later upload deletion removes").unwrap();
    let pool_junk = f
        .target_dir()
        .join("pool/paths/localhost/files/00/00/00/junk");
    // One content under two paths (one object); the second path leaves, the first stays.
    let data = b"one content, two names";
    let name = {
        use md5::Digest;
        format!(
            "{}.{}.{}",
            hex::encode(sha1::Sha1::digest(data)),
            hex::encode(md5::Md5::digest(data)),
            data.len()
        )
    };
    let (stays, leaves) = (
        site.repo
            .root
            .join(format!("localhost/files/00/00/01/{name}")),
        site.repo
            .root
            .join(format!("localhost/files/00/00/02/{name}")),
    );
    for p in [&stays, &leaves] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let s1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(s1.snapshot.starts_with("snap."));
    assert!(pool_junk.is_file());
    let object = f
        .target_dir()
        .join("pool")
        .join(holdfast_store::objects::object_rel(&name));
    assert!(object.is_file(), "{}", object.display());

    // A scan day: every mtime touched, one upload added, the junk and one name deleted.
    std::fs::remove_file(&junk).unwrap();
    std::fs::remove_file(&leaves).unwrap();
    for (rel, _) in tree(&site.repo.root).0 {
        let p = site.repo.root.join(rel);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
    }
    let folders = folders_in(&f.target_dir().join("pool"));
    f.add_uploads(1);
    let s2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        s2.manifest.repository.new_files, 2,
        "only the new upload is copied"
    );
    // Objects: the new files need no folder of their own (a tree would add one or more
    // per file, the repository's hashed folders), and nothing is left staged.
    assert_eq!(folders_in(&f.target_dir().join("pool")), folders);
    assert!(pool_junk.is_file(), "still listed by the first snapshot");
    f.add_uploads(1);
    let s3 = backup(&site, "s", &f.sched, &cfg).unwrap();
    let names: Vec<String> = layout::snapshots(&cfg.target().unwrap())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec![s2.snapshot.clone(), s3.snapshot.clone()]);
    assert!(!pool_junk.exists(), "no kept snapshot lists it: collected");
    assert!(
        object.is_file(),
        "a pruned path's object that a kept path still names stays"
    );

    let (into, r) = f.restore_scratch(&cfg, None);
    assert_eq!(r.snapshot, s3.snapshot);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
    assert_eq!(
        pg_dump(
            &holdfast_site::Site::open(Some(&into.join("etc/fossology")))
                .unwrap()
                .db
        ),
        pg_dump(&site.db)
    );
}

/// Every folder under `root`, relative to it.
fn folders_in(root: &std::path::Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// Each path under `root` (folders too) with its permission bits and owner.
fn modes(root: &std::path::Path) -> std::collections::BTreeMap<String, (u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, (m.mode() & 0o7777, m.uid(), m.gid()))
        })
        .collect()
}

#[test]
fn pool_over_ssh_restores_twins_folders_and_modes_as_the_site_has_them() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote_dir = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Pool;
    over_ssh(&mut cfg, &sshd, &remote_dir);
    let site = f.site().clone();
    // Reports are named after uploads: spaces, quotes, shell characters, a leading dash.
    let report = site.repo.root.join("report");
    std::fs::create_dir_all(&report).unwrap();
    for name in ["sp ace 'q' \"dq\" ü #1 $x `y`.spdx", "-dash;*?.spdx"] {
        std::fs::write(report.join(name), name).unwrap();
    }
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let folders = folders_in(&remote_dir.join("pool"));
    assert!(remote_dir.join("pool/objects/ff").is_dir());
    f.add_uploads(2);
    let s2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        s2.manifest.repository.new_files, 4,
        "two uploads' new inodes"
    );
    assert_eq!(
        folders_in(&remote_dir.join("pool")),
        folders,
        "no folder per new file"
    );
    // One object per content: a gold file and its files twin share one.
    let listed = holdfast_store::pool::read_list(&cfg.target().unwrap(), &s2.snapshot).unwrap();
    let objects: std::collections::BTreeSet<String> = listed
        .iter()
        .map(|p| holdfast_store::objects::object_rel(p))
        .collect();
    assert!(objects.len() < listed.len(), "twins share an object");
    let (stored, _) = tree(&remote_dir.join("pool"));
    assert_eq!(stored.len(), objects.len());

    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    let restored = into.join("repository");
    assert_eq!(
        tree(&restored),
        tree(&site.repo.root),
        "names, sizes, shared inodes"
    );
    let files_only = |root: &std::path::Path| {
        let mut m = modes(root);
        m.retain(|p, _| root.join(p).is_file());
        m
    };
    assert_eq!(
        files_only(&restored),
        files_only(&site.repo.root),
        "modes and owners"
    );
    // Folders as FOSSology makes them (the pool has none to copy): 0770, the site's owner.
    let root_owner = modes(&site.repo.root)["localhost/files"];
    for (p, m) in modes(&restored) {
        if restored.join(&p).is_dir() {
            assert_eq!(m, (0o770, root_owner.1, root_owner.2), "{p}");
        }
    }
}

/// Turns the pool under `dir` into what holdfast made before objects: the repository's
/// tree (`pool/repository/`, names of one content one inode, as rsync -H made it), no
/// objects; `linked_too` objects are left in place as a migration killed halfway leaves them.
fn as_a_pool_made_before_objects(dir: &std::path::Path, lists: &[Vec<String>], linked_too: usize) {
    use holdfast_store::objects::object_rel;
    let pool = dir.join("pool");
    let keep: std::collections::BTreeSet<String> = lists
        .iter()
        .flatten()
        .map(|p| object_rel(p))
        .take(linked_too)
        .collect();
    for p in lists.iter().flatten() {
        let to = pool.join("repository").join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if !to.exists() {
            std::fs::hard_link(pool.join(object_rel(p)), &to).unwrap();
        }
    }
    for d in ["objects", "paths"] {
        for e in walkdir::WalkDir::new(pool.join(d)).into_iter().flatten() {
            let rel = e.path().strip_prefix(&pool).unwrap().display().to_string();
            if e.file_type().is_file() && !keep.contains(&rel) {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    // A run killed while it deleted a moved tree left some of it.
    std::fs::create_dir_all(pool.join(".repository-moved/localhost/files/00")).unwrap();
}

/// A scratch restore of the newest snapshot is whole and holds the site's files as they are.
fn restores_as_the_site_is(f: &Fixture, cfg: &holdfast_backup::BackupConfig, what: &str) {
    let (into, r) = f.restore_scratch(cfg, None);
    assert!(r.is_whole(), "{what}: {:?}", r.verify.missing);
    assert_eq!(
        tree(&into.join("repository")),
        tree(&f.site().repo.root),
        "{what}"
    );
    std::fs::remove_dir_all(&into).unwrap();
}

#[test]
fn a_pool_made_before_objects_is_restored_as_it_is_and_becomes_objects_at_the_next_backup() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let site = f.site().clone();
    for (i, over) in ["local", "ssh"].into_iter().enumerate() {
        let dir = f.dir.path().join(format!("old-{over}"));
        let mut cfg = f.cfg.clone();
        cfg.layout = LayoutKind::Pool;
        cfg.keep = 2;
        cfg.target = dir.display().to_string();
        if over == "ssh" {
            over_ssh(&mut cfg, &sshd, &dir);
        }
        let target = cfg.target().unwrap();
        let lists = |t: &holdfast_store::Target| -> Vec<Vec<String>> {
            layout::snapshots(t)
                .unwrap()
                .iter()
                .map(|s| holdfast_store::pool::read_list(t, &s.name).unwrap())
                .collect()
        };
        let doomed = f.add_uploads_listing(1);
        backup(&site, "s", &f.sched, &cfg).unwrap();
        as_a_pool_made_before_objects(&dir, &lists(&target), 3 * i);
        restores_as_the_site_is(&f, &cfg, over);

        // The next backup makes it a pool of objects; the old snapshot's files stay.
        delete_last_upload(&site);
        for p in &doomed {
            std::fs::remove_file(site.repo.root.join(p)).unwrap();
        }
        f.add_uploads(1);
        let s2 = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(
            s2.manifest.repository.new_files, 2,
            "{over}: only the new upload sent"
        );
        let pool = dir.join("pool");
        assert!(!pool.join("repository").exists(), "{over}");
        assert!(!pool.join(".repository-moved").exists(), "{over}");
        let all = lists(&target);
        assert_eq!(all.len(), 2);
        for p in all.iter().flatten() {
            let object = pool.join(holdfast_store::objects::object_rel(p));
            assert!(object.is_file(), "{over}: {p}");
        }
        assert!(
            doomed.iter().all(|p| all[0].contains(p)),
            "the old snapshot kept"
        );
        f.add_uploads(1);
        backup(&site, "s", &f.sched, &cfg).unwrap();
        for p in &doomed {
            let object = pool.join(holdfast_store::objects::object_rel(p));
            assert!(!object.exists(), "{over}: {p} collected");
        }
        restores_as_the_site_is(&f, &cfg, over);
    }
}

/// A snapshot made while the clock was a year ahead (then set right) does not stay the
/// newest: later ones are restored by default, and retention drops it first.
#[test]
fn a_snapshot_made_while_the_clock_was_ahead_does_not_stay_newest() {
    for layout in [LayoutKind::Pool, LayoutKind::Rolling] {
        let mut f = fixture(2, Behaviour::default(), 30);
        let mut cfg = f.cfg.clone();
        cfg.layout = layout;
        cfg.keep = 2;
        let site = f.site().clone();
        let ahead = backup(&site, "s", &f.sched, &cfg).unwrap();
        let file = f
            .target_dir()
            .join(&ahead.snapshot)
            .join(holdfast_store::manifest::MANIFEST_FILE);
        let mut m = ahead.manifest.clone();
        m.started += chrono::Duration::days(365);
        m.finished += chrono::Duration::days(365);
        std::fs::write(&file, m.to_json()).unwrap();

        let mut runs = Vec::new();
        for _ in 0..2 {
            f.add_uploads(1);
            runs.push(backup(&site, "s", &f.sched, &cfg).unwrap());
        }
        let target = cfg.target().unwrap();
        let snaps = layout::snapshots(&target).unwrap();
        let got: Vec<_> = snaps.iter().map(|s| s.manifest.started).collect();
        let want: Vec<_> = runs.iter().map(|r| r.manifest.started).collect();
        assert_eq!(got, want, "{layout}: the two later runs are kept, in order");
        let latest = layout::find(&target, None).unwrap();
        assert_eq!(
            latest.manifest.started, runs[1].manifest.started,
            "{layout}"
        );
        let (_, r) = f.restore_scratch(&cfg, None);
        assert!(r.is_whole(), "{layout}: {:?}", r.verify.missing);
        assert_eq!(
            r.verify.checked,
            4 * 3,
            "{layout}: the newest run's 4 uploads"
        );
    }
}

/// Walk nights over ssh: the previous day's files linked on the server, a day begun as the
/// spare looked at for every kept file (one lost from it is sent), the new day the site's.
#[test]
fn over_ssh_walk_nights_link_the_day_before_and_mend_the_spare() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    over_ssh(&mut cfg, &sshd, &remote);
    cfg.keep = 2;
    cfg.full_walk_days = 0;
    let site = f.site().clone();
    for night in 0..4 {
        if night == 3 {
            // The spare (the day the third night pruned) lost a file it shares with today.
            let spare = remote.join(layout::SPARE).join("repository");
            let lost = tree(&spare)
                .0
                .into_keys()
                .find(|p| p.contains("/files/"))
                .unwrap();
            std::fs::remove_file(spare.join(lost)).unwrap();
        }
        f.add_uploads(1);
        let out = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(out.manifest.repository.found_by, "walk");
        assert!(out.missing.is_empty(), "{:?}", out.missing);
        assert_eq!(
            tree(&remote.join("current/repository")),
            tree(&site.repo.root),
            "night {night}"
        );
    }
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
}

/// A `files` name linked again to its gold (as a recovery does) after the base took the gold
/// alone: rsync `-H --compare-dest` leaves such a group out (or hangs; 3.5.0,
/// RsyncProject/rsync#126).
/// Walk nights and database nights both finish, the incrementals hold the relinked name
/// alone, and the restore is the site.
#[test]
fn a_twin_linked_again_after_the_base_is_copied_without_hanging() {
    relinked_twin(false);
}

#[test]
fn over_ssh_a_twin_linked_again_after_the_base_is_copied_without_hanging() {
    relinked_twin(true);
}

fn relinked_twin(ssh: bool) {
    let (mut f, cfg, _sshd) = rotating(ssh, 5);
    let site = f.site().clone();
    // A gold and its `files` twin (one inode); the `files` name lost before the base.
    let twins: Vec<Vec<String>> = tree(&site.repo.root).1.into_iter().collect();
    let pair = &twins[0];
    let (files, gold) = if pair[0].contains("/files/") {
        (&pair[0], &pair[1])
    } else {
        (&pair[1], &pair[0])
    };
    std::fs::remove_file(site.repo.root.join(files)).unwrap();
    // Bounded: a hang fails the test instead of stalling the suite.
    let sched = f.sched.clone();
    let run = |cfg: &holdfast_backup::BackupConfig| {
        let (site, sched, cfg) = (site.clone(), sched.clone(), cfg.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(backup(&site, "s", &sched, &cfg));
        });
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("the backup hung")
            .unwrap()
    };
    let base = run(&cfg);
    assert!(base.snapshot.starts_with("base."));
    std::fs::hard_link(site.repo.root.join(gold), site.repo.root.join(files)).unwrap();

    // A walk with the scheduler stopped throughout: the chain's pieces listed.
    let walk = holdfast_backup::BackupConfig {
        full_walk_days: 0,
        precopy: false,
        ..cfg.clone()
    };
    let i1 = run(&walk);
    assert_eq!(i1.manifest.repository.found_by, "walk");
    let target = cfg.target().unwrap();
    let held = target
        .list_tree(&format!("{}/repository", i1.snapshot))
        .unwrap();
    assert_eq!(held, vec![files.clone()], "the relinked name alone");

    // A database night after it, with a new upload whose twins are both new.
    let new = f.add_uploads_listing(1);
    let i2 = run(&cfg);
    assert_eq!(i2.manifest.repository.found_by, "database");
    let mut held = target
        .list_tree(&format!("{}/repository", i2.snapshot))
        .unwrap();
    let mut want = new.clone();
    held.sort();
    want.sort();
    assert_eq!(held, want);

    let (into, r) = f.restore_scratch(&cfg, None);
    assert_eq!(r.snapshot, i2.snapshot);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(tree(&into.join("repository")).0, tree(&site.repo.root).0);
}

/// A run killed mid-copy leaves `.partial/` behind, whose files the site may have deleted
/// since: the next incremental walks, and its piece holds what the chain lacks and nothing
/// the killed run left.
#[test]
fn a_rotating_night_after_a_killed_run_clears_what_it_left() {
    let (mut f, cfg, _sshd) = rotating(false, 5);
    let site = f.site().clone();
    let base = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(base.snapshot.starts_with("base."));
    let left = f
        .target_dir()
        .join(".partial/repository/localhost/files/ab/cd/ef/left-by-a-killed-run");
    std::fs::create_dir_all(left.parent().unwrap()).unwrap();
    std::fs::write(&left, b"deleted on the site since").unwrap();
    let new = f.add_uploads_listing(1);
    let i1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(i1.snapshot.starts_with("incr."));
    assert_eq!(i1.manifest.repository.found_by, "walk");
    let mut held: Vec<String> = tree(&f.target_dir().join(&i1.snapshot).join("repository"))
        .0
        .into_keys()
        .collect();
    let mut want = new.clone();
    held.sort();
    want.sort();
    assert_eq!(held, want);
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(tree(&into.join("repository")).0, tree(&site.repo.root).0);
}
