//! Recovery workers: plain threads (the sync `postgres` client must stay out of tokio) that
//! claim queued rows of `holdfast_recovery` and reunpack their uploads.

use crate::WebConfig;
use holdfast_recover::{work_job, RecoveryQueue};
use holdfast_site::Site;
use holdfast_unpack::UnpackConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts `cfg.workers` threads; they finish their current job and end once `stop` is set.
pub fn start(
    site: Arc<Site>,
    unpack: Arc<UnpackConfig>,
    cfg: &WebConfig,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    (0..cfg.workers.max(1))
        .map(|i| {
            let (site, unpack, stop) = (site.clone(), unpack.clone(), stop.clone());
            let q = cfg.queue();
            let poll = Duration::from_millis(cfg.poll_ms.max(50));
            let name = format!("{host}:{}:w{i}", std::process::id());
            std::thread::Builder::new()
                .name(format!("holdfast-recovery-{i}"))
                .spawn(move || run(&site, &unpack, &q, &name, poll, &stop))
                .expect("spawning a worker thread")
        })
        .collect()
}

fn run(
    site: &Site,
    unpack: &UnpackConfig,
    q: &RecoveryQueue,
    name: &str,
    poll: Duration,
    stop: &AtomicBool,
) {
    let mut client: Option<postgres::Client> = None;
    let mut last_stale_check = Instant::now() - Duration::from_secs(3600);
    while !stop.load(Ordering::SeqCst) {
        // A half-restored site gets no reunpack: jobs wait until the restore is completed.
        if holdfast_site::restoring::restoring(site).is_some() {
            client = None;
            sleep_unless(stop, Duration::from_secs(2));
            continue;
        }
        let c = match client.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => match site.connect() {
                Ok(c) => client.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "recovery worker cannot reach the database; retrying");
                    sleep_unless(stop, Duration::from_secs(2));
                    continue;
                }
            },
        };
        if last_stale_check.elapsed() > Duration::from_secs(5) {
            last_stale_check = Instant::now();
            if let Err(e) = q.requeue_stale(c) {
                tracing::warn!(error = %e, "checking for abandoned recovery jobs");
            }
        }
        match q.claim_next(c, name) {
            Ok(Some(job)) => {
                if let Err(e) = work_job(site, unpack, q, &job) {
                    tracing::error!(job = job.id, error = %e, "recovery job could not be recorded");
                }
            }
            Ok(None) => sleep_unless(stop, poll),
            Err(e) => {
                tracing::warn!(error = %e, "claiming a recovery job");
                client = None;
                sleep_unless(stop, Duration::from_secs(1));
            }
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
