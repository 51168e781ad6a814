//! Pre-copy: the repository is copied while the scheduler runs; the scheduler is down only
//! for the quiesce, the dump and the delta pass.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_sandbox::standin::Behaviour;
use holdfast_site::scheduler::SchedulerConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Moves `paths` (relative to `root`) under `aside`: written by an agent later, when the
/// stop hook copies them back.
fn set_aside(root: &Path, aside: &Path, paths: &[&String]) {
    for p in paths {
        let to = aside.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(root.join(p), &to).unwrap();
    }
}

/// A new upload (far under `precopy_above_mib`) whose files an agent writes only once the
/// backup has begun: the returned scheduler's stop hook puts them in place. Returns them.
fn upload_written_at_the_stop(f: &mut Fixture) -> (Vec<String>, SchedulerConfig) {
    let root = f.site().repo.root.clone();
    let new = f.add_uploads_listing(1);
    assert!(!new.is_empty());
    let aside = f.dir.path().join("aside");
    set_aside(&root, &aside, &new.iter().collect::<Vec<_>>());
    let hook = f.dir.path().join("stop-hook");
    script(
        &hook,
        &format!(
            "#!/bin/bash\ncp -a {}/. {}/\nexec {}\n",
            aside.display(),
            root.display(),
            f.sched.stop_command[0]
        ),
    );
    let mut sched = f.sched.clone();
    sched.stop_command = vec![hook.display().to_string()];
    (new, sched)
}

/// The night was small (nothing copied before the stop, the copy with the scheduler
/// stopped), found its change in the database, and its snapshot restores whole with `new`
/// as the site has them.
fn small_and_whole(
    f: &Fixture,
    cfg: &holdfast_backup::BackupConfig,
    out: &holdfast_backup::BackupOutcome,
    new: &[String],
) {
    assert_eq!(out.manifest.repository.found_by, "database");
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let t = &out.manifest.timings;
    assert_eq!(
        t.precopy_secs, 0.0,
        "a small night copies nothing before the stop"
    );
    assert!(
        t.downtime_secs >= t.quiesce_secs + t.dump_secs.max(t.copy_secs),
        "the copy ran with the scheduler stopped: {t:?}"
    );
    let (into, r) = f.restore_scratch(cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    let root = &f.site().repo.root;
    for p in new {
        assert_eq!(
            std::fs::read(into.join("repository").join(p)).unwrap(),
            std::fs::read(root.join(p)).unwrap(),
            "{p}"
        );
    }
}

fn times(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn files_written_and_deleted_during_the_precopy_are_settled_by_the_delta_pass() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let (old, _) = tree(&root);
    f.add_uploads(1);
    let (all, _) = tree(&root);
    let new: Vec<&String> = all.keys().filter(|p| !old.contains_key(*p)).collect();
    assert!(!new.is_empty());
    // The new upload's rows exist, its files are not written yet: an agent writes them
    // after the pre-copy has looked (the stop hook below puts them in place).
    let aside = f.dir.path().join("aside");
    set_aside(&root, &aside, &new);
    // A file no row names (deleted by the delete agent during the pre-copy: it leaves the
    // snapshot), and an old upload's gold the rows still name (deleted on disk: the
    // snapshot keeps the pre-copied file).
    let gold = old.keys().find(|p| p.contains("/gold/")).unwrap().clone();
    let gold_dir = Path::new(&gold).parent().unwrap();
    let stray = gold_dir
        .join("ffffffffffffffffffffffffffffffffffffffff.ffffffffffffffffffffffffffffffff.4");
    std::fs::write(root.join(&stray), b"gone").unwrap();
    let stray = stray.display().to_string();

    let hooks = f.dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let d = hooks.display();
    script(
        &hooks.join("stop"),
        &format!(
            "#!/bin/bash\ndate +%s.%N >> {d}/stopped\ncp -a {aside}/. {root}/\nrm -f {root}/{stray} {root}/{gold}\nexec {stop}\n",
            aside = aside.display(),
            root = root.display(),
            stop = f.sched.stop_command[0],
        ),
    );
    script(
        &hooks.join("start"),
        &format!(
            "#!/bin/bash\n{start} || exit 1\ndate +%s.%N >> {d}/started\n",
            start = f.sched.start_command[0]
        ),
    );
    let mut sched = f.sched.clone();
    sched.stop_command = vec![hooks.join("stop").display().to_string()];
    sched.start_command = vec![hooks.join("start").display().to_string()];

    let out = backup(&site, "s", &sched, &f.cfg).unwrap();
    assert!(out.scheduler_restarted);
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let t = &out.manifest.timings;
    let (stopped, started) = (times(&hooks.join("stopped")), times(&hooks.join("started")));
    assert_eq!((stopped.len(), started.len()), (1, 1));
    let hooks_saw = started[0] - stopped[0];
    // The stand-in takes a second to stop; the copy ran before the stop.
    assert!(hooks_saw >= 1.0, "{hooks_saw}");
    // (The hooks read the wall clock, holdfast a monotonic one; a loaded machine delays the
    // hooks' processes and the check that the scheduler is up.)
    assert!(
        t.downtime_secs + 0.05 >= hooks_saw && t.downtime_secs < hooks_saw + 3.0,
        "downtime {} s, the scheduler's own scripts saw {hooks_saw} s",
        t.downtime_secs
    );
    assert!(t.precopy_secs > 0.0);
    assert!(t.downtime_secs < t.total_secs - t.precopy_secs + 0.01);
    assert!(f.standin.is_running());

    let snap = f.target_dir().join("current/repository");
    for p in &new {
        assert!(snap.join(p).is_file(), "{p} copied by the delta pass");
    }
    assert!(!snap.join(&stray).exists(), "unnamed deleted file left out");
    assert!(snap.join(&gold).is_file(), "named deleted file kept");
    assert_eq!(out.manifest.repository.files as usize, all.len());

    // The snapshot restores whole (verify finds every file the database names).
    let (into, r) = f.restore_scratch(&f.cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert!(into.join("repository").join(&gold).is_file());

    // A night that copies what the database added keeps the snapshot's copy of the gold
    // lost from the disk behind the database's back (its rows did not change).
    let mut cfg = f.cfg.clone();
    cfg.precopy = false;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "database");
    assert!(snap.join(&gold).is_file(), "kept from the day before");
    // Stop-for-everything with the whole repository walked (the walk cadence is what sees
    // such a loss): the copy is inside the downtime and the loss is reported.
    cfg.full_walk_days = 0;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "walk");
    let t = &out.manifest.timings;
    assert_eq!(t.precopy_secs, 0.0);
    // The dump runs beside the copy: the longer of the two is inside the downtime.
    assert!(t.downtime_secs >= t.quiesce_secs + t.dump_secs.max(t.copy_secs));
    assert!(out.missing.iter().any(|m| gold.ends_with(&m.name)));

    // The operator had the scheduler stopped: the backup cost FOSSology no time.
    f.standin.kill_all();
    let out = backup(&site, "s", &f.sched, &f.cfg).unwrap();
    assert_eq!(out.manifest.timings.downtime_secs, 0.0);
    assert!(!f.standin.is_running(), "a stopped scheduler stays stopped");
}

