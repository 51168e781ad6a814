//! Benchmark of the backup server's jobs against what operators run today, on one account
//! with a tree of many small files and a week of daily snapshots (run by `bench/server.sh`).
//! Every timed step starts cold (`sync; echo 3 > /proc/sys/vm/drop_caches`, as root; without
//! root the run says it is warm), holdfast and its peer alternate, and medians of `--reps`
//! rounds are printed with the load average of each round.
//!
//! - the daily snapshot job as it really runs: `snapshot::rotate` (the expiring `daily.6`
//!   is refreshed into the new `daily.0`: changed files copied, names incoming/ lost removed,
//!   unchanged ones left as the links to the newest snapshot they are; then the shift) and
//!   `snapshot::purge_trash` (emptying the trash, if anything went there: someone pays),
//!   against the same job done the rsnapshot way: `rm -rf daily.6`, shift, `rsync -a
//!   --link-dest=../daily.1 incoming/ daily.0/` (like for like: copy the changed, link the
//!   unchanged); `cp -al` is also timed, as the goal names it, though it only links;
//! - hard-link snapshots, like for like: `tree::link_tree` vs `cp -al`;
//! - expiry including emptying: rename into the trash + `purge_trash` vs `rm -rf`, on trees of
//!   the same shape, with the CPU time each took (unlinking is the kernel's CPU work: on a
//!   machine with few cores that, not the disk, bounds the parallel removal);
//! - sizes of the account (incoming/ and the week of snapshots, each inode once):
//!   `size::measure` vs `du -sb incoming .snapshots`, both cold; then the cached measure.
//!
//! Usage: server_bench [--files N] [--linked PCT] [--dir DIR] [--reps N]
//! [--only job,link,expiry,sizes] [--keep]
//! (`--only`: time just those steps; the set-up is the same. `--linked PCT`: that share of
//! the files also get a second name in a folder of their own, as the Perl client's rsync
//! `-H` uploads hard-linked files; the rsnapshot way then runs `rsync -aH` to keep them so.)

use holdfast_server::{size, snapshot, tree};
use holdfast_stoney::account::Intervals;
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

