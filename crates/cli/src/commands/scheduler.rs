//! `holdfast scheduler ensure`: start FOSSology's scheduler if a holdfast run left it stopped.
//!
//! The backup unit runs this as `ExecStopPost=` (and the cron line after the backup), so a
//! backup killed while the scheduler was stopped (SIGKILL, OOM, a reboot of the service) does
//! not leave FOSSology without its scheduler until the next night.

use crate::config::Context;
use crate::exit;
use holdfast_site::scheduler;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Start the scheduler unless it runs or a backup or restore holds the lock.
    #[command(
        long_about = "Starts FOSSology's scheduler ([scheduler] start_command) when its process \
(the first of [scheduler] process_names) is not running and no backup or restore holds \
backup.lock_file (that run starts the scheduler itself when it ends). Run by the \
holdfast-backup service after every run, however it ended."
    )]
    Ensure,
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let Cmd::Ensure = cmd;
    let cfg = &ctx.config.scheduler;
    let Some(name) = cfg.process_names.first() else {
        anyhow::bail!("[scheduler] process_names is empty: name the scheduler process first");
    };
    let running = scheduler::running_processes(std::slice::from_ref(name));
    if !running.is_empty() {
        println!("scheduler {name} is running (pid {})", running[0].pid);
        return Ok(exit::code(exit::OK));
    }
    // A run that holds the lock has the scheduler stopped on purpose.
    let lock = &ctx.config.backup.lock_file;
    if holdfast_core::lock::is_held(lock) {
        println!(
            "scheduler {name} is stopped, but a backup or restore holds {}; it starts the scheduler when it ends",
            lock.display()
        );
        return Ok(exit::code(exit::OK));
    }
    tracing::warn!(
        scheduler = %name,
        "the scheduler is not running and no holdfast run holds the lock: starting it"
    );
    scheduler::start(cfg)?;
    println!("started the scheduler ({})", cfg.start_command.join(" "));
    Ok(exit::code(exit::OK))
}
