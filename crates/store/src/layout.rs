//! The two snapshot layouts on the backup server, and how a snapshot becomes visible.
//!
//! Every run copies into `.partial/` first: the database dump, the repository, and last the
//! manifest. Only then is `.partial` renamed to its snapshot name, so a listing never shows a
//! half-made snapshot. A run killed while copying leaves `.partial` without a manifest; the
//! next run copies into it again (rsync skips what is already there). A run killed between
//! writing the manifest and the renames leaves a complete `.partial`, which the next run
//! finishes committing before it starts its own copy.
//!
//! * **rolling** (the plan's Solution 1): `current/` is the latest backup; when a new one is
//!   committed, the old `current` becomes `day.<time>`. Each snapshot is a whole tree whose
//!   unchanged files are hard links into the previous one (`rsync --link-dest`), so a day costs
//!   its new files and a new folder tree. On btrfs each day is instead a snapshot of the day
//!   before ([`crate::subvolume`]): `.partial` starts as one, the night's new files go in and
//!   the files its list no longer names go out, so a day costs its new files alone. `keep`
//!   snapshots are kept, `current` included. With hard links, a store at its `keep` does not
//!   delete the day it prunes but keeps it aside (`.spare-day`), and the next night's tree
//!   begins as it: the files it shares with the previous day are already there, so the night
//!   links and deletes only what changed in between, not a whole tree of each (see
//!   [`recycle`]).
//! * **rotating** (Solution 2): `base.<time>/` is a full, independent copy; the following runs
//!   make `incr.<time>/` holding only the files the base and earlier incrementals lack (with
//!   the site's size: what `rsync --compare-dest` would send, looked up by holdfast, see
//!   `TargetStore::copy_args`). After `full_every` runs a new base is copied, and once it is
//!   complete it replaces the old base and its incrementals.
//! * **pool**: FOSSology's repository is already content-addressed (a file's name is its
//!   content), so the copies need not be trees at all. `pool/` holds every content once, as
//!   an object named by it ([`crate::objects`]; a pool made before objects, the
//!   repository's tree in `pool/repository/`, becomes one at its next backup), and only
//!   ever gains files (each is written under a temporary name and renamed, so a file is
//!   either whole or absent); a snapshot `snap.<time>/` is the database dump plus the list
//!   of the repository's files at that moment (`files.list.gz`). A scan day costs the new files and a few MB of list, nothing
//!   per unchanged file or folder, and no folder per new file; a hard-link tree costs a new
//!   folder tree every day (with depth 3, about as many folders as files).
//!   Pruning keeps `keep` snapshots and then deletes pool files no kept list names: those
//!   the pruned lists named, or the whole pool after a run stopped before its commit.

use crate::manifest::{Manifest, MANIFEST_FILE, REPO_DIR};
use crate::store::Plan;
use crate::subvolume::{self, DayTrees};
use crate::target::Target;
use crate::StoreError;
use chrono::{DateTime, Utc};
use holdfast_core::threads::joined;
use serde::{Deserialize, Serialize};

pub const PARTIAL: &str = ".partial";
pub const CURRENT: &str = "current";
/// Pool layout: the shared repository copy, and each snapshot's file list.
pub const POOL: &str = "pool";
pub const FILE_LIST: &str = "files.list.gz";
/// Prefix of a snapshot being removed: renamed aside first (one atomic step that takes it out
/// of every listing), then deleted; a kill in between leaves only this hidden folder, which
/// the next run deletes.
pub const PRUNING: &str = ".pruning.";
/// Pool: the next garbage collection goes over the whole pool, not only what the pruned
/// snapshots listed (a run stopped before its commit may have sent files no list names).
const SWEEP_DUE: &str = ".pool-sweep-due";
/// Rolling on btrfs: where the snapshot of the previous day is made before it becomes
/// `.partial` (a kill in between leaves only this hidden folder, deleted by the next run).
const PARTIAL_NEW: &str = ".partial.new";
/// Inside a `.partial` made as a snapshot: the name of the day it was made from.
const SNAPSHOT_OF: &str = ".snapshot-of";
/// Rolling with hard links: the newest pruned day, kept aside to begin the next night's tree.
pub const SPARE: &str = ".spare-day";
/// Inside the spare day and a `.partial` begun as it: the list of the files it held.
const RECYCLED: &str = ".recycled.list.gz";
/// At the target's root: when damaged copies were last replaced with fresh ones. A day made
/// before then may still hold a damaged copy that later days replaced, so it never becomes
/// the spare (its copy would come back into a new day unchecked).
const REPLACED_AT: &str = ".replaced-at";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    #[default]
    Rolling,
    Rotating,
    Pool,
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutKind::Rolling => "rolling",
            LayoutKind::Rotating => "rotating",
            LayoutKind::Pool => "pool",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub kind: LayoutKind,
    /// Rolling: snapshots kept, `current` included.
    pub keep: usize,
    /// Rotating: runs per cycle, the base included (at most 20, rsync's limit).
    pub full_every: usize,
    /// Rolling: how a new store makes its day trees (a store keeps the kind it began with).
    pub day_trees: DayTrees,
}

