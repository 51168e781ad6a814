//! Benchmark (run by `bench/s3.sh`, never by CI): a day's new snapshot copied to a bucket
//! by holdfast (the copy `holdfast copy` runs, and the restore's fetch), against `rclone sync` and `restic backup` to the same S3 server, and a
//! restore from the bucket against `rclone copy`. Time and bytes on the wire (a counting
//! proxy sits between each client and the server).
//!
//! The peers run with their best flags for the job: `rclone sync --fast-list --size-only`
//! (one recursive listing instead of one per folder; the files are named by their content,
//! so a size check is enough and no modtime is read), and restic with its cache, as operators
//! keep it: a cache folder of each rep's own (`--cache-dir`, so nothing carries over from
//! another rep), filled by day 1's backup, so day 2 finds it warm, as a night finds the
//! previous night's. The page cache is dropped before every timed step (as root; otherwise
//! the run says WARM).
//!
//! Usage: s3_bench REPOSITORY [NEW_PERCENT] [REPS] [MAX_FILES]
//! REPOSITORY is a real FOSSology repository (files named by content). Day 1 holds all its
//! files but NEW_PERCENT (default 3) chosen by name; day 2 holds them all.

use holdfast_bucket::{BucketConfig, BucketStore};
use holdfast_store::copy::{copy_layout, copy_snapshot};
use holdfast_store::layout::{stamp, Snapshot, FILE_LIST};
use holdfast_store::manifest::MANIFEST_FILE;
use holdfast_store::{pool, Manifest, Store, Target};
use holdfast_testkit::bench::drop_caches;
use holdfast_testkit::s3::S3Server;
use sha2::Digest;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Bytes client → server and back through the proxy.
struct Proxy {
    port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, n: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n.fetch_add(k as u64, Ordering::Relaxed);
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn proxy(server_port: u16) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (u, d) = (up.clone(), down.clone());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let s = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
            let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
            let (u, d) = (u.clone(), d.clone());
            std::thread::spawn(move || pump(c, s, u));
            std::thread::spawn(move || pump(s2, c2, d));
        }
    });
    Proxy { port, up, down }
}

impl Proxy {
    fn take(&self) -> (u64, u64) {
        (
            self.up.swap(0, Ordering::Relaxed),
            self.down.swap(0, Ordering::Relaxed),
        )
    }
}

fn in_day1(rel: &str, pct: u64) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let h = sha2::Sha256::digest(format!("day2:{name}").as_bytes());
    (u64::from(h[0]) * 100 / 256) >= pct
}

/// A pool-layout primary holding `files` (hard links into the repository: no copy).
fn primary_snapshot(repo: &Path, primary: &Path, t: i64, files: &[String]) -> Snapshot {
    for rel in files {
        let p = primary.join("pool/repository").join(rel);
        if !p.exists() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::hard_link(repo.join(rel), &p)
                .or_else(|_| std::fs::copy(repo.join(rel), &p).map(|_| ()))
                .unwrap();
        }
    }
    let started = chrono::DateTime::from_timestamp(t, 0).unwrap();
    let name = format!("snap.{}", stamp(started));
    let sd = primary.join(&name);
    std::fs::create_dir_all(sd.join("db")).unwrap();
    std::fs::write(sd.join(FILE_LIST), pool::encode(files)).unwrap();
    let dump = vec![7u8; 1 << 20];
    std::fs::write(sd.join("db/fossology.sql.gz"), &dump).unwrap();
    let m: Manifest = serde_json::from_value(serde_json::json!({
        "format": 1, "site": "bench", "mode": "full", "layout": "pool", "kind": "full",
        "holdfast_version": "bench", "started": started, "finished": started,
        "database": {"file": "db/fossology.sql.gz", "compression": "gzip",
            "sha256": hex::encode(sha2::Sha256::digest(&dump)), "bytes": dump.len(),
            "raw_bytes": dump.len(), "dbname": "fossology", "owner": "fossy",
            "encoding": "UTF8", "collate": "C", "ctype": "C"},
        "repository": {"root": repo, "hosts": ["localhost"], "types": ["files", "gold"],
            "files": files.len(), "bytes": 0, "new_files": 0, "new_bytes": 0},
        "jobs": {"unfinished": [], "stale_running": []}
    }))
    .unwrap();
    std::fs::write(sd.join(MANIFEST_FILE), m.to_json()).unwrap();
    Snapshot { name, manifest: m }
}

