//! `holdfast slim apply --containers`: remove the safe containers from `files`.
//!
//! Crash safety: every container is recorded in `holdfast_slimmed` *before* its file is
//! unlinked, batch by batch. An interruption can therefore leave a record whose file is still
//! there (harmless: a present file is never reported missing, and the next run removes it),
//! but never an absent container without its record (which `check-repo` would report as
//! damage). A rerun needs no journal: it reads the database and the disk again, finds the
//! same safe containers minus those already gone, and finishes the job.
//!
//! Right before a batch is removed, the database is asked again whether any of its pfiles has
//! become a gold or a leaf or artifact (an upload unpacked since the inventory was read); those
//! are skipped. A file is only unlinked when it still has exactly one link, so the bytes
//! reported are the bytes freed.

use crate::inventory::{self, Disk, Inventory, Verdict};
use crate::{Result, SlimError};
use holdfast_site::db;
use holdfast_site::repo::Repository;
use serde::{Deserialize, Serialize};

/// Containers handled per database round trip.
const BATCH: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only say what would be removed.
    pub dry_run: bool,
    /// Remove at most this many containers in this run (the rest on the next run).
    pub max: Option<usize>,
}

/// One container file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slimmed {
    pub pfile_pk: i32,
    pub name: String,
    pub bytes: u64,
}

