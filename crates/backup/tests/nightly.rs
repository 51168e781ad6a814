//! Nights proportional to the change: what FOSSology's database added since the previous
//! snapshot is copied without reading the whole repository, the rolling layout links every
//! file of the previous day whatever its mtime, a file put in behind the database's back is
//! caught by the full-walk cadence, and a restore gives back modes, owners and mtimes.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::{layout, LayoutKind};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Touches the mtime of every file under `root` (what a scan day does to the repository).
fn touch_all(root: &Path) {
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for (rel, _) in tree(root).0 {
        std::fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
}

fn list_of(target: &holdfast_store::Target, snap: &str) -> Vec<String> {
    holdfast_store::pool::read_list(target, snap).unwrap()
}

/// (inode → size) of the regular files under `root`.
fn inodes(root: &Path) -> BTreeMap<u64, u64> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            (m.ino(), m.len())
        })
        .collect()
}

#[test]
fn a_scan_day_grows_the_rolling_store_by_the_new_files_only() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = f.cfg.clone();
    assert_eq!(cfg.layout, LayoutKind::Rolling, "the default layout");
    let first = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        first.manifest.repository.found_by, "walk",
        "nothing to build on"
    );
    let before = tree(&site.repo.root).0;
    touch_all(&site.repo.root);
    let new = f.add_uploads_listing(1);
    assert_eq!(new.len(), 3, "gold, its files twin, the unpacked child");
    let second = backup(&site, "s", &f.sched, &cfg).unwrap();
    let r = &second.manifest.repository;
    assert_eq!(r.found_by, "database");
    assert_eq!(r.files as usize, before.len() + new.len());

    let target = cfg.target().unwrap();
    let snaps = layout::snapshots(&target).unwrap();
    let (day, current) = (&snaps[0].name, &snaps[1].name);
    assert!(day.starts_with("day.") && current == "current");
    let old = inodes(&f.target_dir().join(day).join("repository"));
    let now = inodes(&f.target_dir().join(current).join("repository"));
    // Every file of the previous day is the same inode today, mtimes touched or not; the
    // inodes only today holds are the new upload's files.
    let grown: BTreeMap<u64, u64> = now
        .iter()
        .filter(|(i, _)| !old.contains_key(i))
        .map(|(i, s)| (*i, *s))
        .collect();
    let new_inodes: HashSet<u64> = new
        .iter()
        .map(|p| {
            std::fs::metadata(f.target_dir().join(current).join("repository").join(p))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(
        grown.keys().copied().collect::<HashSet<_>>(),
        new_inodes,
        "the store grows by the new files only"
    );
    assert_eq!(old.len() + new_inodes.len(), now.len());
    // The restore of today's snapshot is the site.
    let (into, out) = f.restore_scratch(&cfg, None);
    assert!(out.is_whole(), "{:?}", out.verify.missing);
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
}

/// A file the previous day's tree lost (a disk error, a careless `rm`) is sent from the site
/// while everything else is linked, with and without the pre-copy, and is linked again to its
/// gold or files twin as the site has them.
#[test]
fn a_file_the_previous_day_lost_is_sent_from_the_site() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    backup(&site, "s", &f.sched, &f.cfg).unwrap();
    // Files with a twin (gold and files keep an upload's archive as one inode).
    let twins: Vec<Vec<String>> = tree(&site.repo.root).1.into_iter().collect();
    assert!(twins.len() >= 2, "{twins:?}");
    for (night, precopy) in [(0, true), (1, false)] {
        let cfg = holdfast_backup::BackupConfig {
            precopy,
            ..f.cfg.clone()
        };
        // A files/ copy one night, a gold/ one the next.
        let (lost, twin) = (&twins[night][night], &twins[night][1 - night]);
        let current = f.target_dir().join("current").join("repository");
        std::fs::remove_file(current.join(lost)).unwrap();
        f.add_uploads(1);
        let out = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(out.manifest.repository.found_by, "database");
        let again = current.join(lost);
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(site.repo.root.join(lost)).unwrap(),
            "{lost} sent again (pre-copy {precopy})"
        );
        assert_eq!(
            std::fs::metadata(&again).unwrap().ino(),
            std::fs::metadata(current.join(twin)).unwrap().ino(),
            "{lost} linked to {twin} again"
        );
        let (into, r) = f.restore_scratch(&cfg, None);
        assert!(r.is_whole(), "{:?}", r.verify.missing);
        // Same files, sizes and hard links as the site.
        assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
        std::fs::remove_dir_all(&into).unwrap();
    }
}

