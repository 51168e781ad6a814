//! Copies (`[[backup.copy]]`) to a second real sshd and to a local disk: only what the copy
//! lacks travels, what arrives is proved, the copy keeps its own retention, a restore from
//! the copy passes the same checks as one from the primary, and a `kill -9` at any point of
//! a copy leaves no listed snapshot there that fails verify (the next copy completes it).

mod common;

use common::*;
use holdfast_backup::content::{self, VerifyOptions};
use holdfast_backup::{backup, BackupConfig, CopyConfig};
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::Store;
use holdfast_testkit::sshd::Sshd;
use rand::Rng;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The operation a child process runs (and gets killed in).
#[test]
#[ignore = "helper run by another test in a child process"]
fn copy_child() {
    let Ok(spec) = std::env::var("HOLDFAST_COPY_CHILD") else {
        return;
    };
    holdfast_core::interrupt::install();
    let cfg: BackupConfig = serde_json::from_str(&spec).unwrap();
    let out = holdfast_backup::copy::copy(&cfg, None).unwrap();
    assert!(out.iter().all(|r| r.ok()), "{out:?}");
}

fn copy_in_child(cfg: &BackupConfig) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "copy_child", "--test-threads=1"])
        .env("HOLDFAST_COPY_CHILD", serde_json::to_string(cfg).unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn ssh_copy(name: &str, sshd: &Sshd, remote: &Path, keep: usize) -> CopyConfig {
    let mut probe = BackupConfig::default();
    over_ssh(&mut probe, sshd, remote);
    CopyConfig {
        name: name.into(),
        target: probe.target,
        keep: Some(keep),
        ssh_identity: probe.ssh_identity,
        ssh_options: Some(probe.ssh_options),
        after_backup: true,
        s3: None,
    }
}

fn local_copy(name: &str, dir: &Path, keep: usize) -> CopyConfig {
    CopyConfig {
        name: name.into(),
        target: dir.display().to_string(),
        keep: Some(keep),
        ssh_identity: None,
        ssh_options: None,
        after_backup: true,
        s3: None,
    }
}

/// Every listed snapshot of `store` proves whole (content and dump); returns how many.
fn assert_whole(store: &dyn Store) -> usize {
    let snaps = store.snapshots().unwrap();
    for s in &snaps {
        let r = content::verify_snapshot(
            store,
            s,
            &VerifyOptions {
                restart: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            r.is_ok(),
            "listed snapshot {} on {} fails verify: {:?} {:?}",
            s.name,
            store.display(),
            r.bad,
            r.dump_problem
        );
    }
    snaps.len()
}

/// Inode of every file in a pool folder.
fn inodes(pool: &Path) -> BTreeMap<String, u64> {
    walkdir::WalkDir::new(pool)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(pool).unwrap().display().to_string(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect()
}

/// The repository paths of the primary's newest snapshot.
fn newest_list(cfg: &BackupConfig) -> Vec<String> {
    let primary = cfg.store().unwrap();
    primary
        .snapshot_files(&primary.find(None).unwrap())
        .unwrap()
}

#[test]
fn copies_to_a_second_sshd_and_restores_from_it() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let a = Sshd::start(&f.dir.path().join("sshd-a")).unwrap();
    let b = Sshd::start(&f.dir.path().join("sshd-b")).unwrap();
    let primary_dir = f.dir.path().join("primary");
    let offsite_dir = f.dir.path().join("offsite");
    let mut cfg = BackupConfig {
        check_percent: 0.0,
        keep: 5,
        ..f.cfg.clone()
    };
    over_ssh(&mut cfg, &a, &primary_dir);
    cfg.copy = vec![ssh_copy("offsite", &b, &offsite_dir, 2)];

    let first = backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    assert_eq!(first.copies.len(), 1);
    let c1 = first.copies[0].run.as_ref().expect("first copy ran");
    assert_eq!(c1.copied.len(), 1, "{:?}", first.copies);
    assert_eq!(c1.copied[0].files, first.manifest.repository.files);
    assert!(c1.copied[0].proved > 0 && c1.copied[0].damaged.is_empty());
    let pool = offsite_dir.join("pool");
    let before = inodes(&pool);
    let was = newest_list(&cfg);
    assert!(!before.is_empty());

    // A day's new uploads: only they travel to the copy; the files it had stay untouched.
    f.add_uploads(2);
    let second = backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    let c2 = &second.copies[0]
        .run
        .as_ref()
        .expect("second copy ran")
        .copied[0];
    let after = inodes(&pool);
    for (p, ino) in &before {
        assert_eq!(after.get(p), Some(ino), "{p} was sent again");
    }
    let added = after.len() - before.len();
    assert!(added > 0);
    // Each new content-named path proved on arrival; its content is one object for all.
    let new: Vec<String> = newest_list(&cfg)
        .into_iter()
        .filter(|p| !was.contains(p) && holdfast_store::proof::pfile_of(p).is_some())
        .collect();
    assert_eq!(
        c2.proved as usize,
        new.len(),
        "every new file proved on arrival"
    );
    let objects: std::collections::BTreeSet<String> = new
        .iter()
        .map(|p| holdfast_store::objects::object_rel(p))
        .collect();
    assert_eq!(objects.len(), added, "one object per new content");
    assert!(c2.new_bytes < second.manifest.repository.bytes);

    let copy_store = cfg.copy_store(&cfg.copy[0]).unwrap();
    let snaps = copy_store.snapshots().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(
        snaps[1].manifest.started, second.manifest.started,
        "the copy's newest is the backup's snapshot"
    );
    assert_eq!(snaps[1].manifest.layout, "pool");
    assert_eq!(
        snaps[1].manifest.copied.as_ref().unwrap().snapshot,
        second.snapshot
    );
    assert_eq!(assert_whole(copy_store.as_ref()), 2);

    // The copy's own retention: keep = 2 there, while the primary keeps 5. A preview first
    // names what the copy job will get and remove, and changes nothing.
    f.add_uploads(1);
    let mut alone = cfg.clone();
    alone.copy[0].after_backup = false;
    let third = backup(f.site(), "copy", &f.sched, &alone).unwrap();
    assert!(third.copies.is_empty());
    let plan = holdfast_backup::copy::preview(&cfg, None).unwrap();
    assert_eq!(plan[0].copy, vec![third.snapshot.clone()]);
    assert_eq!(plan[0].remove, vec![snaps[0].name.clone()]);
    assert_eq!(
        copy_store.snapshots().unwrap(),
        snaps,
        "a preview changed the copy"
    );
    let r = holdfast_backup::copy::copy(&cfg, None).unwrap();
    assert!(r[0].ok());
    let now = copy_store.snapshots().unwrap();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|s| s.name != snaps[0].name), "{now:?}");
    assert_eq!(
        r[0].run.as_ref().unwrap().pruned,
        plan[0].remove,
        "reported as removed"
    );
    assert_eq!(cfg.store().unwrap().snapshots().unwrap().len(), 3);

    // Restore from the copy, with the same checks as from the primary.
    let want = row_counts(f.site());
    let into = f.dir.path().join("from-copy");
    let opts = holdfast_backup::RestoreOptions {
        scratch: Some(into.clone()),
        from: Some("offsite".into()),
        drop_scratch_db: false,
        ..Default::default()
    };
    let r = holdfast_backup::restore(f.site(), &f.sched, &cfg, &Default::default(), &opts).unwrap();
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    assert!(r.verify.checked > 0);
    assert_eq!(r.manifest.started, third.manifest.started);
    let restored = holdfast_site::Site::open(Some(&r.conf_dir)).unwrap();
    assert_eq!(row_counts(&restored), want);
    let (files, _) = tree(&f.site().repo.root);
    let (back, _) = tree(&restored.repo.root);
    for (p, size) in files.iter().filter(|(p, _)| p.contains("/gold/")) {
        assert_eq!(back.get(p), Some(size), "{p} restored from the copy");
    }

    // Unknown copy names are refused with the names there are.
    let e = holdfast_backup::restore(
        f.site(),
        &f.sched,
        &cfg,
        &Default::default(),
        &holdfast_backup::RestoreOptions {
            from: Some("nope".into()),
            scratch: Some(into),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("offsite"), "{e}");
}

#[test]
fn a_file_damaged_on_the_primary_is_not_copied_as_good() {
    let f = fixture(2, Behaviour::default(), 30);
    let disk = f.dir.path().join("usb-disk");
    let cfg = BackupConfig {
        check_percent: 0.0,
        copy: vec![CopyConfig {
            after_backup: false,
            ..local_copy("disk", &disk, 3)
        }],
        ..f.cfg.clone()
    };
    let out = backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    assert!(out.copies.is_empty(), "after_backup = false: no copy");
    // Rot on the primary: one gold file's bytes change, its name and size stay.
    let gold = walkdir::WalkDir::new(f.target_dir().join("current/repository"))
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file() && e.path().to_string_lossy().contains("/gold/"))
        .unwrap()
        .into_path();
    let mut bytes = std::fs::read(&gold).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&gold, &bytes).unwrap();
    let rel = gold
        .strip_prefix(f.target_dir().join("current/repository"))
        .unwrap()
        .display()
        .to_string();

    let runs = holdfast_backup::copy::copy(&cfg, Some("disk")).unwrap();
    let c = &runs[0].run.as_ref().unwrap().copied[0];
    // The gold file and its hard-linked `files` twin: the same rotten bytes.
    let name = rel.rsplit('/').next().unwrap();
    assert!(c.damaged.contains(&rel), "{:?}", c.damaged);
    assert!(
        c.damaged.iter().all(|d| d.ends_with(name)),
        "{:?}",
        c.damaged
    );
    let store = cfg.copy_store(&cfg.copy[0]).unwrap();
    let snap = store.find(None).unwrap();
    assert_eq!(snap.manifest.repository.damaged, c.damaged);
    let listed = store.snapshot_files(&snap).unwrap();
    assert!(!listed.iter().any(|p| p.ends_with(name)));
    assert_eq!(assert_whole(store.as_ref()), 1);
    // Nothing new: the next copy job has nothing to do.
    let again = holdfast_backup::copy::copy(&cfg, None).unwrap();
    assert!(again[0].run.as_ref().unwrap().copied.is_empty());
}

