//! `holdfast recover`: rebuild missing repository files from gold, now.

use crate::config::Context;
use crate::exit;
use holdfast_recover::{recover_now, RebuildOptions, RecoveryState};
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Unpacks uploads again from their gold files, writing only the \
repository files that are missing (the database is left alone). With --upload the work goes \
through the same recovery queue `holdfast serve` works, so an upload already being recovered \
is not unpacked twice: this command then waits for that job. With --all every incomplete \
upload is rebuilt in parallel; a run that is stopped continues where it left off when started \
again. Exit code 3 when files are still missing afterwards."
)]
pub struct Args {
    /// Upload to rebuild (repeat for several).
    #[arg(long, value_name = "N", required_unless_present = "all")]
    upload: Vec<i32>,
    /// Every upload with files missing (uploads of unfinished jobs first).
    #[arg(long, conflicts_with = "upload")]
    all: bool,
    /// With --all after a gold-only restore, while FOSSology's scheduler is stopped: also hand
    /// the jobs the backup cut off back to the scheduler.
    #[arg(long, requires = "all")]
    after_restore: bool,
    /// With --all: first walk the repository and set aside every file shorter than its name
    /// says (moved into `<repository>/.holdfast-damaged/`), so the rebuild writes it again.
    #[arg(long, requires = "all")]
    scan: bool,
    /// Uploads unpacked at the same time with --all (default: one per CPU).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Only queue the uploads for `holdfast serve` to work; do not wait.
    #[arg(long, conflicts_with = "all")]
    queue: bool,
    /// Show what would be rebuilt and do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let unpack = &ctx.config.unpack;
    let q = ctx.config.web.queue();
    let mut c = site.connect().map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to FOSSology's database ({}): {e}",
            site.conf_dir.join("Db.conf").display()
        )
    })?;

    if args.dry_run {
        let filter = if args.all { None } else { Some(&args.upload) };
        let mut checks = Vec::new();
        match filter {
            None => checks = holdfast_recover::check_repo(&mut c, &site.repo, None)?,
            Some(list) => {
                for u in list {
                    checks.extend(holdfast_recover::check_repo(&mut c, &site.repo, Some(*u))?);
                }
            }
        }
        checks.retain(|c| !c.is_whole());
        if args.json {
            println!("{}", serde_json::to_string_pretty(&checks)?);
        } else if checks.is_empty() {
            println!("dry run: nothing is missing");
        } else {
            for c in &checks {
                println!(
                    "dry run: upload {} ({}): {} files, {} bytes missing; {}",
                    c.upload_pk,
                    c.filename,
                    c.missing_files,
                    c.missing_bytes,
                    if c.gold_present {
                        "would be rebuilt from gold"
                    } else {
                        "gold MISSING: cannot be rebuilt"
                    }
                );
            }
        }
        return Ok(exit::code(exit::OK));
    }

    // Never beside a backup (it would copy half-written files) or a restore (it overwrites
    // the repository); several recoveries may share the lock. Queuing only needs none.
    let _lock = if args.queue {
        None
    } else {
        Some(
            holdfast_backup::lock::acquire_shared(&ctx.config.backup.lock_file)
                .map_err(crate::commands::backup::cli_error)?,
        )
    };
    holdfast_backup::refuse_if_restoring(&site).map_err(crate::commands::backup::cli_error)?;

    if args.all {
        if args.scan && !args.dry_run {
            let s = holdfast_recover::damage::scan(&site.repo)?;
            let moved = holdfast_recover::damage::set_aside(&site.repo, &s.damaged)?;
            if !args.json {
                println!(
                    "scanned {} repository files: {} damaged set aside",
                    s.files,
                    moved.len()
                );
            }
        }
        let opts = RebuildOptions {
            lazy: false,
            jobs: args.jobs,
        };
        if args.after_restore {
            crate::commands::scheduler::refuse_if_running(ctx, "--after-restore")?;
        }
        let report = holdfast_recover::rebuild(&site, unpack, &[], &opts, args.after_restore)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "rebuilt {} uploads ({} already whole): {} files written, {:.1} s",
                report.rebuilt.len(),
                report.already_whole,
                report.files_written,
                report.seconds
            );
            if !report.requeued.is_empty() {
                println!(
                    "handed back to the scheduler: jobqueue rows {:?}",
                    report.requeued
                );
            }
            for m in &report.missing {
                println!("{m}");
            }
        }
        return Ok(exit::code(if report.lost().is_empty() {
            exit::OK
        } else {
            exit::INCOMPLETE
        }));
    }

    let who = format!("cli:{}", std::process::id());
    if args.queue {
        let mut out = Vec::new();
        for u in &args.upload {
            let (job, created) = q.enqueue(&mut c, *u, &who)?;
            if !args.json {
                println!(
                    "upload {u}: {} job {} ({})",
                    if created { "queued" } else { "already has" },
                    job.id,
                    job.state.as_str()
                );
            }
            out.push(job);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        return Ok(exit::code(exit::OK));
    }

    let mut jobs = Vec::new();
    let mut incomplete = false;
    for u in &args.upload {
        let job = recover_now(&site, unpack, &q, *u, &who)?;
        incomplete |= job.state == RecoveryState::Failed || job.still_missing > 0;
        if !args.json {
            println!(
                "upload {u}: job {} {}: {}",
                job.id,
                job.state.as_str(),
                job.message.as_deref().unwrap_or("")
            );
        }
        jobs.push(job);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    }
    Ok(exit::code(if incomplete {
        exit::INCOMPLETE
    } else {
        exit::OK
    }))
}