/// A complete snapshot on the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub name: String,
    pub manifest: Manifest,
}

impl Snapshot {
    pub fn is_incremental(&self) -> bool {
        self.manifest.kind == "incremental"
    }
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H%M%SZ").to_string()
}

fn is_snapshot_name(n: &str) -> bool {
    n == CURRENT
        || n.starts_with("day.")
        || n.starts_with("base.")
        || n.starts_with("incr.")
        || n.starts_with("snap.")
}

/// Complete snapshots (those with a readable manifest), oldest first.
pub fn snapshots(target: &Target) -> Result<Vec<Snapshot>, StoreError> {
    let mut out = Vec::new();
    for (name, data) in target.read_children(MANIFEST_FILE)? {
        if !is_snapshot_name(&name) {
            continue;
        }
        match Manifest::from_json(&data) {
            Ok(manifest) => out.push(Snapshot { name, manifest }),
            Err(e) => {
                tracing::warn!(snapshot = %name, "unreadable manifest ignored: {e}")
            }
        }
    }
    out.sort_by(|a, b| {
        (a.manifest.order(), a.name == CURRENT).cmp(&(b.manifest.order(), b.name == CURRENT))
    });
    Ok(out)
}

/// The sequence the next snapshot of a store holding `snaps` gets.
pub fn next_sequence(snaps: &[Snapshot]) -> u64 {
    snaps.iter().map(|s| s.manifest.sequence).max().unwrap_or(0) + 1
}

/// Finds a snapshot by name, or the latest when `name` is `None`.
pub fn find(target: &Target, name: Option<&str>) -> Result<Snapshot, StoreError> {
    let all = snapshots(target)?;
    match name {
        None => all
            .into_iter()
            .last()
            .ok_or_else(|| StoreError::NoSnapshot {
                target: target.display(),
                name: None,
            }),
        Some(n) => all
            .into_iter()
            .find(|s| s.name == n)
            .ok_or_else(|| StoreError::NoSnapshot {
                target: target.display(),
                name: Some(n.to_string()),
            }),
    }
}

/// The snapshots a restore of `snap` needs, in the order to copy them (base first).
pub fn chain(target: &Target, snap: &Snapshot) -> Result<Vec<Snapshot>, StoreError> {
    let mut out = Vec::new();
    for n in &snap.manifest.builds_on {
        out.push(find(target, Some(n))?);
    }
    out.push(snap.clone());
    Ok(out)
}

