//! Benchmark of the backup server's tree operations against the classic tools, on a tree of
//! many small files with a week of snapshots (run by `bench/server.sh`):
//!
//! - snapshot creation: `tree::link_tree` vs `cp -al`
//! - what snapshots the account cannot change cost: a week of `copy::copy_tree` snapshots
//!   (copies of changed files, links between snapshots) against the week of hard links to
//!   `incoming/`, in time and disk space
//! - size accounting of incoming/ + 7 daily snapshots: `size::measure` vs `du -s`
//! - expiry of the oldest snapshot: rename into the trash (what the snapshot job waits for),
//!   and the parallel purge of it, each vs `rm -rf`
//!
//! Usage: server_bench [--files N] [--dir DIR] [--keep]

use holdfast_server::{copy, size, snapshot, tree};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn run(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd.status().expect("run tool");
    assert!(st.success(), "{cmd:?} failed");
    t.elapsed()
}

fn drop_caches_hint() {
    // no cache dropping (needs root and disturbs the other users of the machine): every
    // contender runs on a warm cache, after the tree was walked once
}

fn make_tree(root: &Path, files: usize) {
    let per_dir = 1000;
    let dirs = files.div_ceil(per_dir);
    (0..dirs).into_par_iter().for_each(|d| {
        let dir = root.join(format!("client{:02}/d{:04}", d % 10, d));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir.min(files - d * per_dir) {
            let len = 50 + (d * 31 + f * 17) % 400;
            std::fs::write(dir.join(format!("f{f:04}.txt")), vec![b'x'; len]).unwrap();
        }
    });
}

