//! What a night copies, found without reading the whole repository.
//!
//! FOSSology's database knows every repository file it added since the previous snapshot:
//! the rows above that snapshot's high-water marks ([`holdfast_site::changes`]). A night
//! takes the previous snapshot's list (`files.list.gz`, every layout writes one), adds what
//! those rows name and the disk holds, drops what the rows no longer name and the disk no
//! longer holds, and copies only the additions. The folders the database knows nothing
//! about (`logs`, `license`, reports, imports: small) are read every night.
//!
//! A rotating incremental takes the list of its chain's newest piece the same way and holds
//! only the additions; the pieces before it hold the rest, and the list says which of their
//! files the site still has.
//!
//! The whole repository is walked instead (as before) when there is no previous snapshot
//! with marks and a list, when the last walk is `backup.full_walk_days` old or older, when
//! asked (`holdfast backup --full-walk`), for a rotating base, and when a killed run left a
//! rolling or rotating `.partial` tree behind. A walk catches what the database cannot tell:
//! a file put back by hand, a file lost from the disk. A walk night that pre-copies still
//! builds on the previous list, with the walk saying what is new ([`crate::walk`]).

use crate::config::BackupConfig;
use crate::BackupError;
use chrono::Utc;
use holdfast_site::changes::{self, Marks};
use holdfast_site::db::Reference;
use holdfast_site::Site;
use holdfast_store::layout::{Snapshot, PARTIAL};
use holdfast_store::manifest::REPO_DIR;
use holdfast_store::pool::{Entry, Meta};
use holdfast_store::{FolderMaker, LayoutKind, Plan, Store};
use std::collections::{BTreeMap, HashSet};

/// The previous snapshot a database night builds on.
pub struct Previous {
    pub snapshot: Snapshot,
    pub marks: Marks,
    pub list: Vec<Entry>,
}

/// The previous snapshot to build on, before its list is read.
pub struct Base {
    pub snapshot: Snapshot,
    pub marks: Marks,
}

/// The newest snapshot's list, read while the run plans: [`read_ahead`].
pub struct Ahead {
    snapshot: Snapshot,
    list: Vec<Entry>,
}

/// Reads the newest snapshot's list, beside the plan (a btrfs snapshot, the spare day's
/// rename): tens of milliseconds off a large site's night. None when there is none. The
/// plan may finish an interrupted commit meanwhile, making another snapshot the newest:
/// [`Base::read_list`] takes the list only for the snapshot (name and manifest) read here,
/// and a list read after such a change sits beside the older manifest, so it is not taken.
pub fn read_ahead(target: &dyn Store) -> Option<Ahead> {
    let snapshot = target.snapshots().ok()?.pop()?;
    let list = target.file_entries(&snapshot.name).ok()?;
    Some(Ahead { snapshot, list })
}

/// Why no run of this configuration builds on a previous snapshot's list, when none does:
/// then no list is read ahead.
pub fn always_walks(cfg: &BackupConfig) -> Option<&'static str> {
    (cfg.full_walk_days == 0 && !walks_on_list(cfg))
        .then_some("a full walk was asked for (full_walk_days = 0)")
}

/// A walk night that pre-copies builds on the previous snapshot's list (see [`crate::walk`]);
/// without the pre-copy it walks with the scheduler stopped and copies the whole repository.
fn walks_on_list(cfg: &BackupConfig) -> bool {
    cfg.precopy
}

/// What a night builds on.
pub enum Start {
    /// The database says what is new since this snapshot.
    Database(Base),
    /// The repository is walked and compared with this snapshot's list (why it walks).
    Walk(Base, String),
    /// The repository is walked and copied whole (why).
    Whole(String),
}

impl Base {
    /// Reads the snapshot's list (tens of milliseconds on a large site, which the caller may
    /// spend on something else meanwhile), or takes it from `ahead` when that read the same
    /// snapshot; Err says why the run walks instead.
    pub fn read_list(self, target: &dyn Store, ahead: Option<Ahead>) -> Result<Previous, String> {
        let list = match ahead.filter(|a| a.snapshot == self.snapshot) {
            Some(a) => a.list,
            None => target
                .file_entries(&self.snapshot.name)
                .map_err(|e| format!("the list of {} is unreadable: {e}", self.snapshot.name))?,
        };
        Ok(Previous {
            snapshot: self.snapshot,
            marks: self.marks,
            list,
        })
    }
}

