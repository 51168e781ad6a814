//! A quick local look at a scan day for each layout, with and without the database's
//! list of new files (the official benchmark is bench/backup.py on the real data set).
//!
//!   scan_day WORK [--uploads N] [--new K] [--days D] [--cold]
//!
//! Builds a scratch site of N uploads from the real .gz files under /usr/share/doc (three
//! repository files each), backs it up once to four targets (pool and rolling, each as a
//! database night and as a full walk), then D times: touches a third of the mtimes, adds K
//! uploads and backs up to each target in turn (caches dropped before each with --cold).
//! Prints seconds, store growth and the load average; then restores each layout's latest
//! snapshot into a scratch folder beside a plain `rsync -aH` copy of the repository.

use holdfast_backup::{backup, BackupConfig, RestoreOptions};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_store::LayoutKind;
use holdfast_testkit::bench::{self, load, median};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drops the caches before a cold run; a run said to be cold that cannot be is refused.
fn drop_caches(cold: bool) {
    if cold {
        assert!(
            bench::drop_caches(),
            "cannot drop the caches: run as root, or warm"
        );
    }
}

/// Bytes the store takes on disk (folders included).
fn usage(p: &Path) -> u64 {
    let o = Command::new("du")
        .arg("-s")
        .arg("-B1")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn touch_third(root: &Path, seed: usize) {
    let later = std::time::SystemTime::now();
    for (i, e) in walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .enumerate()
    {
        if (i + seed).is_multiple_of(3) {
            if let Ok(f) = std::fs::File::options().write(true).open(e.path()) {
                let _ = f.set_modified(later);
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let work = Path::new(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/var/tmp/scan-day"),
    );
    let (n, k, days) = (
        arg(&args, "--uploads", 3000),
        arg(&args, "--new", 100),
        arg(&args, "--days", 3),
    );
    let cold = args.iter().any(|a| a == "--cold");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let scratch = ScratchSite::create(&work.join("site"), "UTF8")?;
    let standin = StandIn::create(&work.join("standin"), "scanday", Behaviour::default())?;
    standin.start()?;
    let sched = standin.config(30);
    let site = scratch.site.clone();
    let gz = holdfast_sandbox::sample::find_gz(n + k * days + 10);
    anyhow::ensure!(
        gz.len() >= n + k * days,
        "not enough .gz files under /usr/share/doc"
    );
    let t = Instant::now();
    holdfast_sandbox::sample::populate(&site, &gz[..n])?;
    let mut used = n;
    println!(
        "site: {n} uploads, {} files ({:.1} s to build)",
        walkdir::WalkDir::new(&site.repo.root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .count(),
        t.elapsed().as_secs_f64()
    );
    let tools: Vec<(String, BackupConfig)> = [
        (LayoutKind::Pool, 7),
        (LayoutKind::Pool, 0),
        (LayoutKind::Rolling, 7),
        (LayoutKind::Rolling, 0),
    ]
    .into_iter()
    .map(|(layout, walk)| {
        let name = format!("{layout}-{}", if walk == 0 { "walk" } else { "db" });
        let cfg = BackupConfig {
            target: work.join(format!("target-{name}")).display().to_string(),
            lock_file: work.join("backup.lock"),
            layout,
            full_walk_days: walk,
            keep: 30,
            ..Default::default()
        };
        (name, cfg)
    })
    .collect();
    for (name, cfg) in &tools {
        drop_caches(cold);
        let t = Instant::now();
        backup(&site, "scan-day", &sched, cfg)?;
        println!(
            "initial {name:<13} {:6.2} s  load {}",
            t.elapsed().as_secs_f64(),
            load()
        );
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut growth: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    for day in 1..=days {
        touch_third(&site.repo.root, day);
        holdfast_sandbox::sample::populate(&site, &gz[used..used + k])?;
        used += k;
        println!(
            "day {day}: a third of the mtimes touched, {k} uploads added ({})",
            if cold { "cold" } else { "warm" }
        );
        for i in 0..tools.len() {
            let j = (i + day) % tools.len();
            let (name, cfg) = &tools[j];
            let before = usage(Path::new(&cfg.target));
            drop_caches(cold);
            let l = load();
            let t = Instant::now();
            let out = backup(&site, "scan-day", &sched, cfg)?;
            let s = t.elapsed().as_secs_f64();
            let grown = usage(Path::new(&cfg.target)).saturating_sub(before) as f64 / 1e6;
            println!(
                "  {name:<13} {s:6.2} s  +{grown:7.2} MB  ({}, {} new files, {:.2} MB new)  load {l}",
                out.manifest.repository.found_by,
                out.manifest.repository.new_files,
                out.manifest.repository.new_bytes as f64 / 1e6
            );
            times[j].push(s);
            growth[j].push(grown);
        }
    }
    println!("medians over {days} scan days:");
    for (i, (name, _)) in tools.iter().enumerate() {
        println!(
            "  {name:<13} {:6.2} s  +{:7.2} MB",
            median(&times[i]),
            median(&growth[i])
        );
    }
    // Restores: each layout's latest snapshot, and a plain rsync copy as the peer.
    for (name, cfg) in tools.iter().filter(|(n, _)| n.ends_with("-db")) {
        let into = work.join(format!("restore-{name}"));
        drop_caches(cold);
        let l = load();
        let t = Instant::now();
        let r = holdfast_backup::restore(
            &site,
            &sched,
            cfg,
            &Default::default(),
            &RestoreOptions {
                scratch: Some(into.clone()),
                drop_scratch_db: true,
                skip_content_check: true,
                ..Default::default()
            },
        )?;
        println!(
            "restore {name:<13} {:6.2} s (database {:.2} s, repository {:.2} s, both at once)  load {l}",
            t.elapsed().as_secs_f64(),
            r.db_secs,
            r.repo_secs
        );
    }
    let into = work.join("restore-rsync");
    drop_caches(cold);
    let l = load();
    let t = Instant::now();
    let st = Command::new("rsync")
        .arg("-aH")
        .arg(format!("{}/", site.repo.root.display()))
        .arg(&into)
        .status()?;
    anyhow::ensure!(st.success());
    println!(
        "rsync -aH copy of the repository {:6.2} s  load {l}",
        t.elapsed().as_secs_f64()
    );
    drop(standin);
    Ok(())
}
