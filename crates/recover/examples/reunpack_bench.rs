//! Reunpack throughput for the gold-only guide: builds a site from real archives, removes
//! `files`, rebuilds it from gold with `rebuild_after_restore`, and prints GB of gold per
//! hour and GB of files per hour next to the plan's figure (4.2 GB ISO, 54 GB, 5.5 h).
//!
//!   cargo run --release -p holdfast-recover --example reunpack_bench -- [--corpus DIR]
//!       [--jobs N] [--work DIR] [--runs N]
//!
//! The corpus (default: the .crate source packages of the cargo registry cache, real
//! .tar.gz archives) is measured twice: packed into one ISO 9660 image (like the plan's
//! source DVD: one upload, nested archives) and as one upload per archive (parallel rebuild).

use holdfast_recover::{rebuild_after_restore, RebuildOptions};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn walk(root: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
                bytes += m.len();
            }
        }
    }
    (n, bytes)
}

struct Row {
    label: String,
    uploads: usize,
    gold: u64,
    files: u64,
    nfiles: u64,
    first: f64,
    re: f64,
    median: f64,
}

fn runs() -> usize {
    arg("--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1)
}

fn sync() {
    let _ = std::process::Command::new("sync").status();
}

fn measure(label: &str, work: &Path, inputs: &[PathBuf], jobs: usize) -> Row {
    let site_dir = work.join(format!("site-{}", label.replace(' ', "-")));
    let _ = std::fs::remove_dir_all(&site_dir);
    let s = ScratchSite::create(&site_dir, "UTF8").expect("scratch site");
    let cfg = UnpackConfig::default();
    let t = Instant::now();
    let done = upload_files(&s.site, inputs, &cfg, &UnpackOptions::default()).expect("upload");
    let first = t.elapsed().as_secs_f64();
    let files_root = s.site.repo.root.join("localhost/files");
    let gold: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let (nfiles, files) = walk(&files_root);
    // The machine may be shared: rebuild several times, keep the best and the median.
    let mut times = Vec::new();
    for _ in 0..runs() {
        std::fs::remove_dir_all(&files_root).unwrap();
        sync();
        let t = Instant::now();
        let r = rebuild_after_restore(&s.site, &cfg, &[], &RebuildOptions { lazy: false, jobs })
            .expect("rebuild");
        times.push(t.elapsed().as_secs_f64());
        assert!(r.lost().is_empty(), "lost: {:?}", r.lost());
        let (n2, b2) = walk(&files_root);
        assert_eq!((n2, b2), (nfiles, files), "rebuilt repository differs");
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let re = times[0];
    let median = times[times.len() / 2];
    let row = Row {
        label: label.into(),
        uploads: done.len(),
        gold,
        files,
        nfiles,
        first,
        re,
        median,
    };
    drop(s);
    let _ = std::fs::remove_dir_all(&site_dir);
    row
}

fn main() {
    let corpus = arg("--corpus").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
        let cache = home.join("registry/cache");
        std::fs::read_dir(&cache)
            .expect("no cargo registry cache; pass --corpus DIR")
            .flatten()
            .map(|e| e.path())
            .next()
            .expect("empty registry cache")
    });
    let jobs: usize = arg("--jobs").and_then(|j| j.parse().ok()).unwrap_or(0);
    let tmp = tempfile::tempdir().unwrap();
    let work = arg("--work")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work).unwrap();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no files", corpus.display());

    // One ISO image of the whole corpus, like the plan's source DVD.
    let iso = work.join("corpus.iso");
    let st = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-o"])
        .arg(&iso)
        .arg(&corpus)
        .status()
        .expect("xorriso (Debian package xorriso)");
    assert!(st.success(), "xorriso failed");

    let rows = vec![
        measure("one ISO", &work, std::slice::from_ref(&iso), jobs),
        measure("one upload per archive", &work, &inputs, jobs),
    ];
    let gb = |b: u64| b as f64 / 1e9;
    println!(
        "corpus: {} ({} archives); {} CPUs; jobs {}",
        corpus.display(),
        inputs.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if jobs == 0 {
            "one per CPU".to_string()
        } else {
            jobs.to_string()
        }
    );
    println!("| corpus | uploads | gold | files (count) | expansion | first unpack | reunpack best (median of {}) | GB gold/h | GB files/h | 4.2 GB ISO would take |", runs());
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let gold_h = gb(r.gold) / (r.re / 3600.0);
        let files_h = gb(r.files) / (r.re / 3600.0);
        println!(
            "| {} | {} | {:.3} GB | {:.3} GB ({}) | {:.1}x | {:.1} s | {:.1} s ({:.1} s) | {:.1} | {:.1} | {:.2} h |",
            r.label,
            r.uploads,
            gb(r.gold),
            gb(r.files),
            r.nfiles,
            r.files as f64 / r.gold as f64,
            r.first,
            r.re,
            r.median,
            gold_h,
            files_h,
            4.2 / gold_h
        );
    }
    println!("| plan (Fedora 11 source DVD, FOSSology ununpack, 2009) | 1 | 4.2 GB | 54 GB | 12.9x | 5.5 h | - | 0.76 | 9.8 | 5.5 h |");
}
