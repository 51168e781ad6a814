//! Pre-copy: the repository is copied while the scheduler runs; the scheduler is down only
//! for the quiesce, the dump and the delta pass.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_site::standin::Behaviour;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
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
    for p in &new {
        let to = aside.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(root.join(p), &to).unwrap();
    }
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
    assert!(
        t.downtime_secs >= hooks_saw && t.downtime_secs < hooks_saw + 1.0,
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

    // Stop-for-everything: the copy is inside the downtime.
    let mut cfg = f.cfg.clone();
    cfg.precopy = false;
    let out = backup(&site, "s", &f.sched, &cfg).unwrap();
    let t = &out.manifest.timings;
    assert_eq!(t.precopy_secs, 0.0);
    assert!(t.downtime_secs >= t.quiesce_secs + t.dump_secs + t.copy_secs);
    assert!(out.missing.iter().any(|m| gold.ends_with(&m.name)));
}