/// User + system CPU seconds of this process (all its threads) or of its waited-for children.
fn cpu(children: bool) -> f64 {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage writes one rusage struct, which we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

/// Cold start for the next step: dirty pages written (not timed), caches dropped.
fn cold(root: bool) {
    let _ = Command::new("sync").status();
    if root {
        std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("drop caches");
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_string())
        .unwrap_or_default()
}

/// Makes `files` files; `linked` percent of them get a second name in a `links` folder.
fn make_tree(root: &Path, files: usize, linked: usize) {
    let per_dir = 1000;
    let dirs = files.div_ceil(per_dir);
    (0..dirs).into_par_iter().for_each(|d| {
        let dir = root.join(format!("client{:02}/d{:04}", d % 10, d));
        let links = root.join(format!("client{:02}/links{:04}", d % 10, d));
        std::fs::create_dir_all(&dir).unwrap();
        if linked > 0 {
            std::fs::create_dir_all(&links).unwrap();
        }
        for f in 0..per_dir.min(files - d * per_dir) {
            let len = 50 + (d * 31 + f * 17) % 400;
            let p = dir.join(format!("f{f:04}.txt"));
            std::fs::write(&p, vec![b'x'; len]).unwrap();
            if f * 100 < linked * per_dir {
                std::fs::hard_link(&p, links.join(format!("f{f:04}.txt"))).unwrap();
            }
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

/// The rsnapshot way of the daily job, in `snaps`: expire the oldest, shift, link-dest copy.
/// Returns (rm -rf, rsync) times; the renames are too cheap to matter.
fn peer_rotate(
    incoming: &Path,
    snaps: &Path,
    keep: usize,
    root: bool,
    hard_links: bool,
) -> (Duration, Duration) {
    let oldest = snaps.join(format!("daily.{}", keep - 1));
    cold(root);
    let rm = if oldest.exists() {
        run(Command::new("rm").arg("-rf").arg(&oldest))
    } else {
        Duration::ZERO
    };
    for n in (0..keep - 1).rev() {
        let from = snaps.join(format!("daily.{n}"));
        if from.exists() {
            std::fs::rename(&from, snaps.join(format!("daily.{}", n + 1))).unwrap();
        }
    }
    cold(root);
    let mut cmd = Command::new("rsync");
    cmd.arg(if hard_links { "-aH" } else { "-a" });
    if snaps.join("daily.1").exists() {
        cmd.arg("--link-dest=../daily.1");
    }
    let rs = run(cmd
        .arg(format!("{}/", incoming.display()))
        .arg(format!("{}/", snaps.join("daily.0").display())));
    (rm, rs)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Default)]
struct Samples(Vec<(&'static str, f64)>);

impl Samples {
    fn add(&mut self, what: &'static str, d: Duration) {
        self.add_secs(what, secs(d));
    }
    fn add_secs(&mut self, what: &'static str, secs: f64) {
        self.0.push((what, secs));
    }
    fn get(&self, what: &str) -> Vec<f64> {
        self.0
            .iter()
            .filter(|(w, _)| *w == what)
            .map(|x| x.1)
            .collect()
    }
    fn med(&self, what: &str) -> f64 {
        median(&self.get(what))
    }
    fn line(&self, what: &str) -> String {
        let v = self.get(what);
        format!(
            "{:8.2} s  ({})",
            median(&v),
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn main() {
    let mut files = 1_000_000usize;
    let mut linked = 0usize;
    let mut base: Option<PathBuf> = None;
    let mut keep = false;
    let mut reps = 3usize;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--files" => files = args.next().and_then(|v| v.parse().ok()).expect("--files N"),
            "--linked" => {
                linked = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|p| *p <= 100)
                    .expect("--linked PCT (0-100)")
            }
            "--dir" => base = args.next().map(PathBuf::from),
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            "--keep" => keep = true,
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
            }
            _ => {
                eprintln!(
                    "usage: server_bench [--files N] [--linked PCT] [--dir DIR] [--reps N] [--only job,link,expiry,sizes] [--keep]"
                );
                std::process::exit(2);
            }
        }
    }
    let step = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let root = nix::unistd::geteuid().is_root();
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
    let peer = tmp.path().join("peer");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::create_dir_all(&peer).unwrap();
    println!(
        "server bench: {files} files in {}, {} cores, {} walkers, {}",
        tmp.path().display(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        tree::io_pool().current_num_threads(),
        if root {
            "cold (caches dropped before every timed step)"
        } else {
            "WARM (not root: caches cannot be dropped)"
        }
    );
    let t = Instant::now();
    make_tree(&incoming, files, linked);
    if linked > 0 {
        println!("{linked}% of the files have a second name in incoming/ (rsync -H uploads)");
    }
    // names in incoming/: the files and their second names
    let names = files
        + (0..files.div_ceil(1000))
            .map(|d| (files - d * 1000).min(1000).min(linked * 10))
            .sum::<usize>();
    println!(
        "made incoming/ in {:.1}s, load {}",
        secs(t.elapsed()),
        load()
    );

    let week = Intervals {
        daily: 7,
        ..Intervals::default()
    };
    // a week of snapshots (warm, the set-up). The peer's week has the same shape: daily.1-6
    // hard-linked from ours, daily.0 a copy of incoming/ (its owner and modes, so --link-dest
    // links what is unchanged). A copy, not links: rsnapshot's snapshots share no inode with
    // what the client writes, and a source file with several names is one the job makes
    // again under every name (they must end up as one inode, which the copy decides as it
    // goes), so links into incoming/ would time another job than the one a server runs.
    let mut day = 0;
    let mut ours_week = vec![];
    for _ in 0..7 {
        day += 1;
        change(&incoming, day);
        let (d, r) = timed(|| snapshot::rotate(&home, &week, "daily").unwrap());
        assert!(r.created.is_some());
        ours_week.push(secs(d));
    }
    for n in 1..7 {
        run(Command::new("cp")
            .arg("-al")
            .arg(snaps.join(format!("daily.{n}")))
            .arg(peer.join(format!("daily.{n}"))));
    }
    run(Command::new("cp")
        .arg("-a")
        .arg(&incoming)
        .arg(peer.join("daily.0")));
    println!(
        "a week of snapshots (warm): rotate {:.2}s a day (the first, a full copy: {:.2}s), load {}",
        median(&ours_week[1..]),
        ours_week[0],
        load()
    );

    let mut s = Samples::default();
    let mut loads = vec![];
    for rep in 0..reps {
        day += 1;
        change(&incoming, day);
        loads.push(load());
        let ours_first = rep % 2 == 0;
        for turn in 0..2 {
            if !step("job") {
                break;
            }
            if (turn == 0) == ours_first {
                // the real daily job: rotate (copy-on-change + shift + rename into trash), then
                // the trash is emptied
                cold(root);
                let (d, r) = timed(|| snapshot::rotate(&home, &week, "daily").unwrap());
                assert_eq!(r.expired.len(), 1, "{r:?}");
                assert!(
                    r.recycled.is_some(),
                    "the expiring daily.6 is refreshed: {r:?}"
                );
                // what a server's job does: the week's few changes remade, every other name
                // left as it is (a degenerate run that remade every name would time more work)
                let kept = r.copy.as_ref().map_or(0, |c| c.kept) as usize;
                assert!(
                    kept + 1000 >= names,
                    "the refresh kept {kept} of {names} names: {r:?}"
                );
                s.add("rotate", d);
                cold(root);
                let (d, _) = timed(|| snapshot::purge_trash(&home).unwrap());
                s.add("purge (job's snapshot)", d);
            } else {
                let (rm, rs) = peer_rotate(&incoming, &peer, 7, root, linked > 0);
                s.add("rm -rf (job's snapshot)", rm);
                s.add("rsync --link-dest", rs);
            }
        }
        // hard-link snapshots, like for like, and their removal
        let lt = tmp.path().join(format!("lt.{rep}"));
        let cp = tmp.path().join(format!("cp.{rep}"));
        for turn in 0..2 {
            if !step("link") && !step("expiry") {
                break;
            }
            cold(root);
            if (turn == 0) == ours_first {
                let (d, _) = timed(|| tree::link_tree(&incoming, &lt).unwrap());
                s.add("link_tree", d);
            } else {
                s.add(
                    "cp -al",
                    run(Command::new("cp").arg("-al").arg(&incoming).arg(&cp)),
                );
            }
        }
        for turn in 0..2 {
            if !step("expiry") {
                let _ = std::fs::remove_dir_all(&lt);
                let _ = std::fs::remove_dir_all(&cp);
                break;
            }
            cold(root);
            if (turn == 0) == ours_first {
                let before = cpu(false);
                let (d, _) = timed(|| {
                    let trash = snapshot::work_dir(&home).join("trash");
                    std::fs::create_dir_all(&trash).unwrap();
                    std::fs::rename(&lt, trash.join(format!("lt.{rep}"))).unwrap();
                    snapshot::purge_trash(&home).unwrap()
                });
                s.add("rename + purge (hard-link tree)", d);
                s.add_secs("  CPU s of it", cpu(false) - before);
            } else {
                let before = cpu(true);
                s.add(
                    "rm -rf (hard-link tree)",
                    run(Command::new("rm").arg("-rf").arg(&cp)),
                );
                s.add_secs("  CPU s of rm -rf", cpu(true) - before);
            }
        }
        // sizes of the account: incoming + a week of snapshots
        if !step("sizes") {
            println!("round {} done, load {}", rep + 1, loads.last().unwrap());
            continue;
        }
        let mut du_out = vec![];
        let mut ours = None;
        for turn in 0..2 {
            cold(root);
            if (turn == 0) == ours_first {
                let (d, r) = timed(|| size::measure(&home).unwrap());
                s.add("size::measure", d);
                ours = Some(r);
            } else {
                let t = Instant::now();
                let out = Command::new("du")
                    .args(["-sb", "incoming", ".snapshots"])
                    .current_dir(&home)
                    .output()
                    .unwrap();
                s.add("du -sb", t.elapsed());
                du_out = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
                    .collect();
            }
        }
        let ours = ours.unwrap();
        // du counts .holdfast (the server's own area) nowhere: it is outside both folders
        assert_eq!(
            du_out,
            [ours.backup.apparent, ours.snapshots.apparent],
            "holdfast and du disagree"
        );
        let cache = tmp.path().join("size-cache");
        let _ = size::measure_cached(&home, Some(&cache)).unwrap();
        cold(root);
        let (d, again) = timed(|| size::measure_cached(&home, Some(&cache)).unwrap());
        assert_eq!(du_out, [again.backup.apparent, again.snapshots.apparent]);
        s.add("size::measure_cached (scans kept)", d);
        println!("round {} done, load {}", rep + 1, loads.last().unwrap());
    }

    println!("\nmedians of {reps} rounds, loads {}:", loads.join(" / "));
    for w in [
        "rotate",
        "rsync --link-dest",
        "cp -al",
        "link_tree",
        "purge (job's snapshot)",
        "rm -rf (job's snapshot)",
        "rename + purge (hard-link tree)",
        "  CPU s of it",
        "rm -rf (hard-link tree)",
        "  CPU s of rm -rf",
        "size::measure",
        "du -sb",
        "size::measure_cached (scans kept)",
    ] {
        if !s.get(w).is_empty() {
            println!("  {w:<36} {}", s.line(w));
        }
    }
    let job = s.med("rotate") + s.med("purge (job's snapshot)");
    let peer_job = s.med("rsync --link-dest") + s.med("rm -rf (job's snapshot)");
    println!("\nratios (peer time / holdfast time; > 1 means holdfast is faster)");
    let ratio = |what: &str, x: f64| {
        if x.is_finite() {
            println!("  {what} {x:6.2}x");
        }
    };
    ratio(
        "snapshot, hard links (like for like)   cp -al / link_tree           ",
        s.med("cp -al") / s.med("link_tree"),
    );
    ratio(
        "snapshot as the job makes it           rsync --link-dest / rotate   ",
        s.med("rsync --link-dest") / s.med("rotate"),
    );
    ratio(
        "(not like for like: rotate copies)     cp -al / rotate              ",
        s.med("cp -al") / s.med("rotate"),
    );
    ratio(
        "whole daily job incl. emptying trash   rsnapshot way / holdfast     ",
        peer_job / job,
    );
    if step("job") {
        println!(
            "  (the job deletes no snapshot: its expiring daily.6 becomes daily.0 inside rotate)"
        );
    }
    ratio(
        "expiry incl. emptying, hard-link trees rm -rf / rename+purge        ",
        s.med("rm -rf (hard-link tree)") / s.med("rename + purge (hard-link tree)"),
    );
    ratio(
        "sizes, uncached                        du -sb / measure             ",
        s.med("du -sb") / s.med("size::measure"),
    );
    ratio(
        "sizes, scans kept                      du -sb / measure_cached      ",
        s.med("du -sb") / s.med("size::measure_cached (scans kept)"),
    );
    if keep {
        let p = tmp.keep();
        println!("kept {}", p.display());
    } else {
        let t = Instant::now();
        for e in std::fs::read_dir(tmp.path()).unwrap().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                tree::remove_tree(&e.path()).unwrap();
            }
        }
        println!("cleaned up in {:.1}s", secs(t.elapsed()));
    }
}