#[test]
fn new_rows_are_copied_without_a_walk_strays_by_the_walk_cadence_deletions_by_the_rows() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Pool;
    cfg.full_walk_days = 1;
    let target = cfg.target().unwrap();
    let s1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s1.manifest.repository.found_by, "walk");
    assert!(s1.manifest.repository.marks.is_some());

    // A new upload the database knows of, and a file put in behind its back (a valid
    // content name no row names, as a hand repair would leave).
    let new = f.add_uploads_listing(1);
    assert_eq!(new.len(), 3, "gold, its files twin, the unpacked child");
    let stray = "localhost/files/ee/ee/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.5";
    std::fs::create_dir_all(site.repo.root.join(stray).parent().unwrap()).unwrap();
    std::fs::write(site.repo.root.join(stray), b"stray").unwrap();

    let s2 = backup(&site, "s", &f.sched, &cfg).unwrap();
    let r = &s2.manifest.repository;
    assert_eq!(
        r.found_by, "database",
        "the last walk is less than a day old"
    );
    assert_eq!(r.new_files, 2, "the new upload's two inodes, nothing else");
    let l2 = list_of(&target, &s2.snapshot);
    for p in &new {
        assert!(l2.contains(p), "{p} is in the snapshot");
        let object = holdfast_store::objects::object_rel(p);
        assert!(f.target_dir().join("pool").join(object).is_file());
    }
    assert!(
        !l2.iter().any(|p| p == stray),
        "no walk: the stray is not seen yet"
    );
    assert_eq!(r.walked, s1.manifest.repository.walked);

    // The cadence: the last walk is now more than a day old.
    let m_path = f.target_dir().join(&s2.snapshot).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m_path).unwrap()).unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(2);
    m["repository"]["walked"] = serde_json::json!(old);
    std::fs::write(&m_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let s3 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s3.manifest.repository.found_by, "walk");
    assert!(list_of(&target, &s3.snapshot).iter().any(|p| p == stray));
    assert_eq!(s3.manifest.repository.unnamed, vec![stray.to_string()]);

    // Deletions the database knows of: the last upload removed as FOSSology's delete agent
    // does (rows, then the files no row names any more); the stray removed by hand.
    delete_last_upload(&site);
    for p in &new {
        std::fs::remove_file(site.repo.root.join(p)).unwrap();
    }
    std::fs::remove_file(site.repo.root.join(stray)).unwrap();
    let s4 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(s4.manifest.repository.found_by, "database");
    let l4 = list_of(&target, &s4.snapshot);
    let mut site_files: Vec<String> = tree(&site.repo.root).0.into_keys().collect();
    site_files.sort();
    assert_eq!(l4, site_files, "deleted files and the stray left the list");
    assert!(s4.missing.is_empty(), "{:?}", s4.missing);
    assert!(s4.manifest.repository.unnamed.is_empty());
}

