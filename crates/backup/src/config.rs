//! `[backup]` in holdfast.toml.

use holdfast_store::{Layout, LayoutKind, SshOptions, Target};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a backup copies from the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Database, gold, files, logs and license: a restore is whole at once.
    #[default]
    Full,
    /// Database, gold, license and logs: `files` is rebuilt from gold after a restore.
    Gold,
}

impl Mode {
    /// Repository types copied in this mode.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Mode::Full => &["gold", "files", "logs", "license"],
            Mode::Gold => &["gold", "license", "logs"],
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Gold => "gold",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As the plan says (`pg_dumpall | gzip`).
    #[default]
    Gzip,
    /// Faster and smaller.
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// A local folder, or `ssh://user@host[:port]/path` on the backup server.
    pub target: String,
    /// `rolling` (current + day copies, default) or `rotating` (base + incrementals).
    pub layout: LayoutKind,
    /// Rolling: snapshots kept, `current` included.
    pub keep: usize,
    /// Rotating: runs per cycle, base included (a new full base every N runs; at most 20).
    pub full_every: usize,
    /// `full` or `gold` (database, gold, license, logs; files rebuilt after restore).
    pub mode: Mode,
    /// `gzip` or `zstd`, for the database dump.
    pub compression: Compression,
    /// Compression level (default: gzip 6, zstd 3).
    pub compression_level: Option<i32>,
    /// SSH private key for remote targets.
    pub ssh_identity: Option<PathBuf>,
    /// Extra `ssh` arguments, e.g. ["-o", "StrictHostKeyChecking=accept-new"].
    pub ssh_options: Vec<String>,
    /// Daily backup time `HH:MM` (local) for `holdfast schedule install` and scheduler.xml.
    pub schedule: String,
    /// The cron file `holdfast schedule install` writes.
    pub cron_file: PathBuf,
    /// Lock file that keeps two backups or restores from running at once. Its folder must be
    /// writable by root (or holdfast's user) alone; it is created 0700 when missing.
    pub lock_file: PathBuf,
    /// Extra rsync options for the repository copy, e.g. ["--bwlimit=50m"].
    pub rsync_args: Vec<String>,
    /// `pg_dumpall` and `psql` programs (must be at least the server's major version).
    pub pg_dumpall: String,
    pub psql: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            target: "/var/backups/holdfast".into(),
            layout: LayoutKind::Rolling,
            keep: 7,
            full_every: 7,
            mode: Mode::Full,
            compression: Compression::Gzip,
            compression_level: None,
            ssh_identity: None,
            ssh_options: Vec::new(),
            schedule: "02:30".into(),
            cron_file: PathBuf::from("/etc/cron.d/holdfast"),
            lock_file: PathBuf::from("/run/holdfast/backup.lock"),
            rsync_args: Vec::new(),
            pg_dumpall: "pg_dumpall".into(),
            psql: "psql".into(),
        }
    }
}

impl BackupConfig {
    pub fn target(&self) -> Result<Target, holdfast_store::StoreError> {
        Target::parse(
            &self.target,
            SshOptions {
                identity: self.ssh_identity.clone(),
                options: self.ssh_options.clone(),
            },
        )
    }

    pub fn layout(&self) -> Layout {
        Layout {
            kind: self.layout,
            keep: self.keep.max(1),
            full_every: self.full_every.clamp(1, 20),
        }
    }

    /// `schedule` as (hour, minute).
    pub fn schedule_time(&self) -> Result<(u32, u32), crate::BackupError> {
        let bad = || {
            crate::BackupError::Config(format!(
                "backup.schedule = {:?} is not a time HH:MM (e.g. \"02:30\")",
                self.schedule
            ))
        };
        let (h, m) = self.schedule.trim().split_once(':').ok_or_else(bad)?;
        let h: u32 = h.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok((h, m))
    }
}
