//! Online mode (`backup.online`): a backup that never stops FOSSology's scheduler.
//!
//! 1. The snapshot point: a `REPEATABLE READ` transaction on the site's connection exports
//!    its snapshot (`pg_export_snapshot()`). While it is held, the dump is read from that
//!    snapshot ([`crate::dump::Source::Snapshot`]: the roles with `pg_dumpall
//!    --globals-only`, the database with `pg_dump --create --snapshot`), and the same
//!    transaction lists the jobs not ended, the jobs running, and every repository file the
//!    database names — exactly the rows the dump holds.
//! 2. The repository is copied after that point. Files are named by their content and never
//!    change under their name, so a copy taken later holds the same bytes, with two
//!    exceptions the copy settles by the names:
//!    - a file still being written was copied short: every file that was not whole (its size
//!      not its name's) before or after the copy, or that appeared or vanished during it, is
//!      hashed on the target against its name; a bad copy is sent again once the file is
//!      whole on the site, and left out of the snapshot when it is not;
//!    - a file the dump names may be deleted before the copy reaches it (FOSSology's delete
//!      agent removes files before the rows that name them): it is taken from an earlier
//!      snapshot on the target (hard-linked; the pool already has it), else listed missing.
//! 3. Jobs running at the snapshot point are in the dump started and not ended, as a stop
//!    leaves cut-off jobs: FOSSology's scheduler runs them again after a restore (`--reset`,
//!    which its init script passes). They are recorded in the manifest (`online.running`).

use crate::backup::{self, BackupOutcome};
use crate::config::BackupConfig;
use crate::scope::{self, Scope};
use crate::{content, precopy, BackupError};
use chrono::Utc;
use holdfast_site::db::{self, QueueRow, Reference};
use holdfast_site::Site;
use holdfast_store::manifest::{
    DumpInfo, JobsInfo, Manifest, OnlineInfo, RepoInfo, Timings, REPO_DIR,
};
use holdfast_store::rsync::RsyncStats;
use holdfast_store::{layout, Files, Place, Plan, Source, Store};
use std::collections::BTreeSet;
use std::time::Instant;

/// What the snapshot transaction saw.
struct AtSnapshot {
    at: chrono::DateTime<Utc>,
    database: DumpInfo,
    spooled: Option<crate::dump::Spooled>,
    unfinished: Vec<QueueRow>,
    running: Vec<QueueRow>,
    references: Vec<Reference>,
    /// Uploads a delete job was removing at the snapshot point.
    deleting: std::collections::HashSet<i32>,
}

fn db_err(what: &str) -> impl Fn(postgres::Error) -> BackupError + '_ {
    move |source| BackupError::Db {
        what: what.to_string(),
        source,
    }
}

/// Exports a snapshot, dumps from it and reads what the dump holds, in one transaction.
fn at_snapshot(
    site: &Site,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    client: &mut postgres::Client,
    dump_rel: &str,
    types: &[&str],
) -> Result<AtSnapshot, BackupError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .map_err(db_err("open the snapshot transaction"))?;
    let held = (|| -> Result<AtSnapshot, BackupError> {
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), extract(epoch FROM now())::float8",
                &[],
            )
            .map_err(db_err("export a database snapshot (pg_export_snapshot)"))?;
        let id: String = row.get(0);
        let epoch: f64 = row.get(1);
        let at =
            chrono::DateTime::from_timestamp_micros((epoch * 1e6) as i64).unwrap_or_else(Utc::now);
        tracing::info!(snapshot = %id, %at, "database snapshot exported; the scheduler keeps running");
        let source = crate::dump::Source::Snapshot(&id);
        let (database, spooled) =
            crate::dump::into_snapshot(&site.db, client, cfg, target, plan, dump_rel, source)?;
        let unfinished = db::unfinished_jobs(client).map_err(db_err("read the job queue"))?;
        let running = db::running_jobs(client).map_err(db_err("read the job queue"))?;
        let slimmed = db::slimmed_pfiles(client).map_err(db_err("read holdfast_slimmed"))?;
        let deleting = db::uploads_being_deleted(client).map_err(db_err("read the delete jobs"))?;
        let references = db::references(client, None)
            .map_err(db_err("list the files the database names"))?
            .into_iter()
            .filter(|r| types.contains(&r.kind.as_str()))
            .filter(|r| !(r.kind == "files" && slimmed.contains(&r.pfile_pk)))
            .collect();
        Ok(AtSnapshot {
            at,
            database,
            spooled,
            unfinished,
            running,
            references,
            deleting,
        })
    })();
    // Read only: nothing to keep. The dump has imported the snapshot and ended by now.
    let ended = client.batch_execute("ROLLBACK");
    let held = held?;
    ended.map_err(db_err("end the snapshot transaction"))?;
    Ok(held)
}