/// A folder tree of `files` (hard links), what rclone and restic back up.
fn tree(repo: &Path, dir: &Path, files: &[String]) {
    for rel in files {
        let p = dir.join(rel);
        if !p.exists() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::hard_link(repo.join(rel), &p).unwrap();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// rclone with the bench's bucket; `--fast-list`: one recursive listing of the bucket.
fn rclone(s: &S3Server, p: &Proxy) -> Command {
    let mut c = Command::new("rclone");
    c.env("RCLONE_CONFIG_B_TYPE", "s3")
        .env("RCLONE_CONFIG_B_PROVIDER", "Rclone")
        .env(
            "RCLONE_CONFIG_B_ENDPOINT",
            format!("http://127.0.0.1:{}", p.port),
        )
        .env("RCLONE_CONFIG_B_ACCESS_KEY_ID", &s.access_key)
        .env("RCLONE_CONFIG_B_SECRET_ACCESS_KEY", &s.secret_key)
        .args([
            "--config",
            "/dev/null",
            "-q",
            "--transfers",
            "8",
            "--fast-list",
        ]);
    c
}

/// restic with its cache in `cache` (the rep's own).
fn restic(s: &S3Server, p: &Proxy, repo_name: &str, cache: &Path) -> Command {
    let mut c = Command::new("restic");
    c.env(
        "RESTIC_REPOSITORY",
        format!("s3:http://127.0.0.1:{}/{}/{repo_name}", p.port, s.bucket),
    )
    .env("RESTIC_PASSWORD", "bench")
    .env("AWS_ACCESS_KEY_ID", &s.access_key)
    .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
    .arg("-q")
    .arg("--cache-dir")
    .arg(cache);
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repo = PathBuf::from(
        args.get(1)
            .expect("usage: s3_bench REPOSITORY [NEW%] [REPS]"),
    );
    let pct: u64 = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(3);
    let reps: usize = args.get(3).map(|a| a.parse().unwrap()).unwrap_or(3);
    let mut all = pool::list_files(&repo, &["localhost/files".into(), "localhost/gold".into()]);
    // MAX_FILES: a sample by content name (gold and files twins stay together).
    if let Some(max) = args.get(4).map(|a| a.parse::<usize>().unwrap()) {
        let key = |r: &String| sha2::Sha256::digest(r.rsplit('/').next().unwrap_or(r).as_bytes());
        all.sort_by_key(key);
        all.truncate(max);
        all.sort();
    }
    let day1: Vec<String> = all.iter().filter(|r| in_day1(r, pct)).cloned().collect();
    let new_bytes: u64 = all
        .iter()
        .filter(|r| !in_day1(r, pct))
        .filter_map(|r| std::fs::metadata(repo.join(r)).ok())
        .map(|m| m.len())
        .sum();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let can_drop = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok();
    if !can_drop {
        eprintln!("WARM: cannot drop the page cache (not root): no step will be timed cold");
    }
    println!(
        "repository {}: {} files; day 1 {} files; day 2 adds {} files, {} bytes; load {}",
        repo.display(),
        all.len(),
        day1.len(),
        all.len() - day1.len(),
        new_bytes,
        load.trim()
    );
    // every timed step starts cold, or the run says it was not
    let mut cold = true;
    let mut rows: Vec<(String, f64, u64, u64)> = Vec::new();
    for rep in 0..reps {
        let work = tempfile::tempdir_in("/var/tmp").unwrap();
        let w = work.path();
        let server = S3Server::start(&w.join("s3"), "bench").unwrap();
        let p = proxy(server.port);
        let creds = w.join("creds");
        let cache = w.join("restic-cache");
        server.write_credentials(&creds).unwrap();
        let mut cfg = BucketConfig::new("s3://bench/holdfast");
        cfg.endpoint = format!("http://127.0.0.1:{}", p.port);
        cfg.credentials_file = Some(creds);
        // What `holdfast copy` and a backup's `[[backup.copy]]` of kind s3 run.
        let b = BucketStore::open(&cfg).unwrap();
        let layout = copy_layout(30);
        let spool = w.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let primary = w.join("primary");
        let t = Target::parse(&primary.display().to_string(), Default::default()).unwrap();
        let copy = |s: &Snapshot| copy_snapshot(&t, s, &b, &layout, &[], &spool).unwrap();
        let (tree1, tree2) = (w.join("tree1"), w.join("tree2"));
        tree(&repo, &tree1, &day1);
        tree(&repo, &tree2, &all);
        // Day 1 everywhere (not timed).
        let s1 = primary_snapshot(&repo, &primary, 1_790_000_000, &day1);
        copy(&s1);
        run(rclone(&server, &p)
            .arg("sync")
            .arg("--size-only")
            .arg(&tree1)
            .arg("B:bench/rclone"));
        run(restic(&server, &p, "restic", &cache).arg("init"));
        run(restic(&server, &p, "restic", &cache)
            .arg("backup")
            .arg(".")
            .current_dir(&tree1));
        let s2 = primary_snapshot(&repo, &primary, 1_790_086_400, &all);
        p.take();
        // Day 2, interleaved (order rotates per rep), cold caches.
        let order = [0, 1, 2];
        for k in 0..3 {
            let which = order[(k + rep) % 3];
            cold &= drop_caches();
            p.take();
            let t0 = Instant::now();
            let name = match which {
                0 => {
                    copy(&s2);
                    "copy day 2: holdfast"
                }
                1 => {
                    run(rclone(&server, &p)
                        .arg("sync")
                        .arg("--size-only")
                        .arg(&tree2)
                        .arg("B:bench/rclone"));
                    "copy day 2: rclone sync"
                }
                _ => {
                    run(restic(&server, &p, "restic", &cache)
                        .arg("backup")
                        .arg(".")
                        .current_dir(&tree2));
                    "copy day 2: restic backup"
                }
            };
            let secs = t0.elapsed().as_secs_f64();
            let (up, down) = p.take();
            eprintln!(
                "rep {} {name}: {secs:.2} s, up {up} B, down {down} B",
                rep + 1
            );
            rows.push((name.into(), secs, up, down));
        }
        // Restore the whole day-2 snapshot from the bucket, interleaved.
        for k in 0..2 {
            let which = (k + rep) % 2;
            cold &= drop_caches();
            p.take();
            let dest = w.join(format!("restore{which}"));
            let t0 = Instant::now();
            let name = if which == 0 {
                let snap = b.snapshots().unwrap().pop().unwrap();
                b.restore_repository(&snap, &dest).unwrap();
                "restore: holdfast fetch"
            } else {
                run(rclone(&server, &p)
                    .arg("copy")
                    .arg("B:bench/rclone")
                    .arg(&dest));
                "restore: rclone copy"
            };
            let secs = t0.elapsed().as_secs_f64();
            let (up, down) = p.take();
            eprintln!(
                "rep {} {name}: {secs:.2} s, up {up} B, down {down} B",
                rep + 1
            );
            rows.push((name.into(), secs, up, down));
        }
        eprintln!("rep {} done", rep + 1);
    }
    let mut names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    names.dedup();
    names.sort();
    names.dedup();
    println!(
        "{}; restic's own cache warm (--cache-dir per rep, filled by day 1's backup); rclone \
         --fast-list, sync --size-only",
        if cold {
            "cold: page cache dropped before every timed step"
        } else {
            "WARM: dropping the page cache failed (run as root), the times are not cold"
        }
    );
    println!("| step | median s | runs (s) | bytes client->server | bytes server->client |");
    println!("|---|---|---|---|---|");
    for n in names {
        let mut r: Vec<&(String, f64, u64, u64)> = rows.iter().filter(|r| r.0 == n).collect();
        r.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let m = r[r.len() / 2];
        let runs: Vec<String> = r.iter().map(|x| format!("{:.2}", x.1)).collect();
        println!(
            "| {n} | {:.2} | {} | {} | {} |",
            m.1,
            runs.join(" "),
            m.2,
            m.3
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load after: {}", load.trim());
}
