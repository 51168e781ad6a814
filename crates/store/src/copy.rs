//! Copies of snapshots to other stores (`[[backup.copy]]`): another ssh server, a local disk,
//! an object store. Each copy keeps the pool layout (repository files once, by name; one
//! snapshot = the dump, the file list and the manifest, written last) with its own retention.
//!
//! A copy sends only what the copy lacks: FOSSology names repository files by their content,
//! so a name the copy's newest snapshot lists is a file the copy holds. Of the rest, names a
//! killed copy already uploaded are not sent again ([`Store::missing`]), but every one of
//! them is proved against its name on arrival, where it now is, before the manifest is
//! written: a listed snapshot on a copy never holds a file that failed its proof. A file that
//! arrives damaged is sent once more; one whose source copy is damaged is left out of the
//! copy's list and named in its manifest (`repository.damaged`), as a backup does with a
//! file damaged on the site.

use crate::layout::{Layout, LayoutKind, Snapshot};
use crate::manifest::CopyInfo;
use crate::proof::{pfile_of, Proof};
use crate::store::{Files, Place, Source, Store};
use crate::StoreError;
use holdfast_core::progress::{Progress, Unit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// What one snapshot's copy did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Copied {
    /// The snapshot's name on the source and on the copy.
    pub source: String,
    pub snapshot: String,
    /// Repository files the snapshot lists, and of them those the copy lacked.
    pub files: u64,
    pub new_files: u64,
    /// Bytes of the new files, and bytes that crossed to the copy (rsync's count).
    pub new_bytes: u64,
    pub sent_bytes: u64,
    /// New files proved against their names on the copy.
    pub proved: u64,
    /// Files damaged on the source (left out of the copy).
    pub damaged: Vec<String>,
    pub dump_sent_bytes: u64,
    pub secs: f64,
}

/// What a copy job did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CopyRun {
    pub copy: String,
    pub target: String,
    pub copied: Vec<Copied>,
    /// Snapshots the copy's retention removed.
    pub pruned: Vec<String>,
    /// Snapshots the copy had already.
    pub up_to_date: usize,
}

/// Source snapshots the copy should get: those after the last one it has in the source's
/// order (`source` oldest first; the clock does not decide), at most `keep` (the newest),
/// oldest first. A copy's snapshot is its source's by the start they share.
pub fn wanted(source: &[Snapshot], copy: &[Snapshot], keep: usize) -> Vec<Snapshot> {
    let have: HashSet<_> = copy.iter().map(|s| s.manifest.started).collect();
    let after = source
        .iter()
        .rposition(|s| have.contains(&s.manifest.started))
        .map_or(0, |i| i + 1);
    let mut out: Vec<Snapshot> = source[after..].to_vec();
    let keep = keep.max(1);
    if out.len() > keep {
        out.drain(..out.len() - keep);
    }
    out
}

