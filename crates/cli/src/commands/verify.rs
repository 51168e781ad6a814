//! `holdfast verify`: is every file the database references in the repository
//! (the site), or is every file of a snapshot what its name says (`--snapshot`, `--all`)?

use crate::commands::backup::cli_error;
use crate::config::Context;
use crate::exit;
use holdfast_backup::content::{self, VerifyOptions, VerifyRecord};
use holdfast_core::bytes::{human_bytes, human_rate};
use std::fmt::Write as _;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Without --snapshot/--all: checks that every pfile that `upload` (gold) and \
`uploadtree` (files) reference exists in the repository under its name with its size, and \
prints what is missing.\n\n\
With --snapshot NAME or --all: proves the content of snapshots on the backup target. FOSSology \
names every repository file by its own sha1, md5 and size, so each file is hashed and compared \
with its name; the database dump is checked against the sha256 in the manifest. The record is \
kept on the target (.verify/), so an interrupted run resumes, and the next backup re-copies \
damaged files from the site instead of linking them.\n\n\
Exit code 3 when anything is missing or damaged."
)]
pub struct Args {
    /// Check one upload only.
    #[arg(long, conflicts_with_all = ["snapshot", "all"])]
    pub upload: Option<i32>,
    /// Prove the content of this snapshot on the backup target (see `holdfast snapshots`).
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,
    /// Prove the content of every snapshot on the backup target.
    #[arg(long, conflicts_with = "snapshot")]
    pub all: bool,
    /// Check only this share of each snapshot's files, chosen anew each run (e.g. `10%`).
    #[arg(long, value_name = "P%", value_parser = parse_percent)]
    pub sample: Option<f64>,
    /// Start over instead of resuming an unfinished verification.
    #[arg(long)]
    pub restart: bool,
    /// Verify the snapshots of this target instead of backup.target.
    #[arg(long, conflicts_with = "from")]
    pub target: Option<String>,
    /// Verify the snapshots of this copy (`[[backup.copy]]` name) instead of backup.target.
    #[arg(long, value_name = "COPY")]
    pub from: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage such as 10%"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(v)
}

