//! One backup run: copy the repository while FOSSology runs (the pre-copy, [`precopy`]),
//! stop the scheduler and prove every agent is gone, dump the database, copy what changed
//! since the pre-copy, start the scheduler, write the manifest and make the snapshot
//! visible. With `backup.precopy = false` the whole copy happens while the scheduler is
//! stopped. The scheduler's downtime (stop command to start command) goes into the manifest.
//!
//! The target and the database are checked before the scheduler is touched, so a wrong
//! address or password costs FOSSology nothing. From the stop on, the [`Quiesced`] guard
//! starts the scheduler again on every way out (success, error, Ctrl-C, SIGTERM).
//!
//! [`Quiesced`]: holdfast_site::scheduler::Quiesced

use crate::config::BackupConfig;
use crate::BackupError;
use crate::{nightly, precopy};
use chrono::Utc;
use holdfast_core::threads::joined;
use holdfast_site::scheduler::{self, SchedulerConfig};
use holdfast_site::Site;
use holdfast_store::manifest::{JobsInfo, Manifest, RepoInfo, Timings, DB_DIR, REPO_DIR};
use holdfast_store::{monitor, Files, LayoutKind, Place, Plan, Source, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Folders under the repository root (beside the host folders) that are copied when present.
pub use holdfast_store::rsync::EXTRA_DIRS;

/// What a finished backup reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupOutcome {
    pub target: String,
    pub snapshot: String,
    pub manifest: Manifest,
    /// Snapshots the layout removed afterwards.
    pub scheduler_restarted: bool,
    /// Files the database names that the repository (and so the snapshot) lacks.
    #[serde(default)]
    pub missing: Vec<holdfast_site::db::Reference>,
    /// The copies (`[[backup.copy]]`) this snapshot was sent to after the backup.
    #[serde(default)]
    pub copies: Vec<crate::copy::CopyResult>,
}

/// The files of `refs` the repository lacks (of the types this backup copies): the snapshot
/// cannot have them either. Slimmed containers are not counted.
fn missing_files(
    client: &mut postgres::Client,
    site: &Site,
    types: &[&str],
    refs: Vec<holdfast_site::db::Reference>,
) -> Result<Vec<holdfast_site::db::Reference>, BackupError> {
    let report =
        holdfast_site::db::check(client, &site.repo, refs).map_err(|e| BackupError::Db {
            what: "check the repository against the database".into(),
            source: e,
        })?;
    // Those of uploads being deleted too: the run sets them aside (`split_deleting`) with
    // the delete jobs as the stopped scheduler left them.
    Ok(report
        .missing
        .into_iter()
        .chain(report.being_deleted)
        .filter(|r| types.contains(&r.kind.as_str()))
        .collect())
}

/// What a walk night asks the database, the scheduler stopped, from one reading of the rows
/// that name files: the named files the repository lacks ([`missing_files`]) and every name
/// (for the walked files no row names: `nightly::unnamed`).
fn ask_database(
    client: &mut postgres::Client,
    site: &Site,
    types: &[&str],
) -> Result<(Vec<holdfast_site::db::Reference>, nightly::Named), BackupError> {
    let refs = holdfast_site::db::references(client, None).map_err(|e| BackupError::Db {
        what: "read the files the database names".into(),
        source: e,
    })?;
    let named = nightly::named(&refs);
    Ok((missing_files(client, site, types, refs)?, named))
}

/// Sets aside, from `missing`, the files of uploads a delete job had begun on (`deleting`):
/// FOSSology's delete agent removes an upload's files before its rows, and runs again after
/// a stop cut it off or a restore. Returns (missing, being deleted).
pub(crate) fn split_deleting(
    missing: Vec<holdfast_site::db::Reference>,
    deleting: &std::collections::HashSet<i32>,
) -> (
    Vec<holdfast_site::db::Reference>,
    Vec<holdfast_site::db::Reference>,
) {
    let (gone, missing): (Vec<_>, Vec<_>) = missing
        .into_iter()
        .partition(|r| deleting.contains(&r.upload_fk));
    if !gone.is_empty() {
        tracing::warn!(
            files = gone.len(),
            "files of uploads being deleted were already gone: their delete job finishes after a restore"
        );
    }
    (missing, gone)
}

