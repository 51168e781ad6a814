//! Online mode: the scheduler is never stopped; the dump comes from an exported snapshot and
//! the repository copy is made to match it. And the busy drill: with agents writing and
//! deleting files and rows all through the backup, every mode restores to a whole site.

mod common;

use common::*;
use holdfast_backup::{backup, RestoreOptions};
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::LayoutKind;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A folder the PostgreSQL tools' OS user may use too (they run as `postgres` under root).
fn shared_dir(f: &Fixture, name: &str) -> PathBuf {
    let d = f.dir.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    // The test's folder may be entered (not written: the lock file lives there).
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A `pg_dump` that, once the real one has read the snapshot, lets the test act (the
/// site changing after the snapshot point, before the copy) and waits until it has.
fn pg_dump_hook(dir: &Path) -> String {
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v pg_dump"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let hook = dir.join("pg_dump");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit $?\ntouch {d}/dumped\nfor i in $(seq 1 100); do [ -e {d}/go ] && exit 0; sleep 0.1; done\nexit 1\n",
            real.trim(),
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook.display().to_string()
}

fn wait_for(path: &Path, gave_up: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        if gave_up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn restore_into(
    f: &Fixture,
    cfg: &holdfast_backup::BackupConfig,
    name: &str,
) -> holdfast_backup::RestoreOutcome {
    let opts = RestoreOptions {
        scratch: Some(f.dir.path().join(name)),
        dbname: Some(format!("restored_{name}")),
        ..Default::default()
    };
    holdfast_backup::restore(f.site(), &f.sched, cfg, &Default::default(), &opts).unwrap()
}

#[test]
fn online_backup_matches_its_snapshot_without_stopping_the_scheduler() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let mut cfg = f.cfg.clone();
    cfg.online = true;
    let first = backup(&site, "s", &f.sched, &cfg).unwrap();
    assert!(first.missing.is_empty(), "{:?}", first.missing);
    assert!(first.manifest.online.is_some());

    // An agent at work when the next snapshot is taken.
    let mut c = site.connect().unwrap();
    let running: i32 = c
        .query_one(
            "WITH j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ('x', 1, 1) RETURNING job_pk) \
             INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) SELECT job_pk, 'nomos', '1', now() FROM j RETURNING jq_pk",
            &[],
        )
        .unwrap()
        .get(0);

    // After the snapshot point, before the copy: the delete agent removes an upload's gold
    // (its rows, in the dump, still name it), and an agent has half written a new file.
    let (old, _) = tree(&root);
    let gold = old.keys().find(|p| p.contains("/gold/")).unwrap().clone();
    let half = Path::new(&gold)
        .parent()
        .unwrap()
        .join("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.1000")
        .display()
        .to_string();
    let hooks = shared_dir(&f, "hooks");
    cfg.pg_dump = pg_dump_hook(&hooks);
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| backup(&site, "s", &f.sched, &cfg));
        wait_for(&hooks.join("dumped"), || run.is_finished());
        if run.is_finished() {
            panic!("{:?}", run.join().unwrap().err());
        }
        std::fs::remove_file(root.join(&gold)).unwrap();
        std::fs::write(root.join(&half), vec![b'x'; 500]).unwrap();
        std::fs::write(hooks.join("go"), "").unwrap();
        run.join().unwrap().unwrap()
    });

    // The scheduler was never asked to stop, nor started again.
    assert!(
        f.standin.requests().is_empty(),
        "{:?}",
        f.standin.requests()
    );
    assert_eq!(f.standin.starts(), 1);
    assert!(f.standin.is_running());
    let m = &out.manifest;
    assert_eq!(m.timings.downtime_secs, 0.0);
    assert_eq!(m.timings.quiesce_secs, 0.0);
    let online = m.online.as_ref().unwrap();
    assert_eq!(online.from_earlier, vec![gold.clone()]);
    assert!(online.left_out.contains(&half), "{online:?}");
    assert!(online.running.iter().any(|r| r.jq_pk == running));
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let snap = f.target_dir().join("current/repository");
    assert!(
        snap.join(&gold).is_file(),
        "deleted gold taken from the earlier snapshot"
    );
    assert!(!snap.join(&half).exists(), "half-written file left out");

    // The snapshot restores whole; the job cut off at the snapshot point is not ended in
    // the restored queue, so FOSSology's scheduler (--reset) runs it again.
    let r = restore_into(&f, &cfg, "online");
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    assert!(r.repo_root.join(&gold).is_file());
    let restored = holdfast_site::Site::open(Some(r.conf_dir.as_path())).unwrap();
    let mut rc = restored.connect().unwrap();
    let row = rc
        .query_one(
            "SELECT jq_starttime IS NOT NULL, jq_endtime IS NULL FROM jobqueue WHERE jq_pk = $1",
            &[&running],
        )
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, bool>(1)), (true, true));
    let cut: Vec<i32> = holdfast_site::db::unfinished_jobs(&mut rc)
        .unwrap()
        .iter()
        .map(|r| r.jq_pk)
        .collect();
    assert!(cut.contains(&running));
    // The roles came with the dump: the restored database is owned as the site's is.
    assert_eq!(m.database.owner, "fossy");
}