pub(crate) fn run(
    site: &Site,
    site_name: &str,
    cfg: &BackupConfig,
    target: &dyn Store,
    client: &mut postgres::Client,
    started: chrono::DateTime<Utc>,
    began: Instant,
) -> Result<BackupOutcome, BackupError> {
    let scope = Scope::of(site, cfg);
    let (types, dump_rel) = (scope.types, &scope.dump_rel);
    let root = &site.repo.root;
    let src = scope.source(site, cfg);
    let plan = target.plan(&cfg.layout())?;
    let pool = plan.lists_files;

    let t = Instant::now();
    let snap = at_snapshot(site, cfg, target, &plan, client, dump_rel, types)?;
    let dump_secs = t.elapsed().as_secs_f64();
    tracing::info!(
        secs = dump_secs,
        bytes = snap.database.bytes,
        running_jobs = snap.running.len(),
        named_files = snap.references.len(),
        "database dumped from the snapshot"
    );

    // The copy, after the snapshot point.
    let t = Instant::now();
    let CopiedAfter {
        mut stats,
        mut present,
        recopied,
        left_out,
        unlisted,
    } = copy_after(site, target, &plan, &src)?;
    let Absent {
        from_earlier,
        missing,
        being_deleted,
        deleted_after,
    } = account_for_absent(site, target, &plan, &snap, &present)?;
    if !missing.is_empty() {
        tracing::error!(
            count = missing.len(),
            "the repository lacks files the database names; the snapshot cannot have them"
        );
    }
    present.extend(from_earlier.iter().cloned());
    let list: Vec<String> = present.into_iter().collect();
    let damaged = crate::heal::heal(site, cfg, target, &plan, &src, Some(&list))?;
    // Files no list can carry, as the copy left them.
    backup::warn_unlisted(&unlisted);
    stats.files = list.len() as u64;
    stats.bytes = backup::listed_bytes(root, list.iter().map(|p| p.as_str()));
    if pool {
        target.write_file_list(&plan, &list)?;
    }
    let copy_secs = t.elapsed().as_secs_f64();
    tracing::info!(
        secs = copy_secs,
        files = stats.files,
        new_files = stats.transferred_files,
        recopied = recopied.len(),
        left_out = left_out.len(),
        "repository copied after the snapshot point"
    );

    let repository = RepoInfo {
        damaged,
        // No marks: the next night walks the repository.
        found_by: "walk".into(),
        unlisted,
        being_deleted,
        ..scope.repository(site, &stats)
    };
    let manifest = Manifest {
        jobs: JobsInfo {
            unfinished: snap.unfinished,
            stale_running: Vec::new(),
        },
        timings: Timings {
            dump_secs,
            copy_secs,
            ..Timings::default()
        },
        online: Some(OnlineInfo {
            snapshot_at: snap.at,
            running: snap.running,
            from_earlier,
            recopied,
            left_out,
            deleted_after,
        }),
        ..scope::manifest(site_name, cfg, &plan, started, snap.database, repository)
    };
    let sent = snap
        .spooled
        .map(|sp| backup::send_spooled(target, &plan, sp, dump_rel))
        .transpose()?;
    backup::finish(target, &plan, manifest, sent, began, true, missing)
}