/// The previous snapshot to build on, and whether this run walks the whole repository.
pub fn previous(cfg: &BackupConfig, target: &dyn Store, plan: &Plan) -> Result<Start, BackupError> {
    if let Some(why) = always_walks(cfg) {
        return Ok(Start::Whole(why.into()));
    }
    if cfg.layout == LayoutKind::Rotating && plan.builds_on.is_empty() {
        return Ok(Start::Whole(
            "a rotating cycle begins with a full base".into(),
        ));
    }
    let snaps = target.snapshots()?;
    let prev = match cfg.layout {
        LayoutKind::Pool => plan.previous.as_ref(),
        // The chain's newest piece: its list is the whole site that night.
        LayoutKind::Rotating => plan.builds_on.last(),
        LayoutKind::Rolling => snaps.last().map(|s| &s.name),
    }
    .and_then(|n| snaps.iter().find(|s| &s.name == n));
    let Some(prev) = prev else {
        return Ok(Start::Whole("no previous snapshot".into()));
    };
    let m = &prev.manifest;
    if m.mode != cfg.mode.as_str() || m.layout != cfg.layout.to_string() {
        return Ok(Start::Whole(format!(
            "{} has another mode or layout",
            prev.name
        )));
    }
    // A snapshot of the previous day (btrfs) is made afresh each run, a tree begun as the
    // spare day says what it holds: nothing unknown in either. A killed run's tree may hold
    // files the site has deleted since: the walk clears it (rsync's `--delete`; a rotating
    // piece is emptied first).
    let tree_unknown = match cfg.layout {
        LayoutKind::Rolling => plan.snapshot_of.is_none() && plan.recycled.is_none(),
        LayoutKind::Rotating => true,
        LayoutKind::Pool => false,
    };
    if tree_unknown {
        let partial = format!("{PARTIAL}/{REPO_DIR}");
        match target.as_target() {
            Some(t) if !t.exists(&partial)? => {}
            _ => return Ok(Start::Whole("a killed run left a partial tree".into())),
        }
    }
    let walk = |why: String| {
        if walks_on_list(cfg) {
            Start::Walk(
                Base {
                    snapshot: prev.clone(),
                    marks: m.repository.marks.clone().unwrap_or_default(),
                },
                why,
            )
        } else {
            Start::Whole(why)
        }
    };
    if cfg.full_walk_days == 0 {
        return Ok(walk(
            "a full walk was asked for (full_walk_days = 0)".into(),
        ));
    }
    let (Some(marks), Some(walked)) = (&m.repository.marks, m.repository.walked) else {
        return Ok(walk(format!(
            "{} has no database marks (made by an older holdfast)",
            prev.name
        )));
    };
    let age = Utc::now() - walked;
    if age >= chrono::Duration::days(cfg.full_walk_days as i64) {
        return Ok(walk(format!(
            "the last full walk was {} days ago (full_walk_days = {})",
            age.num_days(),
            cfg.full_walk_days
        )));
    }
    Ok(Start::Database(Base {
        snapshot: prev.clone(),
        marks: marks.clone(),
    }))
}

/// What one database night found.
#[derive(Debug, Default)]
pub struct Night {
    /// The snapshot's files (repository-relative) and their metadata.
    pub list: BTreeMap<String, Option<Meta>>,
    /// Files to copy from the site, each with true when whole (its size is its name's).
    pub send: BTreeMap<String, bool>,
    /// Files the database names that the site lacks (slimmed containers left out).
    pub missing: Vec<Reference>,
    /// Rows the database added since the marks (names, before looking at the disk).
    pub named: usize,
    /// Files of the previous list left out (deleted, by the database and on disk).
    pub dropped: usize,
    /// Listed files in the gold and files folders that no row names.
    pub unnamed: Vec<String>,
    /// Files of the folders read whole that no list can carry (see `pool::Walked`).
    pub unlisted: Vec<String>,
}

