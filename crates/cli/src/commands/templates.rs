//! `holdfast templates ...`: the resellers' mail templates (see docs/templates.md).

use crate::config::Context;
use crate::exit;
use holdfast_notify::sync;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Pull the resellers' template folders from the self-care server (rsync -vrlt --delete
    /// over SSH with [notify.sync] identity_file and files_from), then check that every
    /// synced template renders.
    Sync {
        /// Instead of syncing, write the cron entry that syncs daily at 04:00.
        #[arg(long)]
        install_cron: bool,
        /// Cron file to write instead of [notify.sync] cron_file.
        #[arg(long, value_name = "PATH", requires = "install_cron")]
        cron_file: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render every template in a folder with sample values and list the broken ones
    /// (default: every reseller folder under [notify] themes_dir).
    Check {
        /// A `<theme>/templates/services/backup` folder.
        dir: Option<PathBuf>,
    },
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.notify;
    match cmd {
        Cmd::Sync {
            install_cron: true,
            cron_file,
            ..
        } => {
            let exe = std::env::current_exe()
                .unwrap_or_else(|_| PathBuf::from("/usr/local/bin/holdfast"));
            let config = std::path::absolute(&ctx.path).unwrap_or_else(|_| ctx.path.clone());
            let path = cron_file.unwrap_or_else(|| cfg.sync.cron_file.clone());
            sync::install_cron(&path, &sync::cron_entry(&exe, &config))?;
            println!("wrote {}: templates sync daily at 04:00", path.display());
            Ok(exit::code(exit::OK))
        }
        Cmd::Sync { json, .. } => {
            let r = sync::sync(&cfg.sync, cfg.themes_dir.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.rsync_output);
                println!(
                    "{} reseller folder(s), {} template(s) checked, {} broken",
                    r.folders.len(),
                    r.templates_checked,
                    r.broken.len()
                );
                for b in &r.broken {
                    println!("broken: {b}");
                }
            }
            Ok(exit::code(if r.broken.is_empty() {
                exit::OK
            } else {
                exit::INCOMPLETE
            }))
        }
        Cmd::Check { dir } => {
            let dirs: Vec<PathBuf> = match dir {
                Some(d) => vec![d],
                None => {
                    let root = cfg.themes_dir.as_ref().ok_or_else(|| {
                        anyhow::anyhow!("no folder given and [notify] themes_dir is not set")
                    })?;
                    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?
                        .filter_map(|e| e.ok())
                        .map(|e| e.path().join(holdfast_notify::templates::THEME_SUBDIR))
                        .filter(|p| p.is_dir())
                        .collect();
                    v.sort();
                    v
                }
            };
            let mut broken = 0;
            for d in &dirs {
                for b in holdfast_notify::templates::check_folder(d) {
                    println!("broken: {b}");
                    broken += 1;
                }
            }
            println!(
                "{} folder(s) checked, {broken} broken template(s)",
                dirs.len()
            );
            Ok(exit::code(if broken == 0 {
                exit::OK
            } else {
                exit::INCOMPLETE
            }))
        }
    }
}