/// What a copy job would do now, changing nothing (`copy --dry-run`): the source's
/// snapshots it would copy, and the copy's snapshots its retention would then remove.
pub fn preview(
    source: &dyn Store,
    dest: &dyn Store,
    keep: usize,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let src = source.snapshots()?;
    // A copy not made yet has no snapshots (its first run makes the folder).
    let dst = match dest.check_readable() {
        Ok(()) => dest.snapshots()?,
        Err(StoreError::NotThere { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let todo = wanted(&src, &dst, keep);
    let extra = (dst.len() + todo.len()).saturating_sub(keep.max(1));
    let gone = dst.iter().take(extra).map(|s| s.name.clone()).collect();
    Ok((todo.into_iter().map(|s| s.name).collect(), gone))
}

/// The layout of every copy: the pool, keeping `keep` snapshots.
pub fn copy_layout(keep: usize) -> Layout {
    Layout {
        kind: LayoutKind::Pool,
        keep: keep.max(1),
        full_every: 1,
        day_trees: Default::default(),
    }
}

/// Runs a copy job: every snapshot of `source` that `dest` should get ([`wanted`]), then the
/// copy's retention. `spool`: a local folder for files on their way (from a source that is
/// not a local folder, each snapshot's new files are fetched into it, then sent on).
pub fn run(
    name: &str,
    source: &dyn Store,
    dest: &dyn Store,
    keep: usize,
    rsync_args: &[String],
    spool: &Path,
) -> Result<CopyRun, StoreError> {
    dest.check()?;
    // Every job, even one with nothing to copy: a copy killed after its commit left staging.
    sweep(spool);
    let src_snaps = source.snapshots()?;
    let dst_snaps = dest.snapshots()?;
    let todo = wanted(&src_snaps, &dst_snaps, keep);
    let layout = copy_layout(keep);
    let mut out = CopyRun {
        copy: name.to_string(),
        target: dest.display(),
        up_to_date: dst_snaps.len(),
        ..Default::default()
    };
    if todo.is_empty() {
        tracing::info!(copy = name, "the copy has every snapshot it should");
    }
    for snap in &todo {
        let c = copy_snapshot(source, snap, dest, &layout, rsync_args, spool)?;
        tracing::info!(
            copy = name,
            snapshot = %c.snapshot,
            new_files = c.new_files,
            new_bytes = c.new_bytes,
            secs = c.secs,
            "snapshot copied and proved"
        );
        out.copied.push(c);
    }
    // Retention runs even when nothing was copied (keep may have been lowered). Each commit
    // prunes too: what went is what the copy held before and holds no more.
    dest.prune(&layout)?;
    let now: HashSet<String> = dest.snapshots()?.into_iter().map(|s| s.name).collect();
    out.pruned = dst_snaps
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !now.contains(n))
        .collect();
    Ok(out)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Copies one snapshot (its whole chain's files, as one pool snapshot) from `source` to
/// `dest`, proves what arrived, and commits it on `dest`.
pub fn copy_snapshot(
    source: &dyn Store,
    snap: &Snapshot,
    dest: &dyn Store,
    layout: &Layout,
    rsync_args: &[String],
    spool: &Path,
) -> Result<Copied, StoreError> {
    let began = Instant::now();
    let plan = dest.plan(layout)?;
    let chain = source.chain(snap)?;
    let mut all = BTreeSet::new();
    for s in &chain {
        all.extend(source.snapshot_files(s)?);
    }
    // A rotating chain's pieces hold what each night sent, and a file deleted since the base
    // stays in the base: the tip's own list says what the snapshot holds.
    if chain.len() > 1 {
        if let Some(l) = source.own_entries(snap)? {
            let holds: HashSet<String> = l.into_iter().map(|e| e.path).collect();
            all.retain(|p| holds.contains(p));
        }
    }
    let mut list: Vec<String> = all.into_iter().collect();
    // Named by content and listed by the copy's newest snapshot: the copy has it, proved.
    let held: HashSet<String> = match &plan.previous {
        Some(p) => dest
            .snapshot_files(&dest.find(Some(p))?)?
            .into_iter()
            .collect(),
        None => HashSet::new(),
    };
    let fresh: Vec<String> = list
        .iter()
        .filter(|p| !held.contains(*p) || pfile_of(p).is_none())
        .cloned()
        .collect();
    // A killed copy may have left some of them: those are proved, not sent again. Files
    // not named by content (logs, reports) always go to rsync, which compares their sizes.
    let (named, unnamed): (Vec<String>, Vec<String>) =
        fresh.iter().cloned().partition(|p| pfile_of(p).is_some());
    let mut send = dest.missing(&plan, &named)?;
    send.extend(unnamed);
    send.sort();
    tracing::info!(
        snapshot = %snap.name,
        files = list.len(),
        fresh = fresh.len(),
        send = send.len(),
        "copying a snapshot"
    );
    // 0700: the dump (every role's password hash) passes through it.
    let staging = tempfile::Builder::new()
        .prefix(&format!("{STAGING}{}.", std::process::id()))
        .tempdir_in(spool)
        .map_err(io(spool))?;
    let local = if chain.len() == 1 {
        source.local_files(snap)
    } else {
        None
    };
    let root = match &local {
        Some(p) => p.clone(),
        None => {
            source.stage_files(snap, &send, staging.path())?;
            staging.path().to_path_buf()
        }
    };
    let src = Source {
        root: &root,
        dirs: &[],
        rsync_args,
    };
    let stats = dest.send_repository(&plan, &src, Files::Only(&send))?;

    // Proof on arrival: every file this snapshot adds to the copy.
    let total: u64 = named
        .iter()
        .filter_map(|p| pfile_of(p))
        .map(|n| n.size)
        .sum();
    let progress = Progress::new(
        &format!("prove {} on the copy", snap.name),
        total,
        Unit::Bytes,
    );
    let bad = prove_all(dest, &plan, &named, &progress)?;
    let mut damaged = Vec::new();
    if !bad.is_empty() {
        tracing::warn!(
            count = bad.len(),
            "files arrived damaged on the copy; sending them again"
        );
        if local.is_none() {
            source.stage_files(snap, &bad, staging.path())?;
        }
        dest.send_repository(&plan, &src, Files::Again(&bad))?;
        damaged = prove_all(dest, &plan, &bad, &progress)?;
        for d in &damaged {
            tracing::error!(file = %d, snapshot = %snap.name, "damaged on the source too: left out of the copy (run `holdfast verify` on the primary)");
        }
    }
    progress.finish();
    let proved = named.len() as u64 - damaged.len() as u64;
    if !damaged.is_empty() {
        let gone: HashSet<&String> = damaged.iter().collect();
        list.retain(|p| !gone.contains(p));
    }

    // The dump: fetched whole, proved against the manifest, sent (as differences where
    // the copy can) against the copy's previous dump.
    let info = &snap.manifest.database;
    let dump_local = staging.path().join(".dump");
    {
        let mut r = source.open(&format!("{}/{}", snap.name, info.file))?;
        let mut f = std::fs::File::create(&dump_local).map_err(io(&dump_local))?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        holdfast_core::fs::read_pieces(&mut r, io(&dump_local), |piece| {
            h.update(piece);
            n += piece.len() as u64;
            f.write_all(piece).map_err(io(&dump_local))
        })?;
        let got = hex::encode(h.finalize());
        if got != info.sha256 || n != info.bytes {
            return Err(StoreError::Damaged {
                target: source.display(),
                what: format!(
                    "the dump of {} (sha256 {got}, {n} bytes; the manifest says {}, {} bytes): run `holdfast verify` there",
                    snap.name, info.sha256, info.bytes
                ),
            });
        }
    }
    let named_dump = staging
        .path()
        .join(info.file.rsplit('/').next().unwrap_or("dump"));
    std::fs::rename(&dump_local, &named_dump).map_err(io(&named_dump))?;
    let dump = dest.send_dump(&plan, &named_dump, &info.file)?;
    dest.write_file_list(&plan, &list)?;

    let mut manifest = snap.manifest.clone();
    manifest.layout = LayoutKind::Pool.to_string();
    manifest.kind = "full".into();
    manifest.builds_on.clear();
    manifest.repository.damaged.extend(damaged.iter().cloned());
    manifest.repository.new_files = stats.transferred_files;
    manifest.repository.new_bytes = stats.transferred_bytes;
    manifest.copied = Some(CopyInfo {
        from: source.display(),
        snapshot: snap.name.clone(),
        at: chrono::Utc::now(),
    });
    let name = dest.commit(&plan, &mut manifest)?;
    // A folder per new file's folder, cold: many at a time.
    let _ = holdfast_core::tree::remove_tree(staging.path());
    drop(staging);
    Ok(Copied {
        source: snap.name.clone(),
        snapshot: name,
        files: list.len() as u64,
        new_files: send.len() as u64,
        new_bytes: stats.transferred_bytes,
        sent_bytes: stats.sent,
        proved,
        damaged,
        dump_sent_bytes: dump.sent,
        secs: began.elapsed().as_secs_f64(),
    })
}

const STAGING: &str = "holdfast-copy.";

/// Removes staging folders a killed copy left in `spool` (the pid in the name is gone).
fn sweep(spool: &Path) {
    let Ok(rd) = std::fs::read_dir(spool) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(STAGING)
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(folder = %e.path().display(), "removed what a killed copy left")
                }
                Err(err) => {
                    tracing::warn!(folder = %e.path().display(), %err, "cannot remove what a killed copy left")
                }
            }
        }
    }
}

