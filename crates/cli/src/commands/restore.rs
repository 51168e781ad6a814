//! `holdfast restore [SNAPSHOT]`: bring the site back from a snapshot and verify it.

use crate::commands::backup::{cli_error, human_bytes};
use crate::config::Context;
use crate::exit;
use holdfast_backup::RestoreOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Restores a snapshot (the latest by default; see `holdfast snapshots`): stops \
the scheduler, checks fossology.conf and Db.conf are in place, recreates the database with its \
original encoding and loads the dump, copies the repository back (hard links, owner and modes \
kept), starts the scheduler, then verifies that every file the database references exists \
under its name and size, printing what is missing (exit code 3).\n\n\
The site database is DROPPED and recreated. With --into DIR the restore goes to a scratch \
folder and a scratch database instead (for drills); the live site is not touched."
)]
pub struct Args {
    /// Snapshot name (`current`, `day.<time>`, `base.<time>`, `incr.<time>`); default latest.
    pub snapshot: Option<String>,
    /// Restore into this scratch folder (repository/ and etc/fossology/) instead of the site.
    #[arg(long)]
    pub into: Option<PathBuf>,
    /// Database to restore into (default: the site's, or <dbname>_restore with --into).
    #[arg(long)]
    pub db: Option<String>,
    /// Restore the repository only.
    #[arg(long, conflicts_with = "skip_repo")]
    pub skip_db: bool,
    /// Restore the database only.
    #[arg(long)]
    pub skip_repo: bool,
    /// Gold-mode snapshots: rebuild only what cut-off jobs need now, the rest on demand.
    #[arg(long)]
    pub lazy: bool,
    /// Show what would be restored where; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let cfg = &ctx.config.backup;
    if args.dry_run {
        let target = cfg.target()?;
        let snap = holdfast_store::layout::find(&target, args.snapshot.as_deref())?;
        let chain = holdfast_store::layout::chain(&target, &snap)?;
        println!(
            "would restore {} ({} mode, {} files, {}) from {}",
            snap.name,
            snap.manifest.mode,
            snap.manifest.repository.files,
            human_bytes(snap.manifest.repository.bytes),
            target.display()
        );
        println!(
            "  pieces: {}",
            chain
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        match &args.into {
            Some(d) => println!(
                "  into scratch folder {} (live site untouched)",
                d.display()
            ),
            None => println!(
                "  into {} and database {} (dropped and recreated, encoding {})",
                site.repo.root.display(),
                args.db.as_deref().unwrap_or(site.db.dbname()),
                snap.manifest.database.encoding
            ),
        }
        return Ok(exit::code(exit::OK));
    }
    let opts = RestoreOptions {
        snapshot: args.snapshot,
        scratch: args.into,
        dbname: args.db,
        skip_db: args.skip_db,
        skip_repo: args.skip_repo,
        lazy_rebuild: args.lazy,
    };
    let out =
        holdfast_backup::restore(&site, &ctx.config.scheduler, cfg, &ctx.config.unpack, &opts)
            .map_err(cli_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "restored {} ({}) into {} and database {}: database {:.1} s, repository {:.1} s{}",
            out.snapshot,
            out.manifest.finished.format("%Y-%m-%d %H:%M UTC"),
            out.repo_root.display(),
            out.dbname,
            out.db_secs,
            out.repo_secs,
            out.rebuild
                .as_ref()
                .map(|r| format!(
                    ", rebuilt {} upload(s) from gold in {:.1} s",
                    r.rebuilt.len(),
                    out.rebuild_secs
                ))
                .unwrap_or_default()
        );
        println!(
            "verify: {} referenced file(s) checked, {} missing",
            out.verify.checked,
            out.verify.missing.len()
        );
        if let Some(r) = &out.rebuild {
            if !r.requeued.is_empty() {
                println!(
                    "handed back to the scheduler (cut off by the backup): jobqueue rows {:?}",
                    r.requeued
                );
            }
            // The rebuild knows why each file is still missing; say it.
            for m in r.missing.iter().take(50) {
                println!("  missing: {m}");
            }
        }
        if out.rebuild.as_ref().is_none_or(|r| r.missing.is_empty()) {
            for m in out.verify.missing.iter().take(50) {
                println!("  missing: upload {} {} {}", m.upload_fk, m.kind, m.name);
            }
        }
        if out.verify.missing.len() > 50 {
            println!(
                "  ... and {} more (use --json)",
                out.verify.missing.len() - 50
            );
        }
    }
    if out.scheduler_restarted == Some(false) {
        anyhow::bail!(
            "restore done, but the scheduler did not start: start it by hand ({})",
            ctx.config.scheduler.start_command.join(" ")
        );
    }
    Ok(exit::code(if out.is_whole() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
