//! The rolling layout on btrfs: each day a snapshot of the day before (no hard link, no new
//! folder tree), deletions leave the new day only, an interrupted start is cleaned up, and a
//! store keeps the kind of day trees it began with. A real btrfs, loop-mounted.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::{subvolume, DayTrees, Target};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Every regular file under `root` with its bytes.
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(root)
        .0
        .into_keys()
        .map(|p| {
            let data = std::fs::read(root.join(&p)).unwrap();
            (p, data)
        })
        .collect()
}

fn on_btrfs(
    f: &Fixture,
) -> (
    holdfast_testkit::LoopFs,
    holdfast_backup::BackupConfig,
    Target,
) {
    let fs = holdfast_testkit::LoopFs::btrfs(&f.dir.path().join("btrfs"), 512);
    let cfg = holdfast_backup::BackupConfig {
        target: fs.mount.join("target").display().to_string(),
        keep: 2,
        ..f.cfg.clone()
    };
    let target = cfg.target().unwrap();
    (fs, cfg, target)
}

#[test]
fn each_day_is_a_snapshot_of_the_day_before_and_deletions_leave_the_new_day_only() {
    days_are_snapshots(false);
}

#[test]
fn over_ssh_each_day_is_a_snapshot_too() {
    days_are_snapshots(true);
}

fn days_are_snapshots(ssh: bool) {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let (_fs, mut cfg, target) = on_btrfs(&f);
    let dir = std::path::PathBuf::from(&cfg.target);
    let _sshd = ssh.then(|| {
        let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
        over_ssh(&mut cfg, &sshd, &dir);
        sshd
    });
    let s1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s1.snapshot, "current");
    assert!(subvolume::is_subvolume(&target, "current").unwrap());
    let links_before: BTreeMap<String, u64> = tree(&dir.join("current/repository"))
        .0
        .into_keys()
        .map(|p| {
            let n = std::fs::metadata(dir.join("current/repository").join(&p))
                .unwrap()
                .nlink();
            (p, n)
        })
        .collect();

    // A database night with a new upload, pre-copied (however small the night).
    let new = f.add_uploads_listing(1);
    assert!(!new.is_empty());
    // A new file's folder, new to the store too, with a mode of its own on the site: the day
    // makes it (ahead of the send, while the night looks its files up) with that mode.
    let leaf = new
        .iter()
        .map(|p| Path::new(p).parent().unwrap().to_path_buf())
        .find(|d| !dir.join("current/repository").join(d).exists())
        .expect("a new file in a folder the store lacks");
    std::fs::set_permissions(
        site.repo.root.join(&leaf),
        std::os::unix::fs::PermissionsExt::from_mode(0o2751),
    )
    .unwrap();
    let precopied = holdfast_backup::BackupConfig {
        precopy_above_mib: 0,
        ..cfg.clone()
    };
    let s2 = backup(&site, "s", &f.sched, &precopied).unwrap();
    assert!(s2.manifest.timings.precopy_secs > 0.0);
    assert_eq!(s2.manifest.repository.found_by, "database");
    let day = layout_names(&dir, "day.");
    assert_eq!(day.len(), 1, "{day:?}");
    for name in ["current", day[0].as_str()] {
        assert!(
            subvolume::is_subvolume(&target, name).unwrap(),
            "{name} is a snapshot"
        );
    }
    let cur = dir.join("current/repository");
    assert_eq!(contents(&cur), contents(&site.repo.root));
    assert_eq!(
        std::fs::metadata(cur.join(&leaf)).unwrap().mode() & 0o7777,
        0o2751,
        "{}",
        leaf.display()
    );
    // Snapshots, not hard links: a file both days hold has as many links as it had alone
    // (its gold/files twin at most), and each day is its own file system tree.
    for (p, n) in &links_before {
        assert_eq!(std::fs::metadata(cur.join(p)).unwrap().nlink(), *n, "{p}");
    }
    assert_ne!(
        std::fs::metadata(&cur).unwrap().dev(),
        std::fs::metadata(dir.join(&day[0]).join("repository"))
            .unwrap()
            .dev()
    );
    assert!(!dir.join(".partial").exists() && !dir.join(".partial.new").exists());
    assert!(
        !dir.join("current/.snapshot-of").exists(),
        "the marker leaves with the commit"
    );

    // The newest upload deleted as FOSSology does; a small night (the default): no
    // pre-copy, the copy beside the dump.
    delete_last_upload(&site);
    for p in &new {
        std::fs::remove_file(site.repo.root.join(p)).unwrap();
    }
    let s3 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s3.manifest.repository.found_by, "database");
    assert_eq!(s3.manifest.timings.precopy_secs, 0.0);
    assert_eq!(
        contents(&cur),
        contents(&site.repo.root),
        "the deleted upload's files left the new day"
    );
    let days = layout_names(&dir, "day.");
    assert_eq!(days.len(), 1, "keep = 2: current and one day: {days:?}");
    assert_ne!(days, day, "the oldest day was pruned");
    let yesterday = dir.join(&days[0]).join("repository");
    for p in &new {
        assert!(yesterday.join(p).is_file(), "{p} stays in yesterday's tree");
    }
    assert!(layout_names(&dir, ".pruning").is_empty());

    // Both days restore whole.
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(
        contents(&into.join("repository")),
        contents(&site.repo.root)
    );
    std::fs::remove_dir_all(&into).unwrap();
    let (into, r) = f.restore_scratch(&cfg, Some(days[0].clone()));
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(contents(&into.join("repository")), contents(&yesterday));
}

