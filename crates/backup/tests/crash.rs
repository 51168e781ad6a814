//! `kill -9` at random points of backup, prune and restore (a small site, so each run takes
//! a second or two). After every kill, and the "next command" (`resume_scheduler`):
//! * every listed snapshot proves whole (`verify` of its content and dump);
//! * no rsync, psql or pg_dumpall of the killed run is still alive;
//! * a killed restore leaves its marker, so the half site is refused, never called whole;
//! * the scheduler runs again (or stays stopped on purpose while a restore is unfinished).
//!
//! Plus the pool's garbage collection over a real sshd: it keeps every file a kept snapshot
//! lists, and deletes nothing when a list cannot be read.

mod common;

use common::*;
use holdfast_backup::content::{self, VerifyOptions};
use holdfast_backup::{backup, BackupConfig, RestoreOptions};
use holdfast_sandbox::standin::Behaviour;
use holdfast_site::scheduler::SchedulerConfig;
use holdfast_store::{layout, LayoutKind};
use rand::Rng;
use std::time::{Duration, Instant};

/// The operation a child process runs (and gets killed in).
#[test]
#[ignore = "helper run by another test in a child process"]
fn child_op() {
    let Ok(spec) = std::env::var("HOLDFAST_CRASH_CHILD") else {
        return;
    };
    holdfast_core::interrupt::install();
    let (op, conf_dir, cfg, sched): (String, String, BackupConfig, SchedulerConfig) =
        serde_json::from_str(&spec).unwrap();
    let site = holdfast_site::Site::open(Some(std::path::Path::new(&conf_dir))).unwrap();
    match op.as_str() {
        "backup" => {
            backup(&site, "crash", &sched, &cfg).unwrap();
        }
        "restore" => {
            let opts = RestoreOptions::default();
            holdfast_backup::restore(&site, &sched, &cfg, &Default::default(), &opts).unwrap();
        }
        "prune" => {
            let target = cfg.target().unwrap();
            let _lock = holdfast_backup::lock::acquire(&cfg.lock_file).unwrap();
            cfg.layout().prune(&target, "current").unwrap();
        }
        other => panic!("unknown op {other}"),
    }
}

/// This test binary set up to run `op` in [`child_op`].
fn child_command(op: &str, f: &Fixture, cfg: &BackupConfig) -> std::process::Command {
    let conf_dir = f.site().conf_dir.display().to_string();
    let spec = serde_json::to_string(&(op, conf_dir, cfg, &f.sched)).unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child_op", "--test-threads=1"])
        .env("HOLDFAST_CRASH_CHILD", spec);
    cmd
}

fn spawn(op: &str, f: &Fixture, cfg: &BackupConfig) -> std::process::Child {
    child_command(op, f, cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `op` to the end; returns how long it took.
fn run_whole(op: &str, f: &Fixture, cfg: &BackupConfig) -> Duration {
    let t = Instant::now();
    let out = child_command(op, f, cfg)
        .arg("--nocapture")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{op} failed on its own: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Kills `op` with SIGKILL after `after`; true when it was still running then.
fn kill_during(op: &str, f: &Fixture, cfg: &BackupConfig, after: Duration) -> bool {
    let mut child = spawn(op, f, cfg);
    std::thread::sleep(after);
    let alive = child.try_wait().unwrap().is_none();
    // Only holdfast itself: its rsync/psql must die on their own (PR_SET_PDEATHSIG).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    child.wait().unwrap();
    alive
}

/// Processes still working for the killed run: rsync naming the target, or PostgreSQL tools
/// talking to the scratch cluster.
/// Each with whether it is a grandchild (pg_dumpall's pg_dump).
fn leftovers(target_dir: &str, port: u16) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env).to_string();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        // (Debian's psql is a perl wrapper that execs the real one: match anywhere.)
        // The scratch cluster's port reaches them in the environment (a password role), as
        // `-p PORT` (the postgres OS user) or in pg_dumpall's connection string to pg_dump.
        let ours = (cmd.contains("rsync") && cmd.contains(target_dir))
            || ((cmd.contains("psql") || cmd.contains("pg_dump"))
                && (env.split('\0').any(|v| v == format!("PGPORT={port}"))
                    || cmd.contains(&format!(" -p {port} "))
                    || cmd.contains(&format!("port={port}"))));
        if ours && !zombie {
            // pg_dumpall runs pg_dump (through `sh -c`) for each database: those are its
            // children, not holdfast's, and get no death signal; with holdfast and pg_dumpall
            // dead nobody reads their pipe, so their next write kills them (SIGPIPE).
            let grandchild = !cmd.contains("pg_dumpall") && cmd.contains("pg_dump");
            out.push((grandchild, format!("{pid}: {cmd}")));
        }
    }
    out
}

