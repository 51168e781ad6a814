//! The checker finds exactly the files deleted from a real site, and recovery brings them
//! back byte for byte; the queue never runs one upload twice at once; abandoned jobs rerun.

mod common;

use common::*;
use holdfast_recover::{check_repo, recover_now, work_until_idle, RecoveryQueue, RecoveryState};
use holdfast_unpack::UnpackConfig;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn checker_finds_exactly_the_deleted_files_and_recover_restores_them() {
    let f = fixture();
    let (u1, u2, u3) = (f.uploads[0], f.uploads[1], f.uploads[2]);
    let before = snapshot(&f.s);
    // Three files of upload 1 deleted, one of upload 2 truncated (a truncated copy is missing).
    let gone = [
        named(&f.s, u1, "README"),
        named(&f.s, u1, "main.c"),
        named(&f.s, u1, "inner.zip"),
    ];
    for r in &gone {
        std::fs::remove_file(path(&f.s, r)).unwrap();
    }
    let cut = named(&f.s, u2, "COPYING");
    std::fs::write(path(&f.s, &cut), b"truncated").unwrap();

    let mut c = f.s.site.connect().unwrap();
    let checks = check_repo(&mut c, &f.s.site.repo, None).unwrap();
    assert_eq!(checks.len(), 3);
    let c1 = &checks[0];
    assert_eq!(c1.upload_pk, u1);
    let found: BTreeSet<String> = c1.missing.iter().map(|m| m.name.clone()).collect();
    let want: BTreeSet<String> = gone.iter().map(|r| r.name.clone()).collect();
    assert_eq!(found, want, "exactly the deleted files");
    assert_eq!(c1.missing_files, 3);
    assert_eq!(c1.missing_bytes, gone.iter().map(|r| r.size).sum::<u64>());
    assert!(c1.gold_present && c1.recoverable());
    assert_eq!(checks[1].missing_files, 1);
    assert_eq!(checks[1].missing[0].name, cut.name);
    assert!(checks[2].is_whole(), "upload {u3} untouched");

    let q = RecoveryQueue::default();
    let cfg = UnpackConfig::default();
    for u in [u1, u2] {
        let job = recover_now(&f.s.site, &cfg, &q, u, "test").unwrap();
        assert_eq!(job.state, RecoveryState::Done, "{job:?}");
        assert_eq!(job.still_missing, 0);
        assert_eq!(job.attempts, 1);
    }
    let job1 = q.active_for(&mut c, u1).unwrap();
    assert!(job1.is_none(), "no job left active");
    let checks = check_repo(&mut c, &f.s.site.repo, None).unwrap();
    assert!(checks.iter().all(|c| c.is_whole()), "{checks:?}");
    assert_eq!(snapshot(&f.s), before, "every file back, byte for byte");

    // Deleted as FOSSology's delagent deletes (tree rows gone, the upload row kept without
    // its gold): not damage, not listed, not "gold MISSING" for ever.
    c.batch_execute(&format!(
        "DELETE FROM uploadtree_a WHERE upload_fk = {u3};
         UPDATE upload SET expire_action = 'd', expire_date = now(), pfile_fk = NULL
           WHERE upload_pk = {u3};"
    ))
    .unwrap();
    let checks = check_repo(&mut c, &f.s.site.repo, None).unwrap();
    let listed: Vec<i32> = checks.iter().map(|c| c.upload_pk).collect();
    assert_eq!(listed, vec![u1, u2]);
    assert!(checks.iter().all(|c| c.is_whole()), "{checks:?}");
}