/// Rows deleted while a file they named stays on the disk (a delete agent the stop cut off
/// between its rows and its files): a database night asks whether rows went while its new
/// files go out, and then keeps that file, reported as named by no row, and lets the others
/// go, in the list and in the tree. The next night (no rows deleted) keeps judging it so.
#[test]
fn files_whose_rows_were_deleted_leave_the_night_unless_the_disk_keeps_them() {
    for layout_kind in [LayoutKind::Pool, LayoutKind::Rolling] {
        let mut f = fixture(2, Behaviour::default(), 30);
        let site = f.site().clone();
        let mut cfg = f.cfg.clone();
        cfg.layout = layout_kind;
        let target = cfg.target().unwrap();
        let doomed = f.add_uploads_listing(1);
        backup(&site, "s", &f.sched, &cfg).unwrap();
        delete_last_upload(&site);
        let (left, removed) = doomed.split_first().unwrap();
        for p in removed {
            std::fs::remove_file(site.repo.root.join(p)).unwrap();
        }
        let new = f.add_uploads_listing(1);
        let out = backup(&site, "s", &f.sched, &cfg).unwrap();
        let r = &out.manifest.repository;
        assert_eq!(r.found_by, "database", "{layout_kind}");
        assert_eq!(r.unnamed, vec![left.clone()], "{layout_kind}");
        let mut site_files: Vec<String> = tree(&site.repo.root).0.into_keys().collect();
        site_files.sort();
        assert_eq!(list_of(&target, &out.snapshot), site_files, "{layout_kind}");
        assert!(new.iter().all(|p| site_files.contains(p)));
        if layout_kind == LayoutKind::Rolling {
            let day = f.target_dir().join(&out.snapshot).join("repository");
            assert_eq!(tree(&day), tree(&site.repo.root), "{layout_kind}: the tree");
        }
        // No rows deleted since: the file no row names is judged the same way.
        f.add_uploads(1);
        let next = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(next.manifest.repository.found_by, "database");
        assert_eq!(next.manifest.repository.unnamed, vec![left.clone()]);
        assert!(list_of(&target, &next.snapshot).contains(left));
        let (into, restored) = f.restore_scratch(&cfg, None);
        assert!(restored.is_whole(), "{:?}", restored.verify.missing);
        assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
    }
}

#[test]
fn a_restore_keeps_the_recorded_modes_owners_and_mtimes() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = &site.repo.root;
    // Distinct mtimes and modes, as a site's history leaves them.
    let files: Vec<String> = tree(root).0.into_keys().collect();
    for (i, p) in files.iter().enumerate() {
        let path = root.join(p);
        let mode = if i % 2 == 0 { 0o2664 } else { 0o640 };
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(
                std::time::UNIX_EPOCH
                    + std::time::Duration::new(1_500_000_000 + i as u64 * 1000, 123_456_789),
            )
            .unwrap();
    }
    let meta = |root: &Path| -> BTreeMap<String, (u32, u32, u32, i64, i64)> {
        tree(root)
            .0
            .into_keys()
            .map(|p| {
                let m = std::fs::metadata(root.join(&p)).unwrap();
                (p, (m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec()))
            })
            .collect()
    };
    let want = meta(root);
    for layout_kind in [LayoutKind::Rolling, LayoutKind::Pool] {
        let mut cfg = f.cfg.clone();
        cfg.layout = layout_kind;
        cfg.target = f
            .dir
            .path()
            .join(format!("target-{layout_kind}"))
            .display()
            .to_string();
        backup(&site, "s", &f.sched, &cfg).unwrap();
        let into = f.dir.path().join(format!("drill-{layout_kind}"));
        let out = holdfast_backup::restore(
            &site,
            &f.sched,
            &cfg,
            &Default::default(),
            &holdfast_backup::RestoreOptions {
                scratch: Some(into.clone()),
                drop_scratch_db: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(out.is_whole(), "{layout_kind}: {:?}", out.verify.missing);
        let restored = into.join("repository");
        assert_eq!(meta(&restored), want, "{layout_kind}: mode, owner, mtime");
        assert_eq!(tree(&restored).1, tree(root).1, "{layout_kind}: hard links");
    }
}

/// Rolling with hard links at its `keep`: the pruned day is kept aside and the next night's
/// tree begins as it. That night's day must hold exactly the site's files: those the spare
/// day held that left the repository before the previous day (stale) and after it (gone
/// tonight) are out, and so are those of an upload the spare never held that left tonight
/// (linked from the previous day before the night knew); the previous day's are in, as the
/// same copies.
#[test]
fn a_pruned_day_begins_the_next_night_and_holds_exactly_the_site() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.keep = 2;
    let target = cfg.target().unwrap();
    let spare = f.target_dir().join(layout::SPARE);
    let stale = f.add_uploads_listing(1);
    let stale_up = last_upload(&site);
    let gone = f.add_uploads_listing(1);
    let gone_up = last_upload(&site);
    let remove = |up: i32, files: &[String]| {
        delete_upload(&site, up);
        for p in files {
            std::fs::remove_file(site.repo.root.join(p)).unwrap();
        }
    };

    // Day A holds every upload so far.
    let a = backup(&site, "s", &f.sched, &cfg).unwrap();
    remove(stale_up, &stale);
    let late = f.add_uploads_listing(1);
    let late_up = last_upload(&site);
    let b = backup(&site, "s", &f.sched, &cfg).unwrap();
    let b_list = list_of(&target, "current");
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    // A is pruned and kept aside, no longer a snapshot.
    let snaps = layout::snapshots(&target).unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps
        .iter()
        .all(|s| s.manifest.started != a.manifest.started));
    assert!(!spare.join("manifest.json").exists());
    let spare_repo = std::fs::metadata(spare.join("repository")).unwrap().ino();
    let previous = inodes(&f.target_dir().join("current/repository"));

    remove(gone_up, &gone);
    remove(late_up, &late);
    let new = f.add_uploads_listing(1);
    let d = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(d.manifest.repository.found_by, "database");
    let current = f.target_dir().join("current");
    assert_eq!(
        std::fs::metadata(current.join("repository")).unwrap().ino(),
        spare_repo,
        "the night's tree began as the spare day"
    );
    assert_eq!(
        tree(&current.join("repository")),
        tree(&site.repo.root),
        "exactly the site's files and hard links: nothing of the deleted uploads"
    );
    assert!(!current.join(".recycled.list.gz").exists());
    assert_eq!(
        list_of(&target, "current").len(),
        tree(&site.repo.root).0.len()
    );
    // Every file but tonight's new ones is the previous day's copy.
    let now = inodes(&current.join("repository"));
    let fresh: Vec<&u64> = now.keys().filter(|i| !previous.contains_key(i)).collect();
    assert_eq!(fresh.len(), 2, "the new upload's two inodes: {new:?}");
    // B is the spare now (its list kept as the record of what it holds).
    let held = holdfast_store::pool::read_list_at(&target, ".spare-day/.recycled.list.gz").unwrap();
    assert_eq!(held, b_list);
    assert!(layout::snapshots(&target)
        .unwrap()
        .iter()
        .all(|s| s.manifest.started != b.manifest.started));

    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
}