impl Layout {
    /// Finishes an interrupted commit, then decides what the next copy is and makes sure
    /// `.partial/` exists.
    pub fn prepare(&self, target: &Target) -> Result<Plan, StoreError> {
        let unfinished = finish_pruning(target)?;
        if unfinished > 0 && self.kind == LayoutKind::Pool {
            self.collect_garbage(target);
        }
        if let Some(data) = target.read(&format!("{PARTIAL}/{MANIFEST_FILE}"))? {
            match Manifest::from_json(&data) {
                Ok(m) => {
                    tracing::info!("finishing the commit of a snapshot an earlier run completed");
                    self.rename_in(target, &m)?;
                }
                Err(_) => target.remove_all(&format!("{PARTIAL}/{MANIFEST_FILE}"))?,
            }
        }
        let snaps = snapshots(target)?;
        let repo = |n: &str| target.path(&format!("{n}/{REPO_DIR}"));
        let mut plan = Plan {
            layout: self.clone(),
            kind: "full".into(),
            builds_on: Vec::new(),
            reuses: Vec::new(),
            lists_files: false,
            previous: None,
            link_dest: Vec::new(),
            snapshot_of: None,
            recycled: None,
            spare_lacks: None,
            pool: None,
            dumps: snaps
                .iter()
                .map(|s| (s.name.clone(), s.manifest.database.file.clone()))
                .collect(),
        };
        match self.kind {
            LayoutKind::Pool => {
                plan.pool = Some(crate::objects::make_pool(target)?);
                plan.lists_files = true;
                plan.previous = snaps
                    .iter()
                    .rfind(|s| s.name.starts_with("snap."))
                    .map(|s| s.name.clone());
                plan.reuses = plan.previous.iter().cloned().collect();
            }
            LayoutKind::Rolling => {
                if let Some(s) = snaps.last() {
                    plan.reuses.push(s.name.clone());
                    if self.snapshot_partial(target, &s.name)? {
                        plan.snapshot_of = Some(s.name.clone());
                    } else {
                        plan.link_dest.push(repo(&s.name));
                        if let Some((held, lacks)) = recycle(target, &s.name)? {
                            plan.recycled = Some(std::sync::Arc::new(held));
                            plan.spare_lacks = Some(lacks);
                        }
                    }
                } else if !target.exists(PARTIAL)? {
                    if self.btrfs(target)? {
                        // The first day: a subvolume, so that the next days can be its snapshots.
                        match subvolume::create(target, PARTIAL) {
                            Err(e) if self.day_trees == DayTrees::Auto => tracing::warn!(
                                "{e}: the days will be hard-linked trees (day_trees = \"btrfs\" makes this an error)"
                            ),
                            r => r?,
                        }
                    } else if let Some(w) = crate::folders::advice(target) {
                        // Said once, as the store begins: its file system is chosen before then.
                        tracing::warn!("{w}");
                    }
                }
            }
            LayoutKind::Rotating => {
                if let Some(b) = self.cycle_base(&snaps) {
                    plan.kind = "incremental".into();
                    plan.builds_on = snaps[b..].iter().map(|s| s.name.clone()).collect();
                    plan.reuses = plan.builds_on.clone();
                }
            }
        }
        if self.kind == LayoutKind::Pool && target.exists(PARTIAL)? {
            // A run stopped before its commit: the files it sent may be named by no list.
            target.write_atomic(SWEEP_DUE, b"")?;
        }
        target.mkdir_p(PARTIAL)?;
        Ok(plan)
    }

    /// Rotating: where the base the next run builds on is in `snaps` (oldest first), or
    /// `None` when the next run makes a new base (none yet, or its cycle is full).
    fn cycle_base(&self, snaps: &[Snapshot]) -> Option<usize> {
        let base = snaps.iter().rposition(|s| s.name.starts_with("base."))?;
        (snaps.len() - base < self.full_every.clamp(1, 20)).then_some(base)
    }

    /// Of `names` (oldest first, `newest` just committed among them), those the layout no
    /// longer keeps: the one rule [`Layout::prune`] applies and [`Layout::next_prune`]
    /// previews.
    fn expired(&self, names: &[String], newest: &str) -> Vec<String> {
        let oldest = |prefix: &str, keep: usize| -> Vec<String> {
            let v: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
            let extra = v.len().saturating_sub(keep);
            v.into_iter().take(extra).cloned().collect()
        };
        match self.kind {
            LayoutKind::Pool => oldest("snap.", self.keep.max(1)),
            // `current` is not a day: `keep` counts it.
            LayoutKind::Rolling => oldest("day.", self.keep.max(1) - 1),
            // A new base ends the cycle: every older base and incremental goes.
            LayoutKind::Rotating if newest.starts_with("base.") => names
                .iter()
                .filter(|n| *n != newest && (n.starts_with("base.") || n.starts_with("incr.")))
                .cloned()
                .collect(),
            LayoutKind::Rotating => Vec::new(),
        }
    }

    /// What the next run's retention would remove, given the snapshots there now (for
    /// `backup --dry-run`): [`Layout::expired`] over the names as the next commit leaves
    /// them.
    pub fn next_prune(&self, snaps: &[Snapshot]) -> Vec<String> {
        // Names no snapshot has: what the next run commits, and the day `current` becomes.
        const BECOMES_DAY: &str = "day.(current)";
        let mut names: Vec<String> = snaps
            .iter()
            .map(|s| match s.name.as_str() {
                CURRENT if self.kind == LayoutKind::Rolling => BECOMES_DAY.to_string(),
                n => n.to_string(),
            })
            .collect();
        let newest = match self.kind {
            LayoutKind::Pool => "snap.(next)",
            LayoutKind::Rolling => CURRENT,
            LayoutKind::Rotating if self.cycle_base(snaps).is_some() => "incr.(next)",
            LayoutKind::Rotating => "base.(next)",
        };
        names.push(newest.to_string());
        self.expired(&names, newest)
            .into_iter()
            .map(|n| match n.as_str() {
                BECOMES_DAY => "the day the current copy becomes".to_string(),
                _ => n,
            })
            .collect()
    }

