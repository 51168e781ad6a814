//! `holdfast serve`: web pages and JSON API, and the recovery workers.

use crate::config::Context;
use crate::exit;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
#[command(
    long_about = "Serves a small web interface and JSON API over FOSSology's database \
and repository: browse uploads and their trees, see a file's content, or, for a file that is \
not in the repository, whether its gold is there and a button to recover it. Recovery jobs are \
queued in the database table holdfast_recovery and worked by this process. Also /metrics \
(Prometheus) and /healthz. Stops on Ctrl-C or SIGTERM; a recovery under way is cut off and \
queued again without using one of its attempts, and the next start works it."
)]
pub struct Args {
    /// Address to listen on (default from [web] listen, 127.0.0.1:8340).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Recovery workers (uploads reunpacked at the same time).
    #[arg(long)]
    workers: Option<usize>,
    /// Backup-server pages only (dashboard, /metrics), no FOSSology needed. The default when
    /// no FOSSology configuration is found and [site] conf_dir is not set.
    #[arg(long)]
    server: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut cfg = ctx.config.web.clone();
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(w) = args.workers {
        cfg.workers = w;
    }
    let site = if args.server {
        None
    } else {
        match ctx.site() {
            Ok(s) => Some(s),
            // A dedicated backup server has no FOSSology: serve its own pages. A conf_dir
            // that was set but is wrong stays an error.
            Err(e) if ctx.config.site.conf_dir.is_none() => {
                tracing::info!("no FOSSology here ({e}): serving the backup-server pages only");
                None
            }
            Err(e) => return Err(e),
        }
    };
    let Some(site) = site else {
        let (server_cfg, notify_cfg) = (ctx.config.server.clone(), ctx.config.notify.clone());
        let dash: holdfast_web::dashboard::DashboardFn = std::sync::Arc::new(move || {
            serde_json::to_value(holdfast_notify::dashboard::gather(&server_cfg, &notify_cfg))
                .unwrap_or_default()
        });
        let server = holdfast_web::Server::start_server_only(
            cfg,
            dash,
            server_metrics(&ctx.config.server, &ctx.config.notify),
        )?;
        eprintln!("holdfast serve: backup-server pages on {}/", server.url());
        wait(server);
        return Ok(exit::code(exit::OK));
    };
    let extras = holdfast_web::SiteExtras {
        metrics: metrics(&ctx.config.server, ctx.config.site.state_dir()),
        lock_file: Some(ctx.config.backup.lock_file.clone()),
        backups: Some(backups(
            ctx.config.backup.clone(),
            ctx.config.site.state_dir(),
        )),
    };
    let server = holdfast_web::Server::start(site, ctx.config.unpack.clone(), cfg, extras)?;
    eprintln!("holdfast serve: listening on {}/", server.url());
    wait(server);
    Ok(exit::code(exit::OK))
}

fn wait(server: holdfast_web::Server) {
    while !holdfast_core::interrupt::requested() {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("holdfast serve: stopping (waiting for a running recovery to finish)");
    drop(server);
}

/// The backup server's metrics: its status file, the warning state and the outbox.
fn server_metrics(
    server: &holdfast_server::ServerConfig,
    notify: &holdfast_notify::NotifyConfig,
) -> Option<holdfast_web::MetricsFn> {
    let (server, notify) = (server.clone(), notify.clone());
    Some(std::sync::Arc::new(move || {
        let d = holdfast_notify::dashboard::gather(&server, &notify);
        holdfast_server::metrics::render_from_config(&server)
            + &holdfast_notify::dashboard::metrics(&d)
    }))
}

/// The `/backups` page: the target's snapshots (with their verify results), the last backup
/// and verify runs, and the recent runs with their result.
fn backups(
    backup: holdfast_backup::BackupConfig,
    state_dir: std::path::PathBuf,
) -> holdfast_web::dashboard::DashboardFn {
    std::sync::Arc::new(move || {
        let (snapshots, error) = match holdfast_backup::overview::snapshots(&backup) {
            Ok(s) => (s, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        serde_json::json!({
            "target": backup.target,
            "snapshots": snapshots,
            "snapshots_error": error,
            "last_backup": crate::runlog::last(&state_dir, "backup"),
            "last_verify": crate::runlog::last(&state_dir, "verify"),
            "last_verify_snapshots": crate::runlog::last(&state_dir, "verify-snapshots"),
            "runs": crate::runlog::history(&state_dir, 20),
        })
    })
}

/// The site's last backup and verify runs, then the backup server's metrics (its status
/// file under `[server] state_dir`), after the recovery queue's own.
fn metrics(
    server: &holdfast_server::ServerConfig,
    state_dir: std::path::PathBuf,
) -> Option<holdfast_web::MetricsFn> {
    let server = server.clone();
    Some(std::sync::Arc::new(move || {
        crate::runlog::metrics(&state_dir) + &holdfast_server::metrics::render_from_config(&server)
    }))
}