/// From a pool on this machine a copy stages the new files as hard links of the pool's
/// objects (nothing copied twice on the way): what lands on a copy on this machine is still
/// a file of its own, and the staging folder goes.
#[test]
fn a_copy_of_a_pool_on_this_machine_shares_no_file_with_it() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let disk = f.dir.path().join("usb-disk");
    let spool = f.dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let cfg = BackupConfig {
        check_percent: 0.0,
        layout: holdfast_store::LayoutKind::Pool,
        dump_spool: spool.clone(),
        copy: vec![CopyConfig {
            after_backup: false,
            ..local_copy("disk", &disk, 3)
        }],
        ..f.cfg.clone()
    };
    backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    f.add_uploads(1);
    backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    let runs = holdfast_backup::copy::copy(&cfg, Some("disk")).unwrap();
    let copied = &runs[0].run.as_ref().unwrap().copied;
    assert_eq!(copied.len(), 2, "{runs:?}");
    assert!(copied.iter().all(|c| c.damaged.is_empty() && c.proved > 0));
    let store = cfg.copy_store(&cfg.copy[0]).unwrap();
    assert_eq!(assert_whole(store.as_ref()), 2);
    let primary: std::collections::BTreeSet<u64> =
        inodes(&f.target_dir().join("pool")).into_values().collect();
    let copy = inodes(&disk.join("pool"));
    assert!(!copy.is_empty());
    for (p, ino) in &copy {
        assert!(!primary.contains(ino), "{p} is the primary's own file");
    }
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "staging left"
    );
}

