//! A walk night on the database night's engine.
//!
//! Every `full_walk_days` (and when asked) a night reads the whole repository instead of
//! trusting the database: it catches a file put back by hand or lost from the disk. The
//! pre-copy walks the site (folders read many at a time) and compares what it found with the
//! previous snapshot's list; the rolling layout links what the previous day holds (names
//! carry the content, so nothing is compared file by file), the pool already holds it, a
//! rotating chain's pieces hold it (each file looked up in them), and only the rest is
//! sent. rsync against the previous day's tree read three trees for the rolling layout's
//! result, and the pool's walk night walked the site three times.
//!
//! With the scheduler stopped, every row that names a file is read and compared with the
//! walk's list, not with the disk: marks read while agents run are no safe boundary (a row
//! may commit after a higher one), so a named file is looked for whenever the list lacks it.
//! A named file neither listed nor on the disk is missing; a listed file no row names stays
//! while the disk holds it (a stray, reported) and leaves the list when it is gone.

use crate::content::name_of;
use crate::nightly::{self, kind_of, Folders, Found, Night};
use crate::precopy::{content_name, whole};
use crate::BackupError;
use holdfast_site::Site;
use holdfast_store::pool::{Meta, Walked};
use std::collections::HashSet;

/// The pre-copy's night from a walk of the site: every file found is listed; sent are those
/// the previous list lacks, those not whole (still being written: sent once the scheduler
/// is stopped) and those not named by their content (logs, reports: judged by size).
pub fn from_walk(walked: Walked, prev: &[holdfast_store::pool::Entry]) -> Night {
    let prev: HashSet<&str> = prev.iter().map(|e| e.path.as_str()).collect();
    let mut night = Night::default();
    for (e, size) in walked.files {
        let named = content_name(&e.path).is_some();
        let whole = whole(&e.path, size);
        if !named || !whole || !prev.contains(e.path.as_str()) {
            night.send.insert(e.path.clone(), whole);
        }
        night.list.insert(e.path, e.meta);
    }
    night.unlisted = walked.unlisted;
    night
}

/// The last pass of a walk night, the scheduler stopped: the pre-copy's night (`before`)
/// checked against every row that names a file. Returns the snapshot's list, what to send
/// now, the named files neither listed nor on the disk (`missing`, to be checked for
/// slimming and deletes under way), the strays (`unnamed`) and the files dropped.
pub fn settle(
    site: &Site,
    types: &[&str],
    dirs: &[String],
    client: &mut postgres::Client,
    before: &Night,
) -> Result<Night, BackupError> {
    let root = &site.repo.root;
    let Folders {
        db_types,
        db_dirs,
        walk_dirs,
    } = Folders::of(site, types, dirs);
    let refs = holdfast_site::db::references(client, None).map_err(|source| BackupError::Db {
        what: "read the files the database names".into(),
        source,
    })?;
    let named = nightly::named(&refs);
    let mut night = Night::default();

    // The walk's files in the database's folders, less those not whole then (looked at
    // again below); the other folders are read again. A file there not named by its content
    // is sent again, as on every night (rsync judges it by size).
    for (p, meta) in &before.list {
        if before.send.get(p) != Some(&false) && kind_of(p, &db_dirs).is_some() {
            if content_name(p).is_none() && root.join(p).is_file() {
                night.send.insert(p.clone(), true);
            }
            night.list.insert(p.clone(), *meta);
        }
    }
    let listed: HashSet<(&str, &str)> = night
        .list
        .keys()
        .filter_map(|p| Some((kind_of(p, &db_dirs)?, name_of(p))))
        .collect();
    let mut seen = HashSet::new();
    let mut lookups = Vec::new();
    for r in &refs {
        if !db_types.contains(&r.kind.as_str())
            || listed.contains(&(r.kind.as_str(), r.name.as_str()))
            || !seen.insert((r.kind.as_str(), r.name.as_str()))
        {
            continue;
        }
        lookups.push((r.clone(), site.repo.candidates(&r.kind, &r.name)));
    }
    drop(listed);
    night.named = lookups.len();
    let looked = nightly::look_up(root, &lookups, &HashSet::new(), None);
    for ((r, _), found) in lookups.into_iter().zip(looked) {
        let Some(Found { rel, meta, .. }) = found else {
            continue; // a name outside the repository
        };
        match meta {
            Some(m) if m.is_file() => {
                night.send.insert(rel.clone(), m.len() == r.size);
                night.list.insert(rel, Some(Meta::of(&m)));
            }
            _ => night.missing.push(r),
        }
    }

    // Not whole at the walk and named by no row: as the disk has them now.
    for (p, _) in before.send.iter().filter(|(_, w)| !**w) {
        if night.list.contains_key(p) || kind_of(p, &db_dirs).is_none() {
            continue;
        }
        match std::fs::symlink_metadata(root.join(p)) {
            Ok(m) if m.is_file() => {
                night.send.insert(p.clone(), whole(p, m.len()));
                night.list.insert(p.clone(), Some(Meta::of(&m)));
            }
            _ => night.dropped += 1,
        }
    }

    // Listed files no row names: kept while the disk holds them (reported), else dropped.
    let strays: Vec<String> = night
        .list
        .keys()
        .filter(|p| {
            kind_of(p, &db_dirs)
                .is_some_and(|kind| !named.contains(&(kind.to_string(), name_of(p).to_string())))
        })
        .cloned()
        .collect();
    for p in strays {
        if root.join(&p).exists() {
            night.unnamed.push(p);
        } else {
            night.list.remove(&p);
            night.dropped += 1;
        }
    }

    // The folders the database does not know: read whole (rsync judges them by size).
    let walked = holdfast_store::pool::walk(root, &walk_dirs);
    for (e, size) in walked.files {
        night.send.insert(e.path.clone(), whole(&e.path, size));
        night.list.insert(e.path, e.meta);
    }
    night.unlisted = before.unlisted.clone();
    night.unlisted.extend(walked.unlisted);
    night.unlisted.sort();
    night.unlisted.dedup();
    Ok(night)
}
