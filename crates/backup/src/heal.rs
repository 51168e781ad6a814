//! The sample proved before a snapshot is made: damaged copies on the target are kept out
//! of the new snapshot (copied again from the site), so rot in a store does not spread
//! into every snapshot that links or lists the rotten file.

use crate::config::BackupConfig;
use crate::{content, BackupError};
use holdfast_site::Site;
use holdfast_store::{Files, Place, Plan, Source, Store};
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// Keeps damaged copies out of the new snapshot. Files a verification found damaged in the
/// snapshots this one builds on, and a sample (`backup.check_percent`) of the new snapshot's
/// files, are hashed against their names where they now are (hard-linked from the previous
/// snapshot, or in the pool); each damaged one is copied again from the site (`rsync -I`
/// writes a new file, so the link to the rotten copy is broken) and proved again. Returns
/// the files that are damaged on the site itself (recorded in the manifest).
pub(crate) fn heal(
    site: &Site,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    pool_list: Option<&[String]>,
) -> Result<Vec<String>, BackupError> {
    heal_at(site, target, plan, src, pool_list, cfg.check_percent)
}

/// `heal` with a sample of `percent` of the files (0: only those a verification found
/// damaged).
pub(crate) fn heal_at(
    site: &Site,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    pool_list: Option<&[String]>,
    percent: f64,
) -> Result<Vec<String>, BackupError> {
    let earlier: Vec<_> = target
        .snapshots()?
        .into_iter()
        .filter(|s| plan.reuses.contains(&s.name))
        .collect();
    let mut suspects: BTreeSet<String> = content::known_bad(target, &earlier)?;
    if suspects.is_empty() && percent <= 0.0 {
        return Ok(Vec::new());
    }
    let listed: Vec<String> = match pool_list {
        Some(l) => l.to_vec(),
        None => target.pending_files(plan)?,
    };
    if !suspects.is_empty() {
        let present: HashSet<&str> = listed.iter().map(|s| s.as_str()).collect();
        suspects.retain(|p| present.contains(p.as_str()));
    }
    if percent > 0.0 {
        // By name, not path: a gold file and its `files` twin (one inode on the site, and
        // on the target) are proved and copied again together.
        let seed: u64 = rand::random();
        suspects.extend(
            listed
                .iter()
                .filter(|p| content::sampled(seed, content::name_of(p), percent))
                .cloned(),
        );
    }
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    let suspects: Vec<String> = suspects.into_iter().collect();
    let t = Instant::now();
    let bad = content::check_paths(
        target,
        Place::Pending(plan),
        &suspects,
        "check linked files",
    )?;
    tracing::info!(
        secs = t.elapsed().as_secs_f64(),
        checked = suspects.len(),
        damaged = bad.len(),
        "files checked against their names before the snapshot is made"
    );
    if bad.is_empty() {
        return Ok(Vec::new());
    }
    let paths: Vec<String> = bad
        .iter()
        .map(|b| b.path.clone())
        .filter(|p| site.repo.root.join(p).is_file())
        .collect();
    for b in &bad {
        tracing::warn!(file = %b.path, "damaged copy on the target ({}); copying it again from the site", b.why);
    }
    target.send_repository(plan, src, Files::Again(&paths))?;
    let still = content::check_paths(target, Place::Pending(plan), &paths, "check fresh copies")?;
    for b in &still {
        tracing::error!(file = %b.path, "the site's own copy is damaged ({}): restore it from an older snapshot or rebuild it from gold", b.why);
    }
    let mut damaged: Vec<String> = still.into_iter().map(|b| b.path).collect();
    // Damaged on the target and gone from the site: nothing good to copy.
    damaged.extend(
        bad.into_iter()
            .map(|b| b.path)
            .filter(|p| !site.repo.root.join(p).is_file()),
    );
    Ok(damaged)
}
