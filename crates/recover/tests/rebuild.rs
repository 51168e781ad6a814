//! Gold-only restore: with only the database and the gold left, the repository is rebuilt
//! identical to the original except explained artifacts; jobs cut off by the backup go first
//! and are handed back to the scheduler; a stopped rebuild continues; `lazy` defers.

mod common;

use common::*;
use holdfast_recover::{rebuild_after_restore, MissingReason, RebuildOptions};
use holdfast_site::db;
use holdfast_unpack::UnpackConfig;
use std::collections::BTreeSet;

/// Makes the zip's `artifact.meta` one an older unpacker wrote: the database names content
/// this unpacker does not produce. Returns its repository name.
fn foreign_artifact(f: &Fixture, upload: i32) -> String {
    let mut c = f.s.site.connect().unwrap();
    let old = "older unpacker, version 1.0, tmp path /tmp/ununpack-8812\n";
    let sha1 = "AB".repeat(20);
    let md5 = "CD".repeat(16);
    let pk: i32 = c
        .query_one(
            "INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_size) VALUES ($1, $2, $3) RETURNING pfile_pk",
            &[&sha1, &md5, &(old.len() as i64)],
        )
        .unwrap()
        .get(0);
    let n = c
        .execute(
            "UPDATE uploadtree_a SET pfile_fk = $1 WHERE upload_fk = $2 AND ufile_name = 'artifact.meta'",
            &[&pk, &upload],
        )
        .unwrap();
    assert_eq!(n, 1, "the zip upload has one artifact.meta");
    let name = format!(
        "{}.{}.{}",
        sha1.to_lowercase(),
        md5.to_lowercase(),
        old.len()
    );
    let p = f.s.site.repo.path("files", &name).unwrap();
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, old).unwrap();
    name
}

#[test]
fn gold_only_restore_rebuilds_the_repository_and_requeues_cut_off_jobs() {
    let f = fixture();
    let (u1, u2, u3) = (f.uploads[0], f.uploads[1], f.uploads[2]);
    let (unpack_jq, nomos_jq) = cut_off_job(&f, u2);
    let foreign = foreign_artifact(&f, u2);
    let original = snapshot(&f.s);
    let mut c = f.s.site.connect().unwrap();
    let cut_off = db::running_jobs(&mut c).unwrap();
    assert_eq!(cut_off.len(), 1);

    // The gold-only backup kept the database and gold: the site comes back without `files`.
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();
    assert!(!db::verify(&mut c, &f.s.site.repo, None).unwrap().is_whole());

    let opts = RebuildOptions {
        lazy: false,
        jobs: 2,
    };
    let report =
        rebuild_after_restore(&f.s.site, &UnpackConfig::default(), &cut_off, &opts).unwrap();

    assert_eq!(report.uploads, 3);
    assert_eq!(report.cut_off_uploads, vec![u2]);
    assert_eq!(
        report.rebuilt[0], u2,
        "cut-off upload first: {:?}",
        report.rebuilt
    );
    assert_eq!(
        report.rebuilt.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([u1, u2, u3])
    );
    // Identical to the original repository except the explained artifact.
    let mut expected = original.clone();
    expected.retain(|p, _| !p.ends_with(&foreign));
    // The meta file the rows no longer name is not made again: nothing sits in `files`
    // without a row.
    let named: BTreeSet<String> = db::references(&mut c, None)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    expected.retain(|p, _| named.iter().any(|n| p.ends_with(n.as_str())));
    assert_eq!(snapshot(&f.s), expected);
    assert_eq!(report.missing.len(), 1, "{:#?}", report.missing);
    let m = &report.missing[0];
    assert_eq!(m.name, foreign);
    assert_eq!(m.upload_fk, u2);
    match &m.reason {
        MissingReason::NotReproducible { artifact, .. } => {
            assert!(artifact.ends_with("artifact.meta"), "{artifact}")
        }
        r => panic!("wrong reason {r:?}"),
    }
    assert!(report.lost().is_empty() && report.is_whole());
    assert!(m.to_string().contains("not data lost"), "{m}");

    // The cut-off unpack row is reset the way the scheduler's --reset does; nomos waits on it.
    assert_eq!(report.requeued, vec![unpack_jq]);
    let row = c
        .query_one(
            "SELECT jq_starttime IS NULL, jq_endtext, jq_schedinfo FROM jobqueue WHERE jq_pk = $1",
            &[&unpack_jq],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("Restart"));
    assert_eq!(row.get::<_, Option<String>>(2), None);
    let nomos = c
        .query_one(
            "SELECT jq_starttime IS NULL AND jq_endtime IS NULL, jq_endtext FROM jobqueue WHERE jq_pk = $1",
            &[&nomos_jq],
        )
        .unwrap();
    assert!(nomos.get::<_, bool>(0));
    assert_eq!(
        nomos.get::<_, Option<String>>(1),
        None,
        "queued row untouched"
    );
    let ars: Vec<bool> = c
        .query(
            "SELECT ars_success FROM ununpack_ars WHERE upload_fk = $1",
            &[&u2],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !ars.is_empty() && ars.iter().all(|s| !s),
        "ununpack runs again"
    );
    assert_eq!(db::unfinished_jobs(&mut c).unwrap().len(), 2);
}

