//! Recovery workers: plain threads (the sync `postgres` client must stay out of tokio) that
//! claim queued rows of `holdfast_recovery` and reunpack their uploads.
//!
//! A reunpack writes into the repository, so a worker holds the site lock (`backup.lock_file`,
//! the one backup, restore, prune and `holdfast recover` take) shared while it works a job, as
//! `holdfast recover` does: never beside a backup or restore. While another run holds it, the
//! worker claims nothing and the pages say "busy: backup running" (or whichever command holds
//! it). Between jobs the lock is let go, so an idle page never delays a backup.

use crate::WebConfig;
use holdfast_recover::{work_job, RecoveryQueue};
use holdfast_site::Site;
use holdfast_unpack::UnpackConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why recoveries wait right now (`busy: backup running`), shown on the pages; `None` when
/// they can run.
pub type Busy = Arc<Mutex<Option<String>>>;

/// Starts `cfg.workers` threads; they end once `stop` is set (a job a stop signal cuts off is
/// queued again as it was).
/// With `lock_file`, each job runs under that lock taken shared; `busy` says when it cannot.
pub fn start(
    site: Arc<Site>,
    unpack: Arc<UnpackConfig>,
    cfg: &WebConfig,
    lock_file: Option<PathBuf>,
    busy: Busy,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    (0..cfg.workers.max(1))
        .map(|i| {
            let (site, unpack, stop) = (site.clone(), unpack.clone(), stop.clone());
            let (lock_file, busy) = (lock_file.clone(), busy.clone());
            let q = cfg.queue();
            let poll = Duration::from_millis(cfg.poll_ms.max(50));
            let name = format!("{host}:{}:w{i}", std::process::id());
            std::thread::Builder::new()
                .name(format!("holdfast-recovery-{i}"))
                .spawn(move || {
                    let w = Worker {
                        site: &site,
                        unpack: &unpack,
                        q: &q,
                        name: &name,
                        lock_file: lock_file.as_deref(),
                        busy: &busy,
                    };
                    w.run(poll, &stop);
                })
                .expect("spawning a worker thread")
        })
        .collect()
}

struct Worker<'a> {
    site: &'a Site,
    unpack: &'a UnpackConfig,
    q: &'a RecoveryQueue,
    name: &'a str,
    lock_file: Option<&'a Path>,
    busy: &'a Mutex<Option<String>>,
}

impl Worker<'_> {
    fn set_busy(&self, why: Option<String>) {
        if let Ok(mut b) = self.busy.lock() {
            if *b != why {
                match &why {
                    Some(w) => tracing::info!("recoveries wait: {w}"),
                    None if b.is_some() => tracing::info!("recoveries run again"),
                    None => {}
                }
                *b = why;
            }
        }
    }

    /// The site lock taken shared, `Ok(None)` without a lock file; `Err` (and the reason on
    /// the pages) while another run holds it or it cannot be taken.
    fn lock(&self) -> Result<Option<holdfast_core::Lock>, ()> {
        let Some(path) = self.lock_file else {
            return Ok(None);
        };
        match holdfast_core::lock::acquire(path, holdfast_core::lock::LockMode::Shared) {
            Ok(l) => {
                self.set_busy(None);
                Ok(Some(l))
            }
            Err(holdfast_core::LockError::Held { holder, .. }) => {
                let what = holder
                    .and_then(command_of)
                    .unwrap_or_else(|| "backup".into());
                self.set_busy(Some(format!("busy: {what} running")));
                Err(())
            }
            Err(e) => {
                // Fail closed: a lock that cannot be taken protects nothing.
                self.set_busy(Some(format!("recoveries stopped: {e}")));
                Err(())
            }
        }
    }

    fn run(&self, poll: Duration, stop: &AtomicBool) {
        let mut client: Option<postgres::Client> = None;
        let mut last_stale_check = Instant::now() - Duration::from_secs(3600);
        while !stop.load(Ordering::SeqCst) {
            // A half-restored site gets no reunpack: jobs wait until the restore is completed.
            if holdfast_site::restoring::restoring(self.site).is_some() {
                self.set_busy(Some("busy: a restore did not finish".into()));
                client = None;
                sleep_unless(stop, Duration::from_secs(2));
                continue;
            }
            let c = match client.as_mut() {
                Some(c) if !c.is_closed() => c,
                _ => match self.site.connect() {
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
                if let Err(e) = self.q.requeue_stale(c) {
                    tracing::warn!(error = %e, "checking for abandoned recovery jobs");
                }
            }
            // Nothing due: no lock taken (an idle page must never make a backup find the
            // lock held).
            match self.q.has_due(c) {
                Ok(true) => {}
                Ok(false) => {
                    self.set_busy(None);
                    sleep_unless(stop, poll);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking for recovery jobs");
                    client = None;
                    sleep_unless(stop, Duration::from_secs(1));
                    continue;
                }
            }
            // Held from before the claim to the end of the job: a backup that starts now
            // finds the lock held, one that runs now keeps the job queued.
            let Ok(lock) = self.lock() else {
                sleep_unless(stop, poll.max(Duration::from_millis(500)));
                continue;
            };
            // Looked at again under the lock, as `holdfast recover` does: a restore that
            // began and failed since the look above left its marker.
            if holdfast_site::restoring::restoring(self.site).is_some() {
                drop(lock);
                continue;
            }
            match self.q.claim_next(c, self.name) {
                Ok(Some(job)) => {
                    if let Err(e) = work_job(self.site, self.unpack, self.q, &job) {
                        tracing::error!(job = job.id, error = %e, "recovery job could not be recorded");
                    }
                    drop(lock);
                }
                Ok(None) => {
                    drop(lock);
                    sleep_unless(stop, poll);
                }
                Err(e) => {
                    drop(lock);
                    tracing::warn!(error = %e, "claiming a recovery job");
                    client = None;
                    sleep_unless(stop, Duration::from_secs(1));
                }
            }
        }
    }
}

/// The holdfast command (`backup`, `restore`, ...) process `pid` runs, from its command line.
fn command_of(pid: u32) -> Option<String> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmd.split(|&b| b == 0)
        .skip(1)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find(|a| {
            matches!(
                *a,
                "backup" | "restore" | "prune" | "slim" | "recover" | "demo"
            )
        })
        .map(str::to_string)
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