impl Night {
    /// Files the previous snapshot's copy turned out to lack: sent from the site when it
    /// has them, else left out of the snapshot. Returns the paths to send: those, and each
    /// one's gold or files twin when the site keeps the two as one inode (rsync `-H` then
    /// links the new copy to the twin the snapshot already holds, as the site has them).
    pub fn take_from_site(&mut self, root: &std::path::Path, paths: Vec<String>) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        for p in paths {
            match std::fs::metadata(root.join(&p)) {
                Ok(m) if m.is_file() => {
                    tracing::warn!(file = %p, "the previous snapshot lacks a file its list names; copying it from the site");
                    if let Some(t) = twin(&p).filter(|t| self.list.contains_key(t)) {
                        let same = std::fs::metadata(root.join(&t))
                            .is_ok_and(|tm| (tm.dev(), tm.ino()) == (m.dev(), m.ino()));
                        if same && !self.send.contains_key(&t) {
                            self.send.insert(t.clone(), true);
                            out.push(t);
                        }
                    }
                    self.send.insert(p.clone(), true);
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
                _ => {
                    tracing::warn!(file = %p, "the previous snapshot lacks a file its list names and the site has none");
                    self.list.remove(&p);
                }
            }
        }
        out
    }
}

/// The same name in the other of `gold` and `files` (`<host>/gold/..` or `gold/..`).
fn twin(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = p.split('/').collect();
    let i = parts
        .iter()
        .take(2)
        .position(|c| *c == "gold" || *c == "files")?;
    parts[i] = if parts[i] == "gold" { "files" } else { "gold" };
    Some(parts.join("/"))
}

/// The repository's folders as a night reads them.
pub(crate) struct Folders<'a> {
    /// The types the database names files of (gold, files).
    pub db_types: Vec<&'a str>,
    /// Their folders: what the database says they hold.
    pub db_dirs: Vec<String>,
    /// The other folders copied (logs, license, reports): read whole every night.
    pub walk_dirs: Vec<String>,
}

impl<'a> Folders<'a> {
    pub fn of(site: &Site, types: &[&'a str], dirs: &[String]) -> Folders<'a> {
        let db_types: Vec<&str> = types
            .iter()
            .copied()
            .filter(|t| *t == "gold" || *t == "files")
            .collect();
        let db_dirs = site.repo.data_dirs(&db_types);
        let walk_dirs = dirs
            .iter()
            .filter(|d| !db_dirs.contains(d))
            .cloned()
            .collect();
        Folders {
            db_types,
            db_dirs,
            walk_dirs,
        }
    }
}

/// The type folder of a repository-relative path (`<host>/<type>/...` or `<type>/...`).
pub(crate) fn kind_of<'a>(p: &'a str, db_dirs: &[String]) -> Option<&'a str> {
    let d = db_dirs.iter().find(|d| {
        p.len() > d.len() && p.starts_with(d.as_str()) && p.as_bytes()[d.len()] == b'/'
    })?;
    Some(&p[d.rfind('/').map(|i| i + 1).unwrap_or(0)..d.len()])
}

/// What [`Carried::deletions`] needs to tell the previous list's files a night kept without
/// a new row naming them (carried) from those the new rows found.
pub struct Carried {
    /// The files found by the night's new rows: not carried.
    found: HashSet<String>,
    db_dirs: Vec<String>,
}

/// What the database's answer on deletions changes in a night planned without it.
#[derive(Debug, Default)]
pub struct Deletions {
    /// Files no row names any more and the disk no longer holds: they leave the list.
    pub gone: Vec<String>,
    /// Files no row names any more that the disk still holds (listed, and reported).
    pub unnamed: Vec<String>,
}

impl Carried {
    /// The changes `named` (every name, when rows were deleted; None when none were) makes
    /// to the judgement the night made without it.
    pub fn deletions(
        &self,
        prev: &Previous,
        root: &std::path::Path,
        named: Option<Named>,
    ) -> Deletions {
        let mut out = Deletions::default();
        let Some(named) = named else {
            return out;
        };
        let strays = strays(prev);
        for e in &prev.list {
            let Some(kind) = kind_of(&e.path, &self.db_dirs) else {
                continue;
            };
            // A stray was judged unnamed already; one a row names now is named by a new row
            // (none at or below the marks named it), so it was found, not carried.
            if self.found.contains(&e.path) || strays.contains(e.path.as_str()) {
                continue;
            }
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            if named.contains(&(kind.to_string(), name.to_string())) {
                continue;
            }
            if root.join(&e.path).exists() {
                out.unnamed.push(e.path.clone());
            } else {
                out.gone.push(e.path.clone());
            }
        }
        out
    }
}

