//! The bucket's layout, its snapshots, sending objects into its pool, its retention and its
//! garbage collection. A copy into it is `holdfast_store::copy` driving [`crate::BucketStore`].
//!
//! The bucket always has the pool layout, whatever the primary's:
//!
//! ```text
//! PREFIX/pool/objects/ab/cd/<sha1>.<md5>.<size>   each content once, by its name
//! PREFIX/pool/paths/<host>/<type>/...          files not named by content (by path)
//! PREFIX/snap.<time>/files.list.gz     the repository paths the snapshot holds
//! PREFIX/snap.<time>/db/<dump>         the database dump
//! PREFIX/snap.<time>/manifest.json     written last: a snapshot is listed only with it
//! ```
//!
//! A FOSSology file's name is its content, so a name is stored once however many paths
//! hold it (the `gold` and `files` twins, several repository hosts); a fetch puts it back
//! under every path as hard links, as the repository had them.
//!
//! A snapshot's manifest is written after everything it needs arrived, so no listed snapshot
//! is missing anything. Removing a snapshot deletes its manifest first, so it leaves the
//! listing in one step.

use crate::bucket::{put_reader, Bucket, Sent};
use crate::BucketError;
use holdfast_site::pfile::PfileName;
use holdfast_store::layout::{Snapshot, FILE_LIST};
use holdfast_store::manifest::MANIFEST_FILE;
use holdfast_store::{pool, Manifest};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

/// Where the repository files live in the bucket.
pub const POOL_OBJECTS: &str = "pool";

/// The object (relative to the prefix) holding repository path `repo_rel`.
pub fn object_rel(repo_rel: &str) -> String {
    let name = file_name(repo_rel).unwrap_or(repo_rel);
    match PfileName::parse(name) {
        Some(_) => format!(
            "{POOL_OBJECTS}/objects/{}/{}/{name}",
            &name[0..2],
            &name[2..4]
        ),
        None => format!("{POOL_OBJECTS}/paths/{repo_rel}"),
    }
}

/// Each object a list needs, once, with the repository paths it goes to (sorted).
pub fn objects_of(list: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rel in list {
        out.entry(object_rel(rel)).or_default().push(rel.clone());
    }
    out
}

/// Complete snapshots in the bucket (those with a readable manifest), oldest first.
pub fn snapshots(bucket: &Bucket) -> Result<Vec<Snapshot>, BucketError> {
    let names = snapshot_folders(bucket)?;
    // Read side by side: a run asks for the snapshots several times, and a bucket keeping 30
    // read them one after another in 30 round trips each time.
    let rels: Vec<String> = names
        .iter()
        .map(|n| format!("{n}/{MANIFEST_FILE}"))
        .collect();
    let mut out = Vec::new();
    for (name, data) in names.into_iter().zip(bucket.read_all(&rels)?) {
        if let Some(data) = data {
            match Manifest::from_json(&data) {
                Ok(manifest) => out.push(Snapshot { name, manifest }),
                Err(e) => tracing::warn!(snapshot = %name, "unreadable manifest ignored: {e}"),
            }
        }
    }
    out.sort_by(|a, b| (a.manifest.order(), &a.name).cmp(&(b.manifest.order(), &b.name)));
    Ok(out)
}

/// The bucket's `snap.*` folders, listed or not (a copy under way has no manifest yet).
fn snapshot_folders(bucket: &Bucket) -> Result<Vec<String>, BucketError> {
    let mut dirs = bucket.list_dirs("")?;
    dirs.retain(|d| d.starts_with("snap."));
    Ok(dirs)
}

/// A snapshot of the bucket by name, or the latest.
pub fn find(bucket: &Bucket, name: Option<&str>) -> Result<Snapshot, BucketError> {
    let all = snapshots(bucket)?;
    let found = match name {
        None => all.into_iter().last(),
        Some(n) => all.into_iter().find(|s| s.name == n),
    };
    found.ok_or_else(|| BucketError::NoSnapshot {
        bucket: bucket.display(),
        name: name.map(str::to_string),
    })
}

pub(crate) fn file_name(rel: &str) -> Option<&str> {
    rel.rsplit('/').next()
}

pub(crate) fn send_one(
    bucket: &Bucket,
    src: Box<dyn Read + Send>,
    rel: &str,
    expect: Option<PfileName>,
) -> Result<Sent, BucketError> {
    bucket.rt.block_on(put_reader(
        bucket.writer.clone(),
        bucket.cfg.clone(),
        bucket.display(),
        bucket.key(rel),
        rel.to_string(),
        src,
        expect,
    ))
}

