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
use crate::precopy;
use crate::BackupError;
use chrono::Utc;
use holdfast_site::scheduler::{self, SchedulerConfig};
use holdfast_site::Site;
use holdfast_store::manifest::{JobsInfo, Manifest, RepoInfo, Timings, DB_DIR};
use holdfast_store::{monitor, Files, Place, Plan, Source, Store};
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

/// Files the database names that the repository lacks (of the types this backup copies):
/// the snapshot cannot have them either. Slimmed containers are not counted.
pub fn missing_files(
    client: &mut postgres::Client,
    site: &Site,
    types: &[&str],
) -> Result<Vec<holdfast_site::db::Reference>, BackupError> {
    let report =
        holdfast_site::db::verify(client, &site.repo, None).map_err(|e| BackupError::Db {
            what: "check the repository against the database".into(),
            source: e,
        })?;
    Ok(report
        .missing
        .into_iter()
        .filter(|r| types.contains(&r.kind.as_str()))
        .collect())
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
    // Deciding where the copy goes costs FOSSology nothing: done before the stop.
    let plan = target.plan(&cfg.layout())?;
    let pool = plan.lists_files;

    // Pre-copy: the whole repository while the scheduler runs (see `precopy`).
    let mut precopy_secs = 0.0;
    let pre = if cfg.precopy {
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
        let damaged = heal(site, cfg, target, &plan, &src, pool.then_some(&names[..]))?;
        precopy_secs = t.elapsed().as_secs_f64();
        tracing::info!(
            secs = precopy_secs,
            files = before.len(),
            new_files = stats.transferred_files,
            "repository pre-copied while the scheduler runs"
        );
        Some((precopy::copied(&before, &after), stats, damaged))
    } else {
        None
    };

    let stopped = Instant::now();
    let guard = scheduler::quiesce(sched, Some(client))?;
    let quiesce_secs = stopped.elapsed().as_secs_f64();
    tracing::info!(secs = quiesce_secs, "scheduler and agents stopped");
    let unfinished = holdfast_site::db::unfinished_jobs(client).map_err(|e| BackupError::Db {
        what: "read the job queue".into(),
        source: e,
    })?;

    let t = Instant::now();
    let dump_rel = format!(
        "{DB_DIR}/{}.sql.{}",
        site.db.dbname(),
        cfg.compression.extension()
    );
    // rsync: the dump is written here and sent once the scheduler runs again.
    let (mut database, spooled) = if cfg.dump_rsync {
        let (d, s) = crate::dump::dump_spooled(
            &site.db,
            client,
            cfg,
            &dump_rel,
            crate::dump::Source::Cluster,
        )?;
        (d, Some(s))
    } else {
        let mut d = crate::dump::dump(
            &site.db,
            client,
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
    let dump_secs = t.elapsed().as_secs_f64();
    tracing::info!(secs = dump_secs, bytes = database.bytes, "database dumped");

    // With the scheduler stopped nothing adds files: what is missing now stays missing.
    let missing = missing_files(client, site, types)?;

    let t = Instant::now();
    // The files the snapshot holds (needed for the pool's list and for pre-copy counts).
    let (list, mut stats, damaged, missing) = match pre {
        None => {
            let list = pool.then(|| holdfast_store::pool::list_files(&site.repo.root, &dirs));
            let stats = target.send_repository(
                &plan,
                &src,
                Files::All {
                    list: list.as_deref(),
                },
            )?;
            let damaged = heal(site, cfg, target, &plan, &src, list.as_deref())?;
            (list, stats, damaged, missing)
        }
        Some((copied, pre_stats, damaged)) => {
            let now = precopy::list(&site.repo.root, &dirs);
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
            let mut list: Vec<String> = now.into_keys().chain(delta.keep).collect();
            list.sort();
            let stats = holdfast_store::rsync::RsyncStats {
                files: 0,
                bytes: 0,
                transferred_files: pre_stats.transferred_files + delta_stats.transferred_files,
                transferred_bytes: pre_stats.transferred_bytes + delta_stats.transferred_bytes,
                ..Default::default()
            };
            (Some(list), stats, damaged, missing)
        }
    };
    if !missing.is_empty() {
        tracing::error!(
            count = missing.len(),
            "the repository lacks files the database names; the snapshot cannot have them"
        );
    }
    if let Some(list) = &list {
        // rsync saw only part of the files: count the whole snapshot from the names.
        stats.files = list.len() as u64;
        stats.bytes = list
            .iter()
            .map(|p| {
                holdfast_site::pfile::PfileName::parse(p.rsplit('/').next().unwrap_or(p))
                    .map(|n| n.size)
                    .unwrap_or_else(|| {
                        std::fs::metadata(site.repo.root.join(p))
                            .map(|m| m.len())
                            .unwrap_or(0)
                    })
            })
            .sum();
        if pool {
            target.write_file_list(&plan, list)?;
        }
    }
    let copy_secs = t.elapsed().as_secs_f64();
    tracing::info!(
        secs = copy_secs,
        files = stats.files,
        new_files = stats.transferred_files,
        "repository copied"
    );

    let mut manifest = Manifest {
        format: 1,
        site: site_name.to_string(),
        mode: cfg.mode.as_str().into(),
        layout: cfg.layout.to_string(),
        kind: plan.kind.clone(),
        builds_on: plan.builds_on.clone(),
        holdfast_version: env!("CARGO_PKG_VERSION").into(),
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
    // Everything the snapshot holds is on the target: FOSSology may run again while the
    // snapshot is synced, committed and old ones pruned.
    let was_running = guard.report.was_running;
    let scheduler_restarted = match guard.restart() {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("backup done, but the scheduler did not start again: {e}");
            false
        }
    };
    if was_running {
        manifest.timings.downtime_secs = stopped.elapsed().as_secs_f64();
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
    let snapshot = target.commit(plan, &manifest)?;
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
    use crate::content;
    let earlier: Vec<_> = target
        .snapshots()?
        .into_iter()
        .filter(|s| plan.reuses.contains(&s.name))
        .collect();
    let mut suspects: std::collections::BTreeSet<String> = content::known_bad(target, &earlier)?;
    let listed: Vec<String> = match pool_list {
        Some(l) => l.to_vec(),
        None => target.pending_files(plan)?,
    };
    let present: std::collections::HashSet<&str> = listed.iter().map(|s| s.as_str()).collect();
    suspects.retain(|p| present.contains(p.as_str()));
    if cfg.check_percent > 0.0 {
        let seed: u64 = rand::random();
        suspects.extend(
            listed
                .iter()
                .filter(|p| {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (seed, p.as_str()).hash(&mut h);
                    (h.finish() % 1_000_000) as f64 / 10_000.0 < cfg.check_percent
                })
                .cloned(),
        );
    }
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    let suspects: Vec<String> = suspects.into_iter().collect();
    let bad = content::check_paths(
        target,
        Place::Pending(plan),
        &suspects,
        "check linked files",
    )?;
    tracing::info!(
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