/// A small night begun as the spare day (its list written while the files are linked):
/// a file the previous day lost that the spare lacks is sent from the site, and one the site
/// lost too leaves the list, which is written again; the day and its list agree.
#[test]
fn a_small_night_begun_as_the_spare_mends_what_the_previous_day_lost() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.keep = 2;
    cfg.day_trees = holdfast_store::DayTrees::HardLinks;
    let target = cfg.target().unwrap();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    // The third night's files: the spare (the first night's day) lacks them.
    let third = f.add_uploads_listing(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(f.target_dir().join(layout::SPARE).exists());
    // The upload's unpacked child is lost from the day; its archive (gold and its files
    // twin, one inode) from the day and the site.
    let (lone, twins): (Vec<&String>, Vec<&String>) = third
        .iter()
        .partition(|p| std::fs::metadata(site.repo.root.join(p)).unwrap().nlink() == 1);
    assert!(!lone.is_empty() && twins.len() == 2, "{third:?}");
    let sent = lone[0];
    let current = f.target_dir().join("current/repository");
    std::fs::remove_file(current.join(sent)).unwrap();
    for gone in &twins {
        std::fs::remove_file(current.join(gone)).unwrap();
        std::fs::remove_file(site.repo.root.join(gone)).unwrap();
    }

    f.add_uploads(1);
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "database");
    assert_eq!(out.manifest.timings.precopy_secs, 0.0, "a small night");
    assert_eq!(
        std::fs::read(current.join(sent)).unwrap(),
        std::fs::read(site.repo.root.join(sent)).unwrap(),
        "{sent} sent from the site"
    );
    let list = list_of(&target, "current");
    for gone in &twins {
        assert!(!current.join(gone).exists());
        assert!(!list.contains(gone), "{gone} left the list");
    }
    let held: Vec<String> = tree(&current).0.into_keys().collect();
    assert_eq!(list, held, "the list names exactly the day's files");
}