/// Sends `todo` (object, repository-relative path) reading each with `open`, `parallel`
/// at once. Every file named by its content is checked against its name as it is read;
/// one that does not match is not stored, and the call fails naming it.
/// With `skip_damaged`, such files are left out and returned instead.
pub(crate) fn send_objects(
    bucket: &Bucket,
    todo: &[(String, String)],
    batch: usize,
    skip_damaged: bool,
    open: &OpenSource<'_>,
) -> Result<SentAndDamaged, BucketError> {
    let parallel = bucket.cfg.parallel.max(1);
    let (mut out, mut damaged) = (Vec::new(), Vec::new());
    for chunk in todo.chunks(batch.max(1)) {
        let mut jobs = Vec::new();
        for (key, rel) in chunk {
            let src = open(rel)?;
            let rel = rel.clone();
            let put = put_reader(
                bucket.writer.clone(),
                bucket.cfg.clone(),
                bucket.display(),
                bucket.key(key),
                rel.clone(),
                src,
                file_name(&rel).and_then(PfileName::parse),
            );
            jobs.push(async move { put.await.map(|s| (rel, s)) });
        }
        let (sent, bad) = run_batch(bucket, jobs, parallel)?;
        out.extend(sent);
        damaged.extend(bad);
    }
    if !damaged.is_empty() && !skip_damaged {
        return Err(BucketError::SourceDamaged {
            files: damaged.len(),
            first: damaged[0].clone(),
        });
    }
    Ok((out, damaged))
}

/// Paths sent (with what was sent), and files left out for not matching their names.
pub(crate) type SentAndDamaged = (Vec<(String, Sent)>, Vec<String>);

/// Opens a repository-relative path for sending.
pub(crate) type OpenSource<'a> = dyn Fn(&str) -> Result<Box<dyn Read + Send>, BucketError> + 'a;

/// Pool objects in the bucket and their sizes.
pub(crate) fn present_objects(bucket: &Bucket) -> Result<HashMap<String, u64>, BucketError> {
    Ok(bucket
        .list_all(POOL_OBJECTS)?
        .into_iter()
        .map(|m| (bucket.rel(&m.location), m.size))
        .collect())
}

/// Runs the uploads; returns those sent and the files that did not match their names.
fn run_batch<F, T>(
    bucket: &Bucket,
    jobs: Vec<F>,
    parallel: usize,
) -> Result<(Vec<T>, Vec<String>), BucketError>
where
    F: std::future::Future<Output = Result<T, BucketError>> + Send,
{
    use futures::StreamExt;
    bucket.rt.block_on(async {
        let results: Vec<Result<T, BucketError>> = futures::stream::iter(jobs)
            .buffer_unordered(parallel)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        for r in results {
            match r {
                Ok(s) => out.push(s),
                Err(BucketError::Damaged { path, why }) => damaged.push(format!("{path}: {why}")),
                Err(e) => return Err(e),
            }
        }
        Ok((out, damaged))
    })
}

/// Marks a bucket whose pool may hold objects no list names: a run stopped before its commit
/// sent them. The next prune sweeps the whole pool, and until then a run lists the pool
/// before sending (it may find there what the stopped run sent).
pub const SWEEP_DUE: &str = ".sweep-due";

/// Keeps the newest `keep` listed snapshots, removes the rest (manifest first) and any
/// unlisted leftovers older than the oldest kept one, then deletes the pool objects only
/// those named. Returns the removed snapshot names and the number of pool objects deleted.
///
/// Only what a removed list named can have lost its last reference, so the pool is not
/// listed: the removed lists are read, then the kept ones newest first until every candidate
/// is found or none is left (a night that removes one snapshot reads two or three lists,
/// however large the pool). When a sweep is due, or a removed list cannot be read, the
/// whole pool is swept instead ([`collect_garbage`]).
pub fn prune(bucket: &Bucket, keep: usize) -> Result<(Vec<String>, u64), BucketError> {
    let snaps = snapshots(bucket)?;
    let keep = keep.max(1);
    let gone: Vec<String> = snaps[..snaps.len().saturating_sub(keep)]
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let oldest_kept = snaps.get(snaps.len().saturating_sub(keep)).map(|s| &s.name);
    let listed: HashSet<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    let dirs = snapshot_folders(bucket)?;
    let leftovers: Vec<String> = dirs
        .iter()
        .filter(|d| !listed.contains(d.as_str()) && oldest_kept.is_some_and(|o| *d < o))
        .cloned()
        .collect();
    let removed: Vec<&String> = gone.iter().chain(&leftovers).collect();
    let mut sweep = bucket.read(SWEEP_DUE)?.is_some();
    // What the removed folders' lists name, read before anything goes.
    let mut dropped = HashSet::new();
    if !sweep {
        for d in &removed {
            match read_list(bucket, d) {
                Ok(list) => dropped.extend(list.iter().map(|r| object_rel(r))),
                Err(e) => {
                    tracing::warn!("the whole pool is swept instead: {e}");
                    sweep = true;
                    break;
                }
            }
        }
    }
    for g in &gone {
        bucket.delete(&format!("{g}/{MANIFEST_FILE}"))?;
    }
    let mut collected = 0;
    if !sweep && !dropped.is_empty() {
        let mut kept: Vec<&str> = dirs
            .iter()
            .filter(|d| !removed.contains(d))
            .map(String::as_str)
            .collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        kept.insert(0, crate::store::PENDING);
        collected = delete_unlisted(bucket, dropped, &kept)?;
    }
    for d in &removed {
        remove_folder(bucket, d)?;
        if !gone.contains(d) {
            tracing::info!(folder = %d, "removed an unfinished snapshot folder older than every kept snapshot");
        }
    }
    for g in &gone {
        tracing::info!(snapshot = %g, "removed from bucket (retention)");
    }
    if sweep {
        collected = collect_garbage(bucket)?;
        bucket.delete(SWEEP_DUE)?;
    }
    Ok((gone, collected))
}

