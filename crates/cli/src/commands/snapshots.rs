//! `holdfast snapshots`: what the backup target holds, with sizes and ages.

use crate::commands::backup::human_bytes;
use crate::config::Context;
use crate::exit;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// List this target instead of backup.target.
    #[arg(long)]
    pub target: Option<String>,
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
    let target = cfg.target()?;
    target.check()?;
    let snaps = holdfast_store::layout::snapshots(&target)?;
    if args.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "manifest": s.manifest}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::code(exit::OK));
    }
    if snaps.is_empty() {
        println!("no snapshots on {} yet", target.display());
        return Ok(exit::code(exit::OK));
    }
    println!("snapshots on {}:", target.display());
    println!(
        "{:<26} {:<11} {:<4} {:<17} {:>9} {:>8} {:>10} {:>10} {:>9}",
        "NAME", "KIND", "MODE", "TAKEN (UTC)", "AGE", "FILES", "SIZE", "NEW", "DUMP"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for s in &snaps {
        let m = &s.manifest;
        println!(
            "{:<26} {:<11} {:<4} {:<17} {:>9} {:>8} {:>10} {:>10} {:>9}",
            s.name,
            m.kind,
            m.mode,
            m.started.format("%Y-%m-%d %H:%M"),
            age(now - m.finished.timestamp()),
            m.repository.files,
            human_bytes(m.repository.bytes),
            human_bytes(m.repository.new_bytes),
            human_bytes(m.database.bytes)
        );
    }
    Ok(exit::code(exit::OK))
}