fn assert_no_leftovers(target_dir: &str, port: u16) {
    let start = Instant::now();
    loop {
        let l = leftovers(target_dir, port);
        if l.is_empty() {
            return;
        }
        // holdfast's own children die with it at once; pg_dumpall's at their next write.
        let limit = if l.iter().all(|(grand, _)| *grand) {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(5)
        };
        assert!(
            start.elapsed() < limit,
            "children outlived the killed run: {l:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every listed snapshot proves whole.
fn assert_snapshots_whole(cfg: &BackupConfig) -> usize {
    let target = cfg.target().unwrap();
    let snaps = layout::snapshots(&target).unwrap();
    for s in &snaps {
        let r = content::verify_snapshot(
            &target,
            s,
            &VerifyOptions {
                restart: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            r.is_ok(),
            "listed snapshot {} fails verify: {:?} {:?}",
            s.name,
            r.bad,
            r.dump_problem
        );
    }
    snaps.len()
}

#[test]
fn kill_9_anywhere_in_backup_and_prune() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let cfg = f.cfg.clone();
    kill_anywhere_in_backup_and_prune(&mut f, cfg);
}

/// The rolling layout's days as btrfs snapshots: a kill between the snapshot and its rename,
/// or in a subvolume's deletion, leaves every listed day whole too.
#[test]
fn kill_9_anywhere_in_backup_and_prune_on_btrfs() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let fs = holdfast_testkit::LoopFs::btrfs(&f.dir.path().join("btrfs"), 512);
    let cfg = BackupConfig {
        target: fs.mount.join("target").display().to_string(),
        ..f.cfg.clone()
    };
    kill_anywhere_in_backup_and_prune(&mut f, cfg.clone());
    let target = cfg.target().unwrap();
    assert!(holdfast_store::subvolume::is_subvolume(&target, "current").unwrap());
    let dir = std::path::Path::new(&cfg.target);
    assert!(!dir.join(".partial.new").exists());
    assert_eq!(
        tree(&dir.join("current/repository")),
        tree(&f.site().repo.root)
    );
}

fn kill_anywhere_in_backup_and_prune(f: &mut Fixture, cfg: BackupConfig) {
    let cfg = BackupConfig {
        keep: 3,
        check_percent: 0.0,
        ..cfg
    };
    let site = f.site().clone();
    let port = site.db.port();
    let target_dir = cfg.target.clone();
    let mut rng = rand::rng();
    let next_command =
        |f: &Fixture| holdfast_backup::resume_scheduler(&cfg, &f.sched, Some(f.site())).unwrap();

    // Backups: each kill lands somewhere in a whole run's length (the quickest of three: on a
    // loaded machine one slow run would put most kills after the end).
    let mut whole = (0..3).map(|_| run_whole("backup", f, &cfg)).min().unwrap();
    let (mut hits, mut i) = (0, 0);
    // At least 20 kills, and on until 12 landed inside a run: runs get quicker as the other
    // tests of this file end, and a kill after a run's end shortens the window to it; every
    // fifth kill the window is a whole run's again (runs grow with the uploads), so the late
    // steps (commit, prune) stay in reach.
    while i < 20 || (hits < 12 && i < 60) {
        if i % 5 == 0 {
            f.add_uploads(1); // new files to copy, not only links
            if i > 0 {
                whole = run_whole("backup", f, &cfg);
            }
        }
        let at = Duration::from_millis(rng.random_range(0..whole.as_millis().max(2) as u64));
        if kill_during("backup", f, &cfg, at) {
            hits += 1;
        } else {
            whole = whole.min(at.max(Duration::from_millis(50)));
        }
        assert_no_leftovers(&target_dir, port);
        next_command(f);
        assert!(
            f.standin.is_running(),
            "scheduler running after the next command (kill {i} at {at:?})"
        );
        assert_snapshots_whole(&cfg);
        i += 1;
    }
    assert!(
        hits >= 12,
        "kills landed inside a run: {hits}/{i} (window at the end {whole:?})"
    );
    run_whole("backup", f, &cfg);
    assert!(assert_snapshots_whole(&cfg) >= 2);

    // Prunes: many snapshots, each removal killed somewhere.
    let big = BackupConfig {
        keep: 12,
        ..cfg.clone()
    };
    for _ in 0..6 {
        run_whole("backup", f, &big);
    }
    let small = BackupConfig {
        keep: 2,
        ..cfg.clone()
    };
    for i in 0..20 {
        let at = Duration::from_millis(rng.random_range(0..60));
        kill_during("prune", f, &small, at);
        let n = assert_snapshots_whole(&cfg);
        if n <= 2 && i % 4 == 3 {
            for _ in 0..3 {
                run_whole("backup", f, &big);
            }
        }
    }
    // Whatever a killed prune renamed aside is gone after the next run.
    run_whole("backup", f, &cfg);
    assert!(!std::fs::read_dir(&target_dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(layout::PRUNING)));
}

#[test]
fn kill_9_anywhere_in_restore() {
    let f = fixture(2, Behaviour::default(), 30);
    let cfg = BackupConfig {
        check_percent: 0.0,
        ..f.cfg.clone()
    };
    let site = f.site().clone();
    let port = site.db.port();
    let target_dir = f.target_dir().display().to_string();
    let mut rng = rand::rng();
    let next_command =
        |f: &Fixture| holdfast_backup::resume_scheduler(&cfg, &f.sched, Some(f.site())).unwrap();
    run_whole("backup", &f, &cfg);

    // Restores of the live site.
    let want = row_counts(&site);
    let whole = run_whole("restore", &f, &cfg);
    let mut half = 0;
    for i in 0..20 {
        let at = Duration::from_millis(rng.random_range(0..whole.as_millis() as u64 + 100));
        kill_during("restore", &f, &cfg, at);
        assert_no_leftovers(&target_dir, port);
        let msg = next_command(&f);
        match holdfast_site::restoring::restoring(&site) {
            Some(_) => {
                half += 1;
                // Never called whole, never backed up, scheduler kept stopped on purpose.
                assert!(holdfast_backup::refuse_if_restoring(&site).is_err());
                let e = backup(&site, "s", &f.sched, &cfg).unwrap_err().to_string();
                assert!(e.contains("did not finish"), "{e}");
                if let Some(m) = msg {
                    assert!(m.contains("stays stopped"), "{m}");
                }
                // The operator's way out: restore again, to the end.
                run_whole("restore", &f, &cfg);
                next_command(&f);
            }
            None => {
                let mut c = site.connect().unwrap();
                let v = holdfast_site::db::verify(&mut c, &site.repo, None).unwrap();
                assert!(v.is_whole(), "kill {i}: a site without marker is whole");
                assert_eq!(row_counts(&site), want, "kill {i}");
            }
        }
        assert!(holdfast_site::restoring::restoring(&site).is_none());
        assert!(
            f.standin.is_running(),
            "scheduler running after restore kill {i}"
        );
    }
    eprintln!("restore kills that left a half site (then refused): {half}/20");
}

#[test]
fn pool_garbage_collection_over_ssh_keeps_what_kept_snapshots_list() {
    let mut f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let remote_dir = f.dir.path().join("remote");
    let mut cfg = f.cfg.clone();
    cfg.layout = LayoutKind::Pool;
    cfg.keep = 2;
    cfg.check_percent = 0.0;
    over_ssh(&mut cfg, &sshd, &remote_dir);
    let site = f.site().clone();
    let target = cfg.target().unwrap();
    backup(&site, "s", &f.sched, &cfg).unwrap();
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    f.add_uploads(1);

    // A kept snapshot whose list cannot be read: garbage collection must delete nothing.
    let snaps = layout::snapshots(&target).unwrap();
    let list = remote_dir.join(&snaps[1].name).join(layout::FILE_LIST);
    let good = std::fs::read(&list).unwrap();
    std::fs::write(&list, b"not gzip").unwrap();
    let pool = remote_dir.join("pool");
    let at = |p: &str| pool.join(holdfast_store::objects::object_rel(p));
    let before = walk_count(&pool);
    assert!(holdfast_store::pool::collect_garbage(&target).is_err());
    assert_eq!(
        walk_count(&pool),
        before,
        "nothing deleted when a list is unreadable"
    );
    std::fs::write(&list, &good).unwrap();
    // A file no snapshot lists: what a run killed before its commit sent (it left
    // `.partial`), of an upload deleted before the next night. Only such a run leaves files
    // no list names, so the next run marks the pool for a whole sweep at its prune.
    let junk = pool.join("paths/localhost/files/zz/zz/zz/junk");
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, b"junk").unwrap();
    std::fs::create_dir_all(remote_dir.join(".partial")).unwrap();

    // Now prune for real (a third snapshot pushes the first out) and check every file of
    // every kept snapshot is still in the pool.
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let kept = layout::snapshots(&target).unwrap();
    assert_eq!(kept.len(), 2);
    for s in &kept {
        for p in holdfast_store::pool::read_list(&target, &s.name).unwrap() {
            assert!(at(&p).is_file(), "{p} of kept {} was deleted", s.name);
        }
        let r = content::verify_snapshot(&target, s, &VerifyOptions::default()).unwrap();
        assert!(r.is_ok(), "{}: {:?}", s.name, r.bad);
    }
    // And the collection did run: nothing unlisted is left.
    // One object for all the names of a content.
    let listed: std::collections::HashSet<String> = kept
        .iter()
        .flat_map(|s| holdfast_store::pool::read_list(&target, &s.name).unwrap())
        .map(|p| holdfast_store::objects::object_rel(&p))
        .collect();
    assert_eq!(walk_count(&pool), listed.len());
    assert!(!junk.exists());
    assert!(
        !remote_dir.join(".pool-sweep-due").exists(),
        "the sweep is done: the next prunes read only what they drop"
    );

    // Without a killed run, a prune reads the lists it needs and walks nothing: a file
    // that appeared in the pool by other means stays (no run of ours made it).
    let stray = junk.with_file_name("stray");
    std::fs::write(&stray, b"stray").unwrap();
    f.add_uploads(1);
    backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(stray.exists());
    for s in &layout::snapshots(&target).unwrap() {
        for p in holdfast_store::pool::read_list(&target, &s.name).unwrap() {
            assert!(at(&p).is_file(), "{p} of kept {} was deleted", s.name);
        }
    }
}

fn walk_count(dir: &std::path::Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .count()
}

/// The backend that was creating the site database for a restore killed meanwhile does not
/// die with its psql: PostgreSQL finishes the statement on its own. The next restore must not
/// trip over it ("database already exists"). Another session holds template0 locked so the
/// orphan is still at work when the next restore begins.
#[test]
fn restore_killed_while_postgres_creates_the_database() {
    let f = fixture(2, Behaviour::default(), 30);
    let cfg = BackupConfig {
        check_percent: 0.0,
        ..f.cfg.clone()
    };
    let site = f.site().clone();
    run_whole("backup", &f, &cfg);
    let want = row_counts(&site);

    let mut holder = f.scratch.cluster.superuser_client().unwrap();
    let mut watch = f.scratch.cluster.superuser_client().unwrap();
    // CREATE DATABASE ... TEMPLATE template0 waits for this lock until the rollback.
    holder
        .batch_execute("BEGIN; ALTER DATABASE template0 RENAME TO held_template0")
        .unwrap();
    let creating = |watch: &mut postgres::Client| -> Vec<i32> {
        watch
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE %' \
                 AND wait_event_type = 'Lock' ORDER BY pid",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let wait_for = |watch: &mut postgres::Client, what: &str, ok: &dyn Fn(&[i32]) -> bool| {
        let t = Instant::now();
        loop {
            let pids = creating(watch);
            if ok(&pids) {
                return pids;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "no {what}: {pids:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let mut child = spawn("restore", &f, &cfg);
    let orphan = wait_for(&mut watch, "CREATE DATABASE waiting", &|p| p.len() == 1)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_no_leftovers(&f.target_dir().display().to_string(), site.db.port());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        creating(&mut watch),
        vec![orphan],
        "the orphan backend lives on"
    );

    let next = std::thread::scope(|s| {
        let next = s.spawn(|| {
            child_command("restore", &f, &cfg)
                .arg("--nocapture")
                .output()
                .unwrap()
        });
        wait_for(&mut watch, "second CREATE DATABASE", &|p| {
            p.iter().any(|&pid| pid != orphan)
        });
        holder.batch_execute("ROLLBACK").unwrap();
        next.join().unwrap()
    });
    assert!(
        next.status.success(),
        "the next restore failed: {}",
        String::from_utf8_lossy(&next.stderr)
    );
    let mut c = site.connect().unwrap();
    let v = holdfast_site::db::verify(&mut c, &site.repo, None).unwrap();
    assert!(v.is_whole());
    assert_eq!(row_counts(&site), want);
    assert!(holdfast_site::restoring::restoring(&site).is_none());
}
