//! Benchmark: holdfast's unpacker against a script doing the same work with standard tools
//! (`bench/unpack-script.sh`: recursive `bsdtar` extraction, `sha1sum` and `md5sum` of
//! every file, each stored under its content name). Run through `bench/unpack.sh`.
//!
//! Usage: unpack_bench DATA_DIR WORK_DIR SCRIPT

use anyhow::{bail, Context, Result};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files_under(p: &Path) -> (u64, u64) {
    let (mut n, mut b) = (0, 0);
    for e in walkdir::WalkDir::new(p).into_iter().filter_map(|e| e.ok()) {
        if e.file_type().is_file() {
            n += 1;
            b += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (n, b)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        bail!("usage: unpack_bench DATA_DIR WORK_DIR SCRIPT");
    }
    let (data, work, script) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]), &args[3]);
    let mut golds: Vec<PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("{}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    golds.sort();
    let gold_bytes: u64 = golds.iter().map(|p| p.metadata().unwrap().len()).sum();
    // Warm the page cache so neither side pays for the first read.
    for g in &golds {
        std::fs::read(g)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let store = work.join("script-store");
    if std::env::var_os("BENCH_SKIP_SCRIPT").is_some() {
        let site = holdfast_sandbox::scratch::ScratchSite::create(&work.join("site"), "UTF8")?;
        let t = Instant::now();
        let res = upload_files(
            &site.site,
            &golds,
            &UnpackConfig::default(),
            &UnpackOptions::default(),
        )?;
        let s = t.elapsed().as_secs_f64();
        for e in res.iter().flat_map(|r| r.1.errors.iter()).take(20) {
            eprintln!("member error: {e}");
        }
        for (_, r) in &res {
            eprintln!("{r}");
        }
        println!(
            "holdfast only: {s:.2} s, {:.1} MB/s gold",
            gold_bytes as f64 / 1e6 / s
        );
        return Ok(());
    }
    let t = Instant::now();
    let st = std::process::Command::new("bash")
        .arg(script)
        .arg(&store)
        .arg(work.join("script-tmp"))
        .args(&golds)
        .status()?;
    let script_s = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("{script} failed");
    }
    let (script_files, script_bytes) = files_under(&store);

    let site = holdfast_sandbox::scratch::ScratchSite::create(&work.join("site"), "UTF8")?;
    let t = Instant::now();
    let res = upload_files(
        &site.site,
        &golds,
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )?;
    let ours_s = t.elapsed().as_secs_f64();
    let errors: usize = res.iter().map(|r| r.1.errors.len()).sum();
    for e in res.iter().flat_map(|r| r.1.errors.iter()).take(20) {
        eprintln!("member error: {e}");
    }
    let rows: u64 = res.iter().map(|r| r.1.rows).sum();
    let (repo_files, repo_bytes) = files_under(&site.site.repo.root.join("localhost/files"));

    let mb = gold_bytes as f64 / 1e6;
    println!(
        "gold: {} files, {:.1} MB (Debian source packages: .dsc, orig and debian tarballs)",
        golds.len(),
        mb
    );
    println!(
        "script  (bsdtar + sha1sum + md5sum, store by name): {script_s:7.2} s  {:7.1} MB/s gold  -> {script_files} stored files, {:.1} MB",
        mb / script_s,
        script_bytes as f64 / 1e6
    );
    println!(
        "holdfast upload (unpack + 3 hashes + store + DB rows): {ours_s:7.2} s  {:7.1} MB/s gold  -> {repo_files} stored files, {:.1} MB, {rows} uploadtree rows, {errors} member errors",
        mb / ours_s,
        repo_bytes as f64 / 1e6
    );
    println!(
        "ratio: holdfast is {:.2}x the script's speed",
        script_s / ours_s
    );
    Ok(())
}
