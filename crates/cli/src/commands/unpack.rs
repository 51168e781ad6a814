//! `holdfast unpack --upload N [--repo-only]`: unpack an existing upload again from gold.

use crate::config::Context;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The upload to unpack (upload.upload_pk).
    #[arg(long, required = true)]
    upload: Vec<i32>,
    /// Write repository files only and leave every database table untouched (for a
    /// gold-only restore). Files already in the repository are left alone.
    #[arg(long)]
    repo_only: bool,
    /// Do not keep containers in `files` (they can be rebuilt from gold).
    #[arg(long)]
    slim: bool,
    /// Print the summaries as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let opts = holdfast_unpack::UnpackOptions {
        repo_only: args.repo_only,
        slim: args.slim,
        progress: !args.json,
        // -I and -E are taken from the upload's own jq_cmd_args.
        ..Default::default()
    };
    let mut incomplete = false;
    for &up in &args.upload {
        holdfast_site::interrupt::check()?;
        let s = holdfast_unpack::unpack_upload(&site, up, &ctx.config.unpack, &opts)?;
        incomplete |= !s.errors.is_empty() || !s.unreproduced.is_empty();
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            for e in &s.errors {
                eprintln!("warning: {e}");
            }
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            for u in &s.unreproduced {
                eprintln!("warning: upload {up}: not rebuilt: {u}");
            }
            println!("{s}");
        }
    }
    Ok(if incomplete {
        crate::exit::code(crate::exit::INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
