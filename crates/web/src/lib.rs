//! holdfast serve: web pages and JSON API for browsing and recovery.
//!
//! The plan's UI change for gold-only sites: when a user opens a file that is not in the
//! repository, say so, say whether its upload's gold is there, and offer to recover it from
//! the gold. Pages are rendered on the server with minijinja ([`pages`]) and the same data is
//! served as JSON under `/api` ([`api`]). Everything that touches PostgreSQL or the disk runs
//! on tokio's blocking pool (the sync `postgres` client must not run inside a tokio task), and
//! the recovery jobs are worked by plain threads ([`worker`]) that claim rows from
//! `holdfast_recovery`, the queue `holdfast recover` uses too.

pub mod api;
pub mod data;
pub mod pages;
pub mod worker;

use axum::routing::{get, post};
use axum::Router;
use holdfast_recover::RecoveryQueue;
use holdfast_site::Site;
use holdfast_unpack::UnpackConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `[web]` in holdfast.toml: `holdfast serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on. Keep it on loopback (or behind a reverse proxy with
    /// authentication): the pages show repository contents and queue work.
    pub listen: String,
    /// Recovery workers (uploads reunpacked at the same time).
    pub workers: usize,
    /// Attempts per recovery job before it is marked failed.
    pub max_attempts: i32,
    /// Seconds before a failed attempt is tried again.
    pub retry_after_secs: u64,
    /// Seconds without a heartbeat after which a running job counts as abandoned.
    pub stale_after_secs: u64,
    /// Largest file shown as text on a page; bigger files show their metadata only.
    pub max_text_bytes: u64,
    /// How often an idle worker looks for queued jobs, in milliseconds.
    pub poll_ms: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8340".into(),
            workers: 1,
            max_attempts: 3,
            retry_after_secs: 30,
            stale_after_secs: 60,
            max_text_bytes: 1 << 20,
            poll_ms: 500,
        }
    }
}

impl WebConfig {
    pub fn queue(&self) -> RecoveryQueue {
        RecoveryQueue {
            max_attempts: self.max_attempts.max(1),
            retry_after: Duration::from_secs(self.retry_after_secs),
            stale_after: Duration::from_secs(self.stale_after_secs.max(5)),
        }
    }
}

/// Renders Prometheus text for `/metrics` (the backup server's metrics, when wired).
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub site: Arc<Site>,
    pub cfg: Arc<WebConfig>,
    pub queue: RecoveryQueue,
    pub pages: Arc<pages::Pages>,
    pub metrics: Option<MetricsFn>,
}

/// Every route: HTML pages, the JSON API, `/metrics` and `/healthz`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/check", get(pages::check))
        .route("/jobs", get(pages::jobs))
        .route("/upload/{upload}", get(pages::upload))
        .route("/upload/{upload}/item/{item}", get(pages::item))
        .route("/upload/{upload}/recover", post(pages::recover))
        .route("/api/uploads", get(api::uploads))
        .route("/api/uploads/{upload}", get(api::upload))
        .route("/api/uploads/{upload}/items/{item}", get(api::item))
        .route("/api/uploads/{upload}/recover", post(api::recover))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// A running `holdfast serve`: the HTTP server on its own runtime thread and the recovery
/// workers. Dropping it stops both and waits for them.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `cfg.listen`, creates the recovery table and starts the workers.
    pub fn start(
        site: Site,
        unpack: UnpackConfig,
        cfg: WebConfig,
        metrics: Option<MetricsFn>,
    ) -> anyhow::Result<Server> {
        use anyhow::Context as _;
        let mut c = site.connect().with_context(|| {
            format!(
                "cannot connect to FOSSology's database (check {})",
                site.conf_dir.join("Db.conf").display()
            )
        })?;
        RecoveryQueue::ensure_schema(&mut c)?;
        drop(c);
        let std_listener = std::net::TcpListener::bind(&cfg.listen).with_context(|| {
            format!(
                "cannot listen on {} (set [web] listen in holdfast.toml to a free address)",
                cfg.listen
            )
        })?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let site = Arc::new(site);
        let state = AppState {
            site: site.clone(),
            cfg: Arc::new(cfg.clone()),
            queue: cfg.queue(),
            pages: Arc::new(pages::Pages::new()),
            metrics,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let http = std::thread::Builder::new()
            .name("holdfast-web".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let app = router(state);
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                    {
                        tracing::error!(error = %e, "web server stopped");
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("web server thread ended at start"))??;
        let stop = Arc::new(AtomicBool::new(false));
        let workers = worker::start(site, Arc::new(unpack), &cfg, stop.clone());
        tracing::info!(%addr, workers = cfg.workers, "holdfast serve listening on http://{addr}/");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            http: Some(http),
            stop,
            workers,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
