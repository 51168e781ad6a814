//! `holdfast copy [NAME]`: run copy jobs on their own (like a PBS sync job).

use crate::commands::backup::{cli_error, human_bytes};
use crate::config::Context;
use crate::exit;
use holdfast_backup::copy::CopyResult;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Copies the primary target's snapshots to the copies configured as \
[[backup.copy]] in holdfast.toml (another ssh server, a local disk): every snapshot newer than \
the copy's newest, at most the copy's `keep`. Only the repository files the copy lacks are \
sent (FOSSology names files by their content, so a name the copy lists is a file it holds); \
each new file is hashed against its name on the copy before the snapshot is listed there, and \
the dump is checked against its sha256. A copy killed at any point lists no half-made \
snapshot; the next run completes it without sending again what had arrived. Then the copy's \
own retention removes what it no longer keeps.\n\n\
`holdfast backup` runs the copies itself after each backup (unless a copy says \
after_backup = false). Exit code 1 when a copy failed (inside `holdfast backup`, whose own \
snapshot is fine, the same failure gives 3); 3 when every copy was made but files of the \
primary were found damaged on the way (each listed)."
)]
pub struct Args {
    /// The copy to run (its `name` in holdfast.toml); default every copy.
    pub name: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Say which snapshots each copy would get and which its retention (`keep`) would
    /// remove, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One line per copy job (shared with `holdfast backup`).
pub fn describe(r: &CopyResult) -> String {
    let Some(run) = &r.run else {
        return format!(
            "copy {} ({}) FAILED: {}",
            r.name,
            r.target,
            r.error.as_deref().unwrap_or("?")
        );
    };
    let mut s = if run.copied.is_empty() {
        format!(
            "copy {} ({}): up to date ({} snapshot(s) there)",
            r.name, r.target, run.up_to_date
        )
    } else {
        let parts: Vec<String> = run
            .copied
            .iter()
            .map(|c| {
                format!(
                    "{} as {} ({} files, {} new, {}, {} proved, dump {} sent, {:.1} s)",
                    c.source,
                    c.snapshot,
                    c.files,
                    c.new_files,
                    human_bytes(c.new_bytes),
                    c.proved,
                    human_bytes(c.dump_sent_bytes),
                    c.secs
                )
            })
            .collect();
        format!("copy {} ({}): {}", r.name, r.target, parts.join("; "))
    };
    if !run.pruned.is_empty() {
        s.push_str(&format!("; removed {}", run.pruned.join(", ")));
    }
    for c in &run.copied {
        if !c.damaged.is_empty() {
            s.push_str(&format!(
                "; {} file(s) of {} are damaged on the primary and were left out (run `holdfast verify --snapshot {}`)",
                c.damaged.len(),
                c.source,
                c.source
            ));
        }
    }
    s
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        let plan = holdfast_backup::copy::preview(&ctx.config.backup, args.name.as_deref())
            .map_err(cli_error)?;
        for p in plan {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            println!(
                "copy {} ({}): would copy {}; would remove {}",
                p.name,
                p.target,
                list(&p.copy),
                list(&p.remove)
            );
        }
        return Ok(exit::code(exit::OK));
    }
    let out =
        holdfast_backup::copy::copy(&ctx.config.backup, args.name.as_deref()).map_err(cli_error)?;
    if args.json {
        exit::print(&(serde_json::to_string_pretty(&out)? + "\n"));
    } else {
        for r in &out {
            exit::print(&(describe(r) + "\n"));
        }
    }
    let failed: Vec<String> = out
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("{}: {}", r.name, r.error.as_deref().unwrap_or("?")))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("copy failed: {}", failed.join("; "));
    }
    let damaged = out
        .iter()
        .filter_map(|r| r.run.as_ref())
        .flat_map(|r| &r.copied)
        .any(|c| !c.damaged.is_empty());
    Ok(exit::code(if damaged {
        exit::INCOMPLETE
    } else {
        exit::OK
    }))
}