/// Online over a real sshd: a file the dump names that the delete agent removed after the
/// snapshot point is found in the earlier snapshot on the backup server (a rolling snapshot
/// gets a hard link to it by one script there; a pool snapshot lists the pool's copy), and
/// the snapshot restores whole from the server.
#[test]
fn a_file_deleted_after_the_snapshot_point_comes_from_the_server_over_ssh() {
    let f = fixture(2, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let site = f.site().clone();
    let root = site.repo.root.clone();
    let (files, _) = tree(&root);
    let golds: Vec<String> = files
        .keys()
        .filter(|p| p.contains("/gold/"))
        .cloned()
        .collect();
    assert!(!golds.is_empty());
    let layouts = [("rolling", LayoutKind::Rolling), ("pool", LayoutKind::Pool)];
    for (i, (name, kind)) in layouts.into_iter().enumerate() {
        let remote = f.dir.path().join(format!("remote-{name}"));
        let mut cfg = f.cfg.clone();
        cfg.online = true;
        cfg.layout = kind;
        over_ssh(&mut cfg, &sshd, &remote);
        let first = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert!(first.missing.is_empty(), "{name}: {:?}", first.missing);

        let gold = golds[i % golds.len()].clone();
        let kept = std::fs::read(root.join(&gold)).unwrap();
        let hooks = shared_dir(&f, &format!("hooks-{name}"));
        cfg.pg_dump = pg_dump_hook(&hooks);
        let out = std::thread::scope(|s| {
            let run = s.spawn(|| backup(&site, "s", &f.sched, &cfg));
            wait_for(&hooks.join("dumped"), || run.is_finished());
            if run.is_finished() {
                panic!("{name}: {:?}", run.join().unwrap().err());
            }
            std::fs::remove_file(root.join(&gold)).unwrap();
            std::fs::write(hooks.join("go"), "").unwrap();
            run.join().unwrap().unwrap()
        });
        let online = out.manifest.online.as_ref().unwrap();
        assert_eq!(online.from_earlier, vec![gold.clone()], "{name}");
        assert!(out.missing.is_empty(), "{name}: {:?}", out.missing);
        assert!(!root.join(&gold).exists());
        // On the server: in the new snapshot itself, a hard link to the earlier copy (nothing
        // sent again), or in the pool the new snapshot's list names.
        let target = cfg.target().unwrap();
        let snapshot = holdfast_store::layout::find(&target, None).unwrap();
        let listed = holdfast_store::Store::snapshot_files(&target, &snapshot).unwrap();
        assert!(listed.contains(&gold), "{name}: not in {}", snapshot.name);
        let held = if kind == LayoutKind::Pool {
            remote
                .join("pool")
                .join(holdfast_store::objects::object_rel(&gold))
        } else {
            // Every snapshot's copy is one inode: linked, not sent again.
            let inodes: BTreeSet<u64> = std::fs::read_dir(&remote)
                .unwrap()
                .flatten()
                .map(|e| e.path().join("repository").join(&gold))
                .filter(|p| p.is_file())
                .map(|p| std::fs::metadata(p).unwrap().ino())
                .collect();
            assert_eq!(inodes.len(), 1, "{name}: {inodes:?}");
            remote.join("current/repository").join(&gold)
        };
        assert_eq!(std::fs::read(&held).ok().as_ref(), Some(&kept), "{name}");

        // Restored from the server, the site is whole, the deleted gold included.
        let r = restore_into(&f, &cfg, name);
        assert!(
            r.is_whole(),
            "{name}: {:?} {:?}",
            r.verify.missing,
            r.damaged
        );
        assert_eq!(std::fs::read(r.repo_root.join(&gold)).unwrap(), kept);
        // The agent's deletion undone for the next layout's first snapshot.
        std::fs::write(root.join(&gold), &kept).unwrap();
    }
}

/// The upload still names its gold file (delagent leaves a deleted upload's row without it).
fn upload_exists(site: &holdfast_site::Site, upload: i32) -> bool {
    site.connect()
        .unwrap()
        .query_one(
            "SELECT count(*) FROM upload WHERE upload_pk = $1 AND pfile_fk IS NOT NULL",
            &[&upload],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

/// The upload's rows are gone within 10 s (its delete agent pauses between files and rows).
fn upload_gone_soon(site: &holdfast_site::Site, upload: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while upload_exists(site, upload) {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn busy_uploads(site: &holdfast_site::Site) -> i64 {
    site.connect()
        .unwrap()
        .query_one(
            "SELECT count(*) FROM upload WHERE upload_origin = 'busy' AND pfile_fk IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0)
}

/// The upload and job rows of the uploads `refs` name, for a failure's message.
fn upload_state(site: &holdfast_site::Site, refs: &[holdfast_site::db::Reference]) -> String {
    let ups: Vec<i32> = holdfast_site::db::uploads_of(refs);
    let mut c = site.connect().unwrap();
    let rows = c
        .query(
            "SELECT u.upload_pk::text || ' origin=' || coalesce(u.upload_origin, '-') || ' pfile=' \
             || coalesce(u.pfile_fk::text, 'NULL') || ' expire=' || coalesce(u.expire_action, '-') \
             || ' jobs=' || coalesce((SELECT string_agg(jq.jq_type || ':' || coalesce(jq.jq_args, '') \
                || ' start=' || coalesce(jq.jq_starttime::text, '-') || ' end=' \
                || coalesce(jq.jq_endtime::text, '-') || ' ' || coalesce(jq.jq_endtext, ''), '; ') \
                FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk \
                WHERE j.job_upload_fk = u.upload_pk), '-') \
             FROM upload u WHERE u.upload_pk = ANY($1)",
            &[&ups],
        )
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn every_mode_restores_whole_while_agents_write_and_delete() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let work = holdfast_sandbox::busy::work_script(&site, &f.standin.dir).unwrap();
    f.standin.set_work(&work).unwrap();
    // Busy enough that uploads are deleted as well as added.
    let until = Instant::now() + Duration::from_secs(60);
    while busy_uploads(&site) < 5 {
        assert!(Instant::now() < until, "the busy agents made no uploads");
        std::thread::sleep(Duration::from_millis(200));
    }
    let modes: [(&str, bool, bool); 3] = [
        ("stopped", false, false),
        ("precopy", true, false),
        ("online", true, true),
    ];
    for (name, precopy, online) in modes {
        let mut cfg = f.cfg.clone();
        cfg.precopy = precopy;
        cfg.online = online;
        let requests = f.standin.requests().len();
        let out = backup(&site, "s", &f.sched, &cfg).unwrap();
        assert!(out.scheduler_restarted);
        // Nothing is missing in any mode. Online, the files of an upload being deleted at
        // the snapshot point (delagent's order: files first, rows a moment later), or deleted
        // after it before the copy reached them, are set aside as being deleted: such an
        // upload is deleted on the site once its delete agent's last step has run (a moment
        // after the backup on a loaded machine). A stop lets the agents finish their unit.
        assert!(
            out.missing.is_empty(),
            "{name}: {:?}\nthose uploads now: {}",
            out.missing,
            upload_state(&site, &out.missing)
        );
        let m = &out.manifest;
        assert!(
            m.repository
                .being_deleted
                .iter()
                .all(|r| online && upload_gone_soon(&site, r.upload_fk)),
            "{name}: {:?}",
            m.repository.being_deleted
        );
        eprintln!(
            "{name}: {} files, downtime {:.2} s, total {:.2} s, online {:?}",
            m.repository.files,
            m.timings.downtime_secs,
            m.timings.total_secs,
            m.online
                .as_ref()
                .map(|o| (o.running.len(), &o.from_earlier, &o.recopied, &o.left_out))
        );
        if online {
            assert_eq!(
                f.standin.requests().len(),
                requests,
                "online mode stopped the scheduler"
            );
            assert_eq!(m.timings.downtime_secs, 0.0);
        } else {
            assert!(m.timings.downtime_secs > 0.0, "{name}");
        }
        let r = restore_into(&f, &cfg, name);
        assert!(
            r.is_whole(),
            "{name}: missing {:?}, damaged {:?}",
            r.verify.missing,
            r.damaged
        );
        // The snapshot holds the busy agents' work, not just the quiet uploads.
        let restored = holdfast_site::Site::open(Some(r.conf_dir.as_path())).unwrap();
        assert!(busy_uploads(&restored) > 0, "{name}");
        // The agents are still at it.
        assert!(f.standin.is_running(), "{name}");
    }
    f.standin.clear_work();
}

/// An upload deleted after the snapshot point, whose files go before the copy reaches them
/// and which no earlier snapshot holds: not missing data (it was deleted on purpose). The
/// backup succeeds, and its restore queues the deletion again, so the restored site is whole.
#[test]
fn an_upload_deleted_after_the_snapshot_point_is_deleted_again_by_the_restore() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.online = true;
    let hooks = shared_dir(&f, "hooks");
    cfg.pg_dump = pg_dump_hook(&hooks);
    let mut c = site.connect().unwrap();
    let doomed: i32 = c
        .query_one("SELECT max(upload_pk) FROM upload", &[])
        .unwrap()
        .get(0);
    let refs = holdfast_site::db::references(&mut c, Some(doomed)).unwrap();
    assert!(refs.len() >= 2, "{refs:?}");
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| backup(&site, "s", &f.sched, &cfg));
        wait_for(&hooks.join("dumped"), || run.is_finished());
        if run.is_finished() {
            panic!("{:?}", run.join().unwrap().err());
        }
        // delagent, whole: its row started, the files, then the rows and its end.
        let jq: i32 = c
            .query_one(
                "WITH j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ('Delete', $1, 1) RETURNING job_pk) \
                 INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) \
                 SELECT job_pk, 'delagent', 'DELETE UPLOAD ' || $1, now() FROM j RETURNING jq_pk",
                &[&doomed],
            )
            .unwrap()
            .get(0);
        for r in &refs {
            for p in site.repo.candidates(&r.kind, &r.name) {
                let _ = std::fs::remove_file(p);
            }
        }
        c.batch_execute(&format!(
            "BEGIN; DELETE FROM uploadtree_a WHERE upload_fk = {doomed}; \
             UPDATE upload SET expire_action = 'd', pfile_fk = NULL WHERE upload_pk = {doomed}; \
             UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = 1 WHERE jq_pk = {jq}; COMMIT"
        ))
        .unwrap();
        std::fs::write(hooks.join("go"), "").unwrap();
        run.join().unwrap().unwrap()
    });
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let m = &out.manifest;
    assert_eq!(m.online.as_ref().unwrap().deleted_after, [doomed]);
    let names = |v: &[holdfast_site::db::Reference]| {
        v.iter()
            .map(|r| (r.kind.clone(), r.pfile_pk))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(names(&m.repository.being_deleted), names(&refs));

    let r = restore_into(&f, &cfg, "after");
    assert!(r.is_whole(), "{:?} {:?}", r.verify.missing, r.damaged);
    assert_eq!(names(&r.verify.being_deleted), names(&refs));
    let restored = holdfast_site::Site::open(Some(r.conf_dir.as_path())).unwrap();
    let queued: i64 = restored
        .connect()
        .unwrap()
        .query_one(
            "SELECT count(*) FROM jobqueue WHERE jq_type = 'delagent' AND jq_args = $1 \
             AND jq_starttime IS NOT NULL AND jq_endtime IS NULL",
            &[&format!("DELETE UPLOAD {doomed}")],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        queued, 1,
        "the deletion is queued again in the restored site"
    );
    // FOSSology's scheduler starts with `--reset`: the row is queued until delagent runs,
    // and the site is still whole meanwhile.
    let mut rc = restored.connect().unwrap();
    rc.batch_execute(
        "UPDATE jobqueue SET jq_starttime = NULL, jq_endtext = NULL, jq_schedinfo = NULL \
         WHERE jq_endtime IS NULL",
    )
    .unwrap();
    let v = holdfast_site::db::verify(&mut rc, &restored.repo, None).unwrap();
    assert!(v.is_whole(), "{:?}", v.missing);
    assert_eq!(names(&v.being_deleted), names(&refs));
}

/// An online backup asks, after its copy, which uploads were deleted since the snapshot
/// point: a deletion that ends while it asks (delagent's rows changed and its job ended in
/// one commit) is seen as deleted or as being deleted, never as neither. Read in two
/// statements, a commit between them hid it and turned a deletion into missing files.
#[test]
fn a_deletion_ending_while_asked_is_seen_either_way() {
    use holdfast_site::db::jobs::uploads_deleted_by_now;
    let f = fixture(1, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut c = site.connect().unwrap();
    let (u, pfile): (i32, i32) = {
        let r = c
            .query_one("SELECT upload_pk, pfile_fk FROM upload LIMIT 1", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    let mut asked = 0;
    for round in 0..150 {
        c.batch_execute(&format!(
            "UPDATE upload SET pfile_fk = {pfile}, expire_action = NULL WHERE upload_pk = {u}"
        ))
        .unwrap();
        let jq: i32 = c
            .query_one(
                "WITH j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) \
                     VALUES ('Delete', $1, 1) RETURNING job_pk) \
                 INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) \
                     SELECT job_pk, 'delagent', 'DELETE UPLOAD ' || $1::int4::text, now() FROM j \
                 RETURNING jq_pk",
                &[&u],
            )
            .unwrap()
            .get(0);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut d = site.connect().unwrap();
                std::thread::sleep(Duration::from_micros(200 * (round % 10)));
                d.batch_execute(&format!(
                    "BEGIN; \
                     UPDATE upload SET expire_action = 'd', pfile_fk = NULL WHERE upload_pk = {u}; \
                     UPDATE jobqueue SET jq_endtime = now(), jq_endtext = 'Completed' WHERE jq_pk = {jq}; \
                     COMMIT"
                ))
                .unwrap();
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            loop {
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                let seen = uploads_deleted_by_now(&mut c, &[u]).unwrap();
                asked += 1;
                assert!(
                    seen.contains(&u),
                    "round {round}: upload {u} deleted, yet not seen so"
                );
                if last {
                    break;
                }
            }
        });
    }
    assert!(asked > 150, "asked only {asked} times");
}
