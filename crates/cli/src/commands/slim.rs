//! `holdfast slim report|apply`: repository slimming (classify, remove rebuildable containers).

use crate::config::Context;
use crate::exit;
use holdfast_core::human_bytes;
use holdfast_slim::{ApplyOptions, ApplyReport};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Files and bytes of leaves, containers and artifacts, per upload and in total, and what
    /// removing the containers would free.
    #[command(
        long_about = "Reads the database and the repository and reports, per upload and \
for the whole site: files and bytes of leaves (what agents scan), containers (archives, \
compressed files, packages: rebuildable from the upload's gold) and artifacts (artifact.meta \
and the like); the bytes shared with other uploads (each file counts once in the total); how \
much `holdfast slim apply --containers` would free; and every container that is not safe to \
remove, with the reason: it is a gold file, another upload uses it as a leaf, its upload's gold \
is missing, unpacking it left no file, FOSSology's package agent has yet to read it (an RPM or \
.dsc), or its inode has other links."
    )]
    Report(ReportArgs),
    /// Remove the containers that can be rebuilt from gold from `files`, and record them.
    #[command(
        long_about = "Removes every safe container (see `holdfast slim report`) from the \
repository's `files` and records each in the table holdfast_slimmed of FOSSology's database \
before unlinking it, so `verify`, `check-repo` and the restore verification report it as \
\"slimmed, rebuildable\" and `holdfast recover --upload N` brings it back from gold. A file \
whose pfile is a gold, or a leaf or artifact anywhere, is never removed. Interrupted, it can \
simply be run again. FOSSology's scheduler is stopped while it runs (so no unpack adds rows \
meanwhile) and started again afterwards."
    )]
    Apply(ApplyArgs),
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Show only this upload's row (totals stay site-wide).
    #[arg(long, value_name = "N")]
    upload: Option<i32>,
    /// Machine-readable output (one JSON document, exact byte counts).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Remove containers (the only kind of file slimming removes; required so the intent is
    /// spelled out).
    #[arg(long, required = true)]
    containers: bool,
    /// Only list what would be removed and the bytes it would free.
    #[arg(long)]
    dry_run: bool,
    /// Remove at most N containers in this run (spread the work over several windows).
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    /// Do not stop FOSSology's scheduler first (only when no unpack can run meanwhile, e.g.
    /// the scheduler is already stopped or not installed here).
    #[arg(long)]
    no_stop_scheduler: bool,
    /// Machine-readable output (one JSON document).
    #[arg(long)]
    json: bool,
}

fn db_error(site: &holdfast_site::Site, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot connect to FOSSology's database ({}): {e}",
        site.conf_dir.join("Db.conf").display()
    )
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Report(a) => report(a, ctx),
        Cmd::Apply(a) => apply(a, ctx),
    }
}

fn report(a: ReportArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let mut c = site.connect().map_err(|e| db_error(&site, e))?;
    let r = holdfast_slim::site_report(&mut c, &site.repo, a.upload)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(exit::code(exit::OK))
}

fn apply(a: ApplyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    // A half-restored site's rows and files do not yet agree: what looks removable or
    // absent there may be neither.
    holdfast_backup::refuse_if_restoring(&site).map_err(crate::commands::backup::cli_error)?;
    let mut c = site.connect().map_err(|e| db_error(&site, e))?;
    let opts = ApplyOptions {
        dry_run: a.dry_run,
        max: a.max,
    };
    // Never while a backup or restore copies the repository (they hold the same lock).
    let _lock = if a.dry_run {
        None
    } else {
        Some(
            holdfast_backup::lock::acquire(&ctx.config.backup.lock_file)
                .map_err(crate::commands::backup::cli_error)?,
        )
    };
    let guard = if a.dry_run || a.no_stop_scheduler {
        None
    } else {
        Some(holdfast_site::scheduler::quiesce(&ctx.config.scheduler, Some(&mut c)).map_err(
            |e| {
                anyhow::anyhow!(
                    "{e} (slimming needs the scheduler stopped; pass --no-stop-scheduler if no unpack can run)"
                )
            },
        )?)
    };
    let res = holdfast_slim::apply(&mut c, &site.repo, &opts);
    if let Some(g) = guard {
        g.restart().map_err(|e| {
            anyhow::anyhow!(
                "slimming finished but the scheduler did not start again: {e} (start it by hand: {})",
                ctx.config.scheduler.start_hint()
            )
        })?;
    }
    let r = res?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render(&r));
    }
    Ok(exit::code(exit::OK))
}

fn render(r: &ApplyReport) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would remove" } else { "removed" };
    for s in &r.removed {
        out.push_str(&format!(
            "{verb} pfile {} {} ({})\n",
            s.pfile_pk,
            s.name,
            human_bytes(s.bytes)
        ));
    }
    for (s, why) in &r.skipped {
        out.push_str(&format!("kept pfile {} {}: {why}\n", s.pfile_pk, s.name));
    }
    out.push_str(&format!(
        "{verb} {} containers, freeing {} ({} bytes)\n",
        r.removed.len(),
        human_bytes(r.freed_bytes),
        r.freed_bytes
    ));
    if !r.recorded_absent.is_empty() {
        out.push_str(&format!(
            "{} {} containers that were already absent (never stored by a slim unpack) as slimmed\n",
            if r.dry_run { "would record" } else { "recorded" },
            r.recorded_absent.len()
        ));
    }
    if !r.dropped_records.is_empty() {
        out.push_str(&format!(
            "{} {} slimming records whose pfile is now a gold, leaf or artifact (run `holdfast check-repo`)\n",
            if r.dry_run { "would drop" } else { "dropped" },
            r.dropped_records.len()
        ));
    }
    if r.remaining > 0 {
        out.push_str(&format!(
            "{} more containers can be removed: run again\n",
            r.remaining
        ));
    }
    out
}
