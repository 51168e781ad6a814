//! `holdfast verify`: is every file the database references in the repository?

use crate::config::Context;
use crate::exit;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Checks that every pfile that `upload` (gold) and `uploadtree` (files) \
reference exists in the repository under its name with its size, and prints what is missing. \
Exit code 3 when anything is missing."
)]
pub struct Args {
    /// Check one upload only.
    #[arg(long)]
    pub upload: Option<i32>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let mut c = holdfast_backup::connect(&site)?;
    let report = holdfast_site::db::verify(&mut c, &site.repo, args.upload)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} referenced file(s) checked in {}, {} missing",
            report.checked,
            site.repo.root.display(),
            report.missing.len()
        );
        for m in &report.missing {
            println!("  missing: upload {} {} {}", m.upload_fk, m.kind, m.name);
        }
        if !report.slimmed.is_empty() {
            println!(
                "{} container(s) slimmed, rebuildable: removed on purpose by `holdfast slim apply`, not damage",
                report.slimmed.len()
            );
        }
    }
    Ok(exit::code(if report.is_whole() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
