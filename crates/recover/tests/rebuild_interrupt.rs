//! A stop signal during a gold-only rebuild hands no cut-off job back to the scheduler.
//! Its own test binary: the stop flag is process-wide and stays set.

mod common;

use common::*;
use holdfast_recover::{rebuild_after_restore, RebuildOptions};
use holdfast_site::db;
use holdfast_unpack::UnpackConfig;

#[test]
fn an_interrupted_rebuild_hands_back_no_job() {
    let f = fixture();
    let u2 = f.uploads[1];
    let mut c = f.s.site.connect().unwrap();
    let job: i32 = c
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk) VALUES ('reunpack', $1) RETURNING job_pk",
            &[&u2],
        )
        .unwrap()
        .get(0);
    let unpack_jq: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_schedinfo, jq_endtext) \
             VALUES ($1, 'ununpack', $2, now(), 'pid 4242', 'Started') RETURNING jq_pk",
            &[&job, &u2.to_string()],
        )
        .unwrap()
        .get(0);
    let cut_off = db::running_jobs(&mut c).unwrap();
    std::fs::remove_dir_all(files_root(&f.s)).unwrap();

    // The operator's Ctrl-C (SIGTERM here) arrives before the upload is rebuilt.
    stop_signal();

    let res = rebuild_after_restore(
        &f.s.site,
        &UnpackConfig::default(),
        &cut_off,
        &RebuildOptions {
            lazy: false,
            jobs: 1,
        },
    );
    assert!(res.is_err(), "an interrupted rebuild reports the interrupt");
    let started: bool = c
        .query_one(
            "SELECT jq_starttime IS NOT NULL FROM jobqueue WHERE jq_pk = $1",
            &[&unpack_jq],
        )
        .unwrap()
        .get(0);
    assert!(
        started,
        "the job of an upload that was not rebuilt was handed back to the scheduler"
    );
}
