//! `holdfast backup`: one backup run of the site to the configured target.

use crate::config::Context;
use crate::exit::{self, CodedError};
use holdfast_backup::{BackupError, Mode};
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Backs up the FOSSology site: copies every folder FOSSology keeps files in (by \
the [REPOSITORY] lines of fossology.conf, read as FOSSology reads them) with rsync while \
FOSSology runs (hard links kept, change judged by name and size, ununpack leftovers skipped); \
then stops the scheduler gracefully (scheduler.control: init script, systemd unit, or \
fo_scheduler run directly as in Docker) and waits until no agent process and no running job is \
left, using FOSSology's kill path only after scheduler.stop_timeout_secs; dumps the database \
with pg_dumpall through gzip/zstd; copies only what changed since the first copy; starts the \
scheduler again (on every way out, if it was running before); sends the dump with rsync \
against the previous snapshot's dump; writes the manifest and makes the snapshot visible. \
--no-precopy (backup.precopy = false) keeps the scheduler stopped for the whole copy; so does \
a small night (the database names under backup.precopy_above_mib, 64 MiB, and 5,000 new files; \
pool layout and btrfs day trees), whose copy runs beside the dump and ends within it. \
Between whole-repository walks (every backup.full_walk_days, or --full-walk) the rolling and \
pool layouts copy only what FOSSology's database added since the previous snapshot (new \
uploads, unpacks and pfiles above its high-water marks) plus the logs and report folders, and \
drop what it deleted. --online (backup.online = true) never stops it: the dump is read from an exported PostgreSQL \
snapshot (pg_dump --snapshot, roles with pg_dumpall --globals-only) and the repository copied \
after that point (files caught half-written are copied again, files the dump names that were \
deleted since are taken from an earlier snapshot; jobs running at that point run again after a \
restore). Files the database names but the repository lacks are listed and make the run exit \
1.\n\n\
The target (backup.target) is a local folder or ssh://user@host[:port]/path. Old snapshots \
beyond backup.keep are removed; --dry-run shows the plan and changes nothing."
)]
pub struct Args {
    /// Back up to this target instead of backup.target.
    #[arg(long)]
    pub target: Option<String>,
    /// What to copy: full (gold, files, logs, license) or gold (files rebuilt on restore).
    #[arg(long, value_parser = ["full", "gold"])]
    pub mode: Option<String>,
    /// Keep the scheduler stopped for the whole repository copy (no copy while FOSSology runs).
    #[arg(long, conflicts_with = "online")]
    pub no_precopy: bool,
    /// Never stop the scheduler: dump from a database snapshot, copy the repository after it.
    #[arg(long)]
    pub online: bool,
    /// Walk the whole repository this time, instead of copying what FOSSology's database says
    /// is new since the previous snapshot (backup.full_walk_days sets how often it happens).
    #[arg(long)]
    pub full_walk: bool,
    /// Show what would be copied where and which snapshots would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the outcome (manifest included) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The site's name in manifests: site.name, else the host name.
pub fn site_name(ctx: &Context) -> String {
    ctx.config.site.name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "fossology".into())
    })
}

/// Turns a backup error into the CLI's error, keeping exit codes 4 (locked) and 130.
pub fn cli_error(e: BackupError) -> anyhow::Error {
    if e.is_interrupted() {
        return anyhow::Error::new(holdfast_core::interrupt::Interrupted);
    }
    if e.is_locked() {
        return CodedError {
            code: exit::LOCKED,
            message: e.to_string(),
        }
        .into();
    }
    anyhow::Error::new(e)
}

pub use holdfast_core::human_bytes;

