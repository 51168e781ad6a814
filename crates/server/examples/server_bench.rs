//! Benchmark of the backup server's jobs against what operators run today, on one account
//! with a tree of many small files and a week of daily snapshots (run by `bench/server.sh`).
//! Every timed step starts cold (`sync; echo 3 > /proc/sys/vm/drop_caches`, as root; without
//! root the run says it is warm), holdfast and its peers take turns in an order that rotates
//! by round, and medians of `--reps` rounds are printed with the load average at the start of
//! every timed step.
//!
//! holdfast walks and removes with a pool of threads (`tree::io_pool`), so every peer that
//! walks a tree is timed twice: as one process, and split over the tree's top-level entries
//! (the clients) under `xargs -0 -P<jobs>` (`--peer-jobs`; default as many as holdfast's
//! walkers, or the cores if more: on a cold cache the peers wait on the disk as holdfast does,
//! and at 20,000 files `rsync --link-dest` took 0.40 s with -P8 against 0.52 s with -P2 on 2
//! cores), each entry one `cp -al` / `rm -rf` / `rsync`. The ratios are against the faster of
//! the peer as one process and in parallel.
//! `du -sb` stays one process: split, it would count a file linked from two entries twice.
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
//! Usage: server_bench [--files N] [--linked PCT] [--dir DIR] [--reps N] [--peer-jobs N]
//! [--only job,link,expiry,sizes] [--keep]
//! (`--only`: time just those steps; the set-up is the same. `--linked PCT`: that share of
//! the files also get a second name in a folder of their own, as the Perl client's rsync
//! `-H` uploads hard-linked files; the rsnapshot way then runs `rsync -aH` to keep them so.)

use holdfast_server::{size, snapshot, tree};
use holdfast_stoney::account::Intervals;
use holdfast_testkit::bench::{self, load, median};
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

/// Cold start for the next step: dirty pages written (not timed), caches dropped. Returns
/// the load average at the step's start, recorded with its time.
/// Drops the caches (as root; otherwise writes dirty pages out only: the runs are labelled
/// warm); the load at the start of the run.
fn cold(root: bool) -> String {
    if root {
        assert!(bench::drop_caches(), "cannot drop the caches");
    } else {
        bench::sync();
    }
    load()
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

/// `sh -c SCRIPT sh ARGS...`: a peer written as a shell pipeline, its arguments kept apart.
fn sh(script: &str, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).arg("sh").args(args);
    c
}

/// After a parallel peer filled `$2` from `$1`'s entries: `$2` gets `$1`'s owner, mode and
/// times, as the one-process tool gives it.
const TOP_ATTRS: &str =
    r#"chown --reference="$1" "$2"; chmod --reference="$1" "$2"; touch -r "$1" "$2""#;

/// `rm -rf dir`, one process, or each top-level entry its own `rm -rf` under `xargs -P jobs`
/// (then the emptied folder).
fn rm_rf(dir: &Path, jobs: usize) -> Command {
    if jobs <= 1 {
        let mut c = Command::new("rm");
        c.arg("-rf").arg(dir);
        return c;
    }
    sh(
        r#"set -e; find "$1" -mindepth 1 -maxdepth 1 -print0 | xargs -0 -r -n 1 -P"$2" rm -rf; rm -rf "$1""#,
        &[dir.as_os_str(), jobs.to_string().as_ref()],
    )
}

/// `cp -al src dst`, one process, or one `cp -al` per top-level entry of `src` under
/// `xargs -P jobs`.
fn cp_al(src: &Path, dst: &Path, jobs: usize) -> Command {
    if jobs <= 1 {
        let mut c = Command::new("cp");
        c.arg("-al").arg(src).arg(dst);
        return c;
    }
    sh(
        &format!(
            r#"set -e; mkdir "$2"; cd "$1"; find . -mindepth 1 -maxdepth 1 -printf '%P\0' | xargs -0 -r -P"$3" -I{{}} cp -al {{}} "$2"/{{}}; {TOP_ATTRS}"#
        ),
        &[src.as_os_str(), dst.as_os_str(), jobs.to_string().as_ref()],
    )
}

