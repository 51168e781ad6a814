//! Proving a snapshot's content: every repository file against its own name, the dump
//! against its recorded sha256.
//!
//! FOSSology names each stored file `<sha1>.<md5>.<size>` of its content (see
//! `holdfast_site::pfile`), so a copy can be proved without any index of ours: hash it and
//! compare with its name. Files not named by content (logs, reports) are counted as
//! "unprovable"; they exist, nothing more can be said.
//!
//! A verification run keeps its record in `.verify/<stamp>.json` on the target, where
//! `<stamp>` is the snapshot's start time (stable when `current` becomes `day.<time>`). The
//! record is written after every chunk of files, so a killed or interrupted run resumes where
//! it stopped; the finished record names the damaged files, which the next backup re-copies
//! from the site instead of hard-linking them (see [`known_bad`]).
//!
//! Local targets are hashed here (sha1 and md5 in one pass, in parallel); remote ones by
//! `sha1sum`/`md5sum` on the backup server, so the files do not cross the network.

use crate::dump::check_dump;
use crate::BackupError;
use chrono::{DateTime, Utc};
use holdfast_core::progress::{Progress, Unit};
use holdfast_site::pfile::PfileName;
use holdfast_store::layout::{self, Snapshot, POOL};
use holdfast_store::manifest::REPO_DIR;
use holdfast_store::target::sh_quote;
use holdfast_store::Target;
use md5::Md5;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// Folder on the target holding the verification records.
pub const VERIFY_DIR: &str = ".verify";
/// Files per checkpoint of a run.
const CHUNK: usize = 512;

/// A file whose content does not match its name (or that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BadFile {
    /// Path relative to the repository root (`localhost/files/ab/cd/ef/<name>`).
    pub path: String,
    pub why: String,
}

/// One verification of one snapshot (finished or in progress).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyRecord {
    pub snapshot: String,
    pub stamp: String,
    pub started: DateTime<Utc>,
    /// `None` while in progress (a later run resumes it).
    pub finished: Option<DateTime<Utc>>,
    /// Share of files checked, when sampling.
    pub sample_percent: Option<f64>,
    pub seed: u64,
    /// Files of the snapshot (sampled or not) and how many of them are done.
    pub total_files: u64,
    pub done: u64,
    pub checked_files: u64,
    pub checked_bytes: u64,
    /// Files not named by their content (logs, reports): present, not provable.
    pub unprovable: u64,
    pub bad: Vec<BadFile>,
    /// `None`: the dump matches its sha256; `Some(why)` otherwise.
    pub dump_problem: Option<String>,
    pub secs: f64,
}

impl VerifyRecord {
    pub fn is_ok(&self) -> bool {
        self.finished.is_some() && self.bad.is_empty() && self.dump_problem.is_none()
    }
}

/// What `verify --snapshot` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check only this share of the files (0 < p <= 100), a new random choice per run.
    pub sample_percent: Option<f64>,
    /// Start again even when an unfinished record exists.
    pub restart: bool,
}

/// The outcome of proving one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Good(u64),
    Unprovable,
    Bad(String),
}

/// Hashes `path` and compares it with its pfile name.
pub fn prove_file(path: &Path) -> Proof {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(want) = PfileName::parse(&name) else {
        return Proof::Unprovable;
    };
    match hash_file(path) {
        Ok((sha1, md5, size)) => judge(&want, &sha1, &md5, size),
        Err(e) => Proof::Bad(format!("unreadable: {e}")),
    }
}

fn judge(want: &PfileName, sha1: &str, md5: &str, size: u64) -> Proof {
    if size != want.size {
        return Proof::Bad(format!("size {size}, name says {}", want.size));
    }
    if sha1 != want.sha1 || md5 != want.md5 {
        return Proof::Bad(format!(
            "content sha1 {sha1} md5 {md5} does not match the name"
        ));
    }
    Proof::Good(size)
}

/// sha1 and md5 (lower-case hex) and size of a file, read once.
pub fn hash_file(path: &Path) -> std::io::Result<(String, String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut s = Sha1::new();
    let mut m = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.update(&buf[..n]);
        m.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((
        hex::encode(s.finalize()),
        hex::encode(m.finalize()),
        n_total,
    ))
}

