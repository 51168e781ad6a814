//! Restoring from a backup server as tar streams ([`holdfast_store::stream`]): what the
//! snapshot's list names comes back proved as it is written, and files already there as
//! their names say are kept.

use crate::content::BadFile;
use crate::BackupError;
use holdfast_site::Site;
use holdfast_store::Store;
use std::time::Instant;

/// A listed snapshot's files (a rolling day, a rotating chain's pieces, a pool's objects)
/// from a backup server whose `tar` can stream them, as tar streams proved as they are
/// written ([`holdfast_store::stream`]); `None` when the snapshot or the server is not one
/// for that (no list, a local store, no GNU tar there). Returns the listed files not
/// restored good.
pub(crate) fn restore(
    target: &dyn Store,
    chain: &[holdfast_store::Snapshot],
    listed: Option<&[holdfast_store::pool::Entry]>,
    dest: &Site,
    prove_under: &[String],
) -> Result<Option<Vec<BadFile>>, BackupError> {
    let (Some(t), Some(listed)) = (target.as_target(), listed) else {
        return Ok(None);
    };
    let homes = chain
        .iter()
        .map(|s| t.snapshot_home(s))
        .collect::<Result<Vec<_>, _>>()?;
    if !t.can_stream() {
        return Ok(None);
    }
    let names: std::collections::HashSet<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut bad = Vec::new();
    // Newest first: a file in two pieces (a rotten copy healed into a later one) comes from
    // the newest; a piece may hold files deleted since (the base keeps them): only what the
    // list names is restored.
    for (s, home) in chain.iter().zip(&homes).rev() {
        let mine: Vec<String> = if chain.len() == 1 {
            listed.iter().map(|e| e.path.clone()).collect()
        } else {
            target
                .snapshot_files(s)?
                .into_iter()
                .filter(|p| names.contains(p.as_str()) && !taken.contains(p))
                .collect()
        };
        let kept = already_there(&dest.repo.root, &mine, prove_under);
        // What each name on the server gives: a day tree's path itself, a pool's object
        // every path it holds.
        let mut by_name: std::collections::BTreeMap<std::borrow::Cow<str>, Vec<&str>> =
            std::collections::BTreeMap::new();
        for p in mine.iter().filter(|p| !kept.contains(*p)) {
            by_name.entry(home.rel(p)).or_default().push(p);
        }
        let wanted: Vec<holdfast_store::stream::Wanted> = by_name
            .into_iter()
            .map(|(name, at)| holdfast_store::stream::Wanted { name, at })
            .collect();
        taken.extend(mine.iter().cloned());
        if wanted.is_empty() {
            continue;
        }
        let t0 = Instant::now();
        let done = t.stream_listed(
            &home.base,
            &wanted,
            &dest.repo.root,
            &|p| dest.repo.make_dir(p),
            &|p| crate::fastcopy::provable(prove_under, p),
            &holdfast_store::store::restore_what(&target.display(), &s.name),
        )?;
        tracing::info!(
            snapshot = %s.name,
            secs = t0.elapsed().as_secs_f64(),
            already_there = kept.len(),
            files = done.files,
            bytes = done.bytes,
            linked = done.linked,
            proved = done.proved,
            damaged = done.bad.len(),
            "repository files streamed back"
        );
        bad.extend(
            done.bad
                .into_iter()
                .map(|(path, why)| BadFile { path, why }),
        );
    }
    if chain.len() > 1 {
        // Listed and in no piece.
        bad.extend(
            names
                .iter()
                .filter(|p| !taken.contains(**p))
                .map(|p| BadFile {
                    path: p.to_string(),
                    why: format!(
                        "missing from the snapshot on the store ({}): not restored",
                        target.display()
                    ),
                }),
        );
    }
    bad.sort();
    Ok(Some(bad))
}

/// Which of `paths` are already under `root` as their content names say (an interrupted
/// restore's, or the live site's on a disk that survived): kept as they are, inodes and all,
/// not fetched again. Under `prove_under` a kept file must prove its name; elsewhere its size
/// must match it (as rsync's `--size-only` judges). Files not named by their content come
/// again from the store.
fn already_there(
    root: &std::path::Path,
    paths: &[String],
    prove_under: &[String],
) -> std::collections::HashSet<String> {
    use holdfast_store::proof::{hash_file, judge, pfile_of, Proof};
    use rayon::prelude::*;
    holdfast_core::threads::io_pool().install(|| {
        paths
            .par_iter()
            .filter(|p| {
                let to = root.join(p);
                let Some(want) = pfile_of(p) else {
                    return false;
                };
                match std::fs::symlink_metadata(&to) {
                    Ok(m) if m.is_file() && m.len() == want.size => {
                        crate::fastcopy::provable(prove_under, p).is_none()
                            || hash_file(&to).is_ok_and(|(sha1, md5, size)| {
                                matches!(judge(&want, &sha1, &md5, size), Proof::Good(_))
                            })
                    }
                    _ => false,
                }
            })
            .cloned()
            .collect()
    })
}
