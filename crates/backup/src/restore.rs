//! Restore, in the plan's order: stop the scheduler, check FOSSology's configuration is in
//! place, restore the database (recreated with its original encoding, then the dump loaded),
//! restore the repository (hard links, owner and modes kept), start the scheduler, and verify
//! that every file the database references is back under its name and size.
//!
//! With [`RestoreOptions::scratch`] the same restore goes into a scratch folder (repository
//! and a configuration folder describing it) and a scratch database on the same server,
//! leaving the live site and its scheduler alone: that is how drills restore.

use crate::config::BackupConfig;
use crate::content::BadFile;
use crate::BackupError;
use holdfast_site::db::VerifyReport;
use holdfast_site::scheduler::{self, SchedulerConfig};
use holdfast_site::Site;
use holdfast_store::{Manifest, Store};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Where a restore puts files whose content does not match their name (the same folder
/// `recover --all --scan` moves short files to).
pub use holdfast_recover::damage::DAMAGED_DIR;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Snapshot name; the latest when `None`.
    pub snapshot: Option<String>,
    /// Restore into this folder (`repository/`, `etc/fossology/`) instead of the live site.
    pub scratch: Option<PathBuf>,
    /// Database to restore into (default: the site's; `<dbname>_restore` with `scratch`).
    pub dbname: Option<String>,
    /// Skip the database (repository only).
    pub skip_db: bool,
    /// Skip the repository (database only).
    pub skip_repo: bool,
    /// For gold-mode snapshots: rebuild only what cut-off jobs need now, the rest on demand.
    pub lazy_rebuild: bool,
    /// With `scratch`: drop the scratch database once the restore is verified (a rehearsal
    /// database left in the production cluster doubles the next dump).
    pub drop_scratch_db: bool,
    /// Do not hash the restored files against their names (faster, proves less).
    pub skip_content_check: bool,
    /// Restore from this `[[backup.copy]]` instead of the primary target.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub manifest: Manifest,
    /// The site that was restored (the scratch one when restoring into a folder).
    pub conf_dir: PathBuf,
    pub repo_root: PathBuf,
    pub dbname: String,
    pub db_secs: f64,
    pub repo_secs: f64,
    pub rebuild_secs: f64,
    pub verify: VerifyReport,
    /// Restored files whose content does not match their name: moved aside into
    /// `<repository>/.holdfast-damaged/`, so FOSSology sees them missing, not wrong.
    pub damaged: Vec<BadFile>,
    /// Whether the scratch database was dropped after the check.
    #[serde(default)]
    pub scratch_db_dropped: bool,
    /// Uploads whose unpack the snapshot cut off mid-write: the rows it left were removed,
    /// so the scheduler's rerun unpacks them whole (`(upload, rows)`).
    #[serde(default)]
    pub cut_off_trees: Vec<(i32, u64)>,
    /// Gold-mode snapshots: what the rebuild from gold did.
    pub rebuild: Option<holdfast_recover::RebuildReport>,
    pub scheduler_restarted: Option<bool>,
}

impl RestoreOutcome {
    pub fn is_whole(&self) -> bool {
        whole(&self.verify, &self.damaged, self.rebuild.as_ref())
    }

    /// Files the final verification misses that are not data lost (see [`whole`]).
    pub fn not_reproducible(&self) -> usize {
        self.rebuild
            .as_ref()
            .map_or(0, |r| r.not_reproducible().len())
    }
}

/// Nothing damaged, and every file the final verification misses is one the rebuild from
/// gold explained as an artifact that cannot be made again byte for byte (not data lost: a
/// zip's `artifact.meta` names the path it was unpacked at, so a restore into another
/// repository path cannot give it back).
fn whole(
    verify: &VerifyReport,
    damaged: &[BadFile],
    rebuild: Option<&holdfast_recover::RebuildReport>,
) -> bool {
    let apart: std::collections::HashSet<(i32, i32, &str)> = rebuild
        .map(|r| r.not_reproducible())
        .unwrap_or_default()
        .into_iter()
        .map(|x| (x.upload_fk, x.pfile_pk, x.kind.as_str()))
        .collect();
    damaged.is_empty()
        && verify
            .missing
            .iter()
            .all(|m| apart.contains(&(m.upload_fk, m.pfile_pk, m.kind.as_str())))
}