#[test]
fn the_dump_travels_against_the_previous_nights_dump() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    // rsync saves the wire: a backup server over ssh (a local target is streamed to).
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let mut cfg = f.cfg.clone();
    over_ssh(&mut cfg, &sshd, &f.dir.path().join("offsite"));
    // Enough rows for a dump of some MB (the sample uploads alone make a few KB).
    let mut c = site.connect().unwrap();
    c.batch_execute(
        "CREATE TABLE findings (id int PRIMARY KEY, pfile int, text text); \
         INSERT INTO findings SELECT i, i % 977, md5(i::text) || ' GPL-2.0-or-later ' || md5((i * 7)::text) \
         FROM generate_series(1, 100000) i",
    )
    .unwrap();
    let first = backup(&site, "s", &f.sched, &cfg)
        .unwrap()
        .manifest
        .database;
    assert_eq!(first.sent_by.as_deref(), Some("rsync"));
    assert_eq!(first.sent_against, None);
    assert!(first.sent_bytes >= first.bytes, "nothing to send against");
    // A night's work: one more upload, 1% more findings, a few rows changed.
    f.add_uploads(1);
    c.batch_execute(
        // As wide as the others: PostgreSQL puts narrower rows into the pages' leftover
        // room, all through the table (and the dump).
        "INSERT INTO findings SELECT i, 5, md5(i::text) || ' GPL-2.0-or-later ' || md5((i * 7)::text) \
         FROM generate_series(100001, 101000) i; \
         UPDATE findings SET text = 'MIT' WHERE id % 10000 = 0",
    )
    .unwrap();
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    let second = &out.manifest.database;
    assert_eq!(second.sent_against.as_deref(), Some("current"));
    assert!(
        second.sent_bytes * 2 < second.bytes,
        "sent {} of a {}-byte dump",
        second.sent_bytes,
        second.bytes
    );
    assert_ne!(second.sha256, first.sha256);
    // The dump on the target is the one the manifest vouches for: it restores.
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    let scratch = holdfast_site::Site::open(Some(&into.join("etc/fossology"))).unwrap();
    assert_eq!(row_counts(&scratch), row_counts(&site));
    assert_eq!(pg_dump(&scratch.db), pg_dump(&site.db));
    // Streamed (dump_rsync = false): every byte crosses.
    cfg.dump_rsync = false;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    let d = &out.manifest.database;
    assert_eq!(d.sent_by.as_deref(), Some("stream"));
    assert_eq!(d.sent_bytes, d.bytes);
    // A local target has no wire: its dump is written straight into the snapshot, and
    // nothing is left in the spool.
    let spool = f.dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let local = holdfast_backup::BackupConfig {
        dump_spool: spool.clone(),
        ..f.cfg.clone()
    };
    assert!(local.dump_rsync);
    let out = backup(&site, "s", &f.sched, &local).unwrap();
    let d = &out.manifest.database;
    assert_eq!(d.sent_by.as_deref(), Some("stream"));
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let store = local.store().unwrap();
    let rel = format!("{}/{}", out.snapshot, d.file);
    holdfast_backup::dump::check_dump(store.as_ref(), &rel, d).unwrap();
    assert!(d.bytes > 1 << 20, "a dump of {} bytes", d.bytes);
}

