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
//! The files are hashed where the store keeps them ([`Store::prove`]): local targets here,
//! ssh targets by `sha1sum`/`md5sum` on the backup server, so the files do not cross the
//! network.

use crate::dump::check_dump;
use crate::BackupError;
use chrono::{DateTime, Utc};
use holdfast_core::progress::{Progress, Unit};
use holdfast_site::pfile::PfileName;
use holdfast_store::layout::{self, Snapshot};
use holdfast_store::{Place, Store};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

pub use holdfast_store::proof::{hash_file, prove_file, Proof, Proven};

/// Folder on the target holding the verification records.
pub const VERIFY_DIR: &str = ".verify";
/// Files per checkpoint of a run. Each chunk's files are hashed in parallel and the record
/// waits for the last of them: at 512 those waits cost a cold verification of the benchmark
/// site 9-11%; a resumed run redoes at most one chunk (~100 MB of repository files).
const CHUNK: usize = 4096;

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
    /// The order `done` counts in ([`ORDER`]; 0: by path, as records before it were).
    #[serde(default)]
    pub order: u8,
    /// Of `checked_files` (and `checked_bytes`): taken from the proof of the same stored file
    /// (a pool object, a hard link) made earlier in the run, mostly for an earlier snapshot,
    /// not read again.
    #[serde(default)]
    pub shared_files: u64,
    #[serde(default)]
    pub shared_bytes: u64,
}

/// Files are proved in order of their names, then paths: a gold file and its `files` twin
/// (one inode on the site, one object in a pool) fall in one chunk, so the store hashes
/// their content once.
pub const ORDER: u8 = 1;

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

/// A snapshot's repository files (repository-relative paths, sorted).
pub fn snapshot_files(target: &dyn Store, snap: &Snapshot) -> Result<Vec<String>, BackupError> {
    Ok(target.snapshot_files(snap)?)
}

fn record_path(stamp: &str) -> String {
    format!("{VERIFY_DIR}/{stamp}.json")
}

/// The snapshot's key for records: its start time (stable across `current` → `day.<time>`).
pub fn stamp_of(snap: &Snapshot) -> String {
    layout::stamp(snap.manifest.started)
}

/// The latest record of `snap`, finished or not.
pub fn read_record(
    target: &dyn Store,
    snap: &Snapshot,
) -> Result<Option<VerifyRecord>, BackupError> {
    Ok(target
        .read(&record_path(&stamp_of(snap)))?
        .and_then(|d| serde_json::from_slice(&d).ok()))
}

fn write_record(target: &dyn Store, r: &VerifyRecord) -> Result<(), BackupError> {
    let json = serde_json::to_vec_pretty(r).expect("record serialises");
    target.write_atomic(&record_path(&r.stamp), &json)?;
    Ok(())
}

/// The file name of a repository-relative path.
pub(crate) fn name_of(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

pub(crate) fn sampled(seed: u64, path: &str, pct: f64) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    path.hash(&mut h);
    (h.finish() % 1_000_000) as f64 / 10_000.0 < pct
}

/// Proves every file of `snap` (or a sample) and its dump; resumes an unfinished run.
pub fn verify_snapshot(
    target: &dyn Store,
    snap: &Snapshot,
    opts: &VerifyOptions,
) -> Result<VerifyRecord, BackupError> {
    verify_snapshot_with(target, snap, opts, &Proven::default())
}

/// [`verify_snapshot`] in a run over several snapshots: a file they share on the store is
/// read once, its proof kept in `proven` (`verify --all` reads a week of hard-linked days,
/// or of snapshots in one pool, about as fast as one).
pub fn verify_snapshot_with(
    target: &dyn Store,
    snap: &Snapshot,
    opts: &VerifyOptions,
    proven: &Proven,
) -> Result<VerifyRecord, BackupError> {
    let began = std::time::Instant::now();
    let stamp = stamp_of(snap);
    let all = target.snapshot_files(snap)?;
    let previous = if opts.restart {
        None
    } else {
        read_record(target, snap)?.filter(|r| {
            r.finished.is_none()
                && r.snapshot_matches(snap)
                && r.sample_percent == opts.sample_percent
                && r.order == ORDER
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
            order: ORDER,
            shared_files: 0,
            shared_bytes: 0,
        },
    };
    rec.snapshot = snap.name.clone();
    let mut files: Vec<String> = match rec.sample_percent {
        Some(p) => all
            .into_iter()
            .filter(|f| sampled(rec.seed, f, p))
            .collect(),
        None => all,
    };
    files.sort_by(|a, b| (name_of(a), a).cmp(&(name_of(b), b)));
    rec.total_files = files.len() as u64;
    let start = (rec.done as usize).min(files.len());
    let total_bytes: u64 = files[start..]
        .iter()
        .filter_map(|p| PfileName::parse(name_of(p)))
        .map(|n| n.size)
        .sum();
    let progress = Progress::new(&format!("verify {}", snap.name), total_bytes, Unit::Bytes);
    let secs_before = rec.secs;
    for chunk in files[start..].chunks(CHUNK) {
        holdfast_core::interrupt::check().map_err(|_| BackupError::Interrupted)?;
        let before = proven.reused();
        let proofs = target.prove_with(Place::Snapshot(snap), chunk, &progress, proven)?;
        let after = proven.reused();
        rec.shared_files += after.0 - before.0;
        rec.shared_bytes += after.1 - before.1;
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
    // Verify takes no lock (it may run for hours beside the nights): files missing because
    // a backup pruned or replaced this snapshot meanwhile are no damage of the store.
    if (!rec.bad.is_empty() || rec.dump_problem.is_some())
        && !target
            .snapshots()?
            .iter()
            .any(|s| s.name == snap.name && stamp_of(s) == stamp)
    {
        return Err(BackupError::Vanished(snap.name.clone()));
    }
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
pub fn known_bad(target: &dyn Store, snaps: &[Snapshot]) -> Result<BTreeSet<String>, BackupError> {
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
    for f in holdfast_core::tree::files(root, dirs) {
        let name = f.rel.file_name().unwrap_or_default().to_string_lossy();
        if let Some(n) = PfileName::parse(&name) {
            total += n.size;
            files.push(root.join(&f.rel));
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

/// Checks `paths` (repository-relative) at `place` on the target; returns the damaged ones.
pub fn check_paths(
    target: &dyn Store,
    place: Place,
    paths: &[String],
    what: &str,
) -> Result<Vec<BadFile>, BackupError> {
    let progress = Progress::new(what, 0, Unit::Bytes);
    let mut bad = Vec::new();
    for chunk in paths.chunks(CHUNK) {
        for (p, proof) in chunk.iter().zip(target.prove(place, chunk, &progress)?) {
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
    use md5::Md5;
    use sha1::{Digest, Sha1};

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