/// Runs one backup of `site` to the configured target.
pub fn backup(
    site: &Site,
    site_name: &str,
    sched: &SchedulerConfig,
    cfg: &BackupConfig,
) -> Result<BackupOutcome, BackupError> {
    let began = Instant::now();
    let started = Utc::now();
    let _lock = crate::lock::acquire(&cfg.lock_file)?;
    // A half-restored site saved over good snapshots would be the worst backup of all.
    crate::refuse_if_restoring(site)?;
    cfg.check_copies()?;
    let target = cfg.store()?;
    let target = target.as_ref();
    let at = cfg.schedule_time()?;
    cfg.check_mount(target)?;
    target.check()?;
    if !site.repo.root.is_dir() {
        return Err(BackupError::Config(format!(
            "the repository {} (path in {}/fossology.conf) does not exist",
            site.repo.root.display(),
            site.conf_dir.display()
        )));
    }
    let mut client = crate::connect(site)?;
    let id = monitor::started(target, monitor::now())?;
    monitor::schedule(target, Some(at))?;
    let mut result = run(
        site,
        site_name,
        sched,
        cfg,
        target,
        &mut client,
        started,
        began,
    );
    let whole = result.as_ref().is_ok_and(|o| o.missing.is_empty());
    if let Err(e) = monitor::ended(target, &id, whole) {
        tracing::warn!("could not write backupEnded.xml: {e}");
    }
    // The snapshot is complete and visible: now it goes to the copies.
    if let Ok(out) = &mut result {
        out.copies = crate::copy::after_backup(cfg, target);
    }
    target.close();
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    site: &Site,
    site_name: &str,
    sched: &SchedulerConfig,
    cfg: &BackupConfig,
    target: &dyn Store,
    client: &mut postgres::Client,
    started: chrono::DateTime<Utc>,
    began: Instant,
) -> Result<BackupOutcome, BackupError> {
    if cfg.online {
        return crate::online::run(site, site_name, cfg, target, client, started, began);
    }
    let types = cfg.mode.types();
    let mut dirs = site.repo.data_dirs(types);
    for extra in EXTRA_DIRS {
        dirs.push(extra.to_string());
    }
    let src = Source {
        root: &site.repo.root,
        dirs: &dirs,
        rsync_args: &cfg.rsync_args,
    };
    let stop = |client: &mut postgres::Client| -> Result<_, BackupError> {
        let stopped = Instant::now();
        let guard = scheduler::quiesce(sched, Some(client))?;
        let secs = stopped.elapsed().as_secs_f64();
        tracing::info!(secs, "scheduler and agents stopped");
        Ok((guard, stopped, secs))
    };
    // Deciding where the copy goes costs FOSSology nothing: done before the stop. A database
    // night builds on the previous snapshot's list and marks (see `nightly`); the list is
    // read while the copy is planned, the night sized and, when the whole copy happens with
    // the scheduler stopped, while it stops: the night's critical path starts at the stop.
    // A walk night that pre-copies builds on the previous snapshot's list too (`walk`):
    // `walk_night` is then true and `prev` that snapshot.
    let (plan, prev, walk_night, early_stop) = std::thread::scope(|s| -> Result<_, BackupError> {
        let ahead = nightly::always_walks(cfg)
            .is_none()
            .then(|| s.spawn(|| nightly::read_ahead(target)));
        let plan = target.plan(&cfg.layout())?;
        let (base, walking) = match nightly::previous(cfg, target, &plan)? {
            nightly::Start::Database(base) => (base, None),
            nightly::Start::Walk(base, why) => (base, Some(why)),
            nightly::Start::Whole(why) => {
                tracing::info!("walking the whole repository: {why}");
                return Ok((plan, None, false, None));
            }
        };
        let stopped_copy = walking.is_none()
            && (!cfg.precopy
                || (nearly_in_place(cfg, &plan) && small_night(cfg, &base.marks, client)));
        let early = stopped_copy.then(|| stop(client));
        let prev = match base.read_list(target, ahead.and_then(joined)) {
            Ok(p) => {
                match &walking {
                    Some(why) => {
                        tracing::info!(previous = %p.snapshot.name, files = p.list.len(), "walking the whole repository and comparing it with the previous list: {why}")
                    }
                    None => {
                        tracing::info!(previous = %p.snapshot.name, files = p.list.len(), "copying what the database says is new")
                    }
                }
                Some(p)
            }
            Err(why) => {
                tracing::info!("walking the whole repository: {why}");
                None
            }
        };
        let walk_night = walking.is_some() && prev.is_some();
        Ok((plan, prev, walk_night, early))
    })?;
    let pool = plan.lists_files;
    let rolling = cfg.layout == LayoutKind::Rolling;
    let in_place = in_place(cfg, &plan);
    // A walk night pre-copies (unless told not to): a scheduler stopped for a small night
    // whose list turned out unreadable starts again for it.
    let early_stop = match early_stop {
        Some(Ok(stopped)) if prev.is_none() && cfg.precopy => {
            stopped.0.restart()?;
            None
        }
        other => other.transpose()?,
    };
    let folders = target.folder_maker(&plan, &src);
    if prev.is_none() {
        // A walk night: the whole copy walks the store's trees too.
        target.read_ahead(&plan, &src);
    }
    // Rolling: the new tree links every file of the previous one it keeps (`paths`); None for
    // the other layouts. Returns what was linked, the paths the previous tree lacks, the secs.
    let link_previous = |p: &nightly::Previous, paths: &[String]| {
        (rolling && !paths.is_empty()).then(|| {
            let t = Instant::now();
            target
                .link_previous(&plan, &p.snapshot.name, paths)
                .map(|(n, lacking)| (n, lacking, t.elapsed().as_secs_f64()))
        })
    };
    // What the previous tree lacks is sent from the site instead: returns those paths.
    let settle = |night: &mut nightly::Night, (n, lacking, secs): (u64, Vec<String>, f64)| {
        tracing::info!(secs, linked = n, "previous day's files linked");
        night.take_from_site(&site.repo.root, lacking)
    };
    let link = |p: &nightly::Previous,
                night: &mut nightly::Night,
                paths: Vec<String>|
     -> Result<(), BackupError> {
        if let Some(linked) = link_previous(p, &paths) {
            settle(night, linked?);
        }
        Ok(())
    };
    let kept = |night: &nightly::Night| -> Vec<String> {
        night
            .list
            .keys()
            .filter(|k| !night.send.contains_key(*k))
            .cloned()
            .collect()
    };

    // Files a tree turned out to lack (the previous day's, a spare's) go from the site.
    let send_lacking =
        |extra: &[String], stats: &mut holdfast_store::TransferStats| -> Result<(), BackupError> {
            if !extra.is_empty() {
                stats.add(&target.send_repository(
                    &plan,
                    &src,
                    Files::Delta {
                        send: extra,
                        drop: &[],
                    },
                )?);
            }
            Ok(())
        };

    // Rolling: the previous day's files are linked into the new tree while the new ones go
    // out from the site (disjoint sets, both waiting on the disk: the waits overlap); what the
    // previous tree lacked follows. Returns the transfer and every path sent.
    let link_and_send = |p: &nightly::Previous,
                         night: &mut nightly::Night,
                         keep: &[String],
                         mut send: Vec<String>|
     -> Result<(holdfast_store::TransferStats, Vec<String>), BackupError> {
        let t = Instant::now();
        let (linked, stats) = std::thread::scope(|s| {
            let linker = s.spawn(|| link_previous(p, keep));
            let stats = target.send_repository(
                &plan,
                &src,
                Files::Delta {
                    send: &send,
                    drop: &[],
                },
            );
            let linked = joined(linker);
            (linked, stats)
        });
        let mut stats = stats?;
        if let Some(linked) = linked {
            let extra = settle(night, linked?);
            send_lacking(&extra, &mut stats)?;
            send.extend(extra);
        }
        tracing::info!(
            secs = t.elapsed().as_secs_f64(),
            files = send.len(),
            "new files sent"
        );
        Ok((stats, send))
    };

    // Pre-copy: what this night sends, while the scheduler runs (see `precopy`).
    let mut precopy_secs = 0.0;
    // A small night (see `small_night`) is copied whole with the scheduler stopped.
    let stopped_copy = !cfg.precopy || early_stop.is_some();
    let pre = if stopped_copy {
        Pre::None
    } else if let Some(p) = &prev {
        let t = Instant::now();
        let mut night = if walk_night {
            let night =
                crate::walk::from_walk(holdfast_store::pool::walk(&site.repo.root, &dirs), &p.list);
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                files = night.list.len(),
                new = night.send.len(),
                "the repository walked and matched against the previous list"
            );
            night
        } else {
            let night = nightly::plan(site, types, &dirs, p, client, folders.as_ref())?;
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                new = night.send.len(),
                "the database's new rows matched against the previous list"
            );
            night
        };
        let keep = kept(&night);
        let whole: Vec<String> = night
            .send
            .iter()
            .filter(|(_, w)| **w)
            .map(|(p, _)| p.clone())
            .collect();
        // The kept files already in place are sampled while the new files go out (each
        // waits on the disk for other files); where a whole tree is linked, after.
        let ready = ready(cfg, &plan, &keep);
        let (sent, damaged_early) = std::thread::scope(|s| {
            let checker = ready
                .as_deref()
                .map(|r| s.spawn(|| heal(site, cfg, target, &plan, &src, Some(r))));
            let sent = link_and_send(p, &mut night, &keep, whole);
            let damaged = checker.map(joined);
            (sent, damaged)
        });
        let (mut stats, mut whole) = sent?;
        if walk_night
            && (plan.recycled.is_some() || plan.snapshot_of.is_some() || !plan.builds_on.is_empty())
        {
            // A walk trusts no tree it did not link itself: a day begun as the spare day or
            // as a snapshot of the previous one is looked at for every file it keeps, a
            // rotating chain's pieces for every file the incremental leaves to them.
            let lacking = match target.as_target() {
                Some(t) if !plan.builds_on.is_empty() => not_held(t, &plan.builds_on, &keep)?,
                _ => target.missing(&plan, &keep)?,
            };
            let extra = night.take_from_site(&site.repo.root, lacking);
            send_lacking(&extra, &mut stats)?;
            whole.extend(extra);
        }
        // Sure to be in the copy: whole before, still there after, named by content.
        let copied: BTreeSet<String> = whole
            .into_iter()
            .filter(|p| precopy::content_name(p).is_some() && site.repo.root.join(p).is_file())
            .collect();
        let damaged = match damaged_early {
            Some(d) => checked_kept(site, cfg, target, &plan, &src, &keep, d)?,
            None => {
                // Files being written are not in the copy yet: the delta pass sends them.
                let names: Vec<String> = night
                    .list
                    .keys()
                    .filter(|k| night.send.get(*k) != Some(&false))
                    .cloned()
                    .collect();
                heal(site, cfg, target, &plan, &src, Some(&names))?
            }
        };
        precopy_secs = t.elapsed().as_secs_f64();
        tracing::info!(
            secs = precopy_secs,
            named = night.named,
            new_files = stats.transferred_files,
            "new files pre-copied while the scheduler runs"
        );
        Pre::Db(night, copied, stats, damaged)
    } else {
        let t = Instant::now();
        let before = precopy::list(&site.repo.root, &dirs);
        let names: Vec<String> = before.keys().cloned().collect();
        let stats = target.send_repository(
            &plan,
            &src,
            Files::All {
                list: pool.then_some(&names[..]),
            },
        )?;
        let after = precopy::list(&site.repo.root, &dirs);
        // Sampled among the files there before and after the copy: it holds them all.
        let held: Vec<String> = names
            .into_iter()
            .filter(|p| after.contains_key(p))
            .collect();
        let damaged = heal(site, cfg, target, &plan, &src, Some(&held))?;
        precopy_secs = t.elapsed().as_secs_f64();
        tracing::info!(
            secs = precopy_secs,
            files = before.len(),
            new_files = stats.transferred_files,
            "repository pre-copied while the scheduler runs"
        );
        Pre::Walk(precopy::copied(&before, &after), stats, damaged)
    };

    let (guard, stopped, quiesce_secs) = match early_stop {
        Some(stopped) => stopped,
        None => stop(client)?,
    };
    let unfinished = holdfast_site::db::unfinished_jobs(client).map_err(|e| BackupError::Db {
        what: "read the job queue".into(),
        source: e,
    })?;

    let dump_rel = format!(
        "{DB_DIR}/{}.sql.{}",
        site.db.dbname(),
        cfg.compression.extension()
    );
    // The dump (the database) and the copy's last pass (the repository) read different
    // things and both wait on them: run together, they shorten the scheduler's downtime.
    // Their order does not matter: with the scheduler stopped no agent writes rows or files.
    let dump = || -> Result<_, BackupError> {
        let t = Instant::now();
        let mut c = crate::connect(site)?;
        // rsync: the dump is written here and sent once the scheduler runs again.
        let (mut database, spooled) = if cfg.spools_dump(target) {
            let (d, s) = crate::dump::dump_spooled(
                &site.db,
                &mut c,
                cfg,
                &dump_rel,
                crate::dump::Source::Cluster,
            )?;
            (d, Some(s))
        } else {
            let mut d = crate::dump::dump(
                &site.db,
                &mut c,
                cfg,
                target,
                &plan,
                &dump_rel,
                crate::dump::Source::Cluster,
            )?;
            d.sent_by = Some("stream".into());
            (d, None)
        };
        database.file = dump_rel.clone();
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
        Ok((database, spooled, marks, secs))
    };
    // The files the snapshot holds, with the scheduler stopped (nothing adds files now).
    let copy = || -> Result<_, BackupError> {
        let t = Instant::now();
        let r = match (pre, &prev) {
            (Pre::None, Some(p)) => {
                let mut night = nightly::plan(site, types, &dirs, p, client, folders.as_ref())?;
                tracing::debug!(
                    secs = t.elapsed().as_secs_f64(),
                    new = night.send.len(),
                    "the database's new rows matched against the previous list"
                );
                let keep = kept(&night);
                let send: Vec<String> = night.send.keys().cloned().collect();
                // In place nothing is linked that could turn out lacking, so the list is
                // final once planned: the writer has it (written and synced while the new
                // files go out) and gives it back as the snapshot's entries. Nothing here
                // copies it: the dump keeps both cores busy meanwhile. A tree begun as the
                // spare day links a few files: its writer gets a copy, right unless a link
                // finds a file lacking that the site lacks too (then written again below).
                let ready = ready(cfg, &plan, &keep);
                let listed = night.list.len();
                let early = if in_place {
                    Some(std::mem::take(&mut night.list))
                } else {
                    ready.as_ref().map(|_| night.list.clone())
                };
                let (sent, damaged, wrote) = std::thread::scope(|s| {
                    let plan = &plan;
                    // As in the pre-copy: kept files in place are sampled while the new ones
                    // go out.
                    let checker = ready
                        .as_deref()
                        .map(|r| s.spawn(|| heal(site, cfg, target, plan, &src, Some(r))));
                    let writer = early.map(|list| {
                        s.spawn(move || {
                            let entries = into_entries(list);
                            target.write_file_entries(plan, &entries).map(|()| entries)
                        })
                    });
                    let sent = link_and_send(p, &mut night, &keep, send);
                    (sent, checker.map(joined), writer.map(joined))
                });
                let (stats, send) = sent?;
                let wrote = wrote.transpose()?;
                let (entries, written) = match wrote {
                    // A lacking file leaves the list only by `take_from_site`'s removal.
                    Some(entries) if in_place || night.list.len() == listed => (entries, true),
                    _ => (into_entries(std::mem::take(&mut night.list)), false),
                };
                let damaged = match damaged {
                    Some(d) => checked_kept(site, cfg, target, &plan, &src, &keep, d)?,
                    None => {
                        let names: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
                        heal(site, cfg, target, &plan, &src, Some(&names))?
                    }
                };
                tracing::info!(
                    named = night.named,
                    sent = send.len(),
                    dropped = night.dropped,
                    "copied what the database says is new"
                );
                let unlisted = night.unlisted;
                (
                    entries,
                    written,
                    stats,
                    damaged,
                    night.missing,
                    night.unnamed,
                    unlisted,
                )
            }
            (Pre::Db(before, copied, pre_stats, damaged), Some(_)) if walk_night => {
                let night = crate::walk::settle(site, types, &dirs, client, &before)?;
                let missing = if night.missing.is_empty() {
                    Vec::new()
                } else {
                    missing_files(client, site, types, night.missing.clone())?
                };
                // Files the pre-copy put in the tree (sent, or linked) that left the list.
                let drop: Vec<String> = before
                    .list
                    .keys()
                    .filter(|p| !night.list.contains_key(*p))
                    .filter(|p| copied.contains(*p) || (rolling && !before.send.contains_key(*p)))
                    .cloned()
                    .collect();
                let (sent, new_files, stats) =
                    delta_pass(target, &plan, &src, &night.send, &copied, &drop, &pre_stats)?;
                tracing::info!(
                    looked_up = night.named,
                    sent,
                    dropped = drop.len(),
                    new_files,
                    "delta pass over what the walk's list lacks now"
                );
                (
                    into_entries(night.list),
                    false,
                    stats,
                    damaged,
                    missing,
                    night.unnamed,
                    night.unlisted,
                )
            }
            (Pre::Db(before, copied, pre_stats, damaged), Some(p)) => {
                let mut night = nightly::plan(site, types, &dirs, p, client, folders.as_ref())?;
                // Rolling: what the previous day holds that the pre-copy did not link yet.
                let more: Vec<String> = kept(&night)
                    .into_iter()
                    .filter(|k| !before.list.contains_key(k))
                    .collect();
                link(p, &mut night, more)?;
                let mut list = std::mem::take(&mut night.list);
                let mut missing = std::mem::take(&mut night.missing);
                // Files in the pre-copy (sent, or linked from the previous day) gone since: the
                // snapshot keeps them while the database names them, else they leave it.
                let mut drop = Vec::new();
                for (path, meta) in before.list {
                    if list.contains_key(&path) {
                        continue;
                    }
                    let in_copy =
                        copied.contains(&path) || (rolling && !before.send.contains_key(&path));
                    if !in_copy {
                        continue;
                    }
                    match missing.iter().position(|r| precopy::names(r, &path)) {
                        Some(i) => {
                            missing.remove(i);
                            list.insert(path, meta);
                        }
                        None => drop.push(path),
                    }
                }
                let (sent, new_files, stats) =
                    delta_pass(target, &plan, &src, &night.send, &copied, &drop, &pre_stats)?;
                tracing::info!(
                    sent,
                    dropped = drop.len(),
                    new_files,
                    "delta pass over what the database added since the pre-copy"
                );
                (
                    into_entries(list),
                    false,
                    stats,
                    damaged,
                    missing,
                    night.unnamed,
                    night.unlisted,
                )
            }
            (Pre::None, None) | (Pre::Db(..), None) => {
                // The scheduler is stopped: nothing moves in the repository. The database's
                // check and the walk for the list read it beside the copy: on a cold cache
                // each warms folders and inodes for the others (one after another they took
                // 15.7 s of a rolling night whose rsync alone walks in 9).
                let root = &site.repo.root;
                let c = &mut *client;
                let (asked, walked, stats) = std::thread::scope(|s| {
                    let checker = s.spawn(move || ask_database(c, site, types));
                    let (walked, stats) = if pool {
                        // The pool's copy takes its list from the walk.
                        let walked = holdfast_store::pool::walk(root, &dirs);
                        let names = walked.names();
                        let list = Some(&names[..]);
                        (
                            walked,
                            target.send_repository(&plan, &src, Files::All { list }),
                        )
                    } else {
                        let walker = s.spawn(|| holdfast_store::pool::walk(root, &dirs));
                        let stats = target.send_repository(&plan, &src, Files::All { list: None });
                        (joined(walker), stats)
                    };
                    (joined(checker), walked, stats)
                });
                let ((missing, named), stats, mut walked) = (asked?, stats?, walked);
                let damaged = heal(site, cfg, target, &plan, &src, Some(&walked.names()))?;
                let unlisted = std::mem::take(&mut walked.unlisted);
                let entries = walked.into_entries();
                let unnamed = nightly::unnamed(site, types, &entries, &named);
                (entries, false, stats, damaged, missing, unnamed, unlisted)
            }
            (Pre::Walk(copied, pre_stats, damaged), _) => {
                // As above: the check and the walk read the stopped repository side by side.
                let root = &site.repo.root;
                let c = &mut *client;
                let (asked, mut walked) = std::thread::scope(|s| {
                    let checker = s.spawn(move || ask_database(c, site, types));
                    let walked = holdfast_store::pool::walk(root, &dirs);
                    (joined(checker), walked)
                });
                let (missing, named) = asked?;
                let now = precopy::wholeness(&walked);
                let delta = precopy::delta(&copied, &now, &missing);
                let delta_stats = target.send_repository(
                    &plan,
                    &src,
                    Files::Delta {
                        send: &delta.send,
                        drop: &delta.drop,
                    },
                )?;
                tracing::info!(
                    sent = delta.send.len(),
                    dropped = delta.drop.len(),
                    kept = delta.keep.len(),
                    new_files = delta_stats.transferred_files,
                    "delta pass over what changed since the pre-copy"
                );
                let missing = precopy::still_missing(missing, &delta.keep);
                let stats = holdfast_store::rsync::RsyncStats {
                    transferred_files: pre_stats.transferred_files + delta_stats.transferred_files,
                    transferred_bytes: pre_stats.transferred_bytes + delta_stats.transferred_bytes,
                    ..Default::default()
                };
                let unlisted = std::mem::take(&mut walked.unlisted);
                // Kept from the pre-copy, gone from the site: no metadata to record.
                let mut entries = walked.into_entries();
                entries.extend(
                    delta
                        .keep
                        .into_iter()
                        .map(|path| holdfast_store::pool::Entry { path, meta: None }),
                );
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                let unnamed = nightly::unnamed(site, types, &entries, &named);
                (entries, false, stats, damaged, missing, unnamed, unlisted)
            }
        };
        let (entries, written, mut stats, damaged, missing, unnamed, unlisted) = r;
        // rsync saw only part of the files: count the whole snapshot from the names.
        stats.files = entries.len() as u64;
        stats.bytes = listed_bytes(&site.repo.root, entries.iter().map(|e| e.path.as_str()));
        // Every layout keeps its list: the next night builds on it, a restore gives the
        // recorded modes, owners and mtimes back. Written while the dump runs.
        if !written {
            target.write_file_entries(&plan, &entries)?;
        }
        if let Some(p) = prev.as_ref().filter(|_| rolling) {
            target.drop_unlisted(&plan, &p.snapshot.name, &p.list, &entries)?;
        }
        let copy_secs = t.elapsed().as_secs_f64();
        tracing::info!(
            secs = copy_secs,
            files = stats.files,
            new_files = stats.transferred_files,
            "repository copied"
        );
        Ok((stats, damaged, missing, unnamed, unlisted, copy_secs))
    };
    let (dumped, copied) = std::thread::scope(|s| {
        let dumper = s.spawn(dump);
        let copied = copy();
        let dumped = joined(dumper);
        (dumped, copied)
    });
    let (database, spooled, marks, dump_secs) = dumped?;
    tracing::info!(secs = dump_secs, bytes = database.bytes, "database dumped");
    let (stats, damaged, missing, unnamed, unlisted, copy_secs) = copied?;
    // The scheduler is stopped: a delete job not ended was cut off.
    let (missing, being_deleted) = if missing.is_empty() {
        (missing, Vec::new())
    } else {
        let deleting =
            holdfast_site::db::uploads_being_deleted(client).map_err(|e| BackupError::Db {
                what: "read the delete jobs".into(),
                source: e,
            })?;
        split_deleting(missing, &deleting)
    };
    warn_unlisted(&unlisted);
    let found_by = if prev.is_some() && !walk_night {
        "database"
    } else {
        "walk"
    };
    if !missing.is_empty() {
        tracing::error!(
            count = missing.len(),
            "the repository lacks files the database names; the snapshot cannot have them"
        );
    }

    let mut manifest = Manifest {
        format: 1,
        site: site_name.to_string(),
        mode: cfg.mode.as_str().into(),
        layout: cfg.layout.to_string(),
        kind: plan.kind.clone(),
        builds_on: plan.builds_on.clone(),
        holdfast_version: env!("CARGO_PKG_VERSION").into(),
        // Given by the store as it commits.
        sequence: 0,
        started,
        finished: Utc::now(),
        database,
        repository: RepoInfo {
            root: site.repo.root.display().to_string(),
            hosts: site.fo.host_names(),
            types: types.iter().map(|s| s.to_string()).collect(),
            files: stats.files,
            bytes: stats.bytes,
            new_files: stats.transferred_files,
            new_bytes: stats.transferred_bytes,
            damaged,
            found_by: found_by.into(),
            marks,
            walked: match &prev {
                Some(p) if !walk_night => p.snapshot.manifest.repository.walked,
                _ => Some(started),
            },
            missing: missing.clone(),
            being_deleted,
            unnamed,
            unlisted,
        },
        jobs: JobsInfo {
            unfinished,
            stale_running: guard.report.stale_running.clone(),
        },
        copied: None,
        timings: Timings {
            quiesce_secs,
            dump_secs,
            copy_secs,
            total_secs: 0.0,
            precopy_secs,
            downtime_secs: 0.0,
        },
        online: None,
    };
    // An unpack the stop cut off (agents killed after stop_timeout_secs) may have left half
    // its tree: FOSSology's rerun at the scheduler's `--reset` start writes rows only for an
    // upload with none, and would mark the half tree unpacked. Its rows go before the start
    // (the snapshot keeps them; a restore removes them the same way).
    match holdfast_site::db::uploadtree::drop_cut_off_trees(client) {
        Ok(dropped) => {
            for (upload, rows) in dropped {
                tracing::warn!(
                    upload,
                    rows,
                    "the stop cut this upload's unpack off mid-write: its rows were removed so the scheduler unpacks it whole again"
                );
            }
        }
        Err(e) => tracing::error!(
            "cannot remove the rows of unpacks the stop cut off (run `holdfast unpack --cut-off` with the scheduler stopped): {}",
            crate::pg_why(&e)
        ),
    }
    // Everything the snapshot holds is on the target: FOSSology may run again while the
    // snapshot is synced, committed and old ones pruned.
    let was_running = guard.report.was_running;
    let (scheduler_restarted, up_at) = match guard.restart_seen() {
        Ok(at) => (true, at),
        Err(e) => {
            tracing::error!("backup done, but the scheduler did not start again: {e}");
            (false, None)
        }
    };
    if was_running {
        // To the moment it was seen running again (its start is proved a moment after).
        let up = up_at.unwrap_or_else(Instant::now);
        manifest.timings.downtime_secs = up.duration_since(stopped).as_secs_f64();
        tracing::info!(
            secs = manifest.timings.downtime_secs,
            "scheduler downtime (stop to start)"
        );
    } else {
        // The operator had it stopped: this backup cost FOSSology no time.
        tracing::info!("the scheduler was not running: no downtime");
    }
    finish(
        target,
        &plan,
        manifest,
        spooled,
        &dump_rel,
        began,
        scheduler_restarted,
        missing,
    )
}

