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
pub mod auth;
pub mod dashboard;
pub mod data;
pub mod pages;
pub mod pool;
pub mod worker;

use axum::routing::{get, post};
use axum::Router;
use holdfast_recover::RecoveryQueue;
use holdfast_site::Site;
use holdfast_unpack::UnpackConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// File with access tokens for scripts and Prometheus (`Authorization: Bearer ...`), one a
    /// line; must not be readable by group or others.
    pub token_file: Option<PathBuf>,
    /// FOSSology permission level (`users.user_perm`) a user needs to log in: 10 is user
    /// admin (PLUGIN_DB_ADMIN), 3 write. These pages show every upload and rewrite the
    /// repository, so the default is 10.
    pub min_user_perm: i32,
    /// Host names (with or without port) the pages answer to besides IP addresses and
    /// localhost, e.g. the name a reverse proxy forwards; anything else gets 421.
    pub allowed_hosts: Vec<String>,
    /// A session ends after this many hours without a request.
    pub session_hours: u64,
    /// A FOSSology user's session is checked against FOSSology's users again after this many
    /// seconds (an account deactivated or demoted meanwhile loses the pages).
    pub session_check_secs: u64,
    /// Mark the session cookie `Secure` (set it when a TLS proxy serves the pages).
    pub secure_cookie: bool,
    /// Database connections the pages use at most (FOSSology needs the rest).
    pub db_connections: usize,
    /// Seconds a request waits for a database connection before it gets 503.
    pub db_wait_secs: u64,
    /// Client connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (idle keep-alive included).
    pub header_timeout_secs: u64,
    /// Seconds a request may take before it gets 408.
    pub request_timeout_secs: u64,
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
            token_file: None,
            min_user_perm: holdfast_site::users::PLUGIN_DB_ADMIN,
            allowed_hosts: Vec::new(),
            session_hours: 8,
            session_check_secs: 300,
            secure_cookie: false,
            db_connections: 4,
            db_wait_secs: 15,
            max_connections: 256,
            header_timeout_secs: 10,
            request_timeout_secs: 120,
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

/// What the caller adds to a FOSSology site's pages.
#[derive(Clone, Default)]
pub struct SiteExtras {
    /// Renders `/metrics` (the site's last backup and verify runs, the backup server's).
    pub metrics: Option<MetricsFn>,
    /// The site lock (`backup.lock_file`): recovery workers take it shared while they work a
    /// job, as `holdfast recover` does, so they never run beside a backup or restore.
    pub lock_file: Option<PathBuf>,
    /// Snapshots, last runs and verify results for the `/backups` page (blocking).
    pub backups: Option<dashboard::DashboardFn>,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub site: Arc<Site>,
    pub cfg: Arc<WebConfig>,
    pub queue: RecoveryQueue,
    pub pages: Arc<pages::Pages>,
    pub metrics: Option<MetricsFn>,
    pub backups: Option<dashboard::DashboardFn>,
    pub pool: Arc<pool::Pool>,
    /// A whole-repository check is running (one at a time: it reads every reference of the
    /// site, and a request timeout cannot stop blocking work).
    pub checking: Arc<std::sync::atomic::AtomicBool>,
}

/// Every route: HTML pages, the JSON API, `/metrics` and `/healthz`, behind the login.
pub fn router(state: AppState, auth: Arc<auth::Auth>) -> Router {
    let app = Router::new()
        .route("/", get(pages::index))
        .route("/check", get(pages::check))
        .route("/jobs", get(pages::jobs))
        .route("/backups", get(pages::backups))
        .route("/api/backups", get(api::backups))
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
        .with_state(state);
    guarded(app, auth)
}

/// The login routes and the guard (host, login, origin and CSRF checks) around `app`, and
/// the limits every request gets.
pub fn guarded(app: Router, auth: Arc<auth::Auth>) -> Router {
    use tower_http::limit::RequestBodyLimitLayer;
    let login = Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .with_state(auth.clone());
    app.merge(login)
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(auth, auth::guard))
        .layer(RequestBodyLimitLayer::new(auth::MAX_BODY))
}