    /// Rolling: how the next day's tree would be made, for `backup --dry-run`.
    pub fn day_trees_in_use(&self, target: &Target) -> Result<&'static str, StoreError> {
        Ok(match snapshots(target)?.last() {
            Some(s) if subvolume::is_subvolume(target, &s.name)? => "btrfs snapshots",
            Some(_) if target.exists(SPARE)? => {
                "hard links (tonight's tree begins as the pruned day kept aside)"
            }
            Some(_) => "hard links",
            None if self.btrfs(target)? => "btrfs snapshots (a new store on btrfs)",
            None => "hard links",
        })
    }

    /// Whether a new rolling store makes its days as btrfs snapshots.
    fn btrfs(&self, target: &Target) -> Result<bool, StoreError> {
        match self.day_trees {
            DayTrees::HardLinks => Ok(false),
            DayTrees::Auto => Ok(subvolume::usable(target, "")),
            DayTrees::Btrfs if subvolume::usable(target, "") => Ok(true),
            DayTrees::Btrfs => Err(StoreError::BadTarget {
                spec: target.display(),
                why: "day_trees = \"btrfs\", but the target is not on btrfs or has no `btrfs` tool there (install btrfs-progs, or set day_trees = \"auto\")".into(),
            }),
        }
    }

    /// Rolling: makes `.partial` a snapshot of the newest day `from` when that day is a
    /// subvolume (a store begun on btrfs); returns false for a hard-linked store.
    fn snapshot_partial(&self, target: &Target, from: &str) -> Result<bool, StoreError> {
        if target.exists(PARTIAL_NEW)? {
            subvolume::remove(target, PARTIAL_NEW)?;
        }
        if !subvolume::is_subvolume(target, from)? {
            if self.day_trees == DayTrees::Btrfs {
                return Err(StoreError::BadTarget {
                    spec: target.display(),
                    why: format!("day_trees = \"btrfs\", but this store's days are hard-linked trees ({from} is no subvolume): point backup.target at a new folder on btrfs, or set day_trees = \"auto\""),
                });
            }
            if target.exists(&format!("{PARTIAL}/{SNAPSHOT_OF}"))? {
                // No hard link reaches into a snapshot: that copy starts again.
                subvolume::remove(target, PARTIAL)?;
            }
            return Ok(false);
        }
        if self.day_trees == DayTrees::HardLinks {
            tracing::warn!("day_trees = \"hard-links\", but this store's days are btrfs snapshots (no hard link reaches into one): snapshots go on");
        }
        if target.exists(PARTIAL)? {
            // A killed run's copy: a fresh snapshot costs less than finding what it added.
            subvolume::remove(target, PARTIAL)?;
        }
        subvolume::snapshot(target, from, PARTIAL_NEW)?;
        // It becomes a snapshot of its own only when tonight's manifest is written.
        target.remove_all(&format!("{PARTIAL_NEW}/{MANIFEST_FILE}"))?;
        target.write_atomic(&format!("{PARTIAL_NEW}/{SNAPSHOT_OF}"), from.as_bytes())?;
        // A crash before the commit's sync leaves `.partial.new` or `.partial`: either is
        // begun again.
        target.rename_unsynced(PARTIAL_NEW, PARTIAL)?;
        tracing::info!(
            from,
            "new day begun as a btrfs snapshot of the previous one"
        );
        Ok(true)
    }

    /// Rolling on btrfs, or begun as the spare day: the tree still holds the files tonight's
    /// list no longer names (deleted from the repository since); they leave it before the
    /// manifest vouches for it.
    fn drop_unlisted(&self, target: &Target) -> Result<(), StoreError> {
        drop_unrecycled(target)?;
        let marker = format!("{PARTIAL}/{SNAPSHOT_OF}");
        let Some(from) = target.read(&marker)? else {
            return Ok(());
        };
        let from = String::from_utf8_lossy(&from).into_owned();
        let (now, before) = std::thread::scope(|s| {
            let now = s.spawn(|| crate::pool::read_list(target, PARTIAL));
            let before = crate::pool::read_list(target, &from);
            (joined(now), before)
        });
        let before = match before {
            Ok(l) => l,
            // A day without a list: what the tree holds.
            Err(_) => target.list_tree(&format!("{PARTIAL}/{REPO_DIR}"))?,
        };
        let gone = crate::pool::not_in(&before, &now?);
        leave_new_day(
            target,
            &gone,
            "files deleted since the previous day leave the snapshot",
        )?;
        target.remove_all(&marker)
    }

    /// Rolling on btrfs: takes out of the tree being made (a snapshot of the day `from`,
    /// whose list is `before`) the files tonight's list `now` lacks, as the commit would
    /// after reading both lists again; returns false when the tree is no snapshot of `from`
    /// (the commit then does it).
    pub fn drop_unlisted_known(
        &self,
        target: &Target,
        from: &str,
        before: &[crate::pool::Entry],
        now: &[crate::pool::Entry],
    ) -> Result<bool, StoreError> {
        let marker = format!("{PARTIAL}/{SNAPSHOT_OF}");
        let of = target.read(&marker)?;
        if self.kind != LayoutKind::Rolling || of.as_deref() != Some(from.as_bytes()) {
            return Ok(false);
        }
        let gone = crate::pool::entries_not_in(before, now);
        leave_new_day(
            target,
            &gone,
            "files deleted since the previous day leave the snapshot",
        )?;
        target.remove_all(&marker)?;
        Ok(true)
    }

    /// Rolling begun as the spare day, which held `held`: takes out of the tree the files
    /// tonight's list `now` lacks, as the commit would after reading both lists again;
    /// returns false when the tree is no spare day's (the commit then looks). Files of the
    /// previous day's list (`before`) are looked at too: a night links them into such a
    /// tree before it knows which the database deleted.
    pub fn drop_unrecycled_known(
        &self,
        target: &Target,
        held: Option<&[String]>,
        before: &[crate::pool::Entry],
        now: &[crate::pool::Entry],
    ) -> Result<bool, StoreError> {
        let record = format!("{PARTIAL}/{RECYCLED}");
        let Some(held) = held.filter(|_| self.kind == LayoutKind::Rolling) else {
            return Ok(false);
        };
        if !target.exists(&record)? {
            return Ok(false);
        }
        let mut gone = crate::pool::paths_not_in(held, now);
        gone.extend(crate::pool::entries_not_in(before, now));
        gone.sort_unstable();
        gone.dedup();
        leave_new_day(
            target,
            &gone,
            "files the previous days held leave the new one",
        )?;
        target.remove_all(&record)?;
        Ok(true)
    }

    /// Writes the manifest into `.partial`, syncs, makes the snapshot visible and prunes.
    /// Returns the snapshot's name.
    pub fn commit(&self, target: &Target, manifest: &mut Manifest) -> Result<String, StoreError> {
        manifest.sequence = next_sequence(&snapshots(target)?);
        let t = std::time::Instant::now();
        if self.kind == LayoutKind::Rolling {
            self.drop_unlisted(target)?;
        }
        tracing::debug!(
            secs = t.elapsed().as_secs_f64(),
            "files no longer listed dropped"
        );
        let t = std::time::Instant::now();
        // The copied files reach the disk before the manifest that vouches for them.
        target.sync()?;
        tracing::debug!(secs = t.elapsed().as_secs_f64(), "snapshot synced");
        target.write_atomic(
            &format!("{PARTIAL}/{MANIFEST_FILE}"),
            manifest.to_json().as_bytes(),
        )?;
        self.rename_in(target, manifest)
    }

    fn rename_in(&self, target: &Target, m: &Manifest) -> Result<String, StoreError> {
        let name = match self.kind {
            LayoutKind::Rolling => {
                if let Some(data) = target.read(&format!("{CURRENT}/{MANIFEST_FILE}"))? {
                    let old = Manifest::from_json(&data).ok();
                    let when = old.map(|o| o.started).unwrap_or_else(Utc::now);
                    let mut day = format!("day.{}", stamp(when));
                    let mut n = 1;
                    while target.exists(&day)? {
                        day = format!("day.{}-{n}", stamp(when));
                        n += 1;
                    }
                    target.rename(CURRENT, &day)?;
                } else if target.exists(CURRENT)? {
                    // A `current` without manifest is no snapshot: keep it aside, never delete.
                    target.rename(CURRENT, &format!(".broken-current.{}", stamp(Utc::now())))?;
                }
                target.rename(PARTIAL, CURRENT)?;
                CURRENT.to_string()
            }
            LayoutKind::Pool => {
                let mut name = format!("snap.{}", stamp(m.started));
                let mut n = 1;
                while target.exists(&name)? {
                    name = format!("snap.{}-{n}", stamp(m.started));
                    n += 1;
                }
                target.rename(PARTIAL, &name)?;
                name
            }
            LayoutKind::Rotating => {
                let prefix = if m.kind == "incremental" {
                    "incr"
                } else {
                    "base"
                };
                let mut name = format!("{prefix}.{}", stamp(m.started));
                let mut n = 1;
                while target.exists(&name)? {
                    name = format!("{prefix}.{}-{n}", stamp(m.started));
                    n += 1;
                }
                target.rename(PARTIAL, &name)?;
                name
            }
        };
        self.prune(target, &name)?;
        Ok(name)
    }

    /// Removes what the layout no longer keeps. `newest` was just committed.
    pub fn prune(&self, target: &Target, newest: &str) -> Result<Vec<String>, StoreError> {
        let snaps = snapshots(target)?;
        let names: Vec<String> = snaps.iter().map(|s| s.name.clone()).collect();
        let mut gone = self.expired(&names, newest);
        if self.kind == LayoutKind::Rotating {
            // Newest first: an incremental is taken out of the listing before the pieces it
            // builds on, so every listed one stays restorable at any kill.
            gone.reverse();
        }
        let stamp = stamp(Utc::now());
        for g in &gone {
            tracing::info!(snapshot = %g, "removing snapshot the layout no longer keeps");
            target.rename(g, &format!("{PRUNING}{stamp}.{g}"))?;
        }
        if let Some(day) = gone.last().filter(|_| self.kind == LayoutKind::Rolling) {
            let started = snaps
                .iter()
                .find(|s| &s.name == day)
                .map(|s| s.manifest.started);
            let aside = format!("{PRUNING}{stamp}.{day}");
            // Only saves time: a day that cannot be kept aside is deleted as before.
            if let Err(e) = keep_spare(target, &aside, started, &stamp) {
                tracing::warn!("the pruned day is deleted, not kept for the next night: {e}");
            }
        }
        let collect = self.kind == LayoutKind::Pool && !gone.is_empty();
        // Pool: only what the pruned snapshots listed can have lost its last reference,
        // unless a run stopped before its commit left files no list names.
        // The pruned lists and the newest kept one are read side by side (each a few MB
        // to decode), before the pruned snapshots go.
        let read = (collect && !target.exists(SWEEP_DUE)?).then(|| {
            std::thread::scope(|s| {
                let newest = s.spawn(|| crate::pool::newest_list(target));
                let dropped = (|| {
                    let mut all = Vec::new();
                    for g in &gone {
                        all.extend(crate::pool::read_list(
                            target,
                            &format!("{PRUNING}{stamp}.{g}"),
                        )?);
                    }
                    Ok::<_, StoreError>(all)
                })();
                (dropped, joined(newest))
            })
        });
        let t = std::time::Instant::now();
        finish_pruning(target)?;
        if !gone.is_empty() {
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                snapshots = gone.len(),
                "pruned snapshots deleted"
            );
        }
        let t = std::time::Instant::now();
        match read {
            Some((Ok(dropped), newest)) => match newest
                .and_then(|newest| crate::pool::collect_dropped(target, dropped, newest))
            {
                Ok(removed) => tracing::info!(
                    files = removed,
                    secs = t.elapsed().as_secs_f64(),
                    "pool files only the pruned snapshots named removed"
                ),
                Err(e) => tracing::error!(
                    "pool garbage collection skipped, nothing deleted (the pool keeps unneeded files until the next run): {e}"
                ),
            },
            // A sweep is due, or a pruned list could not be read.
            _ if collect => self.collect_garbage(target),
            _ => {}
        }
        Ok(gone)
    }

    /// Pool garbage collection over the whole pool; a failure keeps files (it never makes a
    /// backup fail).
    fn collect_garbage(&self, target: &Target) {
        let t = std::time::Instant::now();
        match crate::pool::collect_garbage(target) {
            Ok(removed) => {
                tracing::info!(
                    files = removed,
                    secs = t.elapsed().as_secs_f64(),
                    "pool files no kept snapshot names removed"
                );
                if let Err(e) = target.remove_all(SWEEP_DUE) {
                    tracing::warn!("{e}");
                }
            }
            Err(e) => tracing::error!(
                "pool garbage collection skipped, nothing deleted (the pool keeps unneeded files until the next run): {e}"
            ),
        }
    }
}