/// Starts the scheduler when an interrupted run left it stopped (every command calls this).
pub fn resume_scheduler(ctx: &Context) {
    let site = ctx.site().ok();
    match holdfast_backup::resume_scheduler(
        &ctx.config.backup,
        &ctx.config.scheduler,
        site.as_ref(),
    ) {
        Ok(Some(msg)) if msg.contains("stays stopped") => tracing::warn!("{msg}"),
        Ok(Some(msg)) => tracing::info!("{msg}"),
        Ok(None) => {}
        Err(e) => tracing::error!(
            "the scheduler was left stopped by an interrupted run and could not be started: {e}"
        ),
    }
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let mut cfg = ctx.config.backup.clone();
    if let Some(t) = args.target {
        cfg.target = t;
    }
    if let Some(m) = args.mode.as_deref() {
        cfg.mode = if m == "gold" { Mode::Gold } else { Mode::Full };
    }
    if args.no_precopy {
        cfg.precopy = false;
        cfg.online = false;
    }
    if args.online {
        cfg.online = true;
    }
    if args.full_walk {
        cfg.full_walk_days = 0;
    }
    let name = site_name(ctx);
    if args.dry_run {
        let target = cfg.store()?;
        let target = target.as_ref();
        println!(
            "would back up site {name} ({}) to {}",
            site.conf_dir.display(),
            target.display()
        );
        let sched = &ctx.config.scheduler;
        println!(
            "  scheduler ({:?}): graceful stop {}, kill path after {} s, start again (if it was running) {}",
            sched.control(),
            sched.stop_hint(),
            sched.stop_timeout_secs,
            sched.start_hint()
        );
        println!(
            "  database: {} on {}:{} ({})",
            site.db.dbname(),
            site.db.host(),
            site.db.port(),
            cfg.compression.as_str()
        );
        println!("  pg_dumpall {}", cfg.superuser(&site.db)?.describe());
        let scope = holdfast_backup::scope::Scope::of(&site, &cfg);
        println!(
            "  repository {}, folders {:?} (types {:?}, by the [REPOSITORY] lines of {}; the report folders when present)",
            site.repo.root.display(),
            scope.dirs,
            scope.types,
            site.conf_dir.join("fossology.conf").display()
        );
        println!(
            "  repository copied {}",
            if cfg.online {
                "after a database snapshot, the scheduler never stopped (online mode)"
            } else if cfg.precopy {
                "while FOSSology runs, then what changed with the scheduler stopped (a small night: all of it with the scheduler stopped, beside the dump)"
            } else {
                "with the scheduler stopped"
            }
        );
        println!(
            "  layout {} (keep {}, full every {})",
            cfg.layout, cfg.keep, cfg.full_every
        );
        // The first backup makes the target; a dry run makes nothing.
        let there = match target.check_readable() {
            Ok(()) => true,
            Err(holdfast_store::StoreError::NotThere { .. }) => {
                println!(
                    "  the target does not exist yet: the first backup makes it (if backups \
                     were made before, check backup.target and that the disk is mounted)"
                );
                false
            }
            Err(e) => return Err(e.into()),
        };
        // Rolling with hard links: what each day tree's folders cost there, when anything.
        let mut folder_cost = None;
        if let (true, holdfast_store::LayoutKind::Rolling, Some(t)) =
            (there, cfg.layout, target.as_target())
        {
            let trees = cfg.layout().day_trees_in_use(t)?;
            println!("  day trees: {trees}");
            if trees.starts_with("hard links") {
                folder_cost = holdfast_store::folders::cost(t)
                    .filter(|&c| c > 0)
                    .map(|c| (c, t));
            }
        }
        let snaps = if there {
            target.snapshots()?
        } else {
            Vec::new()
        };
        println!("  {} snapshot(s) there now", snaps.len());
        // What the copy would move: the repository's files, less those the latest snapshot
        // already has under the same name (they are linked or already in the pool).
        let have: std::collections::HashSet<String> = match snaps.last() {
            Some(s) => target
                .snapshot_files(s)
                .map(|l| l.into_iter().collect())
                .unwrap_or_default(),
            None => Default::default(),
        };
        let (mut files, mut bytes, mut new_files, mut new_bytes) = (0u64, 0u64, 0u64, 0u64);
        let mut folders = std::collections::HashSet::new();
        for rel in holdfast_store::pool::list_files(&site.repo.root, &scope.dirs) {
            if folder_cost.is_some() {
                // Each folder above the file; one met already has its own above it counted.
                let mut at = rel.as_str();
                while let Some(i) = at.rfind('/') {
                    at = &at[..i];
                    if !folders.insert(at.to_string()) {
                        break;
                    }
                }
            }
            let size = std::fs::metadata(site.repo.root.join(&rel))
                .map(|m| m.len())
                .unwrap_or(0);
            files += 1;
            bytes += size;
            if !have.contains(&rel) {
                new_files += 1;
                new_bytes += size;
            }
        }
        println!(
            "  would copy {new_files} new file(s), {} (the repository has {files} files, {}; the rest is linked or already there)",
            human_bytes(new_bytes),
            human_bytes(bytes)
        );
        if let Some((cost, t)) = folder_cost {
            println!(
                "  note: {}; this repository has {} folders: {} of folder blocks in each day tree",
                holdfast_store::folders::advice_at(cost, t),
                folders.len(),
                human_bytes(cost * folders.len() as u64)
            );
        }
        for name in cfg.layout().next_prune(&snaps) {
            println!("  would remove {name}");
        }
        return Ok(exit::code(exit::OK));
    }
    crate::runlog::note(|r| r.kind = cfg.mode.as_str().into());
    let out =
        holdfast_backup::backup(&site, &name, &ctx.config.scheduler, &cfg).map_err(cli_error)?;
    let m = &out.manifest;
    tracing::Span::current().record("snapshot", out.snapshot.as_str());
    crate::runlog::note(|r| {
        r.snapshot = Some(out.snapshot.clone());
        r.bytes = Some(m.repository.bytes + m.database.bytes);
        r.files = Some(m.repository.files as u64);
        // Stop to start (0 in online mode, and when the operator had it stopped).
        r.scheduler_down_secs = Some(m.timings.downtime_secs);
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "snapshot {} on {}: {} files, {} ({} new files, {}), dump {} ({}, {} sent), {} unfinished job(s) recorded, {:.1} s, scheduler down {:.1} s",
            out.snapshot,
            out.target,
            m.repository.files,
            human_bytes(m.repository.bytes),
            m.repository.new_files,
            human_bytes(m.repository.new_bytes),
            human_bytes(m.database.bytes),
            m.database.encoding,
            human_bytes(m.database.sent_bytes),
            m.jobs.unfinished.len(),
            m.timings.total_secs,
            m.timings.downtime_secs
        );
        if !m.repository.being_deleted.is_empty() {
            println!(
                "{}",
                super::verify::being_deleted_line(&m.repository.being_deleted)
            );
        }
    }
    for c in &out.copies {
        if !args.json {
            println!("{}", crate::commands::copy::describe(c));
        }
    }
    if !out.scheduler_restarted {
        anyhow::bail!(
            "backup {} is complete, but the scheduler did not start again: start it by hand ({})",
            out.snapshot,
            ctx.config.scheduler.start_hint()
        );
    }
    if !out.missing.is_empty() {
        anyhow::bail!("{}", missing_message(&site, &out));
    }
    let unlisted = &m.repository.unlisted;
    if !unlisted.is_empty() {
        let shown: Vec<&str> = unlisted.iter().take(3).map(String::as_str).collect();
        return Err(CodedError {
            code: exit::INCOMPLETE,
            message: format!(
                "snapshot {} was written without {} file(s) of {} whose names no file list can \
                 carry (not UTF-8, or holding a line break), e.g. {}: rename them (FOSSology \
                 makes a report again on request) and the next backup takes them",
                out.snapshot,
                unlisted.len(),
                site.repo.root.display(),
                shown.join(", ")
            ),
        }
        .into());
    }
    let failed: Vec<String> = out
        .copies
        .iter()
        .filter(|c| !c.ok())
        .map(|c| format!("{}: {}", c.name, c.error.as_deref().unwrap_or("?")))
        .collect();
    if !failed.is_empty() {
        return Err(CodedError {
            code: exit::INCOMPLETE,
            message: format!(
                "snapshot {} is complete on {}, but its copy failed ({}); `holdfast copy` tries again",
                out.snapshot,
                out.target,
                failed.join("; ")
            ),
        }
        .into());
    }
    Ok(exit::code(exit::OK))
}

/// Says how many files the snapshot lacks because the repository lacks them, with a few
/// examples and what to do.
fn missing_message(site: &holdfast_site::Site, out: &holdfast_backup::BackupOutcome) -> String {
    let examples: Vec<String> = out
        .missing
        .iter()
        .take(3)
        .map(|r| {
            let at = site
                .repo
                .path(&r.kind, &r.name)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!(
                "upload {} {} {} (expected at {at})",
                r.upload_fk, r.kind, r.name
            )
        })
        .collect();
    format!(
        "snapshot {} was written, but the repository lacks {} file(s) the database names, so the \
         snapshot lacks them too; for example: {}. `holdfast check-repo` lists them all and \
         `holdfast recover` rebuilds what gold can rebuild; if the files exist elsewhere, the \
         [REPOSITORY] lines of {} do not say where FOSSology looks for them",
        out.snapshot,
        out.missing.len(),
        examples.join("; "),
        site.conf_dir.join("fossology.conf").display()
    )
}