/// Files no row named at the last run.
fn strays(prev: &Previous) -> HashSet<&str> {
    prev.snapshot
        .manifest
        .repository
        .unnamed
        .iter()
        .map(|s| s.as_str())
        .collect()
}

impl Night {
    /// Takes the database's answer on deletions into the list.
    pub fn settle(&mut self, d: &Deletions) {
        // Each was listed (the list may be with its writer meanwhile: see `copy_planned`).
        for p in &d.gone {
            self.list.remove(p);
        }
        self.dropped += d.gone.len();
        if !d.unnamed.is_empty() {
            // In the list's order, as the strays before them.
            self.unnamed.extend(d.unnamed.iter().cloned());
            self.unnamed.sort();
        }
    }
}

/// Works out the night from the previous list and the database, reading only the new files,
/// the files the database no longer names, and the folders it does not know. `folders`, when
/// given, is called with each new file found, as soon as it is found (see
/// [`holdfast_store::Store::folder_maker`]).
///
/// `ask`: whether rows were deleted is asked beside the look-ups and taken in. Else the
/// night's list keeps every file of the previous one that no new row names (strays aside),
/// and the caller asks ([`still_named`]) while the new files go out, then settles the night
/// with the returned [`Carried::deletions`]: counting the rows below the marks reads whole
/// tables, beside the dump reading them too (0.5-0.8 s a night on the benchmark site, cold).
pub fn plan(
    site: &Site,
    types: &[&str],
    dirs: &[String],
    prev: &Previous,
    client: &mut postgres::Client,
    folders: Option<&FolderMaker>,
    ask: bool,
) -> Result<(Night, Carried), BackupError> {
    let db = |what: &str| {
        let what = what.to_string();
        move |source| BackupError::Db { what, source }
    };
    let root = &site.repo.root;
    let Folders {
        db_types,
        db_dirs,
        walk_dirs,
    } = Folders::of(site, types, dirs);
    let mut night = Night::default();

    // What the database added since the marks, and what the last run found missing.
    let mut named = changes::named_since(client, &prev.marks).map_err(db("read new rows"))?;
    named.extend(prev.snapshot.manifest.repository.missing.iter().cloned());
    // Files set aside as being deleted are looked at again until their upload is gone: a
    // delete job that fails leaves the upload without them, and that is missing.
    let aside = &prev.snapshot.manifest.repository.being_deleted;
    if !aside.is_empty() {
        let ups = holdfast_site::db::uploads_of(aside);
        let deleted = holdfast_site::db::uploads_deleted(client, &ups)
            .map_err(db("read which uploads were deleted"))?;
        named.extend(
            aside
                .iter()
                .filter(|r| !deleted.contains(&r.upload_fk))
                .cloned(),
        );
    }
    night.named = named.len();
    let prev_paths: HashSet<&str> = prev.list.iter().map(|e| e.path.as_str()).collect();
    let mut seen = HashSet::new();
    let mut absent = Vec::new();
    let mut named_files = Vec::new();
    for r in named {
        if !db_types.contains(&r.kind.as_str()) || !seen.insert((r.kind.clone(), r.name.clone())) {
            continue;
        }
        let candidates = site.repo.candidates(&r.kind, &r.name);
        named_files.push((r, candidates));
    }
    // Deletions (see below), when asked here, are asked of the database while the look-ups
    // wait on the disk, not after them (no agent writes rows meanwhile).
    let (asked, looked) = std::thread::scope(|s| {
        let asking = ask.then(|| s.spawn(|| still_named(client, &prev.marks)));
        let looked = look_up(root, &named_files, &prev_paths, folders);
        (asking.map(holdfast_core::threads::joined), looked)
    });
    let asked = asked.transpose()?;
    for ((r, _), found) in named_files.into_iter().zip(looked) {
        let Some(Found { rel, meta, new }) = found else {
            continue;
        };
        match meta {
            Some(m) if m.is_file() => {
                let whole = m.len() == r.size;
                if new || !whole {
                    night.send.insert(rel.clone(), whole);
                }
                night.list.insert(rel, Some(Meta::of(&m)));
            }
            _ => absent.push(r),
        }
    }
    let found: HashSet<String> = night.list.keys().cloned().collect();
    if !absent.is_empty() {
        let slimmed = holdfast_site::db::slimmed_pfiles(client).map_err(db("read slimming"))?;
        night.missing = absent
            .into_iter()
            .filter(|r| !(r.kind == "files" && slimmed.contains(&r.pfile_pk)))
            .collect();
    }

    // The previous list's other files are kept. Files no row named at the last run
    // (strays) leave it when the disk no longer holds them. Deletions: only when rows at or
    // below the marks are gone is every name read (from the database alone), and a file
    // leaves the list when no row names it and the disk no longer holds it
    // ([`Carried::deletions`]).
    let strays = strays(prev);
    for e in &prev.list {
        if kind_of(&e.path, &db_dirs).is_none() {
            continue; // a walked folder: read again below
        }
        if night.list.contains_key(&e.path) {
            continue;
        }
        if strays.contains(e.path.as_str()) {
            if !root.join(&e.path).exists() {
                night.dropped += 1;
                continue;
            }
            night.unnamed.push(e.path.clone());
        }
        night.list.insert(e.path.clone(), e.meta);
    }

    // The folders the database does not know: read whole (rsync judges them by size).
    let walked = holdfast_store::pool::walk(root, &walk_dirs);
    for (e, size) in walked.files {
        night
            .send
            .insert(e.path.clone(), crate::precopy::whole(&e.path, size));
        night.list.insert(e.path, e.meta);
    }
    night.unlisted = walked.unlisted;
    let carried = Carried { found, db_dirs };
    if let Some(named) = asked {
        night.settle(&carried.deletions(prev, root, named));
    }
    Ok((night, carried))
}

