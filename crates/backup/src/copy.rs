//! Copy jobs (`[[backup.copy]]`): each new snapshot of the primary target replicated to other
//! stores, after the backup or on its own (`holdfast copy`, like a PBS sync job). The work
//! itself (what the copy lacks, sending, proof on arrival, commit, retention) is
//! [`holdfast_store::copy`]'s; this module picks the copies and takes the locks.
//!
//! Locks: a copy job takes the site lock shared (never beside a backup, restore or prune of
//! the primary, whose snapshots it reads) and its copy's own lock exclusively (one job per
//! copy). After a backup, the backup's exclusive site lock covers the primary.

use crate::config::{BackupConfig, CopyConfig};
use crate::BackupError;
use holdfast_store::copy::CopyRun;
use holdfast_store::Store;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One copy job's result: what it did, or why it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyResult {
    pub name: String,
    pub target: String,
    pub run: Option<CopyRun>,
    pub error: Option<String>,
}

impl CopyResult {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The lock file of copy `name`: beside the site lock.
pub fn lock_path(cfg: &BackupConfig, name: &str) -> PathBuf {
    let mut p = cfg.lock_file.clone().into_os_string();
    p.push(format!(".copy-{name}"));
    PathBuf::from(p)
}

fn run_one(
    cfg: &BackupConfig,
    primary: &dyn Store,
    copy: &CopyConfig,
) -> Result<CopyRun, BackupError> {
    let _lock = crate::lock::acquire(&lock_path(cfg, &copy.name))?;
    let dest = cfg.copy_store(copy)?;
    let r = holdfast_store::copy::run(
        &copy.name,
        primary,
        dest.as_ref(),
        copy.keep.unwrap_or(cfg.keep),
        &cfg.rsync_args,
        &cfg.dump_spool,
    );
    dest.close();
    Ok(r?)
}

fn result(copy: &CopyConfig, r: Result<CopyRun, BackupError>) -> CopyResult {
    if let Err(e) = &r {
        tracing::error!(copy = %copy.name, "copy failed: {e}");
    }
    CopyResult {
        name: copy.name.clone(),
        target: copy.target.clone(),
        error: r.as_ref().err().map(|e| e.to_string()),
        run: r.ok(),
    }
}

/// Runs the copies marked `after_backup` (the caller holds the site lock). A failing copy
/// does not fail the backup: its error is in the result.
pub fn after_backup(cfg: &BackupConfig, primary: &dyn Store) -> Vec<CopyResult> {
    cfg.copy
        .iter()
        .filter(|c| c.after_backup)
        .map(|c| result(c, run_one(cfg, primary, c)))
        .collect()
}

/// What one copy job would do ([`preview`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPreview {
    pub name: String,
    pub target: String,
    /// The primary's snapshots it would copy.
    pub copy: Vec<String>,
    /// The copy's snapshots its `keep` would then remove.
    pub remove: Vec<String>,
}

/// `holdfast copy --dry-run [NAME]`: what each copy job would do; nothing is written.
pub fn preview(cfg: &BackupConfig, name: Option<&str>) -> Result<Vec<CopyPreview>, BackupError> {
    cfg.check_copies()?;
    let copies: Vec<&CopyConfig> = match name {
        Some(n) => vec![cfg.copy_named(n)?],
        None => cfg.copy.iter().collect(),
    };
    let primary = cfg.store()?;
    primary.check_readable()?;
    let mut out = Vec::new();
    for c in copies {
        let dest = cfg.copy_store(c)?;
        let (copy, gone) = holdfast_store::copy::preview(
            primary.as_ref(),
            dest.as_ref(),
            c.keep.unwrap_or(cfg.keep),
        )?;
        out.push(CopyPreview {
            name: c.name.clone(),
            target: c.target.clone(),
            copy,
            remove: gone,
        });
    }
    Ok(out)
}

/// `holdfast copy [NAME]`: one copy job, or every configured one.
pub fn copy(cfg: &BackupConfig, name: Option<&str>) -> Result<Vec<CopyResult>, BackupError> {
    cfg.check_copies()?;
    let copies: Vec<&CopyConfig> = match name {
        Some(n) => vec![cfg.copy_named(n)?],
        None => cfg.copy.iter().collect(),
    };
    if copies.is_empty() {
        return Err(BackupError::Config(
            "no [[backup.copy]] in holdfast.toml: add one (name, target, keep) to copy snapshots elsewhere".into(),
        ));
    }
    let _site = crate::lock::acquire_shared(&cfg.lock_file)?;
    let primary = cfg.store()?;
    primary.check_readable()?;
    let out = copies
        .into_iter()
        .map(|c| result(c, run_one(cfg, primary.as_ref(), c)))
        .collect();
    primary.close();
    Ok(out)
}
