//! The restore-in-progress marker: `<repository root>/.holdfast-restore-in-progress`.
//!
//! A restore writes it before it drops the database or copies a file, and removes it only
//! once the database and the repository are both back. A restore that was killed or failed
//! leaves it, so a half-restored site is never called whole: `verify`, `check-repo`, `backup`
//! (which would save the half site over good snapshots) and `serve` ask [`restoring`] first.
//! It sits in the repository root because that is where the damage is, it survives a
//! reboot, and backups never copy it (they copy only the host and extra folders).

use crate::Site;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const MARKER: &str = ".holdfast-restore-in-progress";

/// What the marker says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restoring {
    pub snapshot: String,
    pub started: chrono::DateTime<chrono::Utc>,
    pub pid: u32,
    /// The database being restored.
    pub database: String,
}

impl std::fmt::Display for Restoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a restore of snapshot {} into database {} started {} (pid {}) did not finish: \
             the site is half restored. Run `holdfast restore {}` again to complete it",
            self.snapshot,
            self.database,
            self.started.format("%Y-%m-%d %H:%M UTC"),
            self.pid,
            self.snapshot
        )
    }
}

pub fn marker_path(site: &Site) -> PathBuf {
    site.repo.root.join(MARKER)
}

/// The unfinished restore of `site`, if one left its marker.
pub fn restoring(site: &Site) -> Option<Restoring> {
    let p = marker_path(site);
    let data = std::fs::read(&p).ok()?;
    Some(serde_json::from_slice(&data).unwrap_or_else(|_| Restoring {
        snapshot: "(unreadable marker)".into(),
        started: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        pid: 0,
        database: site.db.dbname().to_string(),
    }))
}

/// Writes the marker (creating the repository root when needed), synced to disk.
pub fn mark(site: &Site, r: &Restoring) -> std::io::Result<()> {
    std::fs::create_dir_all(&site.repo.root)?;
    let json = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    holdfast_core::fs::write_atomic(&marker_path(site), &json, 0o600)
}

/// Removes the marker once the restore is complete.
pub fn clear(site: &Site) -> std::io::Result<()> {
    match std::fs::remove_file(marker_path(site)) {
        Ok(()) => holdfast_core::fs::sync_dir(&site.repo.root),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