/// `rsync -a[H] [--link-dest=../daily.1] incoming/ daily.0/`, one process, or one rsync per
/// top-level entry of incoming/ under `xargs -P jobs` (with `-H`: the second names
/// `--linked` makes are in their file's client, so every hard link stays inside one rsync).
fn rsync_link_dest(incoming: &Path, snaps: &Path, hard_links: bool, jobs: usize) -> Command {
    let flags = if hard_links { "-aH" } else { "-a" };
    let link_dest = if snaps.join("daily.1").exists() {
        "--link-dest=../daily.1"
    } else {
        ""
    };
    let dest = snaps.join("daily.0");
    if jobs <= 1 {
        let mut c = Command::new("rsync");
        c.arg(flags);
        if !link_dest.is_empty() {
            c.arg(link_dest);
        }
        c.arg(format!("{}/", incoming.display()))
            .arg(format!("{}/", dest.display()));
        return c;
    }
    // each entry sent by name (no trailing slash) into daily.0/: its paths there, and in
    // --link-dest (relative to daily.0), are the one-process rsync's
    sh(
        &format!(
            r#"set -e; mkdir "$2"; cd "$1"; find . -mindepth 1 -maxdepth 1 -printf '%P\0' | xargs -0 -r -P"$3" -I{{}} rsync {flags} {link_dest} {{}} "$2"/; {TOP_ATTRS}"#
        ),
        &[
            incoming.as_os_str(),
            dest.as_os_str(),
            jobs.to_string().as_ref(),
        ],
    )
}

/// The rsnapshot way of the daily job, in `snaps`: expire the oldest, shift, link-dest copy,
/// with `jobs` processes (1: the tools as they come). Returns the (rm -rf, rsync) times with
/// the load at the start of each; the renames are too cheap to matter.
fn peer_rotate(
    incoming: &Path,
    snaps: &Path,
    keep: usize,
    root: bool,
    hard_links: bool,
    jobs: usize,
) -> ((Duration, String), (Duration, String)) {
    let oldest = snaps.join(format!("daily.{}", keep - 1));
    let l = cold(root);
    let rm = if oldest.exists() {
        run(&mut rm_rf(&oldest, jobs))
    } else {
        Duration::ZERO
    };
    for n in (0..keep - 1).rev() {
        let from = snaps.join(format!("daily.{n}"));
        if from.exists() {
            std::fs::rename(&from, snaps.join(format!("daily.{}", n + 1))).unwrap();
        }
    }
    let l2 = cold(root);
    let rs = run(&mut rsync_link_dest(incoming, snaps, hard_links, jobs));
    ((rm, l), (rs, l2))
}

/// Each timed step's seconds, with the load average at its start.
#[derive(Default)]
struct Samples(Vec<(String, f64, String)>);