/// A small daily change: a few new files and a few rewritten ones.
fn change(root: &Path, day: usize) {
    let dir = root.join(format!("client00/new-day{day}"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in 0..100 {
        std::fs::write(dir.join(format!("n{f}")), format!("day {day} file {f}")).unwrap();
    }
    let d0 = root.join("client00/d0000");
    for f in 0..50 {
        let p = d0.join(format!("f{f:04}.txt"));
        let tmp = d0.join(format!(".f{f:04}.tmp"));
        std::fs::write(&tmp, format!("changed on day {day}")).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
}

fn main() {
    let mut files = 1_000_000usize;
    let mut base: Option<PathBuf> = None;
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--files" => files = args.next().and_then(|v| v.parse().ok()).expect("--files N"),
            "--dir" => base = args.next().map(PathBuf::from),
            "--keep" => keep = true,
            _ => {
                eprintln!("usage: server_bench [--files N] [--dir DIR] [--keep]");
                std::process::exit(2);
            }
        }
    }
    let tmp = match &base {
        Some(b) => {
            std::fs::create_dir_all(b).unwrap();
            tempfile::tempdir_in(b).unwrap()
        }
        None => tempfile::tempdir().unwrap(),
    };
    let home = tmp.path().join("home");
    let incoming = home.join("incoming");
    let snaps = home.join(".snapshots");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::create_dir_all(&snaps).unwrap();
    println!("server bench: {files} files in {}", tmp.path().display());
    println!(
        "cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let t = Instant::now();
    make_tree(&incoming, files);
    println!("made incoming/ in {:.1}s", secs(t.elapsed()));
    drop_caches_hint();

    // a week of daily snapshots, made with holdfast (rotation names: daily.6 oldest)
    let mut ours = vec![];
    for day in 0..7 {
        change(&incoming, day);
        let name = format!("daily.{}", 6 - day);
        let t = Instant::now();
        tree::link_tree(&incoming, &snaps.join(&name)).unwrap();
        ours.push(t.elapsed());
    }
    // cp -al for the same kind of snapshot, interleaved with ours to share cache conditions
    let mut cps = vec![];
    let mut ours2 = vec![];
    for i in 0..2 {
        let dst = tmp.path().join(format!("cp-al.{i}"));
        cps.push(run(Command::new("cp").arg("-al").arg(&incoming).arg(&dst)));
        let dst2 = tmp.path().join(format!("ours.{i}"));
        let t = Instant::now();
        tree::link_tree(&incoming, &dst2).unwrap();
        ours2.push(t.elapsed());
    }
    let best = |v: &[Duration]| v.iter().copied().min().unwrap();
    let snap_ours = best(&ours2);
    let snap_cp = best(&cps);
    println!(
        "snapshot: holdfast {:.2}s (week avg {:.2}s), cp -al {:.2}s",
        secs(snap_ours),
        secs(ours.iter().sum::<Duration>()) / ours.len() as f64,
        secs(snap_cp)
    );

    // size accounting over incoming + 7 snapshots (extra trees out of the home)
    let t = Instant::now();
    let s = size::measure(&home).unwrap();
    let size_ours = t.elapsed();
    let t = Instant::now();
    let out = Command::new("du")
        .args(["-sb", "incoming", ".snapshots"])
        .current_dir(&home)
        .output()
        .unwrap();
    let size_du = t.elapsed();
    let du: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        du,
        [s.backup.apparent, s.snapshots.apparent],
        "holdfast and du disagree"
    );
    let t = Instant::now();
    let _ = size::measure(&home).unwrap();
    let size_ours = size_ours.min(t.elapsed());
    println!(
        "size: holdfast {:.2}s, du -sb {:.2}s (both: backup {} B, snapshots only {} B, {} inodes)",
        secs(size_ours),
        secs(size_du),
        s.backup.apparent,
        s.snapshots.apparent,
        s.backup.inodes + s.snapshots.inodes
    );

    // incremental: scans of the (immutable) rotated snapshots are kept; only incoming/ is
    // walked again
    let cache = tmp.path().join("size-cache");
    let t = Instant::now();
    let first = size::measure_cached(&home, Some(&cache)).unwrap();
    let size_fill = t.elapsed();
    let t = Instant::now();
    let again = size::measure_cached(&home, Some(&cache)).unwrap();
    let size_inc = t.elapsed();
    for x in [&first, &again] {
        assert_eq!(
            du,
            [x.backup.apparent, x.snapshots.apparent],
            "cached sizes disagree with du"
        );
    }
    println!(
        "size, incremental: first run (writes scans) {:.2}s, next runs {:.2}s",
        secs(size_fill),
        secs(size_inc)
    );

    // snapshots that share no inode with incoming/: the same week again, as copies
    let home2 = tmp.path().join("home2/.snapshots");
    std::fs::create_dir_all(&home2).unwrap();
    let owner = copy::Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let mut copies = vec![];
    let mut prev: Option<PathBuf> = None;
    for day in 0..8 {
        if day > 0 {
            change(&incoming, 7 + day);
        }
        let dst = home2.join(format!("daily.{}", 7 - day));
        let t = Instant::now();
        copy::copy_tree(&incoming, prev.as_deref(), &dst, owner).unwrap();
        copies.push(t.elapsed());
        prev = Some(dst);
    }
    let copy_alloc = tree::usage(&home2, &tree::InodeSet::default(), &|_| false)
        .unwrap()
        .allocated;
    let copy_week = copies[1..].iter().sum::<Duration>() / 7;
    let link_week = ours.iter().sum::<Duration>() / ours.len() as u32;
    println!(
        "unchangeable snapshots: first (full copy) {:.2}s, then {:.2}s a day vs {:.2}s for hard \
         links; space of 8 snapshots {} B vs {} B for a week of hard links ({:.2}x incoming)",
        secs(copies[0]),
        secs(copy_week),
        secs(link_week),
        copy_alloc,
        s.snapshots.allocated,
        (copy_alloc - s.snapshots.allocated.min(copy_alloc)) as f64
            / s.backup.allocated.max(1) as f64
    );

    // expiry: the oldest daily snapshot, ours vs rm -rf on an identical tree
    let t = Instant::now();
    let trash = snapshot::work_dir(&home).join("trash");
    std::fs::create_dir_all(&trash).unwrap();
    std::fs::rename(snaps.join("daily.6"), trash.join("daily.6")).unwrap();
    let expire_rename = t.elapsed();
    let t = Instant::now();
    let removed = snapshot::purge_trash(&home).unwrap();
    let purge = t.elapsed();
    let rm = run(Command::new("rm").arg("-rf").arg(snaps.join("daily.5")));
    let t = Instant::now();
    tree::remove_tree(&tmp.path().join("ours.0")).unwrap();
    let purge2 = t.elapsed();
    let rm2 = run(Command::new("rm")
        .arg("-rf")
        .arg(tmp.path().join("cp-al.0")));
    let (purge, rm) = (purge.min(purge2), rm.min(rm2));
    println!(
        "expiry: holdfast rename {:.4}s + background purge {:.2}s ({removed} entries), rm -rf {:.2}s",
        secs(expire_rename),
        secs(purge),
        secs(rm)
    );

    println!("\nratios (tool time / holdfast time; > 1 means holdfast is faster)");
    println!(
        "  snapshot creation  cp -al / link_tree     {:6.2}x",
        secs(snap_cp) / secs(snap_ours)
    );
    println!(
        "  size accounting    du -sb / measure       {:6.2}x",
        secs(size_du) / secs(size_ours)
    );
    println!(
        "  size, incremental  du -sb / measure_cached {:5.2}x",
        secs(size_du) / secs(size_inc)
    );
    println!(
        "  expiry (job waits) rm -rf / rename        {:6.0}x",
        secs(rm) / secs(expire_rename).max(1e-6)
    );
    println!(
        "  expiry (purge)     rm -rf / remove_tree   {:6.2}x",
        secs(rm) / secs(purge)
    );
    println!(
        "  daily snapshot     copy_tree / link_tree  {:6.2}x (cost of unchangeable snapshots)",
        secs(copy_week) / secs(link_week)
    );
    if keep {
        let p = tmp.keep();
        println!("kept {}", p.display());
    } else {
        // millions of names: remove them in parallel rather than with remove_dir_all
        let t = Instant::now();
        for e in std::fs::read_dir(tmp.path()).unwrap().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                tree::remove_tree(&e.path()).unwrap();
            }
        }
        println!("cleaned up in {:.1}s", secs(t.elapsed()));
    }
}