impl Args {
    /// `--all` or `--snapshot`: the snapshots' proof, recorded apart from the site's check.
    pub fn proves_snapshots(&self) -> bool {
        self.snapshot.is_some() || self.all
    }
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    if args.proves_snapshots() {
        return run_snapshots(args, ctx);
    }
    let site = ctx.site()?;
    holdfast_backup::refuse_if_restoring(&site).map_err(cli_error)?;
    let mut c = holdfast_backup::connect(&site)?;
    if let Some(u) = args.upload {
        if !holdfast_site::db::upload_exists(&mut c, u)? {
            anyhow::bail!("there is no upload {u} in database {}", site.db.dbname());
        }
    }
    let mut report = holdfast_site::db::verify(&mut c, &site.repo, args.upload)?;
    // Meta files that come back only at the path they were unpacked at (restore and
    // check-repo explain them the same way).
    let not_reproducible =
        holdfast_recover::explain::set_apart_not_reproducible(&mut c, &mut report)?;
    crate::runlog::note(|r| r.missing = Some(report.missing.len() as u64));
    let mut out = String::new();
    if args.json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a holdfast_site::db::VerifyReport,
            not_reproducible: &'a [holdfast_recover::MissingFile],
        }
        let json = Json {
            report: &report,
            not_reproducible: &not_reproducible,
        };
        out = serde_json::to_string_pretty(&json)? + "\n";
    } else {
        writeln!(
            out,
            "{} referenced file(s) checked in {}, {} missing",
            report.checked,
            site.repo.root.display(),
            report.missing.len()
        )?;
        for m in &report.missing {
            writeln!(
                out,
                "  missing: upload {} {} {}",
                m.upload_fk, m.kind, m.name
            )?;
        }
        if !not_reproducible.is_empty() {
            writeln!(
                out,
                "{} artifact(s) cannot be made again byte for byte (not data lost):",
                not_reproducible.len()
            )?;
            for m in &not_reproducible {
                writeln!(out, "  {m}")?;
            }
        }
        if !report.slimmed.is_empty() {
            writeln!(out,
                "{} container(s) slimmed, rebuildable: removed on purpose by `holdfast slim apply`, not damage",
                report.slimmed.len()
            )?;
        }
        if !report.being_deleted.is_empty() {
            writeln!(out, "{}", being_deleted_line(&report.being_deleted))?;
        }
    }
    exit::print(&out);
    Ok(exit::code(if report.is_whole() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

/// How many files of how many uploads a delete job is removing (not damage).
pub(crate) fn being_deleted_line(refs: &[holdfast_site::db::Reference]) -> String {
    let uploads = holdfast_site::db::uploads_of(refs);
    format!(
        "{} file(s) of {} upload(s) being deleted (uploads {:?}): removed by a delete job \
         (delagent) that finishes the deletion when the scheduler runs it, not damage",
        refs.len(),
        uploads.len(),
        uploads
    )
}

fn run_snapshots(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut cfg = ctx.config.backup.clone();
    if let Some(t) = args.target {
        cfg.target = t;
    }
    let target = cfg.store_for(args.from.as_deref()).map_err(cli_error)?;
    let target = target.as_ref();
    target.check_readable()?;
    let snaps = match &args.snapshot {
        Some(n) => vec![target.find(Some(n))?],
        None => target.snapshots()?,
    };
    if snaps.is_empty() {
        anyhow::bail!(
            "no snapshots on {} to verify (run `holdfast backup` first)",
            target.display()
        );
    }
    let opts = VerifyOptions {
        sample_percent: args.sample,
        restart: args.restart,
    };
    let mut records: Vec<VerifyRecord> = Vec::new();
    // Snapshots share most of their files (objects of one pool, hard links of one tree):
    // each is read once in this run.
    let proven = content::Proven::default();
    for s in &snaps {
        let r = match content::verify_snapshot_with(target, s, &opts, &proven) {
            // Pruned by a night meanwhile: nothing left to judge.
            Err(e @ holdfast_backup::BackupError::Vanished(_)) => {
                tracing::warn!("{e}");
                continue;
            }
            r => r.map_err(cli_error)?,
        };
        if !args.json {
            exit::print(&describe(&r));
        }
        records.push(r);
    }
    target.close();
    crate::runlog::note(|r| {
        r.damaged = Some(
            records
                .iter()
                .map(|v| v.bad.len() as u64 + u64::from(v.dump_problem.is_some()))
                .sum(),
        )
    });
    if args.json {
        exit::print(&(serde_json::to_string_pretty(&records)? + "\n"));
    }
    Ok(exit::code(if records.iter().all(|r| r.is_ok()) {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

fn describe(r: &VerifyRecord) -> String {
    // A hard link or pool object proved earlier in the run is not read again.
    let shared = if r.shared_files > 0 {
        format!(
            ", {} of them as the same stored file proved before",
            r.shared_files
        )
    } else {
        String::new()
    };
    let mut s = format!(
        "{}: {} file(s) proved by their names ({}, {} read){shared}, {} not named by content, {} damaged{}; dump {}\n",
        r.snapshot,
        r.checked_files,
        human_bytes(r.checked_bytes),
        human_rate(r.checked_bytes - r.shared_bytes.min(r.checked_bytes), r.secs),
        r.unprovable,
        r.bad.len(),
        r.sample_percent
            .map(|p| format!(" (sample of {p}%)"))
            .unwrap_or_default(),
        match &r.dump_problem {
            None => "matches its sha256".to_string(),
            Some(p) => format!("DAMAGED: {p}"),
        }
    );
    for b in r.bad.iter().take(50) {
        s.push_str(&format!("  damaged: {}: {}\n", b.path, b.why));
    }
    if r.bad.len() > 50 {
        s.push_str(&format!(
            "  ... and {} more (use --json)\n",
            r.bad.len() - 50
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(10.0));
        assert_eq!(parse_percent("2.5"), Ok(2.5));
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("150%").is_err());
        assert!(parse_percent("x").is_err());
    }
}