#[test]
fn a_stopped_rebuild_continues_where_it_left_off() {
    let f = fixture();
    let (u1, u2, u3) = (f.uploads[0], f.uploads[1], f.uploads[2]);
    let original = snapshot(&f.s);
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();
    // The first run finished upload 1 and was killed in the middle of upload 3.
    let cfg = UnpackConfig::default();
    holdfast_recover::recover_upload(&f.s.site, &cfg, u1).unwrap();
    holdfast_recover::recover_upload(&f.s.site, &cfg, u3).unwrap();
    let half: Vec<_> = refs(&f.s, u3).into_iter().step_by(2).collect();
    for r in &half {
        let _ = std::fs::remove_file(path(&f.s, r));
    }
    let mut c = f.s.site.connect().unwrap();
    let still: BTreeSet<String> = db::verify(&mut c, &f.s.site.repo, None)
        .unwrap()
        .missing
        .into_iter()
        .map(|r| r.name)
        .collect();

    let report = rebuild_after_restore(
        &f.s.site,
        &cfg,
        &[],
        &RebuildOptions {
            lazy: false,
            jobs: 1,
        },
    )
    .unwrap();
    assert_eq!(report.already_whole, 1, "upload 1 is not unpacked again");
    assert_eq!(
        report.rebuilt.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([u2, u3])
    );
    assert_eq!(
        report.files_written as usize,
        still.len(),
        "only what was still missing is written"
    );
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert_eq!(snapshot(&f.s), original);
}

#[test]
fn lazy_restore_rebuilds_only_what_cut_off_jobs_need() {
    let f = fixture();
    let (u1, u2, u3) = (f.uploads[0], f.uploads[1], f.uploads[2]);
    let (unpack_jq, _) = cut_off_job(&f, u2);
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();
    let mut c = f.s.site.connect().unwrap();
    let cut_off = db::running_jobs(&mut c).unwrap();
    let report = rebuild_after_restore(
        &f.s.site,
        &UnpackConfig::default(),
        &cut_off,
        &RebuildOptions {
            lazy: true,
            jobs: 2,
        },
    )
    .unwrap();
    assert_eq!(report.rebuilt, vec![u2]);
    assert_eq!(report.deferred, vec![u1, u3]);
    assert_eq!(report.requeued, vec![unpack_jq]);
    assert!(report.lost().is_empty());
    assert!(!report.is_whole());
    let deferred: BTreeSet<i32> = report
        .missing
        .iter()
        .inspect(|m| assert_eq!(m.reason, MissingReason::Deferred, "{m}"))
        .map(|m| m.upload_fk)
        .collect();
    assert_eq!(deferred, BTreeSet::from([u1, u3]));
    let check = holdfast_recover::check_repo(&mut c, &f.s.site.repo, Some(u2)).unwrap();
    assert!(check[0].is_whole());
}

#[test]
fn a_cut_off_job_of_an_upload_with_corrupt_gold_is_not_handed_back() {
    let f = fixture();
    let u2 = f.uploads[1];
    let (unpack_jq, nomos_jq) = cut_off_job(&f, u2);
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();
    // Same size, other bytes: the gold no longer matches its name.
    let mut c = f.s.site.connect().unwrap();
    let gold = db::references(&mut c, Some(u2))
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "gold")
        .expect("upload 2 has gold");
    let p = path(&f.s, &gold);
    let mut bytes = std::fs::read(&p).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let cut_off = db::running_jobs(&mut c).unwrap();
    let report = rebuild_after_restore(
        &f.s.site,
        &UnpackConfig::default(),
        &cut_off,
        &RebuildOptions {
            lazy: true,
            jobs: 1,
        },
    )
    .unwrap();
    assert!(!report.rebuilt.contains(&u2), "{:?}", report.rebuilt);
    assert!(report.requeued.is_empty(), "{:?}", report.requeued);
    assert!(
        report.not_requeued.contains(&unpack_jq),
        "{:?}",
        report.not_requeued
    );
    // Ended as failed, with the row behind it: FOSSology's `--reset` start, which queues
    // every row not ended, does not run them on missing files.
    c.batch_execute(db::jobs::SCHEDULER_RESET_SQL).unwrap();
    for jq in [unpack_jq, nomos_jq] {
        let (started, ended, bits): (bool, bool, i16) = c
            .query_one(
                "SELECT jq_starttime IS NOT NULL, jq_endtime IS NOT NULL, jq_end_bits \
                 FROM jobqueue WHERE jq_pk = $1",
                &[&jq],
            )
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap();
        assert!(
            ended && bits & 2 != 0,
            "row {jq}: ended {ended}, bits {bits}"
        );
        assert!(started || jq == nomos_jq, "row {jq} queued again");
    }
}

/// A rebuild that left files out (here a limit stops the nested archive; a full disk does
/// the same) does not hand the cut-off job back: it would run on missing files.
#[test]
fn a_cut_off_job_whose_rebuild_left_files_out_is_not_handed_back() {
    let f = fixture();
    let u1 = f.uploads[0];
    let (unpack_jq, _) = cut_off_job(&f, u1);
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();
    let mut c = f.s.site.connect().unwrap();
    let cut_off = db::running_jobs(&mut c).unwrap();
    let shallow = UnpackConfig {
        max_depth: 1,
        ..UnpackConfig::default()
    };
    let report = rebuild_after_restore(
        &f.s.site,
        &shallow,
        &cut_off,
        &RebuildOptions {
            lazy: true,
            jobs: 1,
        },
    )
    .unwrap();
    let v = db::verify(&mut c, &f.s.site.repo, Some(u1)).unwrap();
    assert!(
        !v.missing.is_empty(),
        "the limit left nothing out: {report:?}"
    );
    assert!(report.requeued.is_empty(), "{:?}", report.requeued);
    assert!(report.not_requeued.contains(&unpack_jq), "{report:?}");
}
