//! Reunpack cost at the plan's scale, for docs/gold-only.md (run by bench/reunpack-scale.sh).
//!
//!   reunpack_scale DATA WORK [--runs N] [--skip-script] [--lock FILE] [--from-batch K] [--to-batch L]
//!
//! `--runs` (default 3) timed pairs per batch, the order alternating (the script first in
//! runs 1, 3, ..., holdfast first in runs 2, 4, ...); each side's time per batch is the median
//! of its runs, and the goal (holdfast / script <= 0.5, [`GOAL`]) is judged on the sums of
//! those medians, unrounded.
//!
//! DATA holds `src/` (Debian source packages: each file one upload, except the packages
//! named in NESTED, which go into one `.tar` upload, a nested container of source tarballs)
//! and `debs/` (real .deb files, packed with xorriso into one ISO 9660 image: one upload,
//! like the plan's distribution DVD). The uploads are made with holdfast's unpacker; then
//! `files` is deleted and rebuilt from gold (`rebuild_after_restore`, one upload per CPU at a
//! time), and the rebuilt repository is checked to hold the same files. Then the same gold
//! files are extracted by bench/reunpack-script.sh (bsdtar in parallel, hashing, one bulk
//! move). The load average is recorded with each timing: the machine may be shared.
//!
//! Measurement discipline on a shared machine: the uploads (data preparation) run without
//! the lock; each timed pair (holdfast's rebuild of a batch and the script on the same
//! batch, their order swapped every run) holds `--lock FILE` (an flock, as `flock FILE`
//! takes it) only while it runs, so no locked stretch lasts longer than one batch's pair.
//! Every timed run starts cold (`sync`, page cache dropped when run as root) and ends with
//! `sync`: the time is until the files are on disk, for both.

use holdfast_recover::{rebuild_after_restore, RebuildOptions};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_testkit::bench::{drop_caches, load, median};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The plan's goal: a rebuild takes at most this share of the script's time.
const GOAL: f64 = 0.5;

/// Source packages that go into the nested container instead of their own uploads.
const NESTED: &[&str] = &["vim_", "ruby3.1_", "php8.2_", "sqlite3_", "samba_"];

/// Files under `root` and their bytes (from [`listing`], the one walk this example does).
fn walk(root: &Path) -> (u64, u64) {
    let l = listing(root);
    (l.len() as u64, l.values().sum())
}

/// Every file under `root`, by path relative to it, with its size.
fn listing(root: &Path) -> std::collections::BTreeMap<PathBuf, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let p = e.path();
                out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf(), m.len());
            }
        }
    }
    out
}

/// `uptime`'s load averages, with the time.
fn uptime() -> String {
    format!("{} load {}", chrono_now(), load())
}