/// Rolling with hard links: keeps the pruned day renamed to `aside` as the spare day, in
/// place of an older spare. Its manifest goes first (it is no snapshot again), its list
/// becomes the record of what it holds, and everything but the repository goes (the dump
/// and folders a night writes whole). Until the last rename it is a pruned day, deleted by
/// the next run if this one stops.
fn keep_spare(
    target: &Target,
    aside: &str,
    started: Option<DateTime<Utc>>,
    stamp: &str,
) -> Result<(), StoreError> {
    if subvolume::is_subvolume(target, aside)? || !target.exists(&format!("{aside}/{FILE_LIST}"))? {
        // A snapshot is deleted at once; a day without a list cannot say what it holds.
        return Ok(());
    }
    let Some(started) = started else {
        return Ok(());
    };
    let replaced = target
        .read(REPLACED_AT)?
        .and_then(|d| DateTime::parse_from_rfc3339(String::from_utf8_lossy(&d).trim()).ok());
    if replaced.is_some_and(|r| started <= r) {
        tracing::info!("the pruned day is deleted: damaged copies were replaced after it was made");
        return Ok(());
    }
    if target.exists(SPARE)? {
        target.rename(SPARE, &format!("{PRUNING}{stamp}.spare"))?;
    }
    target.remove_all(&format!("{aside}/{MANIFEST_FILE}"))?;
    target.rename(
        &format!("{aside}/{FILE_LIST}"),
        &format!("{aside}/{RECYCLED}"),
    )?;
    for n in target.list(aside)? {
        if n != REPO_DIR && n != RECYCLED {
            target.remove_all(&format!("{aside}/{n}"))?;
        }
    }
    target.rename(aside, SPARE)?;
    tracing::info!("the pruned day is kept aside: the next night's tree begins as it");
    Ok(())
}