/// Serves `app` on `listener` until `stop` fires: at most `cfg.max_connections` connections
/// at once, each given `header_timeout_secs` to send its headers (slow or idle clients are
/// dropped instead of holding a descriptor), each request `request_timeout_secs`.
pub async fn serve_limited(
    listener: tokio::net::TcpListener,
    app: Router,
    cfg: &WebConfig,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(cfg.request_timeout_secs.max(1)),
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1)));
    let header_timeout = Duration::from_secs(cfg.header_timeout_secs.max(1));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = &mut stop => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => return,
        };
        let svc = app
            .clone()
            .map_request(|r: axum::http::Request<hyper::body::Incoming>| {
                r.map(axum::body::Body::new)
            });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

type Shutdown = tokio::sync::oneshot::Sender<()>;

/// Runs `app` on its own runtime thread; returns once it listens.
fn spawn_http(
    std_listener: std::net::TcpListener,
    app: Router,
    cfg: WebConfig,
) -> anyhow::Result<(Shutdown, std::thread::JoinHandle<()>)> {
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
                serve_limited(listener, app, &cfg, rx).await;
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("web server thread ended at start"))??;
    Ok((tx, http))
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
        extras: SiteExtras,
    ) -> anyhow::Result<Server> {
        use anyhow::Context as _;
        let mut c = site.connect().with_context(|| {
            format!(
                "cannot connect to FOSSology's database (check {})",
                site.conf_dir.join("Db.conf").display()
            )
        })?;
        // Not while a restore loads the database: the dump creates the table itself.
        if holdfast_site::restoring::restoring(&site).is_none() {
            RecoveryQueue::ensure_schema(&mut c)?;
        }
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
        let pages = Arc::new(pages::Pages::new());
        let pool = Arc::new(pool::Pool::new(
            site.clone(),
            cfg.db_connections,
            Duration::from_secs(cfg.db_wait_secs),
        ));
        let auth = Arc::new(auth::Auth::new(&cfg, Some(pool.clone()), pages.clone())?);
        let state = AppState {
            site: site.clone(),
            cfg: Arc::new(cfg.clone()),
            queue: cfg.queue(),
            pages: pages.clone(),
            metrics: extras.metrics,
            backups: extras.backups,
            pool,
            checking: Default::default(),
        };
        let (tx, http) = spawn_http(std_listener, router(state, auth), cfg.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let workers = worker::start(
            site,
            Arc::new(unpack),
            &cfg,
            extras.lock_file,
            pages.busy.clone(),
            stop.clone(),
        );
        tracing::info!(%addr, workers = cfg.workers, "holdfast serve listening on http://{addr}/");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            http: Some(http),
            stop,
            workers,
        })
    }

    /// The backup-server side alone (no FOSSology here): dashboard, JSON and metrics, behind
    /// token logins. No database, no recovery workers.
    pub fn start_server_only(
        cfg: WebConfig,
        dashboard: dashboard::DashboardFn,
        metrics: Option<MetricsFn>,
    ) -> anyhow::Result<Server> {
        use anyhow::Context as _;
        let pages = Arc::new(pages::Pages::new());
        let auth = Arc::new(auth::Auth::new(&cfg, None, pages.clone())?);
        if !auth.has_logins() {
            anyhow::bail!(
                "a backup server's pages need an access token: set [web] token_file in holdfast.toml \
                 to a file only root can read with one long random token a line"
            );
        }
        let std_listener = std::net::TcpListener::bind(&cfg.listen).with_context(|| {
            format!(
                "cannot listen on {} (set [web] listen in holdfast.toml to a free address)",
                cfg.listen
            )
        })?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let app = dashboard::router(
            dashboard::ServerState {
                dashboard,
                metrics,
                pages,
            },
            auth,
        );
        let (tx, http) = spawn_http(std_listener, app, cfg.clone())?;
        tracing::info!(%addr, "holdfast serve (backup server) listening on http://{addr}/");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            http: Some(http),
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
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