/// The database a restore `--into` a scratch folder drops and recreates (`--db`, default
/// `<site's>_restore`): never the live site's, nor one of PostgreSQL's own.
pub fn scratch_dbname(site: &Site, asked: Option<&str>) -> Result<String, BackupError> {
    let live = site.db.dbname();
    let name = asked.map_or_else(|| format!("{live}_restore"), str::to_string);
    let what = if name == live {
        "the live site's database"
    } else if ["postgres", "template0", "template1"].contains(&name.as_str()) {
        "one of PostgreSQL's own databases"
    } else {
        return Ok(name);
    };
    Err(BackupError::Config(format!(
        "--db {name} names {what}: a restore with --into drops and recreates its database; \
         omit --db (default {live}_restore), or restore the live site without --into"
    )))
}

/// Restores a snapshot of the configured target into `site` (or a scratch copy of it).
pub fn restore(
    site: &Site,
    sched: &SchedulerConfig,
    cfg: &BackupConfig,
    unpack: &holdfast_unpack::UnpackConfig,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome, BackupError> {
    let _lock = crate::lock::acquire(&cfg.lock_file)?;
    let target = cfg.store_for(opts.from.as_deref())?;
    let target = target.as_ref();
    target.check_readable()?;
    let snap = target.find(opts.snapshot.as_deref())?;
    let chain = target.chain(&snap)?;
    tracing::info!(snapshot = %snap.name, pieces = chain.len(), "restoring");

    // The site restored into: the live one, or a scratch description of it.
    let dest = match &opts.scratch {
        None => {
            for f in ["fossology.conf", "Db.conf"] {
                let p = site.conf_dir.join(f);
                if !p.is_file() {
                    return Err(BackupError::Config(format!(
                        "{} is missing: restore FOSSology's configuration files (from the system backup) first",
                        p.display()
                    )));
                }
            }
            let mut s = site.clone();
            if let Some(n) = &opts.dbname {
                s.db = s.db.with_dbname(n);
            }
            s
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| BackupError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let dir = dir.canonicalize().map_err(|source| BackupError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let dbname = scratch_dbname(site, opts.dbname.as_deref())?;
            let mut fo = site.fo.clone();
            fo.path = dir.join("repository");
            let s = Site {
                conf_dir: dir.join("etc/fossology"),
                repo: holdfast_site::repo::Repository::from_conf(&fo),
                fo,
                db: site.db.with_dbname(&dbname),
            };
            s.write_conf().map_err(|source| BackupError::Io {
                path: s.conf_dir.display().to_string(),
                source,
            })?;
            s
        }
    };

    // A site an earlier restore left half done may have a database without FOSSology's
    // tables: the scheduler is stopped without reading its queue then.
    let was_half = holdfast_site::restoring::restoring(&dest).is_some();

    // Live restore: the scheduler stays stopped until the site is whole again. The database
    // may be gone (that is why we restore), so the queue check is skipped if it is.
    let guard = if opts.scratch.is_none() {
        let mut c = if was_half {
            None
        } else {
            crate::connect(&dest)
                .ok()
                .and_then(|mut c| holdfast_site::db::has_job_queue(&mut c).then_some(c))
        };
        Some(scheduler::quiesce(sched, c.as_mut())?)
    } else {
        None
    };

    // From here on the site is half restored until the end: the marker says so to `verify`,
    // `check-repo`, `backup` and `serve`, and stays if this run is killed or fails. Not
    // before the scheduler is stopped: a restore that cannot stop it leaves the site as it
    // was, not marked half restored.
    holdfast_site::restoring::mark(
        &dest,
        &holdfast_site::restoring::Restoring {
            snapshot: snap.name.clone(),
            started: chrono::Utc::now(),
            pid: std::process::id(),
            database: dest.db.dbname().to_string(),
        },
    )
    .map_err(|source| BackupError::Io {
        path: holdfast_site::restoring::marker_path(&dest)
            .display()
            .to_string(),
        source,
    })?;

    // The database loads while the repository copies: PostgreSQL's work and the
    // repository's reads and writes overlap.
    let load_db = || -> Result<(f64, Vec<(i32, u64)>), BackupError> {
        let t = Instant::now();
        let mut dropped = Vec::new();
        if !opts.skip_db {
            let info = &snap.manifest.database;
            crate::dump::load(
                target,
                &format!("{}/{}", snap.name, info.file),
                info,
                &dest.db,
                cfg,
            )?;
            tracing::info!(secs = t.elapsed().as_secs_f64(), db = %dest.db.dbname(), "database restored");
            let mut c = crate::connect(&dest)?;
            if let Some(o) = &snap.manifest.online {
                queue_deletions(&mut c, &o.deleted_after)?;
            }
            dropped = holdfast_site::db::uploadtree::drop_cut_off_trees(&mut c).map_err(|e| {
                BackupError::Db {
                    what: "remove the tree rows of cut-off unpacks".into(),
                    source: e,
                }
            })?;
        }
        Ok((t.elapsed().as_secs_f64(), dropped))
    };
    // Every restored file named by its content is hashed: a copy that rotted on the backup
    // server is moved aside instead of being served as the file it claims to be. Local
    // stores hash each file as they copy it; the others (and gold-mode snapshots, whose
    // `files` the rebuild makes afterwards) hash the restored tree afterwards.
    let check = !(opts.skip_repo || opts.skip_content_check);
    let content_dirs = content_dirs(&snap.manifest.repository.hosts, &dest.fo.host_names());
    let prove_while_copying = check && snap.manifest.mode != "gold";
    let copy_repo = || -> Result<(f64, Option<Vec<BadFile>>), BackupError> {
        let t = Instant::now();
        let mut proved = None;
        if !opts.skip_repo {
            let prove_under: &[String] = if prove_while_copying {
                &content_dirs
            } else {
                &[]
            };
            let (all_recorded, bad) = restore_repo(target, &snap, &dest, prove_under)?;
            if prove_while_copying {
                proved = bad;
            }
            // A backup server that is not root keeps modes but not owners: everything in
            // FOSSology's repository belongs to its user and group. A list that recorded
            // every file's owner gave them back already.
            if !all_recorded {
                let n = dest.repo.chown_all().map_err(|source| BackupError::Io {
                    path: dest.repo.root.display().to_string(),
                    source,
                })?;
                if n > 0 {
                    tracing::info!(entries = n, user = %dest.repo.owner.user, "gave restored files back to FOSSology's user");
                }
            }
            tracing::info!(secs = t.elapsed().as_secs_f64(), "repository restored");
        }
        Ok((t.elapsed().as_secs_f64(), proved))
    };
    let (db, repo) = std::thread::scope(|sc| {
        let repo = sc.spawn(copy_repo);
        let db = load_db();
        (db, repo.join())
    });
    let repo = repo.unwrap_or_else(|_| {
        Err(BackupError::Io {
            path: dest.repo.root.display().to_string(),
            source: std::io::Error::other("the repository copy panicked"),
        })
    });
    let ((db_secs, cut_off_trees), (repo_secs, proved)) = (db?, repo?);

    // Gold-mode snapshots hold no `files`: rebuild them from gold before the site runs again,
    // cut-off jobs first.
    let t = Instant::now();
    let rebuild = if snap.manifest.mode == "gold" && !opts.skip_repo {
        let mut cut_off = snap.manifest.jobs.unfinished.clone();
        for r in &snap.manifest.jobs.stale_running {
            if !cut_off.iter().any(|x| x.jq_pk == r.jq_pk) {
                cut_off.push(r.clone());
            }
        }
        let report = holdfast_recover::rebuild_after_restore(
            &dest,
            unpack,
            &cut_off,
            &holdfast_recover::RebuildOptions {
                lazy: opts.lazy_rebuild,
                jobs: 0,
            },
        )
        .map_err(|e| BackupError::Rebuild(e.to_string()))?;
        Some(report)
    } else {
        None
    };
    let rebuild_secs = t.elapsed().as_secs_f64();

    let damaged = match proved {
        _ if !check => Vec::new(),
        Some(bad) => bad,
        None => {
            let t = Instant::now();
            let bad =
                crate::content::prove_tree(&dest.repo.root, &content_dirs, "check restored files");
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                "restored files checked against their names"
            );
            fetch_again(target, &snap, &dest.repo.root, bad)?
        }
    };
    for b in &damaged {
        let from = dest.repo.root.join(&b.path);
        if std::fs::symlink_metadata(&from).is_err() {
            // Lost from the store: nothing was written to set aside.
            tracing::error!(file = %b.path, "{}", b.why);
            continue;
        }
        tracing::error!(file = %b.path, "restored file is damaged ({}); moved aside", b.why);
        let to = dest.repo.root.join(DAMAGED_DIR).join(&b.path);
        if let Some(parent) = to.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::rename(&from, &to).map_err(|source| BackupError::Io {
            path: from.display().to_string(),
            source,
        })?;
    }
    // The marker goes only once what was restored is on the disk: a power cut after it must
    // not leave short files in a site that says it is whole.
    holdfast_core::fs::syncfs(&dest.repo.root).map_err(|source| BackupError::Io {
        path: dest.repo.root.display().to_string(),
        source,
    })?;
    holdfast_site::restoring::clear(&dest).map_err(|source| BackupError::Io {
        path: holdfast_site::restoring::marker_path(&dest)
            .display()
            .to_string(),
        source,
    })?;

    target.close();
    let scheduler_restarted = guard.map(|g| match g.restart() {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("restore done, but the scheduler did not start: {e}");
            false
        }
    });

    let mut c = crate::connect(&dest)?;
    let verify =
        holdfast_site::db::verify(&mut c, &dest.repo, None).map_err(|e| BackupError::Db {
            what: "verify the repository against the database".into(),
            source: e,
        })?;
    drop(c);
    let scratch_db_dropped = opts.scratch.is_some() && opts.drop_scratch_db && {
        crate::dump::drop_database(&dest.db, cfg)?;
        true
    };
    Ok(RestoreOutcome {
        snapshot: snap.name.clone(),
        manifest: snap.manifest.clone(),
        conf_dir: dest.conf_dir.clone(),
        repo_root: dest.repo.root.clone(),
        dbname: dest.db.dbname().to_string(),
        db_secs,
        repo_secs,
        rebuild_secs,
        verify,
        damaged,
        scratch_db_dropped,
        rebuild,
        scheduler_restarted,
        cut_off_trees,
    })
}