impl From<&inventory::Pfile> for Slimmed {
    fn from(p: &inventory::Pfile) -> Self {
        Slimmed {
            pfile_pk: p.pk,
            name: p.name.clone(),
            bytes: p.size,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyReport {
    pub dry_run: bool,
    /// Containers removed (or, with `dry_run`, that would be).
    pub removed: Vec<Slimmed>,
    /// Bytes the removals freed (or would free).
    pub freed_bytes: u64,
    /// Safe containers that were already absent (a slim unpack never stored them), now recorded.
    pub recorded_absent: Vec<Slimmed>,
    /// Candidates left alone because they changed since the inventory (now used as a leaf or
    /// gold, another link appeared): with the reason.
    pub skipped: Vec<(Slimmed, String)>,
    /// Records dropped because their pfile is now a gold, leaf or artifact (its file must
    /// be there again; if it is not, `check-repo` reports it).
    pub dropped_records: Vec<i32>,
    /// Safe containers left for a later run because of `max`.
    pub remaining: usize,
}

/// Removes every safe container from `files` and records it; see the module doc.
pub fn apply(
    c: &mut postgres::Client,
    repo: &Repository,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    let inv = Inventory::load(c, repo)?;
    let verdicts = inv.verdicts();
    let mut report = ApplyReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut candidates: Vec<Slimmed> = verdicts
        .iter()
        .filter(|(_, v)| **v == Verdict::Remove)
        .map(|(pk, _)| Slimmed::from(&inv.pfiles[pk]))
        .collect();
    if let Some(max) = opts.max {
        if candidates.len() > max {
            report.remaining = candidates.len() - max;
            candidates.truncate(max);
        }
    }
    let absent = unrecorded_absent(&inv, &verdicts, &[]);
    // A record must never excuse a file that is needed as a gold, leaf or artifact.
    let stale: Vec<i32> = inv
        .pfiles
        .values()
        .filter(|p| {
            p.recorded && (!p.gold_of.is_empty() || p.class() != Some(inventory::Class::Container))
        })
        .map(|p| p.pk)
        .collect();

    if opts.dry_run {
        report.freed_bytes = candidates.iter().map(|s| s.bytes).sum();
        report.removed = candidates;
        report.recorded_absent = absent;
        report.dropped_records = stale;
        return Ok(report);
    }

    db::ensure_slimmed_table(c)?;
    if !stale.is_empty() {
        db::drop_slimmed(c, &stale)?;
        report.dropped_records = stale;
    }
    report.recorded_absent = record_absent(c, &absent, &mut report.skipped)?;

    for batch in candidates.chunks(BATCH) {
        holdfast_site::interrupt::check()?;
        let now_used = inventory::used_as_non_container(c, &pks(batch))?;
        let mut go: Vec<(Slimmed, u64, u64)> = Vec::new();
        for s in batch {
            if now_used.contains(&s.pfile_pk) {
                report
                    .skipped
                    .push((s.clone(), "now used as a gold, leaf or artifact".into()));
                continue;
            }
            match inventory::stat(repo, &s.name, s.bytes) {
                Disk::Present { dev, ino, nlink: 1 } | Disk::Short { dev, ino, nlink: 1 } => {
                    go.push((s.clone(), dev, ino))
                }
                Disk::Present { nlink, .. } | Disk::Short { nlink, .. } => report
                    .skipped
                    .push((s.clone(), format!("its inode now has {nlink} links"))),
                Disk::Absent => report.skipped.push((s.clone(), "already gone".into())),
            }
        }
        let rows: Vec<Slimmed> = go.iter().map(|(s, _, _)| s.clone()).collect();
        // Record first: an interruption after this line leaves present files with records.
        db::record_slimmed(c, &rows_of(&rows))?;
        for (s, dev, ino) in go {
            let path = repo
                .path("files", &s.name)
                .expect("a present file has a path");
            // The same inode, still alone: otherwise unlinking would not free its bytes.
            match inventory::stat(repo, &s.name, s.bytes) {
                Disk::Present {
                    dev: d,
                    ino: i,
                    nlink: 1,
                }
                | Disk::Short {
                    dev: d,
                    ino: i,
                    nlink: 1,
                } if d == dev && i == ino => {}
                _ => {
                    report
                        .skipped
                        .push((s, "changed on disk while slimming".into()));
                    continue;
                }
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                // Another run got there first: it recorded it too, and freed the bytes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.skipped.push((s, "already gone".into()));
                    continue;
                }
                Err(source) => return Err(SlimError::Remove { path, source }),
            }
            tracing::debug!(pfile = s.pfile_pk, path = %path.display(), "removed container");
            report.freed_bytes += s.bytes;
            report.removed.push(s);
        }
    }
    tracing::info!(
        removed = report.removed.len(),
        freed_bytes = report.freed_bytes,
        recorded_absent = report.recorded_absent.len(),
        skipped = report.skipped.len(),
        "slimming done"
    );
    Ok(report)
}

fn pks(batch: &[Slimmed]) -> Vec<i32> {
    batch.iter().map(|s| s.pfile_pk).collect()
}

fn rows_of(rows: &[Slimmed]) -> Vec<(i32, String, u64)> {
    rows.iter()
        .map(|s| (s.pfile_pk, s.name.clone(), s.bytes))
        .collect()
}

/// Safe containers already absent from `files` and not recorded yet; only those of `uploads`
/// unless it is empty.
fn unrecorded_absent(
    inv: &Inventory,
    verdicts: &std::collections::BTreeMap<i32, Verdict>,
    uploads: &[i32],
) -> Vec<Slimmed> {
    verdicts
        .iter()
        .filter(|(_, v)| **v == Verdict::Absent)
        .map(|(pk, _)| &inv.pfiles[pk])
        .filter(|p| !p.recorded)
        .filter(|p| uploads.is_empty() || p.uses.iter().any(|(u, _)| uploads.contains(u)))
        .map(Slimmed::from)
        .collect()
}

/// Records absent safe containers, after asking the database once more that none has become
/// a gold, leaf or artifact; those go to `skipped`.
fn record_absent(
    c: &mut postgres::Client,
    absent: &[Slimmed],
    skipped: &mut Vec<(Slimmed, String)>,
) -> Result<Vec<Slimmed>> {
    let mut recorded = Vec::new();
    for batch in absent.chunks(BATCH) {
        holdfast_site::interrupt::check()?;
        let now_used = inventory::used_as_non_container(c, &pks(batch))?;
        let (used, rows): (Vec<Slimmed>, Vec<Slimmed>) = batch
            .iter()
            .cloned()
            .partition(|s| now_used.contains(&s.pfile_pk));
        skipped.extend(
            used.into_iter()
                .map(|s| (s, "now used as a gold, leaf or artifact".to_string())),
        );
        db::record_slimmed(c, &rows_of(&rows))?;
        recorded.extend(rows);
    }
    Ok(recorded)
}

/// After a slim unpack (`holdfast upload --slim`), which never stores containers: records
/// the containers of `uploads` that are safe to leave out, so that verification and
/// `check-repo` call them slimmed, not missing. Containers that must be kept (a leaf
/// elsewhere, a gold, no children) are not recorded: they stay missing until recovered.
pub fn record_unstored(
    c: &mut postgres::Client,
    repo: &Repository,
    uploads: &[i32],
) -> Result<Vec<Slimmed>> {
    if uploads.is_empty() {
        return Ok(Vec::new());
    }
    let inv = Inventory::load(c, repo)?;
    let absent = unrecorded_absent(&inv, &inv.verdicts(), uploads);
    db::ensure_slimmed_table(c)?;
    let mut skipped = Vec::new();
    record_absent(c, &absent, &mut skipped)
}
