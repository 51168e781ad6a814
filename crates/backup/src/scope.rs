//! What one backup run copies from a site and the manifest it records: shared by the run
//! that stops the scheduler (`backup`) and the one that never does (`online`), so both
//! snapshots name the same folders and describe themselves the same way (and `backup
//! --dry-run` says what the run would copy).

use crate::config::BackupConfig;
use chrono::{DateTime, Utc};
use holdfast_site::Site;
use holdfast_store::manifest::{DumpInfo, JobsInfo, Manifest, RepoInfo, Timings, DB_DIR};
use holdfast_store::rsync::{RsyncStats, EXTRA_DIRS};
use holdfast_store::{Plan, Source};

/// The repository folders and the dump's place in the snapshot.
pub struct Scope {
    /// The file types the mode copies (`gold`, `files`, ...).
    pub types: &'static [&'static str],
    /// Folders under the repository root: each host's folder of each type, then the extras.
    pub dirs: Vec<String>,
    /// The dump's path inside the snapshot (`db/<dbname>.sql.<ext>`).
    pub dump_rel: String,
}

impl Scope {
    pub fn of(site: &Site, cfg: &BackupConfig) -> Self {
        let types = cfg.mode.types();
        let mut dirs = site.repo.data_dirs(types);
        dirs.extend(EXTRA_DIRS.iter().map(|d| d.to_string()));
        let dump_rel = format!(
            "{DB_DIR}/{}.sql.{}",
            site.db.dbname(),
            cfg.compression.extension()
        );
        Scope {
            types,
            dirs,
            dump_rel,
        }
    }

    /// The repository as the store's copy reads it.
    pub fn source<'a>(&'a self, site: &'a Site, cfg: &'a BackupConfig) -> Source<'a> {
        Source {
            root: &site.repo.root,
            dirs: &self.dirs,
            rsync_args: &cfg.rsync_args,
        }
    }

    /// What the snapshot holds of the repository, counted from `stats` (whose `files` and
    /// `bytes` are the whole snapshot's); the run adds how it found them.
    pub(crate) fn repository(&self, site: &Site, stats: &RsyncStats) -> RepoInfo {
        RepoInfo {
            root: site.repo.root.display().to_string(),
            hosts: site.fo.host_names(),
            types: self.types.iter().map(|s| s.to_string()).collect(),
            files: stats.files,
            bytes: stats.bytes,
            new_files: stats.transferred_files,
            new_bytes: stats.transferred_bytes,
            ..Default::default()
        }
    }
}

/// A manifest of what every run records alike; the run sets its jobs, timings and (online)
/// snapshot point. Its sequence is given by the store as it commits.
pub(crate) fn manifest(
    site_name: &str,
    cfg: &BackupConfig,
    plan: &Plan,
    started: DateTime<Utc>,
    database: DumpInfo,
    repository: RepoInfo,
) -> Manifest {
    Manifest {
        format: 1,
        site: site_name.to_string(),
        mode: cfg.mode.as_str().into(),
        layout: cfg.layout.to_string(),
        kind: plan.kind.clone(),
        builds_on: plan.builds_on.clone(),
        holdfast_version: env!("CARGO_PKG_VERSION").into(),
        sequence: 0,
        started,
        finished: Utc::now(),
        database,
        repository,
        jobs: JobsInfo::default(),
        timings: Timings::default(),
        copied: None,
        online: None,
    }
}