#[test]
fn two_requests_for_one_upload_run_it_once() {
    let f = fixture();
    let u = f.uploads[0];
    let victims = refs(&f.s, u);
    for r in &victims {
        let _ = std::fs::remove_file(path(&f.s, r));
    }
    let q = RecoveryQueue::default();
    let mut c = f.s.site.connect().unwrap();
    // Requests from several clients at once: one job.
    let ids: Vec<(i64, bool)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let q = q.clone();
                let site = &f.s.site;
                s.spawn(move || {
                    let mut c = site.connect().unwrap();
                    let (j, created) = q.enqueue(&mut c, u, &format!("client{i}")).unwrap();
                    (j.id, created)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|(id, _)| *id == ids[0].0), "{ids:?}");
    assert_eq!(ids.iter().filter(|(_, c)| *c).count(), 1, "one created");

    // Two workers race for it (a serve worker and a `holdfast recover`): it runs once.
    let cfg = UnpackConfig::default();
    let results: Vec<_> = std::thread::scope(|s| {
        let a = s.spawn(|| work_until_idle(&f.s.site, &cfg, &q, "worker-a").unwrap());
        let b = s.spawn(|| recover_now(&f.s.site, &cfg, &q, u, "cli").unwrap());
        vec![a.join().unwrap() as i64, b.join().unwrap().id]
    });
    let rows = c
        .query(
            "SELECT rj_pk, state, attempts, files_written FROM holdfast_recovery WHERE upload_fk = $1",
            &[&u],
        )
        .unwrap();
    assert_eq!(rows.len(), 1, "one job row, results {results:?}");
    assert_eq!(rows[0].get::<_, String>(1), "done");
    assert_eq!(rows[0].get::<_, i32>(2), 1, "claimed once");
    let distinct: BTreeSet<&str> = victims.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        rows[0].get::<_, i64>(3) as usize,
        distinct.len(),
        "each missing file written once"
    );
    // A new request after it is done is a new job, and finds nothing to do.
    let (j, created) = q.enqueue(&mut c, u, "again").unwrap();
    assert!(created && j.id != ids[0].0);
}

