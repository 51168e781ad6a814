//! `holdfast upload FILE...`: import files as FOSSology uploads and unpack them.

use crate::config::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Files to import. Each becomes one upload: stored in `gold` (hard-linked into
    /// `files`), with pfile, upload, job and jobqueue rows, then unpacked recursively with
    /// uploadtree rows as FOSSology's ununpack and adj2nest agents make them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Do not keep containers (archives, compressed files) in `files`; their rows are still
    /// recorded and `holdfast recover` can rebuild them from gold.
    #[arg(long)]
    slim: bool,
    /// Like FOSSology's `ununpack -I`: no rows for version-control folders (.git, .svn,
    /// .hg, .bzr, CVS); their files are still stored.
    #[arg(long)]
    ignore_scm: bool,
    /// Like FOSSology's `ununpack -E`: no rows for paths containing one of these
    /// comma-separated substrings (e.g. `node_modules,.min.js`).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// FOSSology folder to list the uploads in (number or name); default: the root folder.
    /// FOSSology's Browse page shows them there.
    #[arg(long)]
    folder: Option<String>,
    /// FOSSology group that gets admin permission on the uploads (number or name); default:
    /// the uploading user's group.
    #[arg(long)]
    group: Option<String>,
    /// Print the summaries as JSON (one object per upload) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let site = ctx.site()?;
    let (folder, group) = {
        let mut c = site.connect()?;
        let folder = match &args.folder {
            Some(f) => Some(holdfast_unpack::db::folder_pk(&mut c, f)?),
            None => None,
        };
        let group = match &args.group {
            Some(g) => Some(holdfast_unpack::db::group_pk(&mut c, g)?),
            None => None,
        };
        (folder, group)
    };
    let opts = holdfast_unpack::UnpackOptions {
        repo_only: false,
        slim: args.slim,
        progress: !args.json,
        ignore_scm: args.ignore_scm,
        exclude: args.exclude,
        folder,
        group,
        ..Default::default()
    };
    let res = holdfast_unpack::upload_files(&site, &args.files, &ctx.config.unpack, &opts)?;
    if args.slim {
        // Record the containers left out, so verification calls them slimmed, not missing.
        let mut c = site.connect()?;
        let uploads: Vec<i32> = res.iter().map(|(u, _)| *u).collect();
        holdfast_slim::record_unstored(&mut c, &site.repo, &uploads)?;
    }
    let mut incomplete = false;
    for (_, s) in &res {
        incomplete |= !s.errors.is_empty();
        if args.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            for e in &s.errors {
                eprintln!("warning: {e}");
            }
            for n in &s.notes {
                eprintln!("note: {n}");
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
