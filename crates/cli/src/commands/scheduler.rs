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
    /// Start the scheduler if a holdfast run that died left it stopped.
    #[command(
        long_about = "Starts FOSSology's scheduler, the way it was running, when a holdfast run \
stopped it and died before starting it again (holdfast notes each stop in [scheduler] \
state_dir) and no backup or restore holds backup.lock_file now. A scheduler the operator \
stopped stays stopped. Run by the holdfast-backup service after every run, however it ended."
    )]
    Ensure,
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let Cmd::Ensure = cmd;
    let cfg = &ctx.config.scheduler;
    // The scheduler a holdfast run stopped may still be finishing its agents (the run was
    // killed meanwhile): it is started again once it is gone.
    if scheduler::draining(cfg) && !holdfast_core::lock::is_held(&ctx.config.backup.lock_file) {
        println!("the scheduler a holdfast run stopped is finishing its agents: starting it once it is gone");
        scheduler::start_after_drain(cfg)?;
        println!("started the scheduler a holdfast run had left stopped");
        return Ok(exit::code(exit::OK));
    }
    let found = scheduler::found(cfg);
    if found.running {
        println!(
            "the scheduler is running{}",
            found.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        );
        return Ok(exit::code(exit::OK));
    }
    // A run that holds the lock has the scheduler stopped on purpose.
    let lock = &ctx.config.backup.lock_file;
    if holdfast_core::lock::is_held(lock) {
        println!(
            "the scheduler is stopped, but a backup or restore holds {}; it starts the scheduler when it ends",
            lock.display()
        );
        return Ok(exit::code(exit::OK));
    }
    // A half-restored site keeps its scheduler stopped: agents must not run on it.
    if let Some(r) = ctx
        .site()
        .ok()
        .and_then(|s| holdfast_site::restoring::restoring(&s))
    {
        println!("the scheduler stays stopped: {r}");
        return Ok(exit::code(exit::OK));
    }
    // The scheduler module knows whether holdfast stopped it (its note in state_dir) and
    // how it ran; a scheduler the operator stopped stays stopped.
    let guard = scheduler::quiesce(cfg, None)?;
    let left_by_holdfast = guard.report.was_running;
    if left_by_holdfast {
        tracing::warn!("the scheduler was left stopped by a holdfast run that died: starting it");
    }
    guard.restart()?;
    if left_by_holdfast {
        println!("started the scheduler a holdfast run had left stopped");
    } else {
        println!("the scheduler is not running and no holdfast run stopped it: left as it is");
    }
    Ok(exit::code(exit::OK))
}

/// Refuses while FOSSology's scheduler runs: for repairs of what a kill or a restore left,
/// whose "started, never ended" rows are running agents on a live site.
pub fn refuse_if_running(ctx: &Context, what: &str) -> anyhow::Result<()> {
    let found = scheduler::found(&ctx.config.scheduler);
    if found.running {
        anyhow::bail!(
            "FOSSology's scheduler is running{}: its started jobs are running, not cut off; \
             stop it first ({what} repairs what a power cut, a kill or a restore left)",
            found.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        );
    }
    Ok(())
}
