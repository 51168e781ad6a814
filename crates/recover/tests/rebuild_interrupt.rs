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
    let (unpack_jq, _) = cut_off_job(&f, u2);
    let mut c = f.s.site.connect().unwrap();
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
    let started = job_started(&mut c, unpack_jq);
    assert!(
        started,
        "the job of an upload that was not rebuilt was handed back to the scheduler"
    );
}