/// The bytes of the snapshot's files (repository-relative `paths`): a content-named file's
/// size is in its name, the others' are read from the site.
pub(crate) fn listed_bytes<'a>(
    root: &std::path::Path,
    paths: impl Iterator<Item = &'a str>,
) -> u64 {
    paths
        .map(|p| {
            holdfast_site::pfile::PfileName::size_of(p.rsplit('/').next().unwrap_or(p))
                .unwrap_or_else(|| {
                    std::fs::metadata(root.join(p))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
        })
        .sum()
}

/// Says which files the snapshot leaves out because no list can carry their names.
pub(crate) fn warn_unlisted(unlisted: &[String]) {
    for f in unlisted {
        tracing::warn!(file = %f, "left out of the backup: its name is not UTF-8 or holds a line break, which no file list can carry; rename it (FOSSology makes a report again on request)");
    }
}

/// Sends a spooled dump against the previous snapshot's, then commits the snapshot.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    target: &dyn Store,
    plan: &Plan,
    mut manifest: Manifest,
    spooled: Option<crate::dump::Spooled>,
    dump_rel: &str,
    began: Instant,
    scheduler_restarted: bool,
    missing: Vec<holdfast_site::db::Reference>,
) -> Result<BackupOutcome, BackupError> {
    if let Some(spooled) = spooled {
        let t = Instant::now();
        let sent = target.send_dump(plan, &spooled.path(), dump_rel)?;
        let db = &mut manifest.database;
        db.sent_by = Some("rsync".into());
        db.sent_against = sent.against;
        db.sent_bytes = sent.sent;
        tracing::info!(
            secs = t.elapsed().as_secs_f64(),
            bytes = db.bytes,
            sent = db.sent_bytes,
            against = db.sent_against.as_deref().unwrap_or("nothing"),
            "database dump sent"
        );
    }
    manifest.timings.total_secs = began.elapsed().as_secs_f64();
    let snapshot = target.commit(plan, &mut manifest)?;
    tracing::info!(snapshot = %snapshot, "snapshot committed");
    Ok(BackupOutcome {
        target: target.display(),
        snapshot,
        manifest,
        scheduler_restarted,
        missing,
        copies: Vec::new(),
    })
}

/// The last pass after a pre-copy, the scheduler stopped: sends what `send` names that the
/// pre-copy does not hold (`copied`) and drops `drop`. Returns how many were sent, how many
/// the transfer counted new, and the night's transfer (the pre-copy's, `pre`, with it).
fn delta_pass(
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    send: &BTreeMap<String, bool>,
    copied: &BTreeSet<String>,
    drop: &[String],
    pre: &holdfast_store::rsync::RsyncStats,
) -> Result<(usize, u64, holdfast_store::rsync::RsyncStats), BackupError> {
    let send: Vec<String> = send
        .keys()
        .filter(|k| !copied.contains(*k))
        .cloned()
        .collect();
    let delta = target.send_repository(plan, src, Files::Delta { send: &send, drop })?;
    let stats = holdfast_store::rsync::RsyncStats {
        transferred_files: pre.transferred_files + delta.transferred_files,
        transferred_bytes: pre.transferred_bytes + delta.transferred_bytes,
        ..Default::default()
    };
    Ok((send.len(), delta.transferred_files, stats))
}

/// What the pre-copy did.
enum Pre {
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

/// Of `paths`, those no snapshot of `chain` holds.
fn not_held(
    t: &holdfast_store::Target,
    chain: &[String],
    paths: &[String],
) -> Result<Vec<String>, BackupError> {
    let dirs: Vec<String> = chain.iter().map(|n| format!("{n}/{REPO_DIR}")).collect();
    Ok(t.holders(&dirs, paths)?
        .into_iter()
        .zip(paths)
        .filter(|(h, _)| h.is_none())
        .map(|(_, p)| p.clone())
        .collect())
}

/// Whether the new snapshot holds every kept file before anything is sent: the pool and a
/// snapshot day do; a hard-linked day has them only once linked.
fn in_place(cfg: &BackupConfig, plan: &Plan) -> bool {
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

/// The sample's result for a night that sampled the files in place while linking the rest
/// (see `ready`), then the files it linked that a verification found damaged (they are
/// checked once in the tree, and copied again from the site).
#[allow(clippy::too_many_arguments)]
fn checked_kept(
    site: &Site,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    keep: &[String],
    sampled: Result<Vec<String>, BackupError>,
) -> Result<Vec<String>, BackupError> {
    let mut damaged = sampled?;
    if !in_place(cfg, plan) {
        damaged.extend(heal_at(site, target, plan, src, Some(keep), 0.0)?);
        damaged.sort();
        damaged.dedup();
    }
    Ok(damaged)
}

/// Whether the kept files are in place, or nearly: a hard-linked day begun as the spare day
/// (see `holdfast_store::layout`) links only the previous day's files the spare lacks, the
/// new files of the last `keep - 1` nights. At most this many such links leave a night small
/// enough to copy with the scheduler stopped: a link is a folder entry, no data (measured on
/// the benchmark store, 78,000 files, cold: a whole tree of 78,000 links and its folders in
/// 1.6 s on ext4 with inline folders, ~4 s on plain ext4).
fn nearly_in_place(cfg: &BackupConfig, plan: &Plan) -> bool {
    in_place(cfg, plan) || plan.spare_lacks.is_some_and(|n| n <= SMALL_NIGHT_LINKS)
}

const SMALL_NIGHT_LINKS: u64 = 20_000;

/// At most this many new files make a small night (see `BackupConfig::precopy_above_mib`):
/// each costs a wait on the disk however small it is.
const SMALL_NIGHT_FILES: u64 = 5_000;

/// Whether the database names so little new data since `p` that the copy, run with the
/// scheduler stopped beside the dump, ends about when the dump does: the pre-copy would
/// then add its second pass to the night for a second or so less downtime. Asked while
/// FOSSology runs; on any doubt, pre-copy.
fn small_night(
    cfg: &BackupConfig,
    marks: &holdfast_site::changes::Marks,
    client: &mut postgres::Client,
) -> bool {
    if cfg.precopy_above_mib == 0 {
        return false;
    }
    match holdfast_site::changes::new_data(client, marks) {
        Ok((files, bytes)) => {
            let small = files < SMALL_NIGHT_FILES && bytes < cfg.precopy_above_mib << 20;
            if small {
                tracing::info!(
                    files,
                    bytes,
                    "a small night: copied beside the dump with the scheduler stopped (no pre-copy)"
                );
            }
            small
        }
        Err(e) => {
            tracing::warn!(
                "cannot size the night's new data ({}): pre-copying",
                crate::pg_why(&e)
            );
            false
        }
    }
}

fn into_entries(
    list: std::collections::BTreeMap<String, Option<holdfast_store::pool::Meta>>,
) -> Vec<holdfast_store::pool::Entry> {
    list.into_iter()
        .map(|(path, meta)| holdfast_store::pool::Entry { path, meta })
        .collect()
}

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
fn heal_at(
    site: &Site,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    pool_list: Option<&[String]>,
    percent: f64,
) -> Result<Vec<String>, BackupError> {
    use crate::content;
    let earlier: Vec<_> = target
        .snapshots()?
        .into_iter()
        .filter(|s| plan.reuses.contains(&s.name))
        .collect();
    let mut suspects: std::collections::BTreeSet<String> = content::known_bad(target, &earlier)?;
    if suspects.is_empty() && percent <= 0.0 {
        return Ok(Vec::new());
    }
    let listed: Vec<String> = match pool_list {
        Some(l) => l.to_vec(),
        None => target.pending_files(plan)?,
    };
    if !suspects.is_empty() {
        let present: std::collections::HashSet<&str> = listed.iter().map(|s| s.as_str()).collect();
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