/// Rolling with hard links: begins `.partial` as the spare day when there is one and no
/// stopped run's copy is waiting; returns the files it holds and how many of the previous
/// day's files it lacks.
///
/// Why this is sound: every day's files are hard links to the same copies (names carry the
/// content), so a file the spare day and the previous day both list is the previous day's
/// copy, unless damaged copies were replaced since (then no day made before that becomes
/// the spare). Files the previous day does not list leave before the night: they are never
/// linked, and one sent tonight is sent whole. What tonight's list lacks leaves at the
/// commit ([`drop_unrecycled`]).
fn recycle(target: &Target, previous: &str) -> Result<Option<(Vec<String>, u64)>, StoreError> {
    if target.exists(PARTIAL)? {
        // A stopped run's tree, begun as the spare or not: the night after a stop copies
        // the whole repository into it with `--delete` (see `nightly`), which leaves the
        // site's files and no others, so the record has nothing more to say.
        target.remove_all(&format!("{PARTIAL}/{RECYCLED}"))?;
        return Ok(None);
    }
    if !target.exists(SPARE)? {
        return Ok(None);
    }
    // Side by side: each list is tens of milliseconds of reading and decoding.
    let lists = std::thread::scope(|s| {
        let before = s.spawn(|| crate::pool::read_list(target, previous));
        let held = crate::pool::read_list_at(target, &format!("{SPARE}/{RECYCLED}"));
        held.and_then(|held| Ok((held, joined(before)?)))
    });
    let (held, before) = match lists {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{e}: the spare day is deleted, the night links a whole tree");
            target.remove_all(SPARE)?;
            return Ok(None);
        }
    };
    target.rename(SPARE, PARTIAL)?;
    let stale = crate::pool::not_in(&held, &before);
    target.remove_files(&format!("{PARTIAL}/{REPO_DIR}"), &stale)?;
    // Both lists name each file once: what the spare keeps is in the previous list.
    let lacks = before.len().saturating_sub(held.len() - stale.len()) as u64;
    tracing::info!(
        files = held.len(),
        gone = stale.len(),
        lacks,
        "new day begun as the spare day"
    );
    Ok(Some((held, lacks)))
}