/// A damaged copy shared by every day is replaced by a night's check: the days made before
/// still hold it, so none of them may begin a later night (its copy would come back
/// unchecked); the days made after may.
#[test]
fn a_day_made_before_damaged_copies_were_replaced_never_begins_a_night() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.keep = 2;
    cfg.check_percent = 0.0;
    let spare = f.target_dir().join(layout::SPARE);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    // One file's copy rots in place: every day shares it.
    let victim = tree(&site.repo.root)
        .0
        .into_keys()
        .find(|p| p.contains("/files/"))
        .unwrap();
    let copy = f.target_dir().join("current/repository").join(&victim);
    let len = std::fs::metadata(&copy).unwrap().len() as usize;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .write_all_at(&vec![0x55; len], 0)
        .unwrap();
    let good = std::fs::read(site.repo.root.join(&victim)).unwrap();

    for night in 3..=6 {
        // The third night checks every file and replaces the damaged copy.
        cfg.check_percent = if night == 3 { 100.0 } else { 0.0 };
        f.add_uploads(1);
        backup(&site, "s", &f.sched, &cfg).unwrap();
        assert_eq!(
            std::fs::read(f.target_dir().join("current/repository").join(&victim)).unwrap(),
            good,
            "night {night}: the replaced copy stays"
        );
        // Nights 3-5 prune days made before the replacement (the third night's own day began
        // before it); the sixth prunes the fourth night's day.
        assert_eq!(spare.exists(), night == 6, "night {night}");
    }
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(spare.exists());
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(
        std::fs::read(into.join("repository").join(&victim)).unwrap(),
        good
    );
}