fn chrono_now() -> String {
    let out = Command::new("date").args(["-u", "+%H:%M"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The shared benchmark lock, held while one timed pair runs.
fn lock(path: Option<&Path>) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let path = path?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = Instant::now();
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {}: {e}", path.display()));
    let waited = t.elapsed().as_secs_f64();
    if waited > 1.0 {
        eprintln!("waited {waited:.0} s for {}", path.display());
    }
    Some(l)
}

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("command runs");
    assert!(st.success(), "{cmd:?} failed");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn main() {
    // RUST_LOG=holdfast_unpack=info prints each upload's unpack and rebuild time.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(args.get(1).expect("DATA folder"));
    let work = PathBuf::from(args.get(2).expect("WORK folder"));
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let skip_script = args.iter().any(|a| a == "--skip-script");
    let lock_path: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--lock")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    // Resume a set whose earlier batches were measured already (batches are numbered from 1).
    let from_batch: usize = args
        .iter()
        .position(|a| a == "--from-batch")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    // A quick check measures one batch (`--from-batch 2 --to-batch 2`: LLVM).
    let to_batch: usize = args
        .iter()
        .position(|a| a == "--to-batch")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(usize::MAX);
    let picked = |bi: usize| bi + 1 >= from_batch && bi < to_batch;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("inputs/nested")).unwrap();

    // The uploads: source tarballs, one nested container, one distribution image.
    let mut inputs = Vec::new();
    let mut nested = 0;
    for p in files_in(&data.join("src")) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if NESTED.iter().any(|n| name.starts_with(n)) {
            std::os::unix::fs::symlink(&p, work.join("inputs/nested").join(&name)).unwrap();
            nested += 1;
        } else {
            inputs.push(p);
        }
    }
    let n_src = inputs.len();
    let tar = work.join("inputs/nested-source-packages.tar");
    // -h: the folder holds links to the data set; the tar holds the files.
    run(Command::new("tar")
        .arg("-chf")
        .arg(&tar)
        .arg("-C")
        .arg(work.join("inputs"))
        .arg("nested"));
    inputs.push(tar);
    let iso = work.join("inputs/debian-packages.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-V", "DEBS", "-o"])
        .arg(&iso)
        .arg(data.join("debs")));
    let n_debs = files_in(&data.join("debs")).len();
    inputs.push(iso);
    let gold: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let gb = |b: u64| b as f64 / 1e9;
    println!(
        "data set: {} uploads, {:.3} GB gold: {n_src} Debian source package files (one upload each), \
         one .tar of {nested} files of 5 more source packages, one ISO 9660 image of {n_debs} .deb files",
        inputs.len(),
        gb(gold)
    );

    // Batches of uploads, each in its own scratch site, so that the peak space is one
    // batch's `files` (the whole set expands past what a shared machine has free). The
    // uploads are independent: a rebuild works them one per CPU either way.
    let batch_bytes: u64 = std::env::var("BENCH_BATCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250)
        << 20;
    let mut batches: Vec<Vec<PathBuf>> = vec![Vec::new()];
    let mut in_batch = 0u64;
    for p in &inputs {
        let len = std::fs::metadata(p).unwrap().len();
        if in_batch > 0 && in_batch + len > batch_bytes {
            batches.push(Vec::new());
            in_batch = 0;
        }
        in_batch += len;
        batches.last_mut().unwrap().push(p.clone());
    }
    println!(
        "{} batches of at most {} MB gold (or one upload)",
        batches.len(),
        batch_bytes >> 20
    );
    let cfg = UnpackConfig::default();
    let (mut first, mut re, mut nfiles, mut files, mut errors) = (0.0, 0.0, 0u64, 0u64, 0usize);
    let mut script: Option<(f64, u64, u64)> = (!skip_script).then_some((0.0, 0, 0));
    let mut loads = Vec::new();
    let mut all_cold = true;
    let (mut differs, mut ratios) = (0usize, Vec::new());
    // The totals below are of the batches measured in this run.
    let gold: u64 = batches
        .iter()
        .enumerate()
        .filter(|(bi, _)| picked(*bi))
        .flat_map(|(_, b)| b)
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    for (bi, batch) in batches.iter().enumerate().filter(|(bi, _)| picked(*bi)) {
        let bgold: u64 = batch
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        let site_dir = work.join("site");
        let _ = std::fs::remove_dir_all(&site_dir);
        let site = ScratchSite::create(&site_dir, "UTF8").expect("scratch site");
        let t = Instant::now();
        let done =
            upload_files(&site.site, batch, &cfg, &UnpackOptions::default()).expect("upload");
        first += t.elapsed().as_secs_f64();
        errors += done.iter().map(|(_, s)| s.errors.len()).sum::<usize>();
        for e in done.iter().flat_map(|(_, s)| &s.errors) {
            eprintln!("holdfast: {e}");
        }
        let files_root = site.site.repo.root.join("localhost/files");
        let first_files = listing(&files_root);
        let (bn, bb) = (first_files.len() as u64, first_files.values().sum::<u64>());
        // holdfast and the script alternate, run after run, so both see the same load.
        let (mut hf, mut sc) = (Vec::new(), Vec::new());
        let (mut sn, mut sb) = (0u64, 0u64);
        let mut cold_runs = true;
        for r in 0..runs {
            let _held = lock(lock_path.as_deref());
            // The script goes first every second run.
            let mut order = [!skip_script, true, false];
            if r % 2 == 1 {
                order = [false, true, !skip_script];
            }
            for (i, &go) in order.iter().enumerate() {
                if !go {
                    continue;
                }
                if i == 1 {
                    let _ = std::fs::remove_dir_all(&files_root);
                    cold_runs &= drop_caches();
                    let l = uptime();
                    let t = Instant::now();
                    let rep = rebuild_after_restore(
                        &site.site,
                        &cfg,
                        &[],
                        &RebuildOptions {
                            lazy: false,
                            jobs: 0,
                        },
                    )
                    .expect("rebuild");
                    run(&mut Command::new("sync"));
                    let secs = t.elapsed().as_secs_f64();
                    assert!(rep.lost().is_empty(), "lost: {:?}", rep.lost());
                    // A rebuild writes exactly the files the first unpack left (the rows' files).
                    let again = listing(&files_root);
                    let extra: Vec<_> = again
                        .keys()
                        .filter(|p| !first_files.contains_key(*p))
                        .collect();
                    let gone: Vec<_> = first_files
                        .keys()
                        .filter(|p| !again.contains_key(*p))
                        .collect();
                    if !extra.is_empty() || !gone.is_empty() {
                        eprintln!(
                            "batch {}: the rebuild differs: {} extra files, {} missing",
                            bi + 1,
                            extra.len(),
                            gone.len()
                        );
                        for p in extra.iter().take(60) {
                            eprintln!("  extra {}", p.display());
                        }
                        for p in gone.iter().take(60) {
                            eprintln!("  missing {}", p.display());
                        }
                        differs += 1;
                    }
                    println!(
                        "  batch {} run {}: holdfast {secs:.1} s ({l})",
                        bi + 1,
                        r + 1
                    );
                    hf.push(secs);
                    loads.push(format!("hf {l}"));
                } else {
                    let store = work.join("script-store");
                    let tmp = work.join("script-tmp");
                    cold_runs &= drop_caches();
                    let l = uptime();
                    let t = Instant::now();
                    run(Command::new("bash")
                        .arg(concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/../../bench/reunpack-script.sh"
                        ))
                        .arg(&store)
                        .arg(&tmp)
                        .args(batch));
                    run(&mut Command::new("sync"));
                    let secs = t.elapsed().as_secs_f64();
                    println!("  batch {} run {}: script {secs:.1} s ({l})", bi + 1, r + 1);
                    sc.push(secs);
                    loads.push(format!("script {l}"));
                    (sn, sb) = walk(&store);
                    let _ = std::fs::remove_dir_all(&store);
                }
            }
        }
        all_cold &= cold_runs;
        drop(site);
        let _ = std::fs::remove_dir_all(&site_dir);
        let h = median(&hf);
        re += h;
        nfiles += bn;
        files += bb;
        let mut line = format!(
            "batch {}: {} uploads, {:.3} GB gold -> {:.2} GB files ({bn}); rebuild median {h:.0} s of {hf:.0?}",
            bi + 1,
            batch.len(),
            gb(bgold),
            gb(bb)
        );
        if let Some((st, tn, tb)) = &mut script {
            let s = median(&sc);
            *st += s;
            *tn += sn;
            *tb += sb;
            ratios.push(h / s);
            line.push_str(&format!(
                "; script median {s:.0} s of {sc:.0?} ({sn} files, {:.2} GB); holdfast/script {:.3}",
                gb(sb),
                h / s
            ));
        }
        println!("{line}; load {}", load());
    }
    println!("first unpack (holdfast upload, rows included): {first:.0} s; {errors} member errors");
    println!("rebuilds that differed from the first unpack's files: {differs}");
    println!("holdfast/script time ratio per batch (of the medians): {ratios:.3?}");
    println!(
        "load averages (1/5/15 min) at the start of each timed run: {}",
        loads.join(" | ")
    );
    println!(
        "every timed run started {} and ended with sync",
        if all_cold {
            "cold (sync, page cache dropped)"
        } else {
            "after a sync only (not root: page cache kept, warm)"
        }
    );
    let re_load = format!(
        "{} .. {}",
        loads.first().cloned().unwrap_or_default(),
        loads.last().cloned().unwrap_or_default()
    );
    let script = script.map(|(s, n, b)| (s, n, b, re_load.clone()));

    let per_h = |b: u64, s: f64| gb(b) / (s / 3600.0);
    println!();
    println!("| | gold | files (count) | expansion | time | GB gold/h | GB files/h | files/s | GB files/h per core | load avg (1/5/15 min) at start |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| holdfast reunpack (median of {runs} per batch) | {:.2} GB | {:.2} GB ({nfiles}) | {:.1}x | {re:.0} s | {:.2} | {:.1} | {:.0} | {:.1} | {re_load} |",
        gb(gold),
        gb(files),
        files as f64 / gold as f64,
        per_h(gold, re),
        per_h(files, re),
        nfiles as f64 / re,
        per_h(files, re) / cpus as f64
    );
    if let Some((s, sn, sb, l)) = &script {
        println!(
            "| bsdtar + sha1sum/md5sum script, same limits (median of {runs} per batch) | {:.2} GB | {:.2} GB ({sn}) | {:.1}x | {s:.0} s | {:.2} | {:.1} | {:.0} | {:.1} | {l} |",
            gb(gold),
            gb(*sb),
            *sb as f64 / gold as f64,
            per_h(gold, *s),
            per_h(*sb, *s),
            *sn as f64 / s,
            per_h(*sb, *s) / cpus as f64
        );
        let ratio = re / s;
        println!(
            "holdfast / script time ratio, the measured batches (sums of the medians of {runs} runs): {ratio:.4}; median of the batches' ratios: {:.4} (below 1: holdfast is faster)",
            median(&ratios)
        );
        println!(
            "goal (holdfast / script <= {GOAL}): {} ({re:.1} s / {s:.1} s = {ratio:.4}, unrounded)",
            if ratio <= GOAL { "met" } else { "NOT met" }
        );
    }
    println!(
        "| plan: Fedora 11 source DVD, FOSSology ununpack | 4.2 GB | 54 GB | 12.9x | 5.5 h | 0.76 | 9.8 | - | - | - |"
    );
    println!("{cpus} CPUs; first unpack {first:.0} s");
}