/// A manifest on the primary whose dump path leaves the snapshot (someone who controls the
/// backup server wrote it) is refused: the copy writes nothing outside its own target.
#[test]
fn a_manifest_naming_a_dump_outside_its_snapshot_is_refused() {
    let f = fixture(1, Behaviour::default(), 30);
    let disk = f.dir.path().join("usb-disk");
    let cfg = BackupConfig {
        check_percent: 0.0,
        copy: vec![CopyConfig {
            after_backup: false,
            ..local_copy("disk", &disk, 3)
        }],
        ..f.cfg.clone()
    };
    backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    let manifest = f.target_dir().join("current/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let planted = f.dir.path().join("planted");
    let depth = disk.components().count() + 2;
    let escape = format!(
        "{}{}",
        "../".repeat(depth),
        planted.display().to_string().trim_start_matches('/')
    );
    m["database"]["file"] = serde_json::Value::String(escape);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let snaps = holdfast_store::layout::snapshots(&cfg.target().unwrap()).unwrap();
    assert!(snaps.is_empty(), "an altered manifest is not a snapshot");
    let _ = holdfast_backup::copy::copy(&cfg, Some("disk"));
    assert!(
        !planted.exists(),
        "the copy wrote where the manifest pointed"
    );
}

#[test]
fn kill_9_anywhere_in_a_copy() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote = f.dir.path().join("offsite");
    let mut copy = ssh_copy("offsite", &sshd, &remote, 3);
    copy.after_backup = false;
    let cfg = BackupConfig {
        check_percent: 0.0,
        copy: vec![copy],
        dump_spool: f.dir.path().join("spool"),
        ..f.cfg.clone()
    };
    std::fs::create_dir_all(&cfg.dump_spool).unwrap();
    let store = cfg.copy_store(&cfg.copy[0]).unwrap();
    let primary = cfg.store().unwrap();
    let mut rng = rand::rng();
    backup(f.site(), "copy", &f.sched, &cfg).unwrap();
    let t = Instant::now();
    holdfast_backup::copy::copy(&cfg, None).unwrap();
    let mut whole = t.elapsed();
    let (mut hits, mut i) = (0, 0);
    // At least 5 kills, and on until 2 landed inside a copy: a later copy has one snapshot's
    // new files to send (the first had all), and a kill after its end shortens the window.
    while i < 5 || (hits < 2 && i < 15) {
        f.add_uploads(1);
        backup(f.site(), "copy", &f.sched, &cfg).unwrap();
        let at = Duration::from_millis(rng.random_range(0..whole.as_millis() as u64 + 1));
        let mut child = copy_in_child(&cfg);
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            hits += 1;
        } else {
            whole = whole.min(at.max(Duration::from_millis(50)));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        child.wait().unwrap();
        // Whatever the kill left, nothing listed fails verify.
        assert_whole(store.as_ref());
        // The next copy completes it: the copy's newest is the primary's newest.
        let runs = holdfast_backup::copy::copy(&cfg, None).unwrap();
        assert!(runs[0].ok(), "copy after kill {i} at {at:?}: {runs:?}");
        let newest = store.find(None).unwrap();
        assert_eq!(
            newest.manifest.started,
            primary.find(None).unwrap().manifest.started,
            "kill {i} at {at:?}"
        );
        assert_whole(store.as_ref());
        i += 1;
    }
    assert!(hits >= 2, "kills landed inside a copy: {hits}/{i}");
    // What the killed copies staged (the dump among it) is gone after the next copy.
    let left: Vec<_> = std::fs::read_dir(&cfg.dump_spool)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("holdfast-copy.")
                .and_then(|r| r.split('.').next())
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
        })
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "staging left by killed copies: {left:?}");
    // A copy killed after its commit leaves staging and nothing to copy: the next job,
    // with nothing to do, still removes it.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = cfg
        .dump_spool
        .join(format!("holdfast-copy.{}.x", gone.id()));
    std::fs::create_dir_all(stale.join("db")).unwrap();
    let runs = holdfast_backup::copy::copy(&cfg, None).unwrap();
    assert!(runs[0].run.as_ref().unwrap().copied.is_empty());
    assert!(!stale.exists(), "a job with nothing to copy left {stale:?}");
}
