//! `holdfast templates ...`: the resellers' mail templates (see docs/templates.md).

use crate::config::Context;
use crate::exit;
use holdfast_notify::sync;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// On the self-care server: check the resellers' template folders and push them to every
    /// [notify.sync] push_to server (rsync -vrt --delete over SSH; symlinks are never
    /// copied). Cron: daily at 04:00, logged with the tag distributeTemplates.
    Push {
        /// Instead of pushing, write the cron entry that pushes daily at 04:00.
        #[arg(long)]
        install_cron: bool,
        /// Cron file to write (default /etc/cron.d/distribute-templates).
        #[arg(long, value_name = "PATH", requires = "install_cron")]
        cron_file: Option<PathBuf>,
        /// List what each server would get and lose (rsync -n), changing nothing.
        #[arg(long, conflicts_with = "install_cron")]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// On a notification server: pull the resellers' template folders from the self-care
    /// server (rsync -vrt --delete over SSH with [notify.sync] identity_file, port and
    /// files_from; symlinks are never copied), then check that every synced template renders.
    Sync {
        /// Instead of syncing, write the cron entry that syncs daily at 04:00.
        #[arg(long)]
        install_cron: bool,
        /// Cron file to write instead of [notify.sync] cron_file.
        #[arg(long, value_name = "PATH", requires = "install_cron")]
        cron_file: Option<PathBuf>,
        /// List what the pull would copy and delete (rsync -n), changing nothing.
        #[arg(long, conflicts_with = "install_cron")]
        dry_run: bool,
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

/// One copy at a time (cron and a person may start one together): exit code 4 when held.
fn lock(verb: &str) -> anyhow::Result<holdfast_core::lock::Lock> {
    let path =
        std::path::Path::new(holdfast_core::lock::RUN_DIR).join(format!("templates-{verb}.lock"));
    match holdfast_core::lock::acquire(&path, holdfast_core::lock::LockMode::Exclusive) {
        Ok(l) => Ok(l),
        Err(e @ holdfast_core::lock::LockError::Held { .. }) => Err(exit::CodedError {
            code: exit::LOCKED,
            message: e.to_string(),
        }
        .into()),
        Err(e) => Err(e.into()),
    }
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
            sync::install_cron(&path, &sync::cron_entry(&exe, &config, false))?;
            println!("wrote {}: templates sync daily at 04:00", path.display());
            Ok(exit::code(exit::OK))
        }
        Cmd::Push {
            install_cron: true,
            cron_file,
            ..
        } => {
            let exe = std::env::current_exe()
                .unwrap_or_else(|_| PathBuf::from("/usr/local/bin/holdfast"));
            let config = std::path::absolute(&ctx.path).unwrap_or_else(|_| ctx.path.clone());
            let path =
                cron_file.unwrap_or_else(|| PathBuf::from("/etc/cron.d/distribute-templates"));
            sync::install_cron(&path, &sync::cron_entry(&exe, &config, true))?;
            println!("wrote {}: templates push daily at 04:00", path.display());
            Ok(exit::code(exit::OK))
        }
        Cmd::Push { json, dry_run, .. } => {
            let _lock = lock("push")?;
            let r = sync::push(&cfg.sync, dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for b in &r.local.broken {
                    println!("broken: {b}");
                }
                for t in &r.targets {
                    print!("{}", t.rsync_output);
                    match &t.error {
                        Some(e) => println!("{}: FAILED {e}", t.target),
                        None if dry_run => {
                            println!("{}: would get the changes above (dry run)", t.target)
                        }
                        None => println!("{}: templates pushed", t.target),
                    }
                }
                println!(
                    "{} reseller folder(s), {} template(s) checked, {} broken; {} of {} server(s) failed",
                    r.local.folders.len(),
                    r.local.templates_checked,
                    r.local.broken.len(),
                    r.failed(),
                    r.targets.len()
                );
            }
            Ok(exit::code(
                if r.local.broken.is_empty() && r.failed() == 0 {
                    exit::OK
                } else {
                    exit::INCOMPLETE
                },
            ))
        }
        Cmd::Sync { json, dry_run, .. } => {
            let _lock = lock("sync")?;
            let r = sync::sync(&cfg.sync, cfg.themes_dir.as_deref(), dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if dry_run {
                print!("{}", r.rsync_output);
                println!(
                    "dry run: {} reseller folder(s) listed; nothing copied, deleted or checked",
                    r.folders.len()
                );
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
                // A typo must not pass as "0 broken".
                Some(d) if !d.is_dir() => {
                    anyhow::bail!("{}: no such template folder", d.display())
                }
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