/// Uploads an online backup saw deleted after its snapshot point, before the copy reached
/// their files: the restored database still has them, so their deletion is queued again
/// (as a cut-off delete job, which FOSSology's scheduler runs at its `--reset` start).
fn queue_deletions(c: &mut postgres::Client, uploads: &[i32]) -> Result<(), BackupError> {
    for &u in uploads {
        let row = holdfast_site::db::queue_cut_off_deletion(c, u).map_err(|e| BackupError::Db {
            what: format!("queue the deletion of upload {u} again"),
            source: e,
        })?;
        match row {
            Some(jq) => tracing::warn!(
                upload = u,
                jobqueue = jq,
                "upload deleted on the site while this snapshot was taken: its deletion is queued again"
            ),
            None => tracing::error!(
                upload = u,
                "upload deleted on the site while this snapshot was taken: not queued again (not in the dump, or no user to run it); its files are missing"
            ),
        }
    }
    Ok(())
}

/// The folders of content-named files a restore proves: those of every host the snapshot's
/// site had and the new one has (a new server may name its disks otherwise), and the
/// host-less `gold` and `files` where `[REPOSITORY]` lines leave prefixes uncovered.
fn content_dirs(snapshot_hosts: &[String], dest_hosts: &[String]) -> Vec<String> {
    let mut hosts: Vec<&String> = snapshot_hosts.iter().chain(dest_hosts).collect();
    hosts.sort();
    hosts.dedup();
    let mut out: Vec<String> = hosts
        .iter()
        .flat_map(|h| ["gold", "files"].map(|t| format!("{h}/{t}")))
        .collect();
    out.extend(["gold".to_string(), "files".to_string()]);
    out
}

