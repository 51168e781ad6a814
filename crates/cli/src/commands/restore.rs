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
kept), starts the scheduler again if it was running, then verifies that every file the database references exists \
under its name and size, printing what is missing (exit code 3).\n\n\
The site database is DROPPED and recreated: on a terminal holdfast shows what would be lost \
(uploads newer than the snapshot) and asks; without a terminal it needs --yes. Every restored \
file named by its content is hashed; a damaged copy is moved aside into \
<repository>/.holdfast-damaged/ and reported (exit code 3). Until the restore completes, a \
marker in the repository makes verify, check-repo, backup and serve refuse the half-restored site.\n\n\
With --into DIR the restore goes to a scratch folder and a scratch database instead (for \
drills); the live site is not touched, and the scratch database is dropped after the check \
unless --keep-db."
)]
pub struct Args {
    /// Snapshot name (`current`, `day.<time>`, `base.<time>`, `incr.<time>`); default latest.
    pub snapshot: Option<String>,
    /// Restore from this copy (`[[backup.copy]]` name) instead of backup.target, with the
    /// same checks (for when the backup server is gone too).
    #[arg(long, value_name = "COPY")]
    pub from: Option<String>,
    /// Restore from this target instead of backup.target (a path or user@host:/path, as
    /// `holdfast snapshots --target` lists it).
    #[arg(long, conflicts_with = "from")]
    pub target: Option<String>,
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
    /// Show what would be restored where, copied and dropped; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the live site without asking (needed when there is no terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --into: keep the scratch database (default: dropped once the restore is checked).
    #[arg(long, requires = "into")]
    pub keep_db: bool,
    /// Do not hash the restored files against their names.
    #[arg(long)]
    pub skip_content_check: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What restoring `snap` over the live database loses: a line for people.
fn what_is_lost(site: &holdfast_site::Site, snap: &holdfast_store::Snapshot) -> String {
    let taken = snap.manifest.started;
    // The database dropped is the one --db names, when it does.
    match holdfast_backup::connect(site) {
        Err(_) => format!(
            "database {} is unreachable now: nothing newer can be read from it",
            site.db.dbname()
        ),
        Ok(mut c) => match holdfast_site::db::uploads_since(&mut c, taken) {
            Ok((0, _)) => format!(
                "database {}: no upload is newer than the snapshot ({})",
                site.db.dbname(),
                taken.format("%Y-%m-%d %H:%M UTC")
            ),
            Ok((n, newest)) => format!(
                "database {}: {n} upload(s) made after the snapshot ({}) will be LOST, the newest at {}",
                site.db.dbname(),
                taken.format("%Y-%m-%d %H:%M UTC"),
                newest.unwrap_or_default()
            ),
            Err(e) => format!(
                "database {}: cannot count newer uploads ({})",
                site.db.dbname(),
                holdfast_backup::pg_why(&e)
            ),
        },
    }
}

/// Asks on the terminal, or refuses without one (unless --yes).
fn confirm(lost: &str, snap: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(crate::exit::CodedError {
            code: exit::FAILURE,
            message: format!(
                "restore replaces the live site's database and scheduler state ({lost}); \
                 there is no terminal to ask, so run it again with --yes"
            ),
        }
        .into());
    }
    eprintln!("restoring {snap} replaces the live site:\n  {lost}");
    eprint!("continue? type yes: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        anyhow::bail!("restore cancelled; nothing was changed");
    }
    Ok(())
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let mut cfg = ctx.config.backup.clone();
    if let Some(t) = &args.target {
        cfg.target = t.clone();
    }
    let cfg = &cfg;
    // The database a live restore drops: the site's, or the one --db names.
    let dropped = match &args.db {
        Some(d) if args.into.is_none() => holdfast_site::Site {
            db: site.db.with_dbname(d),
            ..site.clone()
        },
        _ => site.clone(),
    };
    if args.dry_run {
        let target = cfg.store_for(args.from.as_deref()).map_err(cli_error)?;
        let snap = target.find(args.snapshot.as_deref())?;
        let chain = target.chain(&snap)?;
        let r = &snap.manifest.repository;
        if args.skip_repo {
            println!(
                "would restore the database of {} from {} (repository skipped)",
                snap.name,
                target.display()
            );
        } else {
            println!(
                "would restore {} ({} mode) from {}: copy {} files, {} (dump {})",
                snap.name,
                snap.manifest.mode,
                target.display(),
                r.files,
                human_bytes(r.bytes),
                human_bytes(snap.manifest.database.bytes)
            );
        }
        println!(
            "  pieces: {}",
            chain
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        if !args.skip_db {
            println!(
                "  database loaded with psql {}",
                cfg.superuser(&site.db)?.describe()
            );
        }
        match &args.into {
            Some(d) => println!(
                "  into scratch folder {} and scratch database {} (dropped and recreated; live site untouched)",
                d.display(),
                holdfast_backup::restore::scratch_dbname(&site, args.db.as_deref())?
            ),
            None if args.skip_db => println!(
                "  into {} (files added or overwritten, none deleted); the database is not touched",
                site.repo.root.display()
            ),
            None => {
                println!(
                    "  into {}{} and database {} (dropped and recreated, encoding {})",
                    site.repo.root.display(),
                    if args.skip_repo {
                        " (repository untouched)"
                    } else {
                        " (files added or overwritten, none deleted)"
                    },
                    args.db.as_deref().unwrap_or(site.db.dbname()),
                    snap.manifest.database.encoding
                );
                println!("  would drop: {}", what_is_lost(&dropped, &snap));
            }
        }
        return Ok(exit::code(exit::OK));
    }
    if args.into.is_none() && !args.yes {
        let target = cfg.store_for(args.from.as_deref()).map_err(cli_error)?;
        let snap = target.find(args.snapshot.as_deref())?;
        let lost = if args.skip_db {
            "the repository gets the snapshot's files (none deleted); the database is kept".into()
        } else {
            what_is_lost(&dropped, &snap)
        };
        confirm(&lost, &snap.name)?;
    }
    let opts = RestoreOptions {
        drop_scratch_db: args.into.is_some() && !args.keep_db,
        skip_content_check: args.skip_content_check,
        snapshot: args.snapshot,
        scratch: args.into,
        dbname: args.db,
        skip_db: args.skip_db,
        skip_repo: args.skip_repo,
        lazy_rebuild: args.lazy,
        from: args.from,
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
        for (upload, rows) in &out.cut_off_trees {
            println!(
                "upload {upload}: its unpack was cut off by the snapshot; the {rows} tree row(s) \
                 it left were removed, so the scheduler unpacks it whole again"
            );
        }
        let remade = out.not_reproducible();
        println!(
            "verify: {} referenced file(s) checked, {} missing{}",
            out.verify.checked,
            out.verify.missing.len(),
            if remade > 0 {
                format!(
                    " ({remade} of them artifacts that cannot be made again byte for byte: not data lost)"
                )
            } else {
                String::new()
            }
        );
        if !out.verify.being_deleted.is_empty() {
            println!(
                "{}",
                super::verify::being_deleted_line(&out.verify.being_deleted)
            );
        }
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
        for d in out.damaged.iter().take(50) {
            println!(
                "  damaged (moved into {}): {}: {}",
                holdfast_backup::restore::DAMAGED_DIR,
                d.path,
                d.why
            );
        }
        if out.scratch_db_dropped {
            println!("rehearsal database {} dropped", out.dbname);
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
            ctx.config.scheduler.start_hint()
        );
    }
    Ok(exit::code(if out.is_whole() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
