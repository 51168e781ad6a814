//! `holdfast snapshots`: what the backup target holds, with sizes and ages.

use crate::commands::backup::human_bytes;
use crate::config::Context;
use crate::exit;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// List this target instead of backup.target.
    #[arg(long, conflicts_with = "from")]
    pub target: Option<String>,
    /// List this copy (`[[backup.copy]]` name) instead of backup.target.
    #[arg(long, value_name = "COPY")]
    pub from: Option<String>,
    /// Print the snapshots with their manifests as JSON.
    #[arg(long)]
    pub json: bool,
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut cfg = ctx.config.backup.clone();
    if let Some(t) = args.target {
        cfg.target = t;
    }
    let target = cfg.store_for(args.from.as_deref())?;
    let target = target.as_ref();
    target.check_readable()?;
    let snaps = target.snapshots()?;
    let records: Vec<Option<holdfast_backup::content::VerifyRecord>> = snaps
        .iter()
        .map(|s| {
            holdfast_backup::content::read_record(target, s)
                .ok()
                .flatten()
        })
        .collect();
    if args.json {
        let v: Vec<_> = snaps
            .iter()
            .zip(&records)
            .map(|(s, r)| serde_json::json!({"name": s.name, "manifest": s.manifest, "verify": r}))
            .collect();
        crate::exit::print(&(serde_json::to_string_pretty(&v)? + "\n"));
        return Ok(exit::code(exit::OK));
    }
    if snaps.is_empty() {
        crate::exit::print(&format!("no snapshots on {} yet\n", target.display()));
        return Ok(exit::code(exit::OK));
    }
    let mut out = format!("snapshots on {}:\n", target.display());
    out.push_str(&format!(
        "{:<26} {:<11} {:<4} {:<17} {:>9} {:>8} {:>10} {:>10} {:>9}  {}\n",
        "NAME", "KIND", "MODE", "TAKEN (UTC)", "AGE", "FILES", "SIZE", "NEW", "DUMP", "VERIFIED"
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for (s, r) in snaps.iter().zip(&records) {
        let m = &s.manifest;
        let verified = match r {
            None => "never".to_string(),
            Some(r) if r.finished.is_none() => format!("unfinished ({}/{})", r.done, r.total_files),
            Some(r) if r.is_ok() => format!(
                "ok, {} ago{}",
                age(now - r.finished.map(|t| t.timestamp()).unwrap_or(now)),
                r.sample_percent
                    .map(|p| format!(" ({p}% sample)"))
                    .unwrap_or_default()
            ),
            Some(r) => format!(
                "DAMAGED: {} file(s){}",
                r.bad.len(),
                if r.dump_problem.is_some() {
                    ", dump"
                } else {
                    ""
                }
            ),
        };
        out.push_str(&format!(
            "{:<26} {:<11} {:<4} {:<17} {:>9} {:>8} {:>10} {:>10} {:>9}  {}\n",
            s.name,
            m.kind,
            m.mode,
            m.started.format("%Y-%m-%d %H:%M"),
            age(now - m.finished.timestamp()),
            m.repository.files,
            human_bytes(m.repository.bytes),
            human_bytes(m.repository.new_bytes),
            human_bytes(m.database.bytes),
            verified
        ));
    }
    crate::exit::print(&out);
    Ok(exit::code(exit::OK))
}