/// Copies the repository of `snap` (its whole chain, base first) back into the site.
/// Local targets: [`fastcopy`] (several files in flight, hard links made as files are
/// written, folders as FOSSology makes them); other stores: their own restore. Then every
/// file gets the mode, owner and mtime the snapshot's list recorded. Returns true when the
/// list recorded them for every file, and, when the copy was local, the content-named files
/// under `prove_under` that did not match their name as they were copied (other stores
/// prove nothing here: `None`).
///
/// [`fastcopy`]: crate::fastcopy
fn restore_repo(
    target: &dyn Store,
    snap: &holdfast_store::Snapshot,
    dest: &Site,
    prove_under: &[String],
) -> Result<(bool, Option<Vec<BadFile>>), BackupError> {
    use holdfast_store::pool::Entry;
    dest.repo
        .create_dir_all(&dest.repo.root)
        .map_err(|source| BackupError::Io {
            path: dest.repo.root.display().to_string(),
            source,
        })?;
    // The snapshot's list and what it recorded (older rolling and rotating snapshots and
    // online rolling nights have none of their own). A list that is there but cannot be
    // read, or names places outside the repository, stops the restore.
    let t0 = Instant::now();
    let listed: Option<Vec<Entry>> = target.own_entries(snap)?;
    tracing::debug!(secs = t0.elapsed().as_secs_f64(), "snapshot list read");
    let all_recorded = listed
        .as_ref()
        .is_some_and(|l| l.iter().all(|e| e.meta.is_some()));
    let chain = target.chain(snap)?;
    let local = |s: &holdfast_store::Snapshot| {
        let t = target.as_target()?;
        let home = t.snapshot_home(s).ok()?;
        Some((t.local_path(&home.base)?, home.naming))
    };
    if chain.iter().all(|s| local(s).is_some()) {
        let recorded: std::collections::HashMap<&str, holdfast_store::pool::Meta> = listed
            .iter()
            .flatten()
            .filter_map(|e| e.meta.map(|m| (e.path.as_str(), m)))
            .collect();
        let listed_paths: std::collections::HashSet<&str> =
            listed.iter().flatten().map(|e| e.path.as_str()).collect();
        let make_dir = |p: &std::path::Path| dest.repo.make_dir(p);
        let mut damaged = Vec::new();
        // Newest first: a file in two pieces (a rotten copy healed into a later one) is
        // taken from the newest alone.
        let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
        for s in chain.iter().rev() {
            // What this piece holds: the list (a lone snapshot, or the pool), else its own
            // files (each piece of a rotating chain holds what the earlier ones lack).
            // A piece of a chain may hold files deleted since (the base keeps them): only
            // what the tip's list names is restored.
            let items: Vec<Entry> = match &listed {
                Some(l) if chain.len() == 1 => l.clone(),
                _ => target
                    .snapshot_files(s)?
                    .into_iter()
                    .filter(|p| listed.is_none() || listed_paths.contains(p.as_str()))
                    .filter(|p| !taken.contains(p))
                    .map(|p| Entry {
                        meta: recorded.get(p.as_str()).copied(),
                        path: p,
                    })
                    .collect(),
            };
            if chain.len() > 1 {
                taken.extend(items.iter().map(|e| e.path.clone()));
            }
            let (src, naming) = local(s).expect("checked above");
            let c = crate::fastcopy::copy(
                &src,
                naming,
                &dest.repo.root,
                &items,
                &make_dir,
                prove_under,
                &holdfast_store::store::restore_what(&target.display(), &s.name),
            )?;
            tracing::info!(
                snapshot = %s.name,
                files = c.files,
                bytes = c.bytes,
                linked = c.linked,
                already_there = c.skipped,
                proved = c.proved,
                damaged = c.damaged.len(),
                "repository files copied back"
            );
            damaged.extend(c.damaged);
        }
        // Each path comes from one piece; reported once all the same.
        damaged.sort();
        damaged.dedup_by(|a, b| a.path == b.path);
        return Ok((all_recorded, Some(damaged)));
    }
    if let Some(damaged) =
        crate::streamed::restore(target, &chain, listed.as_deref(), dest, prove_under)?
    {
        let l = listed.as_ref().expect("streamed from a list");
        let n = crate::fastcopy::apply_all(&dest.repo.root, l)?;
        tracing::info!(files = n, "recorded modes, owners and mtimes given back");
        return Ok((all_recorded, Some(damaged)));
    }
    if let Some(l) = &listed {
        // Folders as FOSSology makes them (a pool of objects has none to copy).
        let make_dir = |p: &std::path::Path| dest.repo.make_dir(p);
        crate::fastcopy::make_dirs(&dest.repo.root, l, &make_dir)?;
    }
    target.restore_repository(snap, &dest.repo.root)?;
    if let Some(l) = &listed {
        let n = crate::fastcopy::apply_all(&dest.repo.root, l)?;
        tracing::info!(files = n, "recorded modes, owners and mtimes given back");
    }
    Ok((all_recorded, None))
}