#[test]
fn a_file_deleted_during_the_precopy_leaves_a_snapshot_on_an_ssh_target() {
    // The delta pass removes what the site lost on the backup server itself (rsync's
    // --delete-missing-args is refused by current rsync receivers): over ssh too.
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    over_ssh(&mut cfg, &sshd, &remote);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let (old, _) = tree(&root);
    let gold = old.keys().find(|p| p.contains("/gold/")).unwrap().clone();
    let stray = Path::new(&gold)
        .parent()
        .unwrap()
        .join("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.4")
        .display()
        .to_string();
    std::fs::write(root.join(&stray), b"gone").unwrap();
    f.add_uploads(1);
    let (all, _) = tree(&root);
    let new: Vec<&String> = all
        .keys()
        .filter(|p| !old.contains_key(*p) && **p != stray)
        .collect();
    assert!(!new.is_empty());
    let aside = f.dir.path().join("aside");
    set_aside(&root, &aside, &new);
    let hooks = f.dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    script(
        &hooks.join("stop"),
        &format!(
            "#!/bin/bash\ncp -a {aside}/. {root}/\nrm -f {root}/{stray}\nexec {stop}\n",
            aside = aside.display(),
            root = root.display(),
            stop = f.sched.stop_command[0],
        ),
    );
    let mut sched = f.sched.clone();
    sched.stop_command = vec![hooks.join("stop").display().to_string()];

    let out = backup(&site, "s", &sched, &cfg).unwrap();
    assert!(out.scheduler_restarted);
    assert!(out.manifest.timings.precopy_secs > 0.0);
    let snap = remote.join("current/repository");
    for p in &new {
        assert!(snap.join(p).is_file(), "{p} copied by the delta pass");
    }
    assert!(
        !snap.join(&stray).exists(),
        "the deleted file left the snapshot"
    );
    assert!(snap.join(&gold).is_file());
}

/// A hard-linked rolling day begun as the spare day links only the previous day's files the
/// spare lacks (the last nights' new files): a small night there is copied whole with the
/// scheduler stopped too, files an agent writes up to the stop included. A day that links a
/// whole tree still pre-copies.
#[test]
fn a_small_night_on_a_day_begun_as_the_spare_is_copied_with_the_scheduler_stopped() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let mut cfg = f.cfg.clone();
    cfg.keep = 2;
    cfg.day_trees = holdfast_store::DayTrees::HardLinks;
    let spare = f.target_dir().join(holdfast_store::layout::SPARE);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    for night in 2..=3 {
        f.add_uploads(1);
        let out = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(out.manifest.repository.found_by, "database");
        assert!(
            out.manifest.timings.precopy_secs > 0.0,
            "night {night}: a whole tree to link is pre-copied"
        );
    }
    assert!(spare.exists(), "the third night kept the pruned day aside");
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let spare_repo = ino(&spare.join("repository"));

    let (new, sched) = upload_written_at_the_stop(&mut f);
    let out = backup(&site, "s", &sched, &cfg).unwrap();
    assert_eq!(
        ino(&f.target_dir().join("current/repository")),
        spare_repo,
        "the night's tree began as the spare day"
    );
    small_and_whole(&f, &cfg, &out, &new);
    assert_eq!(
        tree(&f.target_dir().join("current/repository")),
        tree(&root),
        "the day holds exactly the site's files and hard links"
    );
}

#[test]
fn a_small_night_on_the_pool_is_copied_whole_with_the_scheduler_stopped_beside_the_dump() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.layout = holdfast_store::LayoutKind::Pool;
    backup(&site, "s", &f.sched, &cfg).unwrap();

    let (new, sched) = upload_written_at_the_stop(&mut f);
    let out = backup(&site, "s", &sched, &cfg).unwrap();
    small_and_whole(&f, &cfg, &out, &new);

    // The threshold at 0: every night pre-copies.
    cfg.precopy_above_mib = 0;
    f.add_uploads(1);
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "database");
    assert!(out.manifest.timings.precopy_secs > 0.0);
}