/// The previous list is read ahead, beside the plan; when the newest snapshot changes in
/// between (the plan finishing an interrupted commit makes another `current`), the list read
/// ahead is not taken for the new one's.
#[test]
fn a_list_read_ahead_of_another_snapshot_is_not_taken() {
    use holdfast_backup::nightly;
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let cfg = f.cfg.clone();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let store = cfg.store().unwrap();
    let store = store.as_ref();
    let stale = nightly::read_ahead(store).expect("the newest snapshot's list");
    let first = store.file_entries("current").unwrap();
    f.add_uploads_listing(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let now = store.file_entries("current").unwrap();
    assert!(now.len() > first.len(), "the second night added files");

    let base = || {
        let plan = store.plan(&cfg.layout()).unwrap();
        let nightly::Start::Database(base) = nightly::previous(&cfg, store, &plan).unwrap() else {
            panic!("a database night");
        };
        assert_eq!(base.snapshot.name, "current");
        base
    };
    let paths = |l: &[holdfast_store::pool::Entry]| -> Vec<String> {
        l.iter().map(|e| e.path.clone()).collect()
    };
    // Same name, another snapshot: read again.
    let taken = base().read_list(store, Some(stale)).unwrap();
    assert_eq!(paths(&taken.list), paths(&now));
    // Read ahead of this very snapshot: taken as it is.
    let fresh = nightly::read_ahead(store).unwrap();
    let taken = base().read_list(store, Some(fresh)).unwrap();
    assert_eq!(paths(&taken.list), paths(&now));
    assert_eq!(
        paths(&base().read_list(store, None).unwrap().list),
        paths(&now)
    );
}

#[test]
fn a_walk_night_with_the_scheduler_stopped_lists_names_and_checks_in_both_layouts() {
    // `precopy = false`: the check against the database and the walk for the list run
    // beside the copy. What each reports must be what the site holds after the night.
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let cfgs: Vec<_> = [LayoutKind::Rolling, LayoutKind::Pool]
        .into_iter()
        .map(|layout| {
            let mut cfg = f.cfg.clone();
            cfg.layout = layout;
            cfg.precopy = false;
            cfg.full_walk_days = 0;
            cfg.target = f
                .dir
                .path()
                .join(format!("store-{layout}"))
                .display()
                .to_string();
            cfg
        })
        .collect();
    for cfg in &cfgs {
        backup(&site, "s", &f.sched, cfg).unwrap();
    }
    let (before, _) = tree(&root);
    // A gold file the rows name, lost; a file no row names, put in by hand; a report whose
    // name no list can carry.
    let lost = before
        .keys()
        .find(|p| p.contains("/gold/"))
        .unwrap()
        .clone();
    std::fs::remove_file(root.join(&lost)).unwrap();
    let stray = Path::new(&lost)
        .parent()
        .unwrap()
        .join("dddddddddddddddddddddddddddddddddddddddd.dddddddddddddddddddddddddddddddd.3")
        .display()
        .to_string();
    std::fs::write(root.join(&stray), b"new").unwrap();
    let odd = Path::new(&lost)
        .parent()
        .unwrap()
        .join("report\nof an upload");
    std::fs::write(root.join(&odd), b"odd").unwrap();
    let (site_files, _) = tree(&root);
    let mut listable: Vec<String> = site_files
        .into_keys()
        .filter(|p| !p.contains('\n'))
        .collect();
    listable.sort();

    for cfg in &cfgs {
        let out = backup(&site, "s", &f.sched, cfg).unwrap();
        let r = &out.manifest.repository;
        let what = cfg.layout;
        assert_eq!(r.found_by, "walk", "{what}");
        assert_eq!(out.manifest.timings.precopy_secs, 0.0, "{what}");
        let target = cfg.target().unwrap();
        assert_eq!(list_of(&target, &out.snapshot), listable, "{what}");
        assert_eq!(r.unnamed, vec![stray.clone()], "{what}");
        let lost_name = lost.rsplit('/').next().unwrap();
        assert!(
            out.missing.iter().any(|m| m.name == lost_name),
            "{what}: the lost gold is reported: {:?}",
            out.missing
        );
        assert_eq!(r.unlisted.len(), 1, "{what}: {:?}", r.unlisted);
        assert!(r.unlisted[0].contains("report\\nof an upload"), "{what}");
        assert_eq!(r.files as usize, listable.len(), "{what}");
    }
}

/// A rolling walk night with the pre-copy: the whole site is walked and compared with the
/// previous day's list, what that day holds is linked whatever its mtime, and with the
/// scheduler stopped every row is checked against the walk's list: files an agent wrote
/// after the walk (their rows were there before it) are sent, a stray put in by hand is
/// listed and reported, a named file lost from the disk is missing, a file the previous
/// day's tree lost is sent from the site.
#[test]
fn a_rolling_walk_night_links_the_day_before_and_checks_every_row_against_its_walk() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let first = backup(&site, "s", &f.sched, &f.cfg).unwrap();
    touch_all(&root);
    // An upload whose rows exist before the walk and whose files an agent writes only at
    // the stop (the stop hook puts them in place).
    let late = f.add_uploads_listing(1);
    let aside = f.dir.path().join("aside");
    for p in &late {
        let to = aside.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(root.join(p), &to).unwrap();
    }
    // A file not named by its content in a database folder (a report), rewritten at the
    // stop: the stopped pass sends it again.
    let some_dir = Path::new(late.iter().find(|p| p.contains("/files/")).unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let report = some_dir.join("report.txt").display().to_string();
    let hook = f.dir.path().join("stop-hook");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/bash\ncp -a {}/. {}/\necho 'version 2' > {}/{report}\nexec {}\n",
            aside.display(),
            root.display(),
            root.display(),
            f.sched.stop_command[0]
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut sched = f.sched.clone();
    sched.stop_command = vec![hook.display().to_string()];
    let (old, twins) = tree(&root);
    let lost = old.keys().find(|p| p.contains("/gold/")).unwrap().clone();
    std::fs::remove_file(root.join(&lost)).unwrap();
    let stray = Path::new(&lost)
        .parent()
        .unwrap()
        .join("cccccccccccccccccccccccccccccccccccccccc.cccccccccccccccccccccccccccccccc.5")
        .display()
        .to_string();
    std::fs::write(root.join(&stray), b"stray").unwrap();
    std::fs::create_dir_all(root.join(&some_dir)).unwrap();
    std::fs::write(root.join(&report), b"v1").unwrap();
    // Lost from the store's previous day: a file with no twin.
    let in_twins: HashSet<&String> = twins.iter().flatten().collect();
    let store_lost = old
        .keys()
        .find(|p| p.contains("/files/") && !in_twins.contains(p))
        .unwrap()
        .clone();
    let current = f.target_dir().join("current").join("repository");
    std::fs::remove_file(current.join(&store_lost)).unwrap();

    let cfg = holdfast_backup::BackupConfig {
        full_walk_days: 0,
        ..f.cfg.clone()
    };
    let out = backup(&site, "s", &sched, &cfg).unwrap();
    let r = &out.manifest.repository;
    assert_eq!(r.found_by, "walk");
    assert!(out.manifest.timings.precopy_secs > 0.0, "pre-copied");
    assert!(
        r.walked > first.manifest.repository.walked,
        "the walk recorded"
    );
    let mut unnamed = vec![stray.clone(), report.clone()];
    unnamed.sort();
    assert_eq!(r.unnamed, unnamed);
    let lost_name = lost.rsplit('/').next().unwrap();
    assert!(
        out.missing.iter().any(|m| m.name == lost_name),
        "{:?}",
        out.missing
    );
    assert_eq!(
        std::fs::read(current.join(&report)).unwrap(),
        b"version 2\n",
        "the report as the stop left it"
    );
    let target = cfg.target().unwrap();
    let mut site_files: Vec<String> = tree(&root).0.into_keys().collect();
    site_files.sort();
    assert_eq!(list_of(&target, &out.snapshot), site_files);
    assert_eq!(tree(&current), tree(&root), "the new day is the site");

    // Every file the previous day held is the same inode; new inodes are only the late
    // upload's files, the stray and the file the day before lost.
    let snaps = layout::snapshots(&target).unwrap();
    let day = f
        .target_dir()
        .join(&snaps[snaps.len() - 2].name)
        .join("repository");
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let relinked: Vec<&String> = site_files
        .iter()
        .filter(|p| day.join(p).is_file() && ino(&day.join(p)) != ino(&current.join(p)))
        .collect();
    assert!(relinked.is_empty(), "copied again: {relinked:?}");
    let mut fresh: Vec<&String> = site_files
        .iter()
        .filter(|p| !day.join(p).is_file())
        .collect();
    fresh.sort();
    let mut want: Vec<&String> = late.iter().chain([&stray, &store_lost, &report]).collect();
    want.sort();
    assert_eq!(fresh, want);
}

/// A walk night on a day begun as the spare day: the spare's files are not linked again, so
/// each kept file is looked for in the new tree; one lost from the spare by hand is sent.
/// An upload the spare never held, deleted tonight, is linked before the walk knows it is
/// gone: it leaves the day.
#[test]
fn a_walk_night_begun_as_the_spare_finds_a_file_the_spare_lost() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.keep = 2;
    let mut last = Vec::new();
    for _ in 0..3 {
        last = f.add_uploads_listing(1);
        backup(&site, "s", &f.sched, &cfg).unwrap();
    }
    delete_upload(&site, last_upload(&site));
    for p in &last {
        std::fs::remove_file(site.repo.root.join(p)).unwrap();
    }
    let spare = f.target_dir().join(layout::SPARE).join("repository");
    let (files, _) = tree(&spare);
    let lost = files
        .keys()
        .find(|p| p.contains("/files/"))
        .unwrap()
        .clone();
    std::fs::remove_file(spare.join(&lost)).unwrap();
    let spare_ino = std::fs::metadata(&spare).unwrap().ino();
    f.add_uploads(1);
    cfg.full_walk_days = 0;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "walk");
    let current = f.target_dir().join("current").join("repository");
    assert_eq!(
        std::fs::metadata(&current).unwrap().ino(),
        spare_ino,
        "the night's tree began as the spare day"
    );
    assert_eq!(tree(&current), tree(&site.repo.root), "{lost} sent again");
}