/// Proves `paths` in the pending snapshot of `dest`; returns the bad ones.
fn prove_all(
    dest: &dyn Store,
    plan: &crate::store::Plan,
    paths: &[String],
    progress: &Progress,
) -> Result<Vec<String>, StoreError> {
    // By name first: a gold file and its files twin share one chunk, so one object is
    // hashed once.
    let mut paths = paths.to_vec();
    paths.sort_by(|a, b| (name_of(a), a).cmp(&(name_of(b), b)));
    let mut bad = Vec::new();
    for chunk in paths.chunks(2048) {
        holdfast_core::interrupt::check().map_err(|_| StoreError::Interrupted)?;
        for (p, proof) in chunk
            .iter()
            .zip(dest.prove(Place::Pending(plan), chunk, progress)?)
        {
            if let Proof::Bad(why) = proof {
                tracing::warn!(file = %p, "damaged on the copy: {why}");
                bad.push(p.clone());
            }
        }
    }
    bad.sort();
    Ok(bad)
}

fn name_of(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layout::tests::snap;

    #[test]
    fn a_copy_gets_what_is_newer_than_its_newest_up_to_keep() {
        let src: Vec<Snapshot> = (1..=5).map(|h| snap(&format!("s{h}"), h)).collect();
        let names = |v: Vec<Snapshot>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(wanted(&src, &[], 2)), ["s4", "s5"]);
        assert_eq!(names(wanted(&src, &[snap("c3", 3)], 9)), ["s4", "s5"]);
        assert!(wanted(&src, &[snap("c5", 5)], 9).is_empty());
        // The source's order decides, not the clock: s2 was made while it was ahead.
        let skewed = vec![snap("s1", 1), snap("s2", 23), snap("s3", 3)];
        assert_eq!(names(wanted(&skewed, &[snap("c2", 23)], 9)), ["s3"]);
    }
}
