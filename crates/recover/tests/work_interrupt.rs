//! Stopping `holdfast serve` (SIGTERM, a restart) mid-recovery queues the job again as it
//! was: a stop is no failure of the job, and costs it none of its attempts. Its own test
//! binary: the stop flag is process-wide and stays set.

mod common;

use common::*;
use holdfast_recover::{work_job, RecoveryQueue, RecoveryState};
use holdfast_unpack::UnpackConfig;

#[test]
fn a_recovery_cut_off_by_a_stop_is_queued_again_with_its_attempts() {
    let f = fixture();
    let u = f.uploads[2];
    std::fs::remove_file(path(&f.s, &named(&f.s, u, "data.bin"))).unwrap();
    let q = RecoveryQueue {
        max_attempts: 1,
        ..Default::default()
    };
    let mut c = f.s.site.connect().unwrap();
    let (job, _) = q.enqueue(&mut c, u, "web").unwrap();
    let claimed = q.claim_next(&mut c, "worker").unwrap().unwrap();
    assert_eq!(claimed.id, job.id);

    stop_signal();

    let state = work_job(&f.s.site, &UnpackConfig::default(), &q, &claimed).unwrap();
    assert_eq!(state, RecoveryState::Queued);
    let again = q.get(&mut c, job.id).unwrap();
    assert_eq!(again.state, RecoveryState::Queued, "{again:?}");
    assert_eq!(again.attempts, 0, "{again:?}");
}
