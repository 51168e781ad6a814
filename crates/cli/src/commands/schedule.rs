//! `holdfast schedule install|show`: the cron entry for the nightly backup.

use crate::config::Context;
use crate::exit;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Write the cron file (default /etc/cron.d/holdfast) for a daily backup at backup.schedule.
    Install {
        /// Cron file to write instead of backup.cron_file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Print the entry without writing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the installed cron file, or what `install` would write.
    Show {
        /// Cron file to read instead of backup.cron_file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.backup;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/holdfast"));
    let config = std::path::absolute(&ctx.path).unwrap_or_else(|_| ctx.path.clone());
    let entry = holdfast_backup::schedule::cron_entry(cfg, &exe, &config)?;
    match cmd {
        Cmd::Install { file, dry_run } => {
            let path = file.unwrap_or_else(|| cfg.cron_file.clone());
            if dry_run {
                println!("would write {}:\n{entry}", path.display());
            } else {
                holdfast_backup::schedule::install(&path, &entry)?;
                println!("wrote {}: daily backup at {}", path.display(), cfg.schedule);
            }
        }
        Cmd::Show { file } => {
            let path = file.unwrap_or_else(|| cfg.cron_file.clone());
            match std::fs::read_to_string(&path) {
                Ok(t) => print!("{t}"),
                Err(_) => println!(
                    "{} is not installed; `holdfast schedule install` would write:\n{entry}",
                    path.display()
                ),
            }
        }
    }
    Ok(exit::code(exit::OK))
}
