//! `holdfast check-repo`: uploads whose files are missing from the repository.

use crate::config::Context;
use crate::exit;
use holdfast_recover::check_repo;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Checks every file the database references against the repository and lists \
the uploads with files missing: how many, how many bytes, and whether the upload's gold file is \
still there (then `holdfast recover --upload N` rebuilds them), and uploads whose unpack never \
finished (its job was cut off: FOSSology's scheduler runs it again after a `--reset` start). \
With --scan it also walks the repository for files shorter than their name says (what a power \
cut leaves under a good name) and writers' temporary files. Exit code 3 when anything is \
missing or damaged."
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
    /// Also walk the whole repository: files whose size is not the one their name says
    /// (truncated by a power cut), and temporary files writers left behind.
    #[arg(long)]
    scan: bool,
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
    let scan = if args.scan {
        Some(holdfast_recover::damage::scan(&site.repo)?)
    } else {
        None
    };
    // Files no unpack can make again are not damage; they are listed with the reason.
    let never: Vec<(i32, holdfast_recover::check::NotReproducible)> = checks
        .iter()
        .flat_map(|c| {
            c.not_reproducible
                .iter()
                .map(move |n| (c.upload_pk, n.clone()))
        })
        .collect();
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
            "scan": scan,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if checks.is_empty() {
        println!("every file the database references is in the repository");
    }
    if !args.json && !checks.is_empty() {
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
            if c.being_deleted {
                println!("         being deleted (its delete job has not finished): not damage");
            }
            if let Some(why) = &c.unpack_unfinished {
                println!("         unpack not finished: {why}");
            }
            if let Some(why) = &c.unpack_incomplete {
                println!("         unpacked only in part: {why}");
            }
            for m in &c.missing {
                println!("         {} ({} bytes)", m.name, m.size);
            }
            for m in &c.not_reproducible {
                println!(
                    "         {} ({} bytes): cannot be rebuilt: {}",
                    m.name, m.size, m.why
                );
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
        if checks.iter().any(|c| c.unpack_unfinished.is_some()) {
            println!(
                "an unfinished unpack runs again when FOSSology's scheduler starts with --reset (its init script does)"
            );
        }
        if checks.iter().any(|c| !c.gold_present) {
            println!(
                "uploads whose gold is MISSING cannot be rebuilt: restore their gold from a backup"
            );
        }
    }
    let damaged = scan.as_ref().map_or(0, |s| s.damaged.len());
    if let (Some(s), false) = (&scan, args.json) {
        for d in &s.damaged {
            println!(
                "damaged: {} has {} of the {} bytes its name says",
                d.path.display(),
                d.actual,
                d.expected
            );
        }
        for l in &s.leftovers {
            println!("leftover temporary file: {}", l.display());
        }
        if damaged > 0 {
            println!(
                "set the damaged files aside and rebuild them from gold: holdfast recover --all --scan"
            );
        }
        println!(
            "scanned {} repository files: {} damaged, {} temporary leftovers",
            s.files,
            damaged,
            s.leftovers.len()
        );
    }
    if !args.json && !never.is_empty() && !args.files {
        for (up, n) in &never {
            println!("upload {up}: {} cannot be rebuilt: {}", n.name, n.why);
        }
    }
    if !args.json && slimmed.0 > 0 {
        println!(
            "{} containers ({} bytes) are slimmed, rebuildable: removed on purpose by `holdfast slim apply`, not damage (`holdfast recover --upload N` brings them back from gold)",
            slimmed.0, slimmed.1
        );
    }
    Ok(exit::code(if incomplete == 0 && damaged == 0 {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
