//! The steps of one run that copy the repository: the pre-copy while the scheduler runs,
//! then its last pass with the scheduler stopped, for each way a night finds its change (the
//! database's new rows on the previous snapshot's list, a walk matched against that list,
//! or the whole repository), and the dump that runs beside the last pass. [`crate::backup`]
//! decides which, stops and starts the scheduler and makes the snapshot.
//!
//! [`running`] is the pre-copy, [`stopped`] the last pass, [`links`] the rolling layout's
//! links of the previous day's files; here what they share.

mod links;
mod running;
mod stopped;

use crate::backup::listed_bytes;
use crate::config::BackupConfig;
use crate::heal::{heal, heal_at};
use crate::nightly;
use crate::BackupError;
use holdfast_site::Site;
use holdfast_store::{LayoutKind, Plan, Source, Store};
use links::Readying;
use std::collections::BTreeSet;
use std::time::Instant;

/// What every step of a run reads: the site, the configuration, the target and its plan,
/// the folders copied.
pub(crate) struct Run<'a> {
    pub(crate) site: &'a Site,
    pub(crate) cfg: &'a BackupConfig,
    pub(crate) target: &'a dyn Store,
    pub(crate) plan: &'a Plan,
    pub(crate) src: &'a Source<'a>,
    pub(crate) types: &'static [&'static str],
    pub(crate) dirs: &'a [String],
    /// Makes a new file's folder ahead of its copy (see [`Store::folder_maker`]).
    pub(crate) folders: Option<holdfast_store::FolderMaker<'a>>,
}

/// What the pre-copy did.
pub(crate) enum Pre {
    None,
    /// Walked: the files the pre-copy is sure to hold, its stats, damaged files.
    Walk(
        BTreeSet<String>,
        holdfast_store::rsync::RsyncStats,
        Vec<String>,
    ),
    /// A database night: its plan, the files sure to be in the copy, stats, damaged files.
    Db(
        nightly::Night,
        BTreeSet<String>,
        holdfast_store::rsync::RsyncStats,
        Vec<String>,
    ),
}

/// What the copy with the scheduler stopped gives the snapshot.
struct Copied {
    entries: Vec<holdfast_store::pool::Entry>,
    /// The list is on the target already (written while the new files went out).
    written: bool,
    stats: holdfast_store::rsync::RsyncStats,
    damaged: Vec<String>,
    missing: Vec<holdfast_site::db::Reference>,
    unnamed: Vec<String>,
    unlisted: Vec<String>,
}

/// The repository's part of the snapshot once [`Run::last_pass`] is done.
pub(crate) struct Held {
    /// Files and bytes: the whole snapshot's; new files and bytes: this night's copy.
    pub(crate) stats: holdfast_store::rsync::RsyncStats,
    pub(crate) damaged: Vec<String>,
    pub(crate) missing: Vec<holdfast_site::db::Reference>,
    pub(crate) unnamed: Vec<String>,
    pub(crate) unlisted: Vec<String>,
    pub(crate) secs: f64,
}

