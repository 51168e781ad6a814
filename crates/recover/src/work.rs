//! Working recovery jobs: what `holdfast serve`'s worker and `holdfast recover` both run.
//!
//! While the unpacker runs, a watcher thread counts how many of the files that were missing
//! at the start are back, and writes that count with a heartbeat into the job row: that is
//! the progress the web page shows, and the heartbeat tells other workers the job is alive.

use crate::queue::{RecoveryJob, RecoveryQueue, RecoveryState};
use crate::rebuild::recover_upload;
use crate::{RecoverError, Result};
use holdfast_site::pfile::PfileName;
use holdfast_site::Site;
use holdfast_unpack::UnpackConfig;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Runs one claimed job to its end state and records it.
pub fn work_job(
    site: &Site,
    cfg: &UnpackConfig,
    q: &RecoveryQueue,
    job: &RecoveryJob,
) -> Result<RecoveryState> {
    let mut c = site.connect()?;
    // The heartbeat starts before anything is read: listing a large upload's missing files
    // or counting those back must never look like a dead worker (its job would be taken
    // over and unpacked twice).
    q.heartbeat(&mut c, job, 0, 0)?;
    let stop = AtomicBool::new(false);
    let total = AtomicI64::new(0);
    let done = AtomicI64::new(0);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            // A lost connection is opened again: a silent job is taken over by another worker.
            let mut c = None;
            while pause(&stop) {
                if c.is_none() {
                    c = site.connect().ok();
                }
                if let Some(conn) = c.as_mut() {
                    let (t, d) = (total.load(Ordering::SeqCst), done.load(Ordering::SeqCst));
                    if let Err(e) = q.heartbeat(conn, job, t, d) {
                        tracing::warn!(job = job.id, "heartbeat failed ({e}); connecting again");
                        c = None;
                    }
                }
            }
        });
        // Set on every way out, a panic included, or the heartbeat thread (and this
        // scope) never ends.
        let _stop = SetOnDrop(&stop);
        (|| {
            let missing = crate::explain::to_recover(&mut c, &site.repo, job.upload_fk)?;
            let paths: Vec<PathBuf> = missing
                .iter()
                .filter_map(|r| site.repo.path(&r.kind, &r.name))
                .collect();
            let sizes: Vec<u64> = missing
                .iter()
                .map(|r| PfileName::parse(&r.name).map_or(0, |n| n.size))
                .collect();
            total.store(paths.len() as i64, Ordering::SeqCst);
            // The job row has its total at once, however soon the work ends.
            q.heartbeat(&mut c, job, paths.len() as i64, 0)?;
            tracing::info!(
                job = job.id,
                upload = job.upload_fk,
                missing = paths.len(),
                "recovery started"
            );
            // Progress: how many of the files missing at the start are back.
            let counting = AtomicBool::new(false);
            std::thread::scope(|s2| {
                s2.spawn(|| {
                    while pause(&counting) {
                        let n = paths
                            .iter()
                            .zip(&sizes)
                            .filter(|(p, size)| {
                                std::fs::metadata(p).is_ok_and(|m| m.len() == **size)
                            })
                            .count() as i64;
                        done.store(n, Ordering::SeqCst);
                    }
                });
                let _counting = SetOnDrop(&counting);
                recover_upload(site, cfg, job.upload_fk)
            })
        })()
    });
    let total = total.load(Ordering::SeqCst);
    match outcome {
        Ok(o) => {
            let written = o.summary.as_ref().map_or(0, |s| s.written) as i64;
            let lost = o.missing.iter().filter(|m| m.reason.is_loss()).count();
            let message = if o.missing.is_empty() {
                format!("{total} missing file(s) back in the repository")
            } else {
                let mut m = format!(
                    "{} of {} files still missing ({} lost): ",
                    o.missing.len(),
                    total,
                    lost
                );
                for f in o.missing.iter().take(5) {
                    m.push_str(&format!("{f}; "));
                }
                m
            };
            if !q.finish_done(&mut c, job, written, o.missing.len() as i64, &message)? {
                tracing::warn!(
                    job = job.id,
                    "another worker took this job over while it ran; its result stands"
                );
                return Ok(RecoveryState::Running);
            }
            tracing::info!(
                job = job.id,
                upload = job.upload_fk,
                written,
                still_missing = o.missing.len(),
                "recovery done"
            );
            Ok(RecoveryState::Done)
        }
        // Cut off by a stop signal (serve stopping, a restart): queued again as it was.
        Err(e) if holdfast_site::interrupt::requested() => {
            q.release(&mut c, job)?;
            tracing::info!(job = job.id, upload = job.upload_fk, error = %e, "recovery stopped; queued again");
            Ok(RecoveryState::Queued)
        }
        Err(e) => {
            let permanent = matches!(
                e,
                RecoverError::GoldMissing { .. } | RecoverError::NoUpload(_)
            );
            let state = q.finish_failed(&mut c, job, &e.to_string(), permanent)?;
            tracing::warn!(job = job.id, upload = job.upload_fk, error = %e, state = state.as_str(), "recovery attempt failed");
            Ok(state)
        }
    }
}

/// Claims and works queued jobs until none is due; returns how many were worked.
pub fn work_until_idle(
    site: &Site,
    cfg: &UnpackConfig,
    q: &RecoveryQueue,
    worker: &str,
) -> Result<usize> {
    let mut c = site.connect()?;
    RecoveryQueue::ensure_schema(&mut c)?;
    q.requeue_stale(&mut c)?;
    let mut n = 0;
    while let Some(job) = q.claim_next(&mut c, worker)? {
        work_job(site, cfg, q, &job)?;
        n += 1;
    }
    Ok(n)
}

/// `holdfast recover --upload N`: queue the upload (or join the job already queued or
/// running for it), work it here if nobody else has claimed it, and wait for the end.
pub fn recover_now(
    site: &Site,
    cfg: &UnpackConfig,
    q: &RecoveryQueue,
    upload: i32,
    who: &str,
) -> Result<RecoveryJob> {
    let mut c = site.connect()?;
    let (job, _) = q.enqueue(&mut c, upload, who)?;
    loop {
        if let Some(claimed) = q.claim(&mut c, job.id, who)? {
            work_job(site, cfg, q, &claimed)?;
        }
        let now = q.get(&mut c, job.id)?;
        match now.state {
            RecoveryState::Done | RecoveryState::Failed => return Ok(now),
            // Someone else runs it, or it waits for its retry pause.
            _ => {
                holdfast_site::interrupt::check()?;
                q.requeue_stale(&mut c)?;
                std::thread::sleep(Duration::from_millis(300));
                if now.state == RecoveryState::Queued {
                    // Due again: claim it ourselves (the retry pause is the queue's business).
                    crate::RecoveryQueue::due_now(&mut c, job.id)?;
                }
            }
        }
    }
}

/// Waits a second, or less once `stop` is set; false when it is.
fn pause(stop: &AtomicBool) -> bool {
    for _ in 0..10 {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !stop.load(Ordering::SeqCst)
}

/// Sets its flag when dropped: threads that loop until it is set end however their scope's
/// work ends.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