/// Where a snapshot's repository files live on the target, and their repository-relative
/// paths, sorted.
pub fn snapshot_files(
    target: &Target,
    snap: &Snapshot,
) -> Result<(String, Vec<String>), BackupError> {
    if snap.manifest.layout == "pool" {
        let list = holdfast_store::pool::read_list(target, &snap.name)?;
        return Ok((format!("{POOL}/{REPO_DIR}"), list));
    }
    let base = format!("{}/{REPO_DIR}", snap.name);
    Ok((base.clone(), list_tree(target, &base)?))
}

/// Regular files under `rel` on the target, relative to it, sorted.
pub fn list_tree(target: &Target, rel: &str) -> Result<Vec<String>, BackupError> {
    let mut out = Vec::new();
    match target.local_path(rel) {
        Some(root) => {
            for e in walkdir::WalkDir::new(&root) {
                let e = e.map_err(|e| BackupError::Io {
                    path: root.display().to_string(),
                    source: e.into(),
                })?;
                if e.file_type().is_file() {
                    if let Ok(r) = e.path().strip_prefix(&root) {
                        out.push(r.to_string_lossy().into_owned());
                    }
                }
            }
        }
        None => {
            let p = sh_quote(&target.path(rel));
            let data = target.run_script(&format!(
                "if [ -d {p} ]; then cd {p} && find . -type f | sed 's|^\\./||'; fi"
            ))?;
            out.extend(
                String::from_utf8_lossy(&data)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
    }
    out.sort();
    Ok(out)
}

/// Proves `paths` (relative to `base` on the target); one result per path, in order.
pub fn prove_on_target(
    target: &Target,
    base: &str,
    paths: &[String],
    progress: &Progress,
) -> Result<Vec<Proof>, BackupError> {
    match target.local_path(base) {
        Some(root) => Ok(paths
            .par_iter()
            .map(|p| {
                let r = prove_file(&root.join(p));
                if let Proof::Good(n) = r {
                    progress.inc(n);
                }
                r
            })
            .collect()),
        None => {
            // Only content-named files are worth hashing; the others are unprovable anyway.
            let named: Vec<&String> = paths
                .iter()
                .filter(|p| PfileName::parse(p.rsplit('/').next().unwrap_or(p)).is_some())
                .collect();
            let mut input = Vec::new();
            for p in &named {
                input.extend_from_slice(p.as_bytes());
                input.push(0);
            }
            let script = format!(
                "cd {} || exit 1; t=$(mktemp) || exit 1; cat > \"$t\"; \
                 xargs -0 -r sha1sum -- < \"$t\" 2>/dev/null; echo @@; \
                 xargs -0 -r md5sum -- < \"$t\" 2>/dev/null; echo @@; \
                 xargs -0 -r stat -c '%s %n' -- < \"$t\" 2>/dev/null; rm -f \"$t\"; exit 0",
                sh_quote(&target.path(base))
            );
            let out = target.run_script_with_input(&script, &input)?;
            let text = String::from_utf8_lossy(&out);
            let mut parts = text.split("@@\n");
            let parse = |part: Option<&str>, sep: &str| -> HashMap<String, String> {
                part.unwrap_or("")
                    .lines()
                    .filter_map(|l| {
                        let (a, b) = l.split_once(sep)?;
                        Some((b.to_string(), a.to_string()))
                    })
                    .collect()
            };
            let sha1 = parse(parts.next(), "  ");
            let md5 = parse(parts.next(), "  ");
            let size = parse(parts.next(), " ");
            Ok(paths
                .iter()
                .map(|p| {
                    let Some(want) = PfileName::parse(p.rsplit('/').next().unwrap_or(p)) else {
                        return Proof::Unprovable;
                    };
                    match (
                        sha1.get(p),
                        md5.get(p),
                        size.get(p).and_then(|s| s.parse().ok()),
                    ) {
                        (Some(s), Some(m), Some(n)) => {
                            let r = judge(&want, s, m, n);
                            if let Proof::Good(n) = r {
                                progress.inc(n);
                            }
                            r
                        }
                        _ => Proof::Bad("missing or unreadable on the backup server".into()),
                    }
                })
                .collect())
        }
    }
}

fn record_path(stamp: &str) -> String {
    format!("{VERIFY_DIR}/{stamp}.json")
}

/// The snapshot's key for records: its start time (stable across `current` → `day.<time>`).
pub fn stamp_of(snap: &Snapshot) -> String {
    layout::stamp(snap.manifest.started)
}

/// The latest record of `snap`, finished or not.
pub fn read_record(target: &Target, snap: &Snapshot) -> Result<Option<VerifyRecord>, BackupError> {
    Ok(target
        .read(&record_path(&stamp_of(snap)))?
        .and_then(|d| serde_json::from_slice(&d).ok()))
}

fn write_record(target: &Target, r: &VerifyRecord) -> Result<(), BackupError> {
    target.mkdir_p(VERIFY_DIR)?;
    let json = serde_json::to_vec_pretty(r).expect("record serialises");
    target.write_atomic(&record_path(&r.stamp), &json)?;
    Ok(())
}

fn sampled(seed: u64, path: &str, pct: f64) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    path.hash(&mut h);
    (h.finish() % 1_000_000) as f64 / 10_000.0 < pct
}

/// Proves every file of `snap` (or a sample) and its dump; resumes an unfinished run.
pub fn verify_snapshot(
    target: &Target,
    snap: &Snapshot,
    opts: &VerifyOptions,
) -> Result<VerifyRecord, BackupError> {
    let began = std::time::Instant::now();
    let stamp = stamp_of(snap);
    let (base, all) = snapshot_files(target, snap)?;
    let previous = if opts.restart {
        None
    } else {
        read_record(target, snap)?.filter(|r| {
            r.finished.is_none()
                && r.snapshot_matches(snap)
                && r.sample_percent == opts.sample_percent
        })
    };
    let mut rec = match previous {
        Some(r) => {
            tracing::info!(snapshot = %snap.name, done = r.done, of = r.total_files, "resuming an unfinished verification");
            r
        }
        None => VerifyRecord {
            snapshot: snap.name.clone(),
            stamp: stamp.clone(),
            started: Utc::now(),
            finished: None,
            sample_percent: opts.sample_percent,
            seed: rand::random(),
            total_files: 0,
            done: 0,
            checked_files: 0,
            checked_bytes: 0,
            unprovable: 0,
            bad: Vec::new(),
            dump_problem: None,
            secs: 0.0,
        },
    };
    rec.snapshot = snap.name.clone();
    let files: Vec<String> = match rec.sample_percent {
        Some(p) => all
            .into_iter()
            .filter(|f| sampled(rec.seed, f, p))
            .collect(),
        None => all,
    };
    rec.total_files = files.len() as u64;
    let start = (rec.done as usize).min(files.len());
    let total_bytes: u64 = files[start..]
        .iter()
        .filter_map(|p| PfileName::parse(p.rsplit('/').next().unwrap_or(p)))
        .map(|n| n.size)
        .sum();
    let progress = Progress::new(&format!("verify {}", snap.name), total_bytes, Unit::Bytes);
    let secs_before = rec.secs;
    for chunk in files[start..].chunks(CHUNK) {
        holdfast_core::interrupt::check().map_err(|_| BackupError::Interrupted)?;
        let proofs = prove_on_target(target, &base, chunk, &progress)?;
        for (p, proof) in chunk.iter().zip(proofs) {
            match proof {
                Proof::Good(n) => {
                    rec.checked_files += 1;
                    rec.checked_bytes += n;
                }
                Proof::Unprovable => rec.unprovable += 1,
                Proof::Bad(why) => {
                    tracing::warn!(snapshot = %snap.name, file = %p, "damaged: {why}");
                    rec.checked_files += 1;
                    rec.bad.push(BadFile {
                        path: p.clone(),
                        why,
                    });
                }
            }
        }
        rec.done += chunk.len() as u64;
        rec.secs = secs_before + began.elapsed().as_secs_f64();
        write_record(target, &rec)?;
    }
    progress.finish();
    let info = &snap.manifest.database;
    rec.dump_problem = match check_dump(target, &format!("{}/{}", snap.name, info.file), info) {
        Ok(()) => None,
        Err(BackupError::Interrupted) => return Err(BackupError::Interrupted),
        Err(e) => Some(e.to_string()),
    };
    rec.finished = Some(Utc::now());
    rec.secs = secs_before + began.elapsed().as_secs_f64();
    write_record(target, &rec)?;
    Ok(rec)
}

impl VerifyRecord {
    fn snapshot_matches(&self, snap: &Snapshot) -> bool {
        self.stamp == stamp_of(snap)
    }
}

/// Repository-relative paths that a finished verification of any of `snaps` found damaged.
pub fn known_bad(target: &Target, snaps: &[Snapshot]) -> Result<BTreeSet<String>, BackupError> {
    let mut out = BTreeSet::new();
    for s in snaps {
        if let Some(r) = read_record(target, s)? {
            out.extend(r.bad.into_iter().map(|b| b.path));
        }
    }
    Ok(out)
}

/// Proves the content-named files under the site's repository `root` (after a restore);
/// returns the damaged ones, relative to `root`.
pub fn prove_tree(root: &Path, dirs: &[String], what: &str) -> Vec<BadFile> {
    let mut files = Vec::new();
    let mut total = 0u64;
    for d in dirs {
        for e in walkdir::WalkDir::new(root.join(d)).into_iter().flatten() {
            if e.file_type().is_file() {
                if let Some(n) = PfileName::parse(&e.file_name().to_string_lossy()) {
                    total += n.size;
                    files.push(e.into_path());
                }
            }
        }
    }
    let progress = Progress::new(what, total, Unit::Bytes);
    let mut bad: Vec<BadFile> = files
        .par_iter()
        .filter_map(|p| match prove_file(p) {
            Proof::Good(n) => {
                progress.inc(n);
                None
            }
            Proof::Unprovable => None,
            Proof::Bad(why) => Some(BadFile {
                path: p
                    .strip_prefix(root)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned(),
                why,
            }),
        })
        .collect();
    bad.sort();
    bad
}

/// Checks `paths` (repository-relative) under `base` on the target; returns the damaged ones.
pub fn check_paths(
    target: &Target,
    base: &str,
    paths: &[String],
    what: &str,
) -> Result<Vec<BadFile>, BackupError> {
    let progress = Progress::new(what, 0, Unit::Bytes);
    let mut bad = Vec::new();
    for chunk in paths.chunks(CHUNK) {
        for (p, proof) in chunk
            .iter()
            .zip(prove_on_target(target, base, chunk, &progress)?)
        {
            if let Proof::Bad(why) = proof {
                bad.push(BadFile {
                    path: p.clone(),
                    why,
                });
            }
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proves_a_file_by_its_name() {
        let d = tempfile::tempdir().unwrap();
        let data = b"hello holdfast\n";
        let sha1 = hex::encode(Sha1::digest(data));
        let md5 = hex::encode(Md5::digest(data));
        let p = d.path().join(format!("{sha1}.{md5}.{}", data.len()));
        std::fs::write(&p, data).unwrap();
        assert_eq!(prove_file(&p), Proof::Good(data.len() as u64));
        let mut rotten = data.to_vec();
        rotten[3] ^= 1;
        std::fs::write(&p, &rotten).unwrap();
        assert!(matches!(prove_file(&p), Proof::Bad(w) if w.contains("does not match")));
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(prove_file(&p), Proof::Bad(w) if w.contains("size 5")));
        let log = d.path().join("log.txt");
        std::fs::write(&log, b"x").unwrap();
        assert_eq!(prove_file(&log), Proof::Unprovable);
    }

    #[test]
    fn sampling_takes_about_the_share() {
        let n = (0..10_000)
            .filter(|i| sampled(7, &format!("a/b/{i}"), 10.0))
            .count();
        assert!((800..1200).contains(&n), "{n}");
    }
}