/// The repository copied after the snapshot point, its half-written files settled.
struct CopiedAfter {
    stats: RsyncStats,
    /// The files the copy holds whole (repository-relative).
    present: BTreeSet<String>,
    recopied: Vec<String>,
    left_out: Vec<String>,
    /// Files no list can carry, as the copy left them.
    unlisted: Vec<String>,
}

/// Copies the repository (the scheduler running) and settles what was written or deleted
/// during the copy: content-named files caught half-written are hashed, sent again once
/// whole or left out; other files vanished during it are not in the copy.
fn copy_after(
    site: &Site,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
) -> Result<CopiedAfter, BackupError> {
    let (root, dirs, pool) = (src.root, src.dirs, plan.lists_files);
    let before = precopy::list(root, dirs);
    let names: Vec<String> = before.keys().cloned().collect();
    let stats = target.send_repository(
        plan,
        src,
        Files::All {
            list: pool.then_some(&names[..]),
        },
    )?;
    let walked_after = holdfast_store::pool::walk(root, dirs);
    let after = precopy::wholeness(&walked_after);

    // Half-written files: caught by their names.
    let is_content = |p: &str| precopy::content_name(p).is_some();
    let mut suspects: BTreeSet<String> = before
        .iter()
        .filter(|(p, whole)| is_content(p) && (!**whole || after.get(*p) != Some(&true)))
        .map(|(p, _)| p.clone())
        .collect();
    if !pool {
        // The tree copy walks the folders: it may have met files begun during it.
        suspects.extend(
            after
                .keys()
                .filter(|p| !before.contains_key(*p) && is_content(p))
                .cloned(),
        );
    }
    let (recopied, removed) = settle_suspects(site, target, plan, src, &suspects, &after)?;
    let mut present: BTreeSet<String> = before.keys().cloned().collect();
    if !pool {
        present.extend(after.keys().cloned());
    }
    for p in &removed {
        present.remove(p);
    }
    // Of those, the ones still on the site (being written): the rest were deleted.
    let left_out: Vec<String> = removed
        .into_iter()
        .filter(|p| after.contains_key(p))
        .collect();
    // Files vanished during the copy and never copied are not there either.
    for p in before.keys() {
        if !after.contains_key(p) && !is_content(p) {
            present.remove(p);
        }
    }
    Ok(CopiedAfter {
        stats,
        present,
        recopied,
        left_out,
        unlisted: walked_after.unlisted,
    })
}

/// What became of the files the dump names that the copy lacks.
struct Absent {
    /// Taken from an earlier snapshot (deleted before the copy reached them).
    from_earlier: Vec<String>,
    missing: Vec<Reference>,
    /// Of uploads being deleted at the snapshot point or deleted since.
    being_deleted: Vec<Reference>,
    /// Uploads deleted after the snapshot point: a restore queues their deletion again.
    deleted_after: Vec<i32>,
}

