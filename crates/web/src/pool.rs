//! A small pool of PostgreSQL connections for the handlers.
//!
//! One connection per request let 200 concurrent page loads take every slot of FOSSology's
//! database (`max_connections`), so FOSSology's own agents and web UI were refused. Here at
//! most `[web] db_connections` clients exist; a request waits for one (up to
//! `[web] db_wait_secs`, then 503 "busy"), and an idle client is kept for the next request.
//! The sync `postgres` client runs on tokio's blocking pool, never inside an async task.

use crate::pages::PageError;
use holdfast_site::Site;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub struct Pool {
    site: Arc<Site>,
    idle: Mutex<Vec<postgres::Client>>,
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Pool {
    pub fn new(site: Arc<Site>, size: usize, wait: Duration) -> Pool {
        Pool {
            site,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            wait,
        }
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, PageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut postgres::Client) -> anyhow::Result<T> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                PageError::unavailable(
                    "busy: every database connection of this page server is in use; try again",
                )
            })?
            .map_err(|e| PageError::internal(e.to_string()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = pool.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let mut c = match taken {
                Some(c) if !c.is_closed() => c,
                _ => pool.site.connect().map_err(|e| {
                    anyhow::anyhow!(
                        "cannot connect to FOSSology's database ({}): {e}",
                        pool.site.conf_dir.join("Db.conf").display()
                    )
                })?,
            };
            let out = f(&mut c);
            // A closed client is dropped; transactions roll back when their guard drops.
            if !c.is_closed() {
                if let Ok(mut v) = pool.idle.lock() {
                    v.push(c);
                }
            }
            out
        })
        .await
        .map_err(|e| PageError::internal(e.to_string()))?
        .map_err(PageError::from)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // A postgres client closes itself with a blocking call, which panics on a tokio
        // thread (where the last handle usually goes): close them on a plain thread.
        let idle = self.idle.get_mut().map(std::mem::take).unwrap_or_default();
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}
