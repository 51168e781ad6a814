//! One backup run: copy the repository while FOSSology runs (the pre-copy, [`crate::precopy`]),
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
use crate::nightly;
use crate::scope::{self, Scope};
use crate::steps::{dump_stopped, in_place, Dumped, Pre, Run};
use crate::BackupError;
use chrono::Utc;
use holdfast_core::threads::joined;
use holdfast_site::scheduler::{self, SchedulerConfig};
use holdfast_site::Site;
use holdfast_store::manifest::{JobsInfo, Manifest, RepoInfo, Timings};
use holdfast_store::{monitor, Plan, Store};
use serde::{Deserialize, Serialize};

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
pub(crate) fn missing_files(
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
pub(crate) fn ask_database(
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
    let scope = Scope::of(site, cfg);
    let src = scope.source(site, cfg);
    let Begun {
        plan,
        prev,
        walk_night,
        stopped: early_stop,
    } = begin(sched, cfg, target, client)?;
    let run = Run {
        site,
        cfg,
        target,
        plan: &plan,
        src: &src,
        types: scope.types,
        dirs: &scope.dirs,
        folders: target.folder_maker(&plan, &src),
    };
    if prev.is_none() {
        // A walk night: the whole copy walks the store's trees too.
        target.read_ahead(&plan, &src);
    }
    // Pre-copy: what this night sends, while the scheduler runs (see `precopy`).
    // A small night (see `small_night`) is copied whole with the scheduler stopped.
    let stopped_copy = !cfg.precopy || early_stop.is_some();
    let t = Instant::now();
    let pre = match &prev {
        _ if stopped_copy => Pre::None,
        Some(p) => run.precopy_night(client, p, walk_night)?,
        None => run.precopy_walk()?,
    };
    let precopy_secs = match pre {
        Pre::None => 0.0,
        _ => t.elapsed().as_secs_f64(),
    };

    let (guard, stopped, quiesce_secs) = match early_stop {
        Some(stopped) => stopped,
        None => stop(sched, client)?,
    };
    let unfinished = holdfast_site::db::unfinished_jobs(client).map_err(|e| BackupError::Db {
        what: "read the job queue".into(),
        source: e,
    })?;

    // The dump (the database) and the copy's last pass (the repository) read different
    // things and both wait on them: run together, they shorten the scheduler's downtime.
    // Their order does not matter: with the scheduler stopped no agent writes rows or files.
    // A spooled dump is sent as soon as it is written, beside the copy's end and the
    // scheduler's start: the commit waits for it, FOSSology does not.
    let (plan_ref, rel) = (&plan, &scope.dump_rel);
    std::thread::scope(|s| {
        let (dumped_tx, dumped_rx) = std::sync::mpsc::sync_channel(1);
        let sender = s.spawn(move || {
            let mut dumped = match dump_stopped(site, cfg, target, plan_ref, rel) {
                Ok(d) => d,
                Err(e) => {
                    let _ = dumped_tx.send(Err(e));
                    return None;
                }
            };
            let spooled = dumped.spooled.take();
            let _ = dumped_tx.send(Ok(dumped));
            spooled.map(|sp| send_spooled(target, plan_ref, sp, rel))
        });
        // The files the snapshot holds, with the scheduler stopped (nothing adds files now).
        let copied = run.last_pass(client, pre, prev.as_ref(), walk_night);
        let dumped = match dumped_rx.recv() {
            Ok(d) => d,
            Err(_) => {
                // The dump's thread ended without a word: it panicked, and so does this one.
                let _ = joined(sender);
                unreachable!("the dump's thread says how the dump went before it ends");
            }
        };
        let Dumped {
            database,
            spooled: _,
            marks,
            secs: dump_secs,
        } = dumped?;
        tracing::info!(secs = dump_secs, bytes = database.bytes, "database dumped");
        let held = copied?;
        let (missing, being_deleted) = set_aside_deleting(client, held.missing)?;
        warn_unlisted(&held.unlisted);
        if !missing.is_empty() {
            tracing::error!(
                count = missing.len(),
                "the repository lacks files the database names; the snapshot cannot have them"
            );
        }
        let database_night = prev.is_some() && !walk_night;
        let repository = RepoInfo {
            damaged: held.damaged,
            found_by: if database_night { "database" } else { "walk" }.into(),
            marks,
            walked: match &prev {
                Some(p) if database_night => p.snapshot.manifest.repository.walked,
                _ => Some(started),
            },
            missing: missing.clone(),
            being_deleted,
            unnamed: held.unnamed,
            unlisted: held.unlisted,
            ..scope.repository(site, &held.stats)
        };
        let mut manifest = Manifest {
            jobs: JobsInfo {
                unfinished,
                stale_running: guard.report.stale_running.clone(),
            },
            timings: Timings {
                quiesce_secs,
                dump_secs,
                copy_secs: held.secs,
                precopy_secs,
                ..Timings::default()
            },
            ..scope::manifest(site_name, cfg, &plan, started, database, repository)
        };
        drop_cut_off_trees(client);
        // Everything the snapshot holds is on the target: FOSSology may run again while the
        // snapshot is synced, committed and old ones pruned.
        let scheduler_restarted = restart(guard, stopped, &mut manifest.timings);
        let sent = joined(sender).transpose()?;
        finish(
            target,
            &plan,
            manifest,
            sent,
            began,
            scheduler_restarted,
            missing,
        )
    })
}

/// The scheduler as this run stopped it, when, and how long the stop took.
type Stopped = (scheduler::Quiesced, Instant, f64);

fn stop(sched: &SchedulerConfig, client: &mut postgres::Client) -> Result<Stopped, BackupError> {
    let stopped = Instant::now();
    let guard = scheduler::quiesce(sched, Some(client))?;
    let secs = stopped.elapsed().as_secs_f64();
    tracing::info!(secs, "scheduler and agents stopped");
    Ok((guard, stopped, secs))
}

/// How a stopped run begins.
struct Begun {
    plan: Plan,
    /// The previous snapshot's list the night builds on (none: the whole repository is
    /// walked and copied).
    prev: Option<nightly::Previous>,
    /// A walk night that builds on `prev`.
    walk_night: bool,
    /// The scheduler, stopped already: the whole copy happens with it stopped.
    stopped: Option<Stopped>,
}

fn begin(
    sched: &SchedulerConfig,
    cfg: &BackupConfig,
    target: &dyn Store,
    client: &mut postgres::Client,
) -> Result<Begun, BackupError> {
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
        let early = stopped_copy.then(|| stop(sched, client));
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
    // A walk night pre-copies (unless told not to): a scheduler stopped for a small night
    // whose list turned out unreadable starts again for it.
    let early_stop = match early_stop {
        Some(Ok(stopped)) if prev.is_none() && cfg.precopy => {
            stopped.0.restart()?;
            None
        }
        other => other.transpose()?,
    };
    Ok(Begun {
        plan,
        prev,
        walk_night,
        stopped: early_stop,
    })
}

/// Sets aside, from the files the repository lacks, those of uploads being deleted: with
/// the scheduler stopped, a delete job not ended was cut off (see [`split_deleting`]).
fn set_aside_deleting(
    client: &mut postgres::Client,
    missing: Vec<holdfast_site::db::Reference>,
) -> Result<
    (
        Vec<holdfast_site::db::Reference>,
        Vec<holdfast_site::db::Reference>,
    ),
    BackupError,
> {
    if missing.is_empty() {
        return Ok((missing, Vec::new()));
    }
    let deleting =
        holdfast_site::db::uploads_being_deleted(client).map_err(|e| BackupError::Db {
            what: "read the delete jobs".into(),
            source: e,
        })?;
    Ok(split_deleting(missing, &deleting))
}

/// An unpack the stop cut off (agents killed after stop_timeout_secs) may have left half
/// its tree: FOSSology's rerun at the scheduler's `--reset` start writes rows only for an
/// upload with none, and would mark the half tree unpacked. Its rows go before the start
/// (the snapshot keeps them; a restore removes them the same way).
fn drop_cut_off_trees(client: &mut postgres::Client) {
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
}

/// Starts the scheduler again (when this run stopped it) and records the downtime, from the
/// stop (`stopped`) to the moment it was seen running again. Returns whether it started.
fn restart(guard: scheduler::Quiesced, stopped: Instant, timings: &mut Timings) -> bool {
    let was_running = guard.report.was_running;
    let (restarted, up_at) = match guard.restart_seen() {
        Ok(at) => (true, at),
        Err(e) => {
            tracing::error!("backup done, but the scheduler did not start again: {e}");
            (false, None)
        }
    };
    if was_running {
        // Its start is proved a moment after the moment it is seen running.
        let up = up_at.unwrap_or_else(Instant::now);
        timings.downtime_secs = up.duration_since(stopped).as_secs_f64();
        tracing::info!(
            secs = timings.downtime_secs,
            "scheduler downtime (stop to start)"
        );
    } else {
        // The operator had it stopped: this backup cost FOSSology no time.
        tracing::info!("the scheduler was not running: no downtime");
    }
    restarted
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

/// A spooled dump sent to the pending snapshot, and how long that took.
pub(crate) struct SentDump {
    sent: holdfast_store::DumpSent,
    secs: f64,
}

/// Sends a dump spooled on this machine against the previous snapshot's; the commit makes it
/// durable with the rest of the snapshot.
pub(crate) fn send_spooled(
    target: &dyn Store,
    plan: &Plan,
    spooled: crate::dump::Spooled,
    dump_rel: &str,
) -> Result<SentDump, BackupError> {
    let t = Instant::now();
    let sent = target.send_dump(plan, &spooled.path(), dump_rel)?;
    Ok(SentDump {
        sent,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// Records how the dump was sent (`sent`: spooled and sent), then commits the snapshot.
pub(crate) fn finish(
    target: &dyn Store,
    plan: &Plan,
    mut manifest: Manifest,
    sent: Option<SentDump>,
    began: Instant,
    scheduler_restarted: bool,
    missing: Vec<holdfast_site::db::Reference>,
) -> Result<BackupOutcome, BackupError> {
    if let Some(SentDump { sent, secs }) = sent {
        let db = &mut manifest.database;
        db.sent_by = Some("rsync".into());
        db.sent_against = sent.against;
        db.sent_bytes = sent.sent;
        tracing::info!(
            secs,
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