#[test]
fn an_interrupted_start_of_a_day_is_begun_again() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let (_fs, cfg, target) = on_btrfs(&f);
    let dir = std::path::PathBuf::from(&cfg.target);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    // Killed between the snapshot and its rename: `.partial.new`; and a `.partial` begun
    // from a day that is gone, holding a file no day should get.
    subvolume::snapshot(&target, "current", ".partial.new").unwrap();
    subvolume::snapshot(&target, "current", ".partial").unwrap();
    std::fs::remove_file(dir.join(".partial/manifest.json")).unwrap();
    std::fs::write(dir.join(".partial/.snapshot-of"), "day.gone").unwrap();
    std::fs::write(dir.join(".partial/repository/junk"), "junk").unwrap();
    f.add_uploads(1);
    let s2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s2.snapshot, "current");
    assert!(!dir.join(".partial.new").exists());
    assert!(!dir.join("current/repository/junk").exists());
    assert_eq!(
        contents(&dir.join("current/repository")),
        contents(&site.repo.root)
    );

    // Killed after the snapshot became `.partial`, with a file of its night: made afresh.
    subvolume::snapshot(&target, "current", ".partial").unwrap();
    std::fs::remove_file(dir.join(".partial/manifest.json")).unwrap();
    std::fs::write(dir.join(".partial/.snapshot-of"), "current").unwrap();
    std::fs::write(dir.join(".partial/repository/junk"), "junk").unwrap();
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        contents(&dir.join("current/repository")),
        contents(&site.repo.root)
    );
    assert_eq!(layout_names(&dir, "day.").len(), 1);
}

#[test]
fn a_store_keeps_the_day_trees_it_began_with() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let (_fs, cfg, target) = on_btrfs(&f);
    let dir = std::path::PathBuf::from(&cfg.target);
    let links = holdfast_backup::BackupConfig {
        day_trees: DayTrees::HardLinks,
        ..cfg.clone()
    };
    backup(&site, "s", &f.sched, &links).unwrap();
    assert!(!subvolume::is_subvolume(&target, "current").unwrap());
    // `auto` on a hard-linked store goes on linking (a snapshot holds no hard link).
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(!subvolume::is_subvolume(&target, "current").unwrap());
    let (p, _) = tree(&dir.join("current/repository"))
        .0
        .into_iter()
        .next()
        .unwrap();
    assert!(
        std::fs::metadata(dir.join("current/repository").join(&p))
            .unwrap()
            .nlink()
            >= 2
    );
    // Asking for snapshots there is refused, naming the way out.
    let want = holdfast_backup::BackupConfig {
        day_trees: DayTrees::Btrfs,
        ..cfg.clone()
    };
    let err = backup(&site, "s", &f.sched, &want).unwrap_err().to_string();
    assert!(err.contains("new folder on btrfs"), "{err}");
    assert!(subvolume::is_subvolume(&target, "current").is_ok());

    // Off btrfs, `btrfs` is refused before anything is copied; `auto` makes hard links.
    let plain = holdfast_backup::BackupConfig {
        target: f.dir.path().join("plain").display().to_string(),
        day_trees: DayTrees::Btrfs,
        ..cfg.clone()
    };
    let err = backup(&site, "s", &f.sched, &plain)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not on btrfs"), "{err}");
    assert!(!f.dir.path().join("plain/current").exists());
}

fn layout_names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// An online night on btrfs begins as a snapshot of the day before, that day's list with it,
/// and writes none of its own: its restore takes what the day holds (the new upload too),
/// not the day before's list.
#[test]
fn an_online_day_restores_what_it_holds_not_the_day_befores_list() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let (_fs, mut cfg, target) = on_btrfs(&f);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let new = f.add_uploads_listing(1);
    assert!(!new.is_empty());
    cfg.online = true;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(out.manifest.online.is_some());
    assert!(subvolume::is_subvolume(&target, "current").unwrap());
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{r:?}");
    let (site_files, _) = tree(&site.repo.root);
    let (restored, _) = tree(&into.join("repository"));
    for p in &new {
        assert!(
            restored.contains_key(p),
            "the online night's new {p} restored"
        );
    }
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        site_files.keys().collect::<Vec<_>>()
    );
}

/// A walk night on a snapshot day: the day is the previous one's snapshot, so each kept file
/// is looked for in it; one removed from the day before by hand is sent from the site.
#[test]
fn a_walk_night_finds_a_file_removed_from_the_day_before() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let (_fs, mut cfg, target) = on_btrfs(&f);
    let dir = std::path::PathBuf::from(&cfg.target);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let current = dir.join("current").join("repository");
    assert!(subvolume::is_subvolume(&target, "current").unwrap());
    let (files, _) = tree(&current);
    let lost = files
        .keys()
        .find(|p| p.contains("/files/"))
        .unwrap()
        .clone();
    std::fs::remove_file(current.join(&lost)).unwrap();
    f.add_uploads(1);
    cfg.full_walk_days = 0;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "walk");
    assert!(subvolume::is_subvolume(&target, "current").unwrap());
    assert_eq!(
        contents(&current),
        contents(&site.repo.root),
        "{lost} sent again"
    );
}