/// The objects a folder's list names; an absent list names none (a copy stopped before
/// writing it had sent nothing).
fn read_list(bucket: &Bucket, folder: &str) -> Result<Vec<String>, BucketError> {
    let rel = format!("{folder}/{FILE_LIST}");
    match bucket.read(&rel)? {
        None => Ok(Vec::new()),
        Some(data) => pool::decode(&data[..]).map_err(|e| BucketError::Corrupt {
            bucket: bucket.display(),
            key: rel,
            why: format!("{e}; nothing was deleted"),
        }),
    }
}

/// Deletes the objects of `candidates` that no list of the `kept` folders (newest first)
/// names; any kept list that cannot be read ends it before anything is deleted.
fn delete_unlisted(
    bucket: &Bucket,
    mut candidates: HashSet<String>,
    kept: &[&str],
) -> Result<u64, BucketError> {
    for folder in kept {
        if candidates.is_empty() {
            return Ok(0);
        }
        for rel in read_list(bucket, folder)? {
            candidates.remove(&object_rel(&rel));
        }
    }
    Ok(delete_objects(bucket, candidates.iter()))
}

/// Deletes a snapshot folder's objects, its list last: a prune stopped half-way leaves the
/// list, so the next one finds the folder and what it named again.
fn remove_folder(bucket: &Bucket, folder: &str) -> Result<(), BucketError> {
    let list = format!("{folder}/{FILE_LIST}");
    for m in bucket.list_all(folder)? {
        let rel = bucket.rel(&m.location);
        if rel != list {
            bucket.delete(&rel)?;
        }
    }
    bucket.delete(&list)
}

/// Deletes pool objects that no list in the bucket names: the lists of listed snapshots and
/// of copies under way (a folder without manifest yet). Fails closed: any list that cannot
/// be read ends the collection before anything is deleted. Objects the bucket refuses to
/// delete (object lock) are left and counted in the log.
pub fn collect_garbage(bucket: &Bucket) -> Result<u64, BucketError> {
    let mut keep = HashSet::new();
    for d in bucket.list_dirs("")? {
        if d.starts_with("snap.") || d == crate::store::PENDING {
            keep.extend(read_list(bucket, &d)?.iter().map(|r| object_rel(r)));
        }
    }
    let all = bucket.list_all(POOL_OBJECTS)?;
    let unlisted = all
        .iter()
        .map(|m| bucket.rel(&m.location))
        .filter(|rel| !keep.contains(rel));
    Ok(delete_objects(bucket, unlisted))
}

/// Deletes pool objects; returns how many went. Objects the bucket refuses to delete
/// (object lock) are left and counted in the log.
fn delete_objects<S: AsRef<str>>(bucket: &Bucket, rels: impl Iterator<Item = S>) -> u64 {
    let mut removed = 0u64;
    let mut refused = 0u64;
    for rel in rels {
        match bucket.delete(rel.as_ref()) {
            Ok(()) => removed += 1,
            Err(e) => {
                refused += 1;
                tracing::debug!("not deleted: {e}");
            }
        }
    }
    if refused > 0 {
        tracing::warn!(
            objects = refused,
            "pool objects no snapshot needs could not be deleted (object lock still running?)"
        );
    }
    removed
}