/// At most this much of the night's new data is read ahead for rsync.
const PREFETCH_BYTES: u64 = 256 << 20;

/// A named file as found on the site.
pub(crate) struct Found {
    /// Repository-relative path: where it is, or where it belongs when not there.
    pub rel: String,
    pub meta: Option<std::fs::Metadata>,
    /// Not in the previous list.
    pub new: bool,
}

/// Finds each named file among its possible places (the repository's host folders), many at
/// a time since each look-up waits on the disk; the new whole ones (to be sent) are also read
/// ahead into the page cache, so the send that follows finds them there instead of reading
/// one file after another (each new file sits in a hashed folder of its own, cold). None: a
/// name outside the repository.
pub(crate) fn look_up(
    root: &std::path::Path,
    files: &[(Reference, Vec<std::path::PathBuf>)],
    prev_paths: &HashSet<&str>,
    folders: Option<&FolderMaker>,
) -> Vec<Option<Found>> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    let budget = AtomicU64::new(PREFETCH_BYTES);
    let look = |(r, candidates): &(Reference, Vec<std::path::PathBuf>)| {
        let (path, meta) = candidates
            .iter()
            .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, Some(m))))
            .or_else(|| candidates.first().map(|p| (p, None)))?;
        let rel = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
        let new = !prev_paths.contains(rel.as_str());
        // Opened only once known to be a regular file, and without waiting (a FIFO put in
        // its place meanwhile would wait for a writer).
        if let Some(m) = meta
            .as_ref()
            .filter(|m| new && m.is_file() && m.len() == r.size)
        {
            let fits = budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    b.checked_sub(m.len())
                })
                .is_ok();
            if fits {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path);
                if let Ok(f) = f {
                    holdfast_core::fs::prefetch(&f);
                }
            }
        }
        if let Some(make) = folders.filter(|_| new && meta.as_ref().is_some_and(|m| m.is_file())) {
            make(&rel);
        }
        Some(Found { rel, meta, new })
    };
    // In path order (the results come back in the callers'): neighbouring look-ups share
    // folders' blocks, on the site and in the store's tree, rather than hashing all over.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| files[a].1.first().cmp(&files[b].1.first()));
    let mut looked: Vec<(usize, Option<Found>)> = holdfast_core::threads::io_pool()
        .install(|| order.par_iter().map(|&i| (i, look(&files[i]))).collect());
    looked.sort_unstable_by_key(|(i, _)| *i);
    looked.into_iter().map(|(_, found)| found).collect()
}

