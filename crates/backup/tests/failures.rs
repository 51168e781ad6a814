//! What happens when things go wrong: a SIGKILL in the middle of the copy, a dump that fails,
//! a scheduler that will not stop, an unreachable target, a wrong database password.

mod common;

use common::*;
use holdfast_backup::{backup, BackupConfig};
use holdfast_sandbox::standin::Behaviour;
use holdfast_site::scheduler::SchedulerConfig;
use holdfast_store::layout;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Runs one backup in a separate process (see `sigkill_during_the_copy_...`).
#[test]
#[ignore = "helper run by another test in a child process"]
fn child_backup() {
    let Ok(spec) = std::env::var("HOLDFAST_TEST_CHILD") else {
        return;
    };
    // As the binary does: SIGTERM and Ctrl-C become a flag the backup polls.
    holdfast_site::interrupt::install();
    let (conf_dir, cfg, sched): (String, BackupConfig, SchedulerConfig) =
        serde_json::from_str(&spec).unwrap();
    let site = holdfast_site::Site::open(Some(std::path::Path::new(&conf_dir))).unwrap();
    backup(&site, "child", &sched, &cfg).unwrap();
}

/// Starts `child_backup` with `cfg` in its own process group and returns once it is copying
/// the repository (its `.partial` snapshot has the gold folder).
fn start_copying_backup(f: &Fixture, cfg: &BackupConfig) -> std::process::Child {
    let conf_dir = f.site().conf_dir.display().to_string();
    let spec = serde_json::to_string(&(conf_dir, cfg, &f.sched)).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_backup", "--test-threads=1"])
        .env("HOLDFAST_TEST_CHILD", spec)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial_repo = f.target_dir().join(".partial/repository/localhost/gold");
    let until = Instant::now() + Duration::from_secs(30);
    while !partial_repo.exists() {
        assert!(
            Instant::now() < until,
            "the child backup never started copying"
        );
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn sigkill_during_the_copy_keeps_the_last_snapshot_and_the_next_run_completes() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let first = backup(&site, "s", &f.sched, &f.cfg).unwrap();
    // 24 MB of new data, copied at 4 MB/s: the kill lands mid-copy.
    let big = site.repo.root.join("localhost/gold/ff/ff/ff/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut data = vec![0u8; 24 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::write(&big, &data).unwrap();
    let mut slow = f.cfg.clone();
    slow.rsync_args = vec!["--bwlimit=4000".into()];
    // A walk night: no row names `big`, so a database night would not copy it and could end
    // before the kill.
    slow.full_walk_days = 0;
    let mut child = start_copying_backup(&f, &slow);
    std::thread::sleep(Duration::from_millis(1500));
    // The plug is pulled: holdfast and its rsync die at once.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    let target = f.cfg.target().unwrap();
    let snaps = layout::snapshots(&target).unwrap();
    assert_eq!(snaps.len(), 1, "nothing half-made is visible");
    assert_eq!(snaps[0].name, "current");
    // (Timings are floats: JSON does not promise their last digit back.)
    let untimed = |m: &holdfast_store::Manifest| holdfast_store::Manifest {
        timings: Default::default(),
        ..m.clone()
    };
    assert_eq!(
        untimed(&snaps[0].manifest),
        untimed(&first.manifest),
        "the last good snapshot is untouched"
    );
    assert!(!f
        .target_dir()
        .join("current/repository/localhost/gold/ff")
        .exists());
    assert!(f.target_dir().join(".partial").exists());
    assert!(!f.target_dir().join(".partial/manifest.json").exists());

    // The next run resumes and completes.
    let next = backup(&site, "s", &f.sched, &f.cfg).unwrap();
    let snaps = layout::snapshots(&target).unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(untimed(&snaps[1].manifest), untimed(&next.manifest));
    assert!(!f.target_dir().join(".partial").exists());
    let copied = f
        .target_dir()
        .join("current/repository/localhost/gold/ff/ff/ff/big");
    assert_eq!(std::fs::read(copied).unwrap(), data);
    assert!(
        f.standin.is_running(),
        "scheduler running after the completed run"
    );
}

#[test]
fn scheduler_is_restarted_after_a_failed_dump_and_nothing_is_shown() {
    let f = fixture(1, Behaviour::default(), 30);
    let mut cfg = f.cfg.clone();
    cfg.pg_dumpall = "false".into();
    let e = backup(f.site(), "s", &f.sched, &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pg_dumpall failed"), "{e}");
    assert_eq!(
        f.standin.starts(),
        2,
        "started by the fixture, then again after the failure"
    );
    assert!(f.standin.is_running());
    assert!(layout::snapshots(&cfg.target().unwrap())
        .unwrap()
        .is_empty());
    let ended = holdfast_stoney::parse::backup_ended(
        &std::fs::read_to_string(f.target_dir().join(".sepiola_backup/backupEnded.xml")).unwrap(),
    )
    .unwrap();
    assert!(!ended.success);
}

/// The server's `rsync`, first on its PATH: `on_dump` runs before it takes the dump (its
/// destination the snapshot's `db/` folder); everything else goes to the real one.
fn server_rsync(
    f: &Fixture,
    name: &str,
    on_dump: &str,
) -> (holdfast_testkit::sshd::Sshd, BackupConfig) {
    let path_first = holdfast_testkit::sshd::tool_first(
        &f.dir.path().join(name),
        "rsync",
        &format!(
            "for a; do last=$a; done\ncase $last in */db/) {on_dump};; esac\n\
             PATH=/usr/local/bin:/usr/bin:/bin exec rsync \"$@\"\n"
        ),
    )
    .unwrap();
    let sshd = holdfast_testkit::sshd::Sshd::start_with(
        &f.dir.path().join(format!("sshd-{name}")),
        &path_first,
    )
    .unwrap();
    let mut cfg = f.cfg.clone();
    over_ssh(
        &mut cfg,
        &sshd,
        &f.dir.path().join(format!("remote-{name}")),
    );
    cfg.dump_spool = f.dir.path().join(format!("spool-{name}"));
    std::fs::create_dir_all(&cfg.dump_spool).unwrap();
    (sshd, cfg)
}

/// A dump spooled here is sent as soon as it is whole, but FOSSology never waits for it:
/// the server below takes the dump only once the scheduler has started again (and gives
/// up after a minute), so a start that waited for the send would fail the backup.
#[test]
fn the_scheduler_starts_without_waiting_for_the_dump_to_be_sent() {
    let f = fixture(1, Behaviour::default(), 30);
    let starts = f
        .dir
        .path()
        .join("standin")
        .canonicalize()
        .unwrap()
        .join("starts");
    let wait = format!(
        "i=0; while [ $(cat {} 2>/dev/null | wc -l) -lt 2 ]; do \
         i=$((i+1)); if [ $i -gt 600 ]; then echo 'the dump came before the start' >&2; exit 12; fi; \
         sleep 0.1; done",
        starts.display()
    );
    let (_sshd, cfg) = server_rsync(&f, "waits", &wait);
    let out = backup(f.site(), "s", &f.sched, &cfg).unwrap();
    assert_eq!(
        f.standin.starts(),
        2,
        "started by the fixture, then by the backup"
    );
    let db = &out.manifest.database;
    assert_eq!(db.sent_by.as_deref(), Some("rsync"));
    assert!(db.sent_bytes > 0);
    // The dump the manifest vouches for is the one on the server.
    let (_, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(std::fs::read_dir(&cfg.dump_spool).unwrap().count(), 0);
}

/// A backup server that refuses the dump (its disk full as the dump arrives) fails the
/// backup: FOSSology runs again, no snapshot is shown, and the spooled dump is not left here.
#[test]
fn a_dump_the_backup_server_refuses_fails_the_backup_and_nothing_is_shown() {
    let f = fixture(1, Behaviour::default(), 30);
    let (_sshd, cfg) = server_rsync(
        &f,
        "full",
        "echo 'rsync: [receiver] write failed: No space left on device (28)' >&2; exit 11",
    );
    let e = backup(f.site(), "s", &f.sched, &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("database dump"), "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    assert!(f.standin.is_running());
    assert_eq!(
        f.standin.starts(),
        2,
        "started by the fixture, then after the failure"
    );
    assert!(layout::snapshots(&cfg.target().unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(std::fs::read_dir(&cfg.dump_spool).unwrap().count(), 0);
}

/// A dump cut off after megabytes of output (the connection lost mid-way): the output read
/// ahead of the encoder is not taken for a dump.
#[test]
fn a_dump_cut_off_midway_fails_and_nothing_is_shown() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture(1, Behaviour::default(), 30);
    let tool = f.dir.path().join("pg_dumpall-cut-off");
    std::fs::write(
        &tool,
        "#!/bin/sh\nhead -c 8000000 /dev/urandom\n\
         echo 'pg_dumpall: error: connection to server lost' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = f.cfg.clone();
    cfg.pg_dumpall = tool.display().to_string();
    let e = backup(f.site(), "s", &f.sched, &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pg_dumpall failed"), "{e}");
    assert!(e.contains("connection to server lost"), "{e}");
    assert!(f.standin.is_running());
    assert!(layout::snapshots(&cfg.target().unwrap())
        .unwrap()
        .is_empty());
}

/// A live restore that cannot stop the scheduler leaves the site as it was: not marked half
/// restored (backup, verify and serve would refuse it, and "run restore again" would drop
/// a database that was never touched), its database and repository untouched.
#[test]
fn a_restore_that_cannot_stop_the_scheduler_leaves_the_site_unmarked() {
    let f = fixture(
        1,
        Behaviour {
            refuse_stop: true,
            ..Default::default()
        },
        2,
    );
    // Online: a snapshot made without stopping the scheduler.
    let cfg = BackupConfig {
        online: true,
        ..f.cfg.clone()
    };
    backup(f.site(), "s", &f.sched, &cfg).unwrap();
    let (before, _) = tree(&f.site().repo.root);
    let e = holdfast_backup::restore(
        f.site(),
        &f.sched,
        &cfg,
        &Default::default(),
        &holdfast_backup::RestoreOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("still running"), "{e}");
    assert!(holdfast_site::restoring::restoring(f.site()).is_none());
    let uploads: i64 = f
        .site()
        .connect()
        .unwrap()
        .query_one("SELECT count(*) FROM upload", &[])
        .unwrap()
        .get(0);
    assert!(uploads >= 1);
    assert_eq!(tree(&f.site().repo.root).0, before);
    // And the site can be backed up as before.
    backup(f.site(), "s", &f.sched, &cfg).unwrap();
}

#[test]
fn a_scheduler_that_refuses_to_stop_abandons_the_backup() {
    let f = fixture(
        1,
        Behaviour {
            refuse_stop: true,
            ..Default::default()
        },
        2,
    );
    let e = backup(f.site(), "s", &f.sched, &f.cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("still running"), "{e}");
    assert!(
        e.contains(&f.standin.scheduler_name),
        "names what still runs: {e}"
    );
    assert!(!e.contains('\n'));
    // It never stopped: no second one is started beside it (the real one would die on its
    // port), and it still runs.
    assert_eq!(
        f.standin.starts(),
        1,
        "a scheduler started beside a running one"
    );
    assert!(f.standin.is_running());
    assert!(layout::snapshots(&f.cfg.target().unwrap())
        .unwrap()
        .is_empty());
    // The pre-copy ran before the stop: it waits in .partial (no manifest, so no snapshot)
    // for the next run to copy into.
    assert!(!f.target_dir().join(".partial/manifest.json").exists());
}

#[test]
fn unreachable_target_and_wrong_password_fail_before_the_scheduler_stops() {
    let f = fixture(1, Behaviour::default(), 30);
    let mut cfg = f.cfg.clone();
    let port = holdfast_sandbox::cluster::free_port();
    cfg.target = format!("ssh://root@127.0.0.1:{port}/srv/backup");
    let e = backup(f.site(), "s", &f.sched, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unreachable") && e.contains(&format!("127.0.0.1:{port}")),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");

    let mut site = f.site().clone();
    site.db.params.insert("password".into(), "wrong".into());
    let e = backup(&site, "s", &f.sched, &f.cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(e.contains("Db.conf"), "names the file to fix: {e}");
    assert!(!e.contains("wrong"), "never prints the password: {e}");
    assert!(!e.contains('\n'), "one line: {e}");

    assert!(
        !f.standin.dir.join("stops").exists(),
        "scheduler never stopped"
    );
    assert_eq!(f.standin.starts(), 1);
}

#[test]
fn sigterm_during_the_copy_restarts_the_scheduler_and_shows_nothing() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let big = site.repo.root.join("localhost/gold/fe/fe/fe/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::write(&big, vec![7u8; 16 << 20]).unwrap();
    let mut slow = f.cfg.clone();
    slow.rsync_args = vec!["--bwlimit=2000".into()];
    // Stop-for-everything: the copy runs with the scheduler stopped.
    slow.precopy = false;
    let mut child = start_copying_backup(&f, &slow);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.standin.starts(), 1);
    assert!(!f.standin.is_running(), "stopped for the backup");
    // SIGTERM to holdfast alone, as systemd or kill(1) would send it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted backup fails");
    assert_eq!(
        f.standin.starts(),
        2,
        "scheduler started again on the way out"
    );
    assert!(f.standin.is_running());
    assert!(layout::snapshots(&f.cfg.target().unwrap())
        .unwrap()
        .is_empty());
    assert!(!f.target_dir().join(".partial/manifest.json").exists());
    let ended = holdfast_stoney::parse::backup_ended(
        &std::fs::read_to_string(f.target_dir().join(".sepiola_backup/backupEnded.xml")).unwrap(),
    )
    .unwrap();
    assert!(!ended.success);
}

#[test]
fn sigterm_during_the_precopy_leaves_the_scheduler_running() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let big = site.repo.root.join("localhost/gold/fe/fe/fe/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::write(&big, vec![7u8; 16 << 20]).unwrap();
    let mut slow = f.cfg.clone();
    slow.rsync_args = vec!["--bwlimit=2000".into()];
    let mut child = start_copying_backup(&f, &slow);
    std::thread::sleep(Duration::from_millis(500));
    assert!(f.standin.is_running(), "the pre-copy runs beside FOSSology");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(!f.standin.dir.join("stops").exists(), "never stopped");
    assert_eq!(f.standin.starts(), 1);
    assert!(f.standin.is_running());
    assert!(layout::snapshots(&f.cfg.target().unwrap())
        .unwrap()
        .is_empty());
}
