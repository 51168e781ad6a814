//! Site backup, restore and verification: the plan's "backup and restore entire repository".
//!
//! [`backup::backup`] stops FOSSology's scheduler (proving every agent is gone), streams
//! `pg_dumpall` through gzip or zstd to the target, copies every `[REPOSITORY]` host folder
//! with rsync (hard links kept, change judged by name and size, `ununpack` leftovers left
//! out), writes the manifest, makes the snapshot visible and starts the scheduler again.
//! [`restore::restore`] reverses it and verifies the result. Where snapshots live and how they
//! are laid out is `holdfast_store`'s business; this crate only orchestrates. [`config`] is the
//! `[backup]` section, [`schedule`] the cron entry, [`superuser`] how `pg_dumpall` and the
//! restore reach PostgreSQL as a superuser (FOSSology's own role `fossy` is not one).

pub mod backup;
pub mod config;
pub mod content;
pub mod copy;
pub mod dump;
pub mod fastcopy;
mod heal;
pub mod lock;
pub mod nightly;
pub mod online;
pub mod overview;
pub mod precopy;
pub mod restore;
pub mod schedule;
pub mod scope;
mod steps;
mod streamed;
pub mod superuser;
pub mod walk;

pub use backup::{backup, BackupOutcome};
pub use config::{BackupConfig, Compression, CopyConfig, Mode};
pub use restore::{restore, RestoreOptions, RestoreOutcome};
pub use superuser::{Superuser, SuperuserConfig};

use holdfast_site::Site;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Lock(#[from] holdfast_core::LockError),
    #[error(transparent)]
    Store(#[from] holdfast_store::StoreError),
    #[error(transparent)]
    Scheduler(#[from] holdfast_site::scheduler::SchedulerError),
    #[error("cannot {what}: {}", pg_why(.source))]
    Db {
        what: String,
        source: postgres::Error,
    },
    #[error("database dump failed: {0}")]
    Dump(String),
    #[error("database restore failed: {0}")]
    Load(String),
    #[error("rebuilding files from gold failed: {0}")]
    Rebuild(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Restoring(holdfast_site::restoring::Restoring),
    #[error("snapshot {0} was pruned or replaced by a backup while it was verified: its findings are void (verify the snapshots there are now)")]
    Vanished(String),
    #[error(
        "interrupted by a signal; the scheduler was started again and nothing half-made is visible"
    )]
    Interrupted,
}

impl BackupError {
    /// True when another run holds the lock (exit code 4).
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            BackupError::Lock(holdfast_core::LockError::Held { .. })
        )
    }

    /// True when a stop signal ended the run.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            BackupError::Interrupted
                | BackupError::Store(holdfast_store::StoreError::Interrupted)
                | BackupError::Scheduler(holdfast_site::scheduler::SchedulerError::Interrupted(_))
        )
    }
}

/// The reason inside a `postgres::Error` (its Display alone says only "db error").
pub fn pg_why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Connects to the site's database, naming the server, user and `Db.conf` on failure.
pub fn connect(site: &Site) -> Result<postgres::Client, BackupError> {
    site.connect().map_err(|e| BackupError::Db {
        what: format!(
            "connect to database {} on {}:{} as {} (settings from {})",
            site.db.dbname(),
            site.db.host(),
            site.db.port(),
            site.db.user(),
            site.conf_dir.join("Db.conf").display()
        ),
        source: e,
    })
}

/// Refuses to go on while a restore of `site` is unfinished (its marker is there).
pub fn refuse_if_restoring(site: &Site) -> Result<(), BackupError> {
    match holdfast_site::restoring::restoring(site) {
        Some(r) => Err(BackupError::Restoring(r)),
        None => Ok(()),
    }
}

/// Starts the scheduler when an interrupted run left it stopped (FOSSology's scheduler note
/// is there, it is not running, and no run holds the lock). The commands that work on the
/// site call this first (`backup` and `restore` in their own stop and start; not `unpack`
/// and `recover`, which repair what the scheduler's start would rerun), so after a
/// `kill -9` the scheduler runs again at the next of them, or at `scheduler ensure`, not
/// the next night. Returns what it did.
///
/// A site whose restore is unfinished keeps its scheduler stopped: agents must not run
/// against a half-loaded database. Then the message says so and nothing is started.
pub fn resume_scheduler(
    cfg: &BackupConfig,
    sched: &holdfast_site::scheduler::SchedulerConfig,
    site: Option<&Site>,
) -> Result<Option<String>, BackupError> {
    if holdfast_core::lock::is_held(&cfg.lock_file) {
        return Ok(None); // that run has the scheduler stopped on purpose
    }
    if let Some(r) = site.and_then(holdfast_site::restoring::restoring) {
        if !holdfast_site::scheduler::found(sched).running {
            return Ok(Some(format!("the scheduler stays stopped: {r}")));
        }
        return Ok(None);
    }
    let _lock = match lock::acquire(&cfg.lock_file) {
        Ok(l) => l,
        Err(e) if e.is_locked() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(holdfast_site::scheduler::resume_stopped(sched)?)
}