#[test]
fn a_job_left_running_by_a_dead_worker_is_reunpacked() {
    let f = fixture();
    let u = f.uploads[2];
    let r = named(&f.s, u, "data.bin");
    std::fs::remove_file(path(&f.s, &r)).unwrap();
    let q = RecoveryQueue {
        stale_after: Duration::from_secs(1),
        ..Default::default()
    };
    let mut c = f.s.site.connect().unwrap();
    let (job, _) = q.enqueue(&mut c, u, "web").unwrap();
    // A worker claimed it and died: the row says running, the heartbeat stops.
    let claimed = q.claim_next(&mut c, "dead-worker").unwrap().unwrap();
    assert_eq!(claimed.id, job.id);
    c.execute(
        "UPDATE holdfast_recovery SET heartbeat = now() - interval '1 hour' WHERE rj_pk = $1",
        &[&job.id],
    )
    .unwrap();
    // While it looks running, nobody else takes it.
    assert!(q.claim_next(&mut c, "other").unwrap().is_none());
    let n = work_until_idle(&f.s.site, &UnpackConfig::default(), &q, "live-worker").unwrap();
    assert_eq!(n, 1);
    let done = q.get(&mut c, job.id).unwrap();
    assert_eq!(done.state, RecoveryState::Done, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(done.worker.as_deref(), Some("live-worker"));
    assert!(f.s.site.repo.has(
        "files",
        &holdfast_site::pfile::PfileName::parse(&r.name).unwrap()
    ));
}

/// A worker whose job was taken over (it went silent, another claimed it) records nothing:
/// the job stays the new worker's, so one upload never has two jobs that look settled.
#[test]
fn a_taken_over_job_is_not_finished_by_its_first_worker() {
    let f = fixture();
    let u = f.uploads[2];
    let q = RecoveryQueue {
        stale_after: Duration::from_secs(1),
        ..Default::default()
    };
    let mut c = f.s.site.connect().unwrap();
    let (job, _) = q.enqueue(&mut c, u, "web").unwrap();
    let a = q.claim_next(&mut c, "A").unwrap().unwrap();
    c.execute(
        "UPDATE holdfast_recovery SET heartbeat = now() - interval '1 hour' WHERE rj_pk = $1",
        &[&job.id],
    )
    .unwrap();
    assert_eq!(q.requeue_stale(&mut c).unwrap(), 1);
    let b = q.claim_next(&mut c, "B").unwrap().unwrap();
    assert_eq!(b.id, a.id);
    assert!(!q.finish_done(&mut c, &a, 3, 0, "done by A").unwrap());
    assert_eq!(
        q.finish_failed(&mut c, &a, "failed in A", false).unwrap(),
        RecoveryState::Running
    );
    q.heartbeat(&mut c, &a, 9, 9).unwrap();
    let now = q.get(&mut c, job.id).unwrap();
    assert_eq!(now.state, RecoveryState::Running, "{now:?}");
    assert_eq!(now.worker.as_deref(), Some("B"));
    assert_eq!(now.files_total, 0, "A's heartbeat wrote B's row");
    assert!(q.finish_done(&mut c, &b, 3, 1, "done by B").unwrap());
    let done = q.get(&mut c, job.id).unwrap();
    assert_eq!(done.state, RecoveryState::Done);
    // Done with one of its files still missing: not shown as 100 %.
    assert_eq!(done.still_missing, 1);
    let shown = holdfast_recover::RecoveryJob {
        files_total: 4,
        files_done: 3,
        ..done
    };
    assert_eq!(shown.percent(), 75);
}

#[test]
fn missing_gold_fails_for_good_and_says_so() {
    let f = fixture();
    let u = f.uploads[1];
    let mut c = f.s.site.connect().unwrap();
    let check = check_repo(&mut c, &f.s.site.repo, Some(u))
        .unwrap()
        .remove(0);
    let gold = check.gold_name.clone().unwrap();
    // Gold and FOSSology's copy of it in files both gone, and a member too.
    std::fs::remove_file(f.s.site.repo.path("gold", &gold).unwrap()).unwrap();
    std::fs::remove_file(f.s.site.repo.path("files", &gold).unwrap()).unwrap();
    std::fs::remove_file(path(&f.s, &named(&f.s, u, "README"))).unwrap();
    let check = check_repo(&mut c, &f.s.site.repo, Some(u))
        .unwrap()
        .remove(0);
    assert!(!check.gold_present && !check.recoverable());
    let q = RecoveryQueue::default();
    let job = recover_now(&f.s.site, &UnpackConfig::default(), &q, u, "test").unwrap();
    assert_eq!(job.state, RecoveryState::Failed);
    assert_eq!(job.attempts, 1, "no retry when the gold is gone");
    let msg = job.message.unwrap();
    assert!(msg.contains("gold") && msg.contains(&gold), "{msg}");
    // Unknown upload: a clear error.
    let e = q.enqueue(&mut c, 9999, "test").unwrap_err();
    assert_eq!(e.to_string(), "upload 9999 does not exist");
}

/// A killed unpack leaves its queue row started and never ended (holdfast's agent commits
/// the tree at the end, so there may be no rows to name missing files by): the checker still
/// calls the upload incomplete, and says why; once the scheduler's reset queues the row
/// again it is pending work, not damage.
#[test]
fn an_unpack_cut_off_mid_way_makes_its_upload_incomplete() {
    let f = fixture();
    let u = f.uploads[1];
    let mut c = f.s.site.connect().unwrap();
    let reopened = c
        .execute(
            "UPDATE jobqueue SET jq_endtime = NULL, jq_end_bits = 0 WHERE jq_type = 'ununpack' \
             AND jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = $1)",
            &[&u],
        )
        .unwrap();
    assert_eq!(reopened, 1);
    let checks = check_repo(&mut c, &f.s.site.repo, None).unwrap();
    let k = checks.iter().find(|k| k.upload_pk == u).unwrap();
    assert!(!k.is_whole() && k.missing_files == 0, "{k:?}");
    let why = k.unpack_unfinished.as_deref().unwrap();
    assert!(why.contains("started and never ended"), "{why}");
    assert!(checks
        .iter()
        .filter(|k| k.upload_pk != u)
        .all(|k| k.is_whole()));
    // Reset by the scheduler's --reset start: queued to run again, no longer damage.
    c.execute(
        "UPDATE jobqueue SET jq_starttime = NULL WHERE jq_endtime IS NULL",
        &[],
    )
    .unwrap();
    assert!(check_repo(&mut c, &f.s.site.repo, Some(u)).unwrap()[0].is_whole());
}

/// `recover --all`, the queue's workers and a restore's rebuild share one lock per upload:
/// a rebuild of an upload another holds waits, then does its work.
#[test]
fn a_rebuild_waits_while_another_unpacks_the_same_upload() {
    let f = fixture();
    let u1 = f.uploads[0];
    let gone = named(&f.s, u1, "README");
    std::fs::remove_file(path(&f.s, &gone)).unwrap();
    let mut holder = f.s.site.connect().unwrap();
    holdfast_site::db::uploads::lock_for_unpack(&mut holder, u1).unwrap();
    let site = f.s.site.clone();
    let rebuild = std::thread::spawn(move || {
        holdfast_recover::recover_upload(&site, &UnpackConfig::default(), u1).unwrap()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !rebuild.is_finished(),
        "the rebuild did not wait for the lock"
    );
    assert!(!path(&f.s, &gone).exists());
    drop(holder);
    let o = rebuild.join().unwrap();
    assert!(o.missing.is_empty(), "{:?}", o.missing);
    assert!(path(&f.s, &gone).exists());
}