/// Files a restore over ssh left that do not prove their names, fetched from the store once
/// more and proved again: rsync keeps a file already there with its size (an interrupted
/// restore's, or a rotten copy the live site had), which the store may hold good. Returns
/// those still bad.
fn fetch_again(
    target: &dyn Store,
    snap: &holdfast_store::Snapshot,
    root: &std::path::Path,
    bad: Vec<BadFile>,
) -> Result<Vec<BadFile>, BackupError> {
    if bad.is_empty() {
        return Ok(bad);
    }
    tracing::warn!(
        files = bad.len(),
        "restored files do not match their names: fetching them again"
    );
    for b in &bad {
        let _ = std::fs::remove_file(root.join(&b.path));
    }
    let paths: Vec<String> = bad.iter().map(|b| b.path.clone()).collect();
    target.fetch_files(snap, &paths, root)?;
    Ok(bad
        .into_iter()
        .filter_map(|b| match crate::content::prove_file(&root.join(&b.path)) {
            crate::content::Proof::Good(_) => None,
            crate::content::Proof::Bad(why) => Some(BadFile { path: b.path, why }),
            crate::content::Proof::Unprovable => Some(b),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_recover::{MissingFile, MissingReason, RebuildReport};
    use holdfast_site::db::Reference;

    fn reference(pfile_pk: i32) -> Reference {
        Reference {
            upload_fk: 7,
            kind: "files".into(),
            pfile_pk,
            name: format!("n{pfile_pk}"),
            size: 1,
        }
    }

    fn explained(pfile_pk: i32, reason: MissingReason) -> MissingFile {
        MissingFile {
            upload_fk: 7,
            kind: "files".into(),
            pfile_pk,
            name: format!("n{pfile_pk}"),
            size: 1,
            path: None,
            reason,
        }
    }

    #[test]
    fn only_artifacts_that_cannot_be_made_again_leave_a_restore_whole() {
        let verify = |pks: &[i32]| VerifyReport {
            checked: 10,
            missing: pks.iter().map(|&p| reference(p)).collect(),
            slimmed: Vec::new(),
            being_deleted: Vec::new(),
        };
        let meta = MissingReason::NotReproducible {
            artifact: "artifact.meta".into(),
            why: "names the path".into(),
        };
        let rebuild = RebuildReport {
            missing: vec![
                explained(1, meta.clone()),
                explained(2, MissingReason::Unexplained),
            ],
            ..Default::default()
        };
        assert!(whole(&verify(&[]), &[], None));
        assert!(
            !whole(&verify(&[1]), &[], None),
            "a full restore misses nothing"
        );
        assert!(whole(&verify(&[1]), &[], Some(&rebuild)));
        assert!(!whole(&verify(&[1, 2]), &[], Some(&rebuild)), "data lost");
        assert!(!whole(&verify(&[3]), &[], Some(&rebuild)), "not explained");
        let bad = crate::content::BadFile {
            path: "a/files/x".into(),
            why: "flipped".into(),
        };
        assert!(!whole(&verify(&[]), &[bad], Some(&rebuild)));
    }
}
