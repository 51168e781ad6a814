//! `holdfast unpack --upload N [--repo-only]`: unpack an existing upload again from gold;
//! `holdfast unpack --cut-off`: every upload whose unpack a power cut or a kill cut off.

use crate::config::Context;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The upload to unpack (upload.upload_pk).
    #[arg(long, required_unless_present = "cut_off", conflicts_with = "cut_off")]
    upload: Vec<i32>,
    /// Every upload whose `ununpack` job was cut off (its queue row started, never ended),
    /// with FOSSology's scheduler stopped: the tree rows the dead run left are replaced
    /// with the whole tree (FOSSology's own rerun would keep them and mark the half tree
    /// unpacked). Rows of an upload unpacked once before are kept, as ununpack keeps them.
    #[arg(long, conflicts_with = "repo_only")]
    cut_off: bool,
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
    let uploads = if args.cut_off {
        crate::commands::scheduler::refuse_if_running(ctx, "--cut-off")?;
        let mut c = site.connect()?;
        let mut ups: Vec<i32> = holdfast_site::db::jobs::cut_off_unpacks(&mut c, None)?
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        ups.sort_unstable();
        ups.dedup();
        if ups.is_empty() && !args.json {
            println!("no upload's unpack was cut off");
        }
        ups
    } else {
        args.upload.clone()
    };
    let mut incomplete = false;
    let mut failed = Vec::new();
    for &up in &uploads {
        holdfast_site::interrupt::check()?;
        // The lock `recover` and the recovery queue take: one unpack of an upload at a time.
        let unpacked = holdfast_recover::one_at_a_time(&site, up, || {
            holdfast_unpack::unpack_upload(&site, up, &ctx.config.unpack, &opts)
        })?;
        let s = match unpacked {
            Ok(s) => s,
            // --cut-off goes on: the uploads after it must not keep their half trees.
            Err(e) if args.cut_off && !holdfast_site::interrupt::requested() => {
                eprintln!("error: upload {up}: {e}");
                failed.push(up);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
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
    if !failed.is_empty() {
        anyhow::bail!(
            "{} upload(s) could not be unpacked again: {failed:?} (see above); keep the \
             scheduler stopped until they are (its rerun would keep their half trees)",
            failed.len()
        );
    }
    Ok(if incomplete {
        crate::exit::code(crate::exit::INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
