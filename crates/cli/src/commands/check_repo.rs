//! `holdfast check-repo`: uploads whose files are missing from the repository.

use crate::config::Context;
use crate::exit;
use holdfast_recover::check_repo;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Checks every file the database references against the repository and lists \
the uploads with files missing: how many, how many bytes, and whether the upload's gold file is \
still there (then `holdfast recover --upload N` rebuilds them). Exit code 3 when anything is missing."
)]
pub struct Args {
    /// Check one upload only.
    #[arg(long, value_name = "N")]
    upload: Option<i32>,
    /// List every missing file too (name, size, place in the tree is in --json).
    #[arg(long)]
    files: bool,
    /// Also list uploads that are whole.
    #[arg(long)]
    all: bool,
    /// Machine-readable output (one JSON document).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    // A half-restored site has no meaningful answer: say so instead of "0 files checked".
    if let Some(r) = holdfast_site::restoring::restoring(&site) {
        anyhow::bail!("{r}");
    }
    let mut c = site.connect().map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to FOSSology's database ({}): {e}",
            site.conf_dir.join("Db.conf").display()
        )
    })?;
    let mut checks = check_repo(&mut c, &site.repo, args.upload)?;
    let incomplete = checks.iter().filter(|c| !c.is_whole()).count();
    let slimmed: (u64, u64) = checks.iter().fold((0, 0), |(f, b), c| {
        (f + c.slimmed_files, b + c.slimmed_bytes)
    });
    if !args.all {
        checks.retain(|c| !c.is_whole());
    }
    if !args.files {
        for c in &mut checks {
            c.missing.clear();
        }
    }
    if args.json {
        let doc = serde_json::json!({
            "incomplete_uploads": incomplete,
            "slimmed_files": slimmed.0,
            "slimmed_bytes": slimmed.1,
            "uploads": checks,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if checks.is_empty() {
        println!("every file the database references is in the repository");
    } else {
        println!(
            "{:>7}  {:>14}  {:>12}  {:<8}  file",
            "upload", "missing", "bytes", "gold"
        );
        for c in &checks {
            println!(
                "{:>7}  {:>14}  {:>12}  {:<8}  {}",
                c.upload_pk,
                format!("{}/{}", c.missing_files, c.files_total),
                c.missing_bytes,
                if c.gold_present { "present" } else { "MISSING" },
                c.filename
            );
            for m in &c.missing {
                println!("         {} ({} bytes)", m.name, m.size);
            }
        }
        let recoverable: Vec<i32> = checks
            .iter()
            .filter(|c| c.recoverable())
            .map(|c| c.upload_pk)
            .collect();
        if !recoverable.is_empty() {
            println!(
                "rebuild from gold: holdfast recover --upload {}",
                recoverable
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(" --upload ")
            );
        }
        if checks.iter().any(|c| !c.gold_present) {
            println!(
                "uploads whose gold is MISSING cannot be rebuilt: restore their gold from a backup"
            );
        }
    }
    if !args.json && slimmed.0 > 0 {
        println!(
            "{} containers ({} bytes) are slimmed, rebuildable: removed on purpose by `holdfast slim apply`, not damage (`holdfast recover --upload N` brings them back from gold)",
            slimmed.0, slimmed.1
        );
    }
    Ok(exit::code(if incomplete == 0 {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