impl Run<'_> {
    /// The copy's pass with the scheduler stopped, after the pre-copy `pre` (if any) on the
    /// previous snapshot's list `prev` (if any): the snapshot's list is written (the next
    /// night builds on it, a restore gives its modes, owners and mtimes back) while the dump
    /// runs, and a rolling day loses the files the list no longer names.
    pub(crate) fn last_pass(
        &self,
        client: &mut postgres::Client,
        pre: Pre,
        prev: Option<&nightly::Previous>,
        walk_night: bool,
    ) -> Result<Held, BackupError> {
        let t = Instant::now();
        let r = match (pre, prev) {
            (Pre::None, Some(p)) => self.copy_night(client, p)?,
            (Pre::Db(before, copied, pre_stats, damaged), Some(_)) if walk_night => {
                self.settle_walk(client, before, copied, pre_stats, damaged)?
            }
            (Pre::Db(before, copied, pre_stats, damaged), Some(p)) => {
                self.delta_after_night(client, p, before, copied, pre_stats, damaged)?
            }
            (Pre::None, None) | (Pre::Db(..), None) => self.copy_stopped(client)?,
            (Pre::Walk(copied, pre_stats, damaged), _) => {
                self.delta_after_walk(client, copied, pre_stats, damaged)?
            }
        };
        let Copied {
            entries,
            written,
            mut stats,
            damaged,
            missing,
            unnamed,
            unlisted,
        } = r;
        // rsync saw only part of the files: count the whole snapshot from the names.
        stats.files = entries.len() as u64;
        stats.bytes = listed_bytes(
            &self.site.repo.root,
            entries.iter().map(|e| e.path.as_str()),
        );
        if !written {
            self.target.write_file_entries(self.plan, &entries)?;
        }
        if let Some(p) = prev.filter(|_| self.cfg.layout == LayoutKind::Rolling) {
            self.target
                .drop_unlisted(self.plan, &p.snapshot.name, &p.list, &entries)?;
        }
        let secs = t.elapsed().as_secs_f64();
        tracing::info!(
            secs,
            files = stats.files,
            new_files = stats.transferred_files,
            "repository copied"
        );
        Ok(Held {
            stats,
            damaged,
            missing,
            unnamed,
            unlisted,
            secs,
        })
    }

    /// [`heal`] with this run's site, configuration, target and plan.
    fn heal(&self, list: Option<&[String]>) -> Result<Vec<String>, BackupError> {
        heal(self.site, self.cfg, self.target, self.plan, self.src, list)
    }

    /// The sample's result for a night that sampled the files in place while linking the rest
    /// (see `ready`), then the files it linked that a verification found damaged (they are
    /// checked once in the tree, and copied again from the site).
    fn checked_kept(
        &self,
        keep: &[String],
        sampled: Result<Vec<String>, BackupError>,
    ) -> Result<Vec<String>, BackupError> {
        let mut damaged = sampled?;
        if !in_place(self.cfg, self.plan) {
            damaged.extend(heal_at(
                self.site,
                self.target,
                self.plan,
                self.src,
                Some(keep),
                0.0,
            )?);
            damaged.sort();
            damaged.dedup();
        }
        Ok(damaged)
    }

    /// The night's plan: the database's new rows on the previous snapshot's list (`p`).
    fn night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
    ) -> Result<nightly::Night, BackupError> {
        self.plan_night(client, p, true).map(|(night, _)| night)
    }

    /// [`nightly::plan`] for this run (`ask`: whether rows were deleted, at once).
    fn plan_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        ask: bool,
    ) -> Result<(nightly::Night, nightly::Carried), BackupError> {
        nightly::plan(
            self.site,
            self.types,
            self.dirs,
            p,
            client,
            self.folders.as_ref(),
            ask,
        )
    }
}

/// The database as the stopped scheduler left it, and the marks the next night starts from.
pub(crate) struct Dumped {
    pub(crate) database: holdfast_store::manifest::DumpInfo,
    pub(crate) spooled: Option<crate::dump::Spooled>,
    pub(crate) marks: Option<holdfast_site::changes::Marks>,
    pub(crate) secs: f64,
}

/// Dumps the database on a connection of its own, beside the copy's last pass.
pub(crate) fn dump_stopped(
    site: &Site,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    dump_rel: &str,
) -> Result<Dumped, BackupError> {
    let t = Instant::now();
    let mut c = crate::connect(site)?;
    // rsync: the dump is written here and sent as soon as it is whole, beside the copy.
    let (database, spooled) = crate::dump::into_snapshot(
        &site.db,
        &mut c,
        cfg,
        target,
        plan,
        dump_rel,
        crate::dump::Source::Cluster,
    )?;
    let secs = t.elapsed().as_secs_f64();
    // With the scheduler stopped no agent adds rows: the next night starts from here.
    // Read on the dump's connection, which ends before the copy: off the night's path.
    let marks = match holdfast_site::changes::marks(&mut c) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(
                "cannot read the database's marks (the next backup walks the repository): {}",
                crate::pg_why(&e)
            );
            None
        }
    };
    Ok(Dumped {
        database,
        spooled,
        marks,
        secs,
    })
}

/// The files of the night's list it does not send: kept from the previous snapshot.
fn kept(night: &nightly::Night) -> Vec<String> {
    night
        .list
        .keys()
        .filter(|k| !night.send.contains_key(*k))
        .cloned()
        .collect()
}

/// Whether the new snapshot holds every kept file before anything is sent: the pool and a
/// snapshot day do; a hard-linked day has them only once linked.
pub(crate) fn in_place(cfg: &BackupConfig, plan: &Plan) -> bool {
    cfg.layout != LayoutKind::Rolling || plan.snapshot_of.is_some()
}

/// The kept files the new snapshot holds before anything is linked, sampled while the new
/// files go out: all of them where they are in place, those the spare day holds in a
/// hard-linked day begun as it; None when a whole tree is still to link.
fn ready<'a>(
    cfg: &BackupConfig,
    plan: &Plan,
    keep: &'a [String],
) -> Option<std::borrow::Cow<'a, [String]>> {
    if in_place(cfg, plan) {
        return Some(keep.into());
    }
    let held = plan.recycled.as_ref()?;
    Some(holdfast_store::pool::shared(keep, held).into())
}

fn into_entries(
    list: std::collections::BTreeMap<String, Option<holdfast_store::pool::Meta>>,
) -> Vec<holdfast_store::pool::Entry> {
    list.into_iter()
        .map(|(path, meta)| holdfast_store::pool::Entry { path, meta })
        .collect()
}