impl Samples {
    fn add(&mut self, what: impl Into<String>, d: Duration, load: &str) {
        self.add_secs(what, secs(d), load);
    }
    fn add_secs(&mut self, what: impl Into<String>, secs: f64, load: &str) {
        self.0.push((what.into(), secs, load.to_string()));
    }
    fn get(&self, what: &str) -> Vec<f64> {
        self.0
            .iter()
            .filter(|(w, ..)| *w == what)
            .map(|x| x.1)
            .collect()
    }
    fn med(&self, what: &str) -> f64 {
        median(&self.get(what))
    }
    fn line(&self, what: &str) -> String {
        let v: Vec<_> = self.0.iter().filter(|(w, ..)| *w == what).collect();
        format!(
            "{:8.2} s  ({})",
            self.med(what),
            v.iter()
                .map(|(_, x, l)| if l.is_empty() {
                    format!("{x:.2}")
                } else {
                    format!("{x:.2} at load {l}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The turn order of round `rep` over `n` contestants (holdfast is 0): rotates by round.
fn turns(rep: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| (k + rep) % n).collect()
}

fn main() {
    let mut files = 1_000_000usize;
    let mut linked = 0usize;
    let mut base: Option<PathBuf> = None;
    let mut keep = false;
    let mut reps = 3usize;
    let mut only: Option<Vec<String>> = None;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // the parallel peers get as many processes as holdfast has walkers (or cores, if more)
    let mut jobs = tree::io_pool().current_num_threads().max(cores);
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
            "--peer-jobs" => {
                jobs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n >= 2)
                    .expect("--peer-jobs N (2 or more)")
            }
            "--keep" => keep = true,
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
            }
            _ => {
                eprintln!(
                    "usage: server_bench [--files N] [--linked PCT] [--dir DIR] [--reps N] [--peer-jobs N] [--only job,link,expiry,sizes] [--keep]"
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
            // absolute: the parallel peers change folder
            tempfile::tempdir_in(b.canonicalize().unwrap()).unwrap()
        }
        None => tempfile::tempdir().unwrap(),
    };
    let home = tmp.path().join("home");
    let incoming = home.join("incoming");
    let snaps = home.join(".snapshots");
    // the rsnapshot way's week, once for the one-process peer and once for the parallel one
    let peer = tmp.path().join("peer");
    let peer_par = tmp.path().join("peer-par");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::create_dir_all(&peer).unwrap();
    std::fs::create_dir_all(&peer_par).unwrap();
    println!(
        "server bench: {files} files in {}, {cores} cores, {} walkers, peers as one process \
         and as xargs -P{jobs} over the top-level entries, {}",
        tmp.path().display(),
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
    for p in [&peer, &peer_par] {
        for n in 1..7 {
            run(Command::new("cp")
                .arg("-al")
                .arg(snaps.join(format!("daily.{n}")))
                .arg(p.join(format!("daily.{n}"))));
        }
    }
    run(Command::new("cp")
        .arg("-a")
        .arg(&incoming)
        .arg(peer.join("daily.0")));
    // links to the other peer's copy: no inode shared with incoming/ either
    run(Command::new("cp")
        .arg("-al")
        .arg(peer.join("daily.0"))
        .arg(peer_par.join("daily.0")));
    println!(
        "a week of snapshots (warm): rotate {:.2}s a day (the first, a full copy: {:.2}s), load {}",
        median(&ours_week[1..]),
        ours_week[0],
        load()
    );

    // the peers' names, one process and parallel
    let par = |what: &str| format!("{what} -P{jobs}");
    let mut s = Samples::default();
    let mut loads = vec![];
    for rep in 0..reps {
        day += 1;
        change(&incoming, day);
        loads.push(load());
        // 0: holdfast, 1: the peer as one process, 2: the peer in parallel
        let order = turns(rep, 3);
        for &who in &order {
            if !step("job") {
                break;
            }
            if who == 0 {
                // the real daily job: rotate (copy-on-change + shift + rename into trash), then
                // the trash is emptied
                let l = cold(root);
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
                s.add("rotate", d, &l);
                let l = cold(root);
                let (d, _) = timed(|| snapshot::purge_trash(&home).unwrap());
                s.add("purge (job's snapshot)", d, &l);
            } else {
                let (dir, n) = if who == 1 {
                    (&peer, 1)
                } else {
                    (&peer_par, jobs)
                };
                let ((rm, lr), (rs, ls)) = peer_rotate(&incoming, dir, 7, root, linked > 0, n);
                let (rm_name, rs_name) = ("rm -rf (job's snapshot)", "rsync --link-dest");
                if who == 1 {
                    s.add(rm_name, rm, &lr);
                    s.add(rs_name, rs, &ls);
                } else {
                    s.add(par(rm_name), rm, &lr);
                    s.add(par(rs_name), rs, &ls);
                }
            }
        }
        // hard-link snapshots, like for like, and their removal
        let lt = tmp.path().join(format!("lt.{rep}"));
        let cp = tmp.path().join(format!("cp.{rep}"));
        let cpp = tmp.path().join(format!("cpp.{rep}"));
        for &who in &order {
            if !step("link") && !step("expiry") {
                break;
            }
            let l = cold(root);
            match who {
                0 => {
                    let (d, _) = timed(|| tree::link_tree(&incoming, &lt).unwrap());
                    s.add("link_tree", d, &l);
                }
                1 => s.add("cp -al", run(&mut cp_al(&incoming, &cp, 1)), &l),
                _ => s.add(par("cp -al"), run(&mut cp_al(&incoming, &cpp, jobs)), &l),
            }
        }
        for &who in &order {
            if !step("expiry") {
                for t in [&lt, &cp, &cpp] {
                    let _ = std::fs::remove_dir_all(t);
                }
                break;
            }
            let l = cold(root);
            if who == 0 {
                let before = cpu(false);
                let (d, _) = timed(|| {
                    let trash = snapshot::work_dir(&home).join("trash");
                    std::fs::create_dir_all(&trash).unwrap();
                    std::fs::rename(&lt, trash.join(format!("lt.{rep}"))).unwrap();
                    snapshot::purge_trash(&home).unwrap()
                });
                s.add("rename + purge (hard-link tree)", d, &l);
                s.add_secs("  CPU s of it", cpu(false) - before, "");
            } else {
                let (tree, n, name, cpu_name) = if who == 1 {
                    (
                        &cp,
                        1,
                        "rm -rf (hard-link tree)".to_string(),
                        "  CPU s of rm -rf".to_string(),
                    )
                } else {
                    (
                        &cpp,
                        jobs,
                        par("rm -rf (hard-link tree)"),
                        par("  CPU s of rm -rf"),
                    )
                };
                let before = cpu(true);
                s.add(name, run(&mut rm_rf(tree, n)), &l);
                s.add_secs(cpu_name, cpu(true) - before, "");
            }
        }
        // sizes of the account: incoming + a week of snapshots
        if !step("sizes") {
            println!("round {} done, load {}", rep + 1, load());
            continue;
        }
        let mut du_out = vec![];
        let mut ours = None;
        for &who in &order {
            // du -sb has no parallel form: split over the top-level entries it would count a
            // file linked from two of them twice
            if who == 2 {
                continue;
            }
            let l = cold(root);
            if who == 0 {
                let (d, r) = timed(|| size::measure(&home).unwrap());
                s.add("size::measure", d, &l);
                ours = Some(r);
            } else {
                let t = Instant::now();
                let out = Command::new("du")
                    .args(["-sb", "incoming", ".snapshots"])
                    .current_dir(&home)
                    .output()
                    .unwrap();
                s.add("du -sb", t.elapsed(), &l);
                assert!(out.status.success(), "du -sb failed");
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
        let l = cold(root);
        let (d, again) = timed(|| size::measure_cached(&home, Some(&cache)).unwrap());
        assert_eq!(du_out, [again.backup.apparent, again.snapshots.apparent]);
        s.add("size::measure_cached (scans kept)", d, &l);
        println!("round {} done, load {}", rep + 1, load());
    }

    println!(
        "\nmedians of {reps} rounds (each run with the load at its start); loads at the rounds' \
         starts {}:",
        loads.join(" / ")
    );
    let rows = [
        "rotate".to_string(),
        "rsync --link-dest".to_string(),
        par("rsync --link-dest"),
        "link_tree".to_string(),
        "cp -al".to_string(),
        par("cp -al"),
        "purge (job's snapshot)".to_string(),
        "rm -rf (job's snapshot)".to_string(),
        par("rm -rf (job's snapshot)"),
        "rename + purge (hard-link tree)".to_string(),
        "  CPU s of it".to_string(),
        "rm -rf (hard-link tree)".to_string(),
        "  CPU s of rm -rf".to_string(),
        par("rm -rf (hard-link tree)"),
        par("  CPU s of rm -rf"),
        "size::measure".to_string(),
        "du -sb".to_string(),
    ];
    for w in &rows {
        if !s.get(w).is_empty() {
            println!("  {w:<38} {}", s.line(w));
        }
    }
    // the faster of the peer as one process and in parallel: (median, which)
    let best = |what: &str| {
        let (one, p) = (s.med(what), s.med(&par(what)));
        if p < one || one.is_nan() {
            (p, par(what))
        } else {
            (one, what.to_string())
        }
    };
    let (rs, rs_name) = best("rsync --link-dest");
    let (rm, rm_name) = best("rm -rf (job's snapshot)");
    let (cp_best, cp_name) = best("cp -al");
    let (rmt, rmt_name) = best("rm -rf (hard-link tree)");
    let job = s.med("rotate") + s.med("purge (job's snapshot)");
    println!(
        "\nratios (the faster peer's time / holdfast's; > 1 means holdfast is faster; the \
         faster peer named)"
    );
    let ratio = |what: &str, x: f64, peer: &str| {
        if x.is_finite() {
            println!("  {what} {x:6.2}x   (peer: {peer})");
        }
    };
    ratio(
        "snapshot, hard links (like for like)   cp -al / link_tree           ",
        cp_best / s.med("link_tree"),
        &cp_name,
    );
    ratio(
        "snapshot as the job makes it           rsync --link-dest / rotate   ",
        rs / s.med("rotate"),
        &rs_name,
    );
    ratio(
        "(not like for like: rotate copies)     cp -al / rotate              ",
        cp_best / s.med("rotate"),
        &cp_name,
    );
    ratio(
        "whole daily job incl. emptying trash   rsnapshot way / holdfast     ",
        (rs + rm) / job,
        &format!("{rs_name} + {rm_name}"),
    );
    if step("job") {
        println!(
            "  (the job deletes no snapshot: its expiring daily.6 becomes daily.0 inside rotate)"
        );
    }
    ratio(
        "expiry incl. emptying, hard-link trees rm -rf / rename+purge        ",
        rmt / s.med("rename + purge (hard-link tree)"),
        &rmt_name,
    );
    ratio(
        "sizes, uncached                        du -sb / measure             ",
        s.med("du -sb") / s.med("size::measure"),
        "du -sb, one process",
    );
    let cached = s.med("size::measure_cached (scans kept)");
    if cached.is_finite() {
        // no peer keeps du's scans: this is holdfast's own figure, not a ratio
        println!(
            "\nholdfast alone: sizes with the snapshot scans kept (size::measure_cached, cold) \
             {}",
            s.line("size::measure_cached (scans kept)").trim_start()
        );
    }
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