/// A tree begun as the spare day: its files tonight's list lacks leave it. (A stop in
/// between is mended by the next night's whole copy, see [`recycle`].)
fn drop_unrecycled(target: &Target) -> Result<(), StoreError> {
    let record = format!("{PARTIAL}/{RECYCLED}");
    if !target.exists(&record)? {
        return Ok(());
    }
    if !target.exists(&format!("{PARTIAL}/{FILE_LIST}"))? {
        // A night without a list (online) copied the whole repository with `--delete`:
        // the tree is the site's already.
        return target.remove_all(&record);
    }
    let held = crate::pool::read_list_at(target, &record)?;
    let now = crate::pool::read_list(target, PARTIAL)?;
    let gone = crate::pool::not_in(&held, &now);
    leave_new_day(
        target,
        &gone,
        "files the previous days held leave the new one",
    )?;
    target.remove_all(&record)
}

/// Removes `gone` (repository paths) from the day being made.
fn leave_new_day(target: &Target, gone: &[String], why: &'static str) -> Result<(), StoreError> {
    if gone.is_empty() {
        return Ok(());
    }
    tracing::info!(files = gone.len(), "{why}");
    target.remove_files(&format!("{PARTIAL}/{REPO_DIR}"), gone)
}

/// Damaged copies are about to be replaced: no day made until now becomes the spare, and a
/// spare kept already is deleted.
pub fn note_replaced(target: &Target) -> Result<(), StoreError> {
    target.write_atomic(REPLACED_AT, Utc::now().to_rfc3339().as_bytes())?;
    target.remove_all(SPARE)
}

