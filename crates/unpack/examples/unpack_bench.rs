//! Benchmark: holdfast's unpacker against a script doing the same work with standard tools
//! (`bench/unpack-script.sh`: recursive `bsdtar` extraction of the uploads in parallel,
//! `sha1sum` and `md5sum` of every file, each stored under its content name in one bulk
//! move). Run through `bench/unpack.sh`.
//!
//! Usage: unpack_bench DATA_DIR WORK_DIR SCRIPT [--reps N] [--warm]
//!
//! Measurement discipline (the machine may be shared): `--reps` rounds (default 3), the
//! order alternating (the script first in odd rounds, holdfast first in even ones); every
//! timed run starts cold (`sync`, page cache dropped; needs root) unless `--warm` is given or
//! the cache cannot be dropped (then the gold files are read first and the runs are labelled
//! WARM), and ends with `sync` inside the timer: the time is until the files are on disk, for
//! both. The load average is recorded at the start of each timed run; the ratio is of the
//! medians. Each holdfast run gets a fresh scratch site (made before the timer starts).
//!
//! BENCH_SKIP_SCRIPT=1 times holdfast alone.

use anyhow::{bail, Context, Result};
use holdfast_testkit::bench::{self, median};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Names (not paths) and bytes of the files under `p`.
fn files_under(p: &Path) -> (BTreeSet<String>, u64, u64) {
    let (mut names, mut n, mut b) = (BTreeSet::new(), 0, 0);
    for e in walkdir::WalkDir::new(p).into_iter().filter_map(|e| e.ok()) {
        if e.file_type().is_file() {
            n += 1;
            b += e.metadata().map(|m| m.len()).unwrap_or(0);
            names.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    (names, n, b)
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The time (UTC) and the 1/5/15-minute load averages.
/// The time and the load at a run's start.
fn load() -> String {
    format!(
        "{} load {}",
        cmd_out("date", &["-u", "+%H:%M:%S"]),
        bench::load()
    )
}

fn sync() -> Result<()> {
    if !Command::new("sync").status()?.success() {
        bail!("sync failed");
    }
    Ok(())
}

/// Prepares a timed run: cold (dirty pages flushed, page cache dropped) when `cold` and
/// allowed, else warm (the gold files read into the cache). Returns whether it is cold.
/// Drops the caches when `cold` asks and it can (true), or reads the gold files in (false).
fn prepare(cold: bool, golds: &[PathBuf]) -> Result<bool> {
    sync()?;
    if cold && bench::drop_caches() {
        return Ok(true);
    }
    for g in golds {
        std::fs::read(g)?;
    }
    Ok(false)
}

struct Run {
    secs: f64,
    cold: bool,
    load: String,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: unpack_bench DATA_DIR WORK_DIR SCRIPT [--reps N] [--warm]");
    }
    let (data, work, script) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]), &args[3]);
    let reps: usize = match args.iter().position(|a| a == "--reps") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .context("--reps takes a number of rounds")?,
        None => 3,
    };
    let want_cold = !args.iter().any(|a| a == "--warm");
    let skip_script = std::env::var_os("BENCH_SKIP_SCRIPT").is_some();
    let mut golds: Vec<PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("{}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    golds.sort();
    let gold_bytes: u64 = golds.iter().map(|p| p.metadata().unwrap().len()).sum();
    let mb = gold_bytes as f64 / 1e6;
    let commit = cmd_out("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if cmd_out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " + uncommitted changes"
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{} UTC, build of {commit}{dirty}, {cpus} CPUs, {reps} rounds (order alternating), {}",
        cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S"]),
        if want_cold {
            "cold runs asked for"
        } else {
            "warm runs asked for (--warm)"
        }
    );
    println!(
        "gold: {} files, {mb:.1} MB (Debian source packages: .dsc, orig and debian tarballs)",
        golds.len()
    );
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let store = work.join("script-store");
    let site_dir = work.join("site");

    let (mut sc, mut hf): (Vec<Run>, Vec<Run>) = (Vec::new(), Vec::new());
    let mut script_out: Option<(BTreeSet<String>, u64, u64)> = None;
    let mut hf_out: Option<(BTreeSet<String>, u64, u64, u64, usize)> = None;
    for r in 0..reps {
        // The script first in rounds 1, 3, ...; holdfast first in rounds 2, 4, ...
        let order: &[bool] = if r % 2 == 0 {
            &[true, false]
        } else {
            &[false, true]
        };
        for &is_script in order {
            if is_script && skip_script {
                continue;
            }
            if is_script {
                let _ = std::fs::remove_dir_all(&store);
                let cold = prepare(want_cold, &golds)?;
                let load = load();
                let t = Instant::now();
                let st = Command::new("bash")
                    .arg(script)
                    .arg(&store)
                    .arg(work.join("script-tmp"))
                    .args(&golds)
                    .status()?;
                sync()?;
                let secs = t.elapsed().as_secs_f64();
                if !st.success() {
                    bail!("{script} failed");
                }
                let out = files_under(&store);
                println!(
                    "  round {} {}: script   {secs:7.2} s ({load}) -> {} files, {:.1} MB",
                    r + 1,
                    if cold { "cold" } else { "WARM" },
                    out.1,
                    out.2 as f64 / 1e6
                );
                match &script_out {
                    Some(first) if (first.1, first.2) != (out.1, out.2) => {
                        bail!("the script stored {} files, {} bytes in this round, {} files, {} bytes in the first", out.1, out.2, first.1, first.2)
                    }
                    Some(_) => {}
                    None => script_out = Some(out),
                }
                let _ = std::fs::remove_dir_all(&store);
                sc.push(Run { secs, cold, load });
            } else {
                let _ = std::fs::remove_dir_all(&site_dir);
                let site = holdfast_sandbox::scratch::ScratchSite::create(&site_dir, "UTF8")?;
                let cold = prepare(want_cold, &golds)?;
                let load = load();
                let t = Instant::now();
                let res = upload_files(
                    &site.site,
                    &golds,
                    &UnpackConfig::default(),
                    &UnpackOptions::default(),
                )?;
                sync()?;
                let secs = t.elapsed().as_secs_f64();
                let errors: usize = res.iter().map(|r| r.1.errors.len()).sum();
                let rows: u64 = res.iter().map(|r| r.1.rows).sum();
                let (names, n, b) = files_under(&site.site.repo.root.join("localhost/files"));
                println!(
                    "  round {} {}: holdfast {secs:7.2} s ({load}) -> {n} files, {:.1} MB, {rows} uploadtree rows, {errors} member errors",
                    r + 1,
                    if cold { "cold" } else { "WARM" },
                    b as f64 / 1e6
                );
                if hf_out.is_none() {
                    for e in res.iter().flat_map(|r| r.1.errors.iter()).take(20) {
                        eprintln!("member error: {e}");
                    }
                    hf_out = Some((names, n, b, rows, errors));
                }
                drop(site);
                let _ = std::fs::remove_dir_all(&site_dir);
                hf.push(Run { secs, cold, load });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let state = |runs: &[Run]| {
        if runs.iter().all(|r| r.cold) {
            "cold (sync, page cache dropped)"
        } else if runs.iter().all(|r| !r.cold) {
            "WARM (page cache kept, gold read first)"
        } else {
            "MIXED cold and WARM"
        }
    };
    let secs = |runs: &[Run]| runs.iter().map(|r| r.secs).collect::<Vec<_>>();
    let loads = |runs: &[Run]| {
        runs.iter()
            .map(|r| r.load.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let h = median(&secs(&hf));
    let (hnames, hn, hb, rows, errors) = hf_out.expect("at least one holdfast run");
    println!(
        "holdfast upload (unpack + 3 hashes + store + DB rows): median {h:7.2} s of {:.2?}  {:7.1} MB/s gold  -> {hn} stored files, {:.1} MB, {rows} uploadtree rows, {errors} member errors; {}; loads at start: {}",
        secs(&hf),
        mb / h,
        hb as f64 / 1e6,
        state(&hf),
        loads(&hf)
    );
    if let Some((snames, sn, sb)) = script_out {
        let s = median(&secs(&sc));
        println!(
            "script (parallel bsdtar + sha1sum + md5sum, one bulk move): median {s:7.2} s of {:.2?}  {:7.1} MB/s gold  -> {sn} stored files, {:.1} MB; {}; loads at start: {}",
            secs(&sc),
            mb / s,
            sb as f64 / 1e6,
            state(&sc),
            loads(&sc)
        );
        println!(
            "stored names: {} in both, {} only the script's, {} only holdfast's (holdfast applies its expansion limits and skips what FOSSology skips)",
            snames.intersection(&hnames).count(),
            snames.difference(&hnames).count(),
            hnames.difference(&snames).count()
        );
        let per_round: Vec<f64> = sc.iter().zip(&hf).map(|(s, h)| s.secs / h.secs).collect();
        println!(
            "ratio (medians): holdfast is {:.2}x the script's speed (script {s:.2} s / holdfast {h:.2} s); per round {per_round:.2?}",
            s / h
        );
    }
    Ok(())
}