/// Every (kind, name) the database names when rows at or below `marks` were deleted since;
/// None when none were (no name can have gone).
pub(crate) fn still_named(
    client: &mut postgres::Client,
    marks: &Marks,
) -> Result<Option<Named>, BackupError> {
    let deleted = changes::deleted_since(client, marks).map_err(|source| BackupError::Db {
        what: "count rows".into(),
        source,
    })?;
    if !deleted {
        return Ok(None);
    }
    let refs = holdfast_site::db::references(client, None).map_err(|source| BackupError::Db {
        what: "read every name".into(),
        source,
    })?;
    Ok(Some(named(&refs)))
}

/// Every (type, name) the database names.
pub type Named = HashSet<(String, String)>;

/// The names of `refs` (rows only, no file is read).
pub fn named(refs: &[holdfast_site::db::Reference]) -> Named {
    refs.iter()
        .map(|r| (r.kind.clone(), r.name.clone()))
        .collect()
}

/// After a walk: the listed files in the gold and files folders that no row names.
pub fn unnamed(site: &Site, types: &[&str], entries: &[Entry], named: &Named) -> Vec<String> {
    let db_dirs = Folders::of(site, types, &[]).db_dirs;
    entries
        .iter()
        .filter(|e| {
            kind_of(&e.path, &db_dirs).is_some_and(|kind| {
                let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                !named.contains(&(kind.to_string(), name.to_string()))
            })
        })
        .map(|e| e.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_folder_of_a_path() {
        let dirs = vec!["localhost/gold".to_string(), "files".to_string()];
        assert_eq!(kind_of("localhost/gold/ab/cd/ef/x", &dirs), Some("gold"));
        assert_eq!(kind_of("files/ab/x", &dirs), Some("files"));
        assert_eq!(kind_of("localhost/goldx/ab", &dirs), None);
        assert_eq!(kind_of("localhost/logs/a", &dirs), None);
    }

    #[test]
    fn a_named_file_is_found_in_the_first_host_folder_that_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let file = |rel: &str, data: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
        };
        file("b/files/aa/n1", b"one");
        file("a/files/aa/n2", b"two");
        file("b/files/aa/n2", b"other");
        std::fs::create_dir_all(root.join("a/files/aa/n4")).unwrap();
        let named = |name: &str, size: u64| {
            let r = Reference {
                upload_fk: 1,
                kind: "files".into(),
                pfile_pk: 1,
                name: name.into(),
                size,
            };
            let places = ["a", "b"].map(|h| root.join(h).join("files/aa").join(name));
            (r, places.to_vec())
        };
        let files = vec![
            named("n1", 3),
            named("n2", 3),
            named("n3", 3),
            named("n4", 3),
            (
                named("n5", 1).0,
                vec![std::path::PathBuf::from("/elsewhere/n5")],
            ),
        ];
        let prev: HashSet<&str> = ["a/files/aa/n2"].into();
        let found = look_up(root, &files, &prev, None);
        let f = |i: usize| found[i].as_ref().unwrap();
        // Only in the second host folder: found there, and new.
        assert_eq!(f(0).rel, "b/files/aa/n1");
        assert!(f(0).new && f(0).meta.as_ref().unwrap().is_file());
        // In both: the first wins (as FOSSology reads it), and the previous list had it.
        assert_eq!(f(1).rel, "a/files/aa/n2");
        assert!(!f(1).new);
        assert_eq!(f(1).meta.as_ref().unwrap().len(), 3);
        // Nowhere: where it belongs, without metadata.
        assert_eq!(f(2).rel, "a/files/aa/n3");
        assert!(f(2).meta.is_none());
        // A folder where the file belongs is found, and is not a file.
        assert!(!f(3).meta.as_ref().unwrap().is_file());
        // A place outside the repository is no place.
        assert!(found[4].is_none());
    }

    #[test]
    fn a_twin_is_the_same_name_in_the_other_type_folder() {
        assert_eq!(
            twin("h/gold/aa/bb/cc/n").as_deref(),
            Some("h/files/aa/bb/cc/n")
        );
        assert_eq!(twin("files/aa/bb/cc/n").as_deref(), Some("gold/aa/bb/cc/n"));
        // only the type folder, never a deeper component of the same name
        assert_eq!(twin("h/license/gold/n"), None);
        assert_eq!(twin("h/logs/x"), None);
    }
}
