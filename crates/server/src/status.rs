//! The server's status file (`<state_dir>/server-status.json`): what the last snapshot and
//! size runs found per account. The size job writes the sizes, the snapshot job the
//! snapshot times; `holdfast serve` renders it as metrics without walking any tree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE: &str = "server-status.json";

/// One account as the last runs saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountStatus {
    pub home: PathBuf,
    pub quota: Option<u64>,
    pub backup_bytes: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    pub backup_allocated: Option<u64>,
    pub snapshot_allocated: Option<u64>,
    pub measured_at: Option<DateTime<Utc>>,
    /// Time of the newest snapshot folder.
    pub last_snapshot: Option<DateTime<Utc>>,
    pub layout: Option<String>,
    /// The last run's error for this account (None when it went fine).
    pub error: Option<String>,
}

/// One job's last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunStatus {
    pub at: Option<DateTime<Utc>>,
    pub accounts: u32,
    pub errors: u32,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub host: String,
    pub accounts: BTreeMap<String, AccountStatus>,
    /// By job: `snapshot`, `size`.
    pub runs: BTreeMap<String, RunStatus>,
}

impl Status {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    /// Reads the status file; a missing or unreadable file gives an empty status (and a
    /// warning for the unreadable case), since it is rebuilt by the next run.
    pub fn load(state_dir: &Path) -> Status {
        let p = Self::path(state_dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", p.display());
                Status::default()
            }),
            Err(_) => Status::default(),
        }
    }

    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::directory::write_atomic(&Self::path(state_dir), &text)
    }
}