/// A rotating incremental is a database night too: it holds the rows' new files and nothing
/// else (a scan day's touched mtimes and a file put in behind the database's back stay out
/// until the walk cadence), deletions leave its list, and its restore is the site.
#[test]
fn a_rotating_incremental_copies_what_the_database_names() {
    let mut f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Rotating;
    cfg.full_every = 5;
    cfg.full_walk_days = 1;
    // Every file sampled, where the chain holds it.
    cfg.check_percent = 100.0;
    let target = cfg.target().unwrap();
    let store = f.target_dir();
    let piece = |snap: &str| tree(&store.join(snap).join("repository"));
    let base = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(base.snapshot.starts_with("base."));
    assert_eq!(base.manifest.repository.found_by, "walk");

    touch_all(&site.repo.root);
    let new = f.add_uploads_listing(1);
    assert_eq!(new.len(), 3, "gold, its files twin, the unpacked child");
    let stray = "localhost/files/ee/ee/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.5";
    std::fs::create_dir_all(site.repo.root.join(stray).parent().unwrap()).unwrap();
    std::fs::write(site.repo.root.join(stray), b"stray").unwrap();
    let i1 = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(i1.snapshot.starts_with("incr."));
    let r = &i1.manifest.repository;
    assert_eq!(r.found_by, "database");
    assert_eq!(r.new_files, 2, "the new upload's two inodes, nothing else");
    let (held, links) = piece(&i1.snapshot);
    let mut held: Vec<String> = held.into_keys().collect();
    let mut want = new.clone();
    held.sort();
    want.sort();
    assert_eq!(held, want, "the incremental holds the new upload alone");
    assert_eq!(links.len(), 1, "gold and files twin stay one inode");
    assert!(!list_of(&target, &i1.snapshot).iter().any(|p| p == stray));

    // The cadence: a walk night finds the stray, and a file lost from the base (which the
    // database cannot see) is sent into the incremental.
    let alone: Vec<String> = {
        let (files, twins) = tree(&site.repo.root);
        let paired: HashSet<&String> = twins.iter().flatten().collect();
        files.into_keys().filter(|p| !paired.contains(p)).collect()
    };
    let lost = alone.iter().find(|p| !new.contains(p)).unwrap().clone();
    std::fs::remove_file(
        f.target_dir()
            .join(&base.snapshot)
            .join("repository")
            .join(&lost),
    )
    .unwrap();
    let m_path = f.target_dir().join(&i1.snapshot).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m_path).unwrap()).unwrap();
    m["repository"]["walked"] = serde_json::json!(chrono::Utc::now() - chrono::Duration::days(2));
    std::fs::write(&m_path, serde_json::to_vec(&m).unwrap()).unwrap();
    // No sample: the walk alone must find it.
    let unsampled = holdfast_backup::BackupConfig {
        check_percent: 0.0,
        ..cfg.clone()
    };
    let i2 = backup(&site, "s", &f.sched, &unsampled).unwrap();
    assert_eq!(i2.manifest.repository.found_by, "walk");
    let mut want = vec![stray.to_string(), lost.clone()];
    want.sort();
    assert_eq!(piece(&i2.snapshot).0.into_keys().collect::<Vec<_>>(), want);
    assert_eq!(i2.manifest.repository.unnamed, vec![stray.to_string()]);

    // Deletions the rows tell, on a night that pre-copies: the chain keeps the deleted
    // files, the incremental's list does not, and neither does its restore.
    delete_last_upload(&site);
    for p in new.iter().map(String::as_str).chain([stray]) {
        std::fs::remove_file(site.repo.root.join(p)).unwrap();
    }
    let added = f.add_uploads_listing(1);
    let pre = holdfast_backup::BackupConfig {
        precopy_above_mib: 0,
        ..cfg.clone()
    };
    let i3 = backup(&site, "s", &f.sched, &pre).unwrap();
    assert_eq!(i3.manifest.repository.found_by, "database");
    assert_eq!(
        i3.manifest.builds_on,
        vec![
            base.snapshot.clone(),
            i1.snapshot.clone(),
            i2.snapshot.clone()
        ]
    );
    let mut held: Vec<String> = piece(&i3.snapshot).0.into_keys().collect();
    let mut want = added.clone();
    held.sort();
    want.sort();
    assert_eq!(held, want);
    let mut site_files: Vec<String> = tree(&site.repo.root).0.into_keys().collect();
    site_files.sort();
    assert_eq!(list_of(&target, &i3.snapshot), site_files);
    assert!(i3.missing.is_empty(), "{:?}", i3.missing);
    let (into, out) = f.restore_scratch(&cfg, None);
    assert_eq!(out.snapshot, i3.snapshot);
    assert!(out.is_whole(), "{:?}", out.verify.missing);
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));
}
