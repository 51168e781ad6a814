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
(Prometheus) and /healthz. Stops on Ctrl-C or SIGTERM after the running recovery finishes."
)]
pub struct Args {
    /// Address to listen on (default from [web] listen, 127.0.0.1:8340).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Recovery workers (uploads reunpacked at the same time).
    #[arg(long)]
    workers: Option<usize>,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let mut cfg = ctx.config.web.clone();
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(w) = args.workers {
        cfg.workers = w;
    }
    let server = holdfast_web::Server::start(
        site,
        ctx.config.unpack.clone(),
        cfg,
        metrics(&ctx.config.server),
    )?;
    eprintln!("holdfast serve: listening on {}/", server.url());
    while !holdfast_site::interrupt::requested() {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("holdfast serve: stopping (waiting for a running recovery to finish)");
    drop(server);
    Ok(exit::code(exit::OK))
}

/// The backup server's metrics (its status file under `[server] state_dir`) on `/metrics`,
/// after the recovery queue's own.
fn metrics(server: &holdfast_server::ServerConfig) -> Option<holdfast_web::MetricsFn> {
    let server = server.clone();
    Some(std::sync::Arc::new(move || {
        holdfast_server::metrics::render_from_config(&server)
    }))
}