/// Deletes snapshots an earlier prune renamed aside; returns how many there were.
pub fn finish_pruning(target: &Target) -> Result<usize, StoreError> {
    let aside: Vec<String> = target
        .list("")?
        .into_iter()
        .filter(|n| n.starts_with(PRUNING))
        .collect();
    for n in &aside {
        subvolume::remove(target, n)?;
    }
    Ok(aside.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot named `name`, started at `hour` o'clock.
    pub(crate) fn snap(name: &str, hour: u32) -> Snapshot {
        let at = format!("2026-01-01T{hour:02}:00:00Z");
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "site": "s", "mode": "full", "layout": "pool", "kind": "full",
            "holdfast_version": "0", "started": at, "finished": at,
            "database": {"file": "db/f.sql.gz", "compression": "gzip", "sha256": "", "bytes": 0,
                "raw_bytes": 0, "dbname": "f", "owner": "f", "encoding": "UTF8",
                "collate": "C", "ctype": "C"},
            "repository": {"root": "/r", "hosts": [], "types": [], "files": 0, "bytes": 0,
                "new_files": 0, "new_bytes": 0},
            "jobs": {"unfinished": [], "stale_running": []}
        }))
        .unwrap();
        Snapshot {
            name: name.into(),
            manifest: m,
        }
    }

    #[test]
    fn a_dry_run_names_what_the_next_run_removes_in_every_layout() {
        let layout = |kind, keep, full_every| Layout {
            kind,
            keep,
            full_every,
            day_trees: DayTrees::default(),
        };
        let pool: Vec<Snapshot> = (1..=3).map(|h| snap(&format!("snap.{h}"), h)).collect();
        assert_eq!(layout(LayoutKind::Pool, 3, 1).next_prune(&pool), ["snap.1"]);
        assert_eq!(
            layout(LayoutKind::Pool, 2, 1).next_prune(&pool),
            ["snap.1", "snap.2"]
        );
        assert!(layout(LayoutKind::Pool, 4, 1).next_prune(&pool).is_empty());
        let rolling = vec![snap("day.1", 1), snap("day.2", 2), snap("current", 3)];
        assert_eq!(
            layout(LayoutKind::Rolling, 3, 1).next_prune(&rolling),
            ["day.1"]
        );
        assert!(layout(LayoutKind::Rolling, 4, 1)
            .next_prune(&rolling)
            .is_empty());
        let rotating = vec![snap("base.1", 1), snap("incr.2", 2), snap("incr.3", 3)];
        assert!(layout(LayoutKind::Rotating, 1, 4)
            .next_prune(&rotating)
            .is_empty());
        assert_eq!(
            layout(LayoutKind::Rotating, 1, 3).next_prune(&rotating),
            ["base.1", "incr.2", "incr.3"]
        );
    }
}