/// Finds the files the dump names that the copy lacks (`present`) in an earlier snapshot,
/// or says why they are gone: a delete job at the snapshot point, a deletion since, or lost.
fn account_for_absent(
    site: &Site,
    target: &dyn Store,
    plan: &Plan,
    snap: &AtSnapshot,
    present: &BTreeSet<String>,
) -> Result<Absent, BackupError> {
    let root = &site.repo.root;
    let absent: Vec<(&Reference, Vec<String>)> = snap
        .references
        .iter()
        .filter_map(|r| {
            let places: Vec<String> = site
                .repo
                .candidates(&r.kind, &r.name)
                .iter()
                .filter_map(|c| c.strip_prefix(root).ok())
                .map(|c| c.display().to_string())
                .collect();
            (!places.iter().any(|p| present.contains(p))).then_some((r, places))
        })
        .collect();
    let wanted: Vec<String> = absent
        .iter()
        .flat_map(|(_, places)| places.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let from_earlier = if wanted.is_empty() {
        Vec::new()
    } else {
        take_from_earlier(target, plan, &wanted)?
    };
    if !from_earlier.is_empty() {
        tracing::warn!(
            count = from_earlier.len(),
            "files the dump names were deleted before the copy reached them: taken from an earlier snapshot"
        );
    }
    let found: BTreeSet<&str> = from_earlier.iter().map(|s| s.as_str()).collect();
    let missing: Vec<Reference> = absent
        .into_iter()
        .filter(|(_, places)| !places.iter().any(|p| found.contains(p.as_str())))
        .map(|(r, _)| r.clone())
        .collect();
    // An upload a delete job was removing at the snapshot point: its files go before its
    // rows, and the dump has the job cut off, to run again after a restore.
    let (missing, mut being_deleted) = backup::split_deleting(missing, &snap.deleting);
    // One deleted after the snapshot point, before the copy reached its files: a restore
    // queues its deletion again (`online.deleted_after`).
    let (missing, deleted_after) = if missing.is_empty() {
        (missing, Vec::new())
    } else {
        let gone = deleted_by_now(site, &db::uploads_of(&missing));
        let (missing, after) = backup::split_deleting(missing, &gone);
        let ups = db::uploads_of(&after);
        being_deleted.extend(after);
        (missing, ups)
    };
    Ok(Absent {
        from_earlier,
        missing,
        being_deleted,
        deleted_after,
    })
}

/// Of `uploads`, those deleted by now. A connection of its own: the run's has been idle for
/// the whole copy. Asked a few times: a loaded server that cannot answer once must not turn
/// deletions into loss; one that never answers leaves the files missing.
fn deleted_by_now(site: &Site, uploads: &[i32]) -> std::collections::HashSet<i32> {
    let ask = || {
        crate::connect(site).and_then(|mut c| {
            db::uploads_deleted_by_now(&mut c, uploads)
                .map_err(db_err("read which uploads were deleted since the snapshot"))
        })
    };
    (1..=3)
        .find_map(|n| match ask() {
            Ok(g) => Some(g),
            Err(e) if n < 3 => {
                tracing::warn!("cannot tell yet which missing files were deleted on purpose ({e}); asking again");
                std::thread::sleep(std::time::Duration::from_secs(n));
                None
            }
            Err(e) => {
                tracing::error!("cannot tell which missing files were deleted on purpose: {e}");
                Some(Default::default())
            }
        })
        .unwrap_or_default()
}

/// Hashes the suspects' copies against their names; sends a bad one again when the site's
/// file is whole now, and takes it out of the pending snapshot when it is not (a wrong file
/// must not stand under a content name). Returns (sent again, taken out).
fn settle_suspects(
    site: &Site,
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    suspects: &BTreeSet<String>,
    after: &std::collections::BTreeMap<String, bool>,
) -> Result<(Vec<String>, Vec<String>), BackupError> {
    if suspects.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let suspects: Vec<String> = suspects.iter().cloned().collect();
    let bad = content::check_paths(
        target,
        Place::Pending(plan),
        &suspects,
        "check files written during the copy",
    )?;
    tracing::info!(
        checked = suspects.len(),
        bad = bad.len(),
        "files written or deleted during the copy checked against their names"
    );
    let whole_now = |p: &str| {
        precopy::content_name(p).is_some_and(|n| {
            std::fs::metadata(site.repo.root.join(p)).is_ok_and(|m| m.len() == n.size)
        })
    };
    let again: Vec<String> = bad
        .iter()
        .map(|b| b.path.clone())
        .filter(|p| whole_now(p))
        .collect();
    let mut recopied = Vec::new();
    if !again.is_empty() {
        target.send_repository(plan, src, Files::Again(&again))?;
        let still: BTreeSet<String> =
            content::check_paths(target, Place::Pending(plan), &again, "check second copies")?
                .into_iter()
                .map(|b| b.path)
                .collect();
        recopied = again.into_iter().filter(|p| !still.contains(p)).collect();
    }
    let mut out = Vec::new();
    for b in bad {
        if recopied.contains(&b.path) {
            continue;
        }
        if after.contains_key(&b.path) {
            if site.repo.root.join(&b.path).symlink_metadata().is_err() {
                tracing::warn!(file = %b.path, "deleted on the site during the copy ({}): left out of the snapshot", b.why);
            } else {
                tracing::warn!(file = %b.path, "still being written after the copy ({}): left out of the snapshot", b.why);
            }
        }
        out.push(b.path);
    }
    // A pool's snapshot is its list (they are not on it); a folder snapshot loses the file.
    if !plan.lists_files && !out.is_empty() {
        if let Some(t) = target.as_target() {
            for p in &out {
                t.remove_all(&format!("{}/{REPO_DIR}/{p}", layout::PARTIAL))?;
            }
        }
    }
    Ok((recopied, out))
}

/// Finds `paths` (repository-relative) in the earlier snapshots this one builds on and puts
/// them into it: a hard link into the pending folder (rolling, and a new rotating base);
/// nothing to do when an incremental's chain or the pool already holds them. Returns the
/// paths found.
fn take_from_earlier(
    target: &dyn Store,
    plan: &Plan,
    paths: &[String],
) -> Result<Vec<String>, BackupError> {
    if plan.lists_files {
        // The pool holds every file an earlier snapshot listed.
        let mut held: BTreeSet<String> = BTreeSet::new();
        for s in target.snapshots()? {
            if s.name.starts_with("snap.") {
                held.extend(target.snapshot_files(&s)?);
            }
        }
        return Ok(paths
            .iter()
            .filter(|p| held.contains(*p))
            .cloned()
            .collect());
    }
    let Some(t) = target.as_target() else {
        return Ok(Vec::new());
    };
    // (folder on the target, link into the new snapshot?)
    let mut dirs: Vec<(String, bool)> = Vec::new();
    dirs.extend(
        plan.builds_on
            .iter()
            .map(|n| (t.path(&format!("{n}/{REPO_DIR}")), false)),
    );
    dirs.extend(plan.link_dest.iter().map(|d| (d.clone(), true)));
    if plan.builds_on.is_empty() && plan.link_dest.is_empty() {
        // A new rotating base: the newest snapshot's chain may still hold the file.
        if let Some(newest) = target.snapshots()?.last() {
            for s in target.chain(newest)?.iter().rev() {
                dirs.push((t.path(&format!("{}/{REPO_DIR}", s.name)), true));
            }
        }
    }
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let dest_rel = format!("{}/{REPO_DIR}", layout::PARTIAL);
    let dest = t.path(&dest_rel);
    if t.local_path(&dest_rel).is_some() {
        let mut found = Vec::new();
        for p in paths {
            for (d, link) in &dirs {
                let from = std::path::Path::new(d).join(p);
                if !from.is_file() {
                    continue;
                }
                if *link {
                    let to = std::path::Path::new(&dest).join(p);
                    let io = |source| BackupError::Io {
                        path: to.display().to_string(),
                        source,
                    };
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(io)?;
                    }
                    let _ = std::fs::remove_file(&to);
                    std::fs::hard_link(&from, &to).map_err(io)?;
                }
                found.push(p.clone());
                break;
            }
        }
        return Ok(found);
    }
    // On the backup server: one script reads the paths and prints those it found.
    let q = holdfast_store::target::sh_quote;
    let mut tries = String::new();
    for (d, link) in &dirs {
        let d = q(d);
        if *link {
            tries.push_str(&format!(
                "if [ -f {d}/\"$p\" ]; then mkdir -p \"$(dirname {dest}/\"$p\")\" && ln -f {d}/\"$p\" {dest}/\"$p\" && echo \"$p\"; continue; fi; ",
                dest = q(&dest)
            ));
        } else {
            tries.push_str(&format!(
                "if [ -f {d}/\"$p\" ]; then echo \"$p\"; continue; fi; "
            ));
        }
    }
    let script = format!("while IFS= read -r p; do {tries}done");
    let out = t.run_script_with_input(&script, (paths.join("\n") + "\n").as_bytes())?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(String::from)
        .collect())
}
