//! Backup targets, snapshot layouts and manifests: everything on the backup server's side of
//! a FOSSology backup.
//!
//! Every target implements [`Store`] ([`store`]): plan, transfer, file list, commit, proof,
//! retention, garbage collection, listing and restore. `holdfast_backup` orchestrates a run
//! through it and never sees a layout's folders or rsync's options.
//!
//! A [`target::Target`] is a local folder or `ssh://user@host[:port]/path`; copying goes
//! through the system `rsync` ([`rsync`]), over the system `ssh` for remote targets, except
//! the files a night names to a local folder, which [`local_send`] copies many at a time. Under the
//! target, each snapshot is a folder holding `db/` (the compressed `pg_dumpall`),
//! `repository/` (the repository's host folders, hard links kept) and `manifest.json`
//! ([`manifest`]). [`layout`] decides how snapshots are named, linked to each other, made
//! visible (write aside in `.partial`, then rename) and pruned. [`monitor`] writes the stoney
//! client files (`.sepiola_backup/backup{Started,Ended}.xml`, `scheduler.xml`).

pub mod copy;
pub mod folders;
pub mod layout;
pub mod link;
pub mod local_send;
pub mod manifest;
pub mod monitor;
pub mod objects;
pub mod pool;
pub mod proof;
mod remote_shell;
pub mod rsync;
#[cfg(test)]
mod server_sh;
pub mod store;
pub mod stream;
pub mod subvolume;
pub mod target;
mod target_store;

pub use layout::{Layout, LayoutKind, Snapshot};
pub use manifest::Manifest;
pub use store::{DumpSent, Files, FolderMaker, Place, Plan, Source, Store, TransferStats, Upload};
pub use subvolume::DayTrees;
pub use target::{SshOptions, Target};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("backup target {spec:?} is not usable: {why}")]
    BadTarget { spec: String, why: String },
    #[error("backup target {target} is unreachable: {why}")]
    Unreachable { target: String, why: String },
    #[error(
        "backup target {target} does not exist: a wrong backup.target (or --target), or the \
         backup disk is not mounted"
    )]
    NotThere { target: String },
    #[error("on backup target {target}, `{what}` failed: {why}")]
    Remote {
        target: String,
        what: String,
        why: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} failed (rsync exit {code}): {why}")]
    Rsync {
        what: String,
        code: i32,
        why: String,
    },
    #[error("{}", match name {
        Some(n) => format!("no snapshot named {n:?} on {target} (see `holdfast snapshots`)"),
        None => format!("no complete snapshot on {target} yet (run `holdfast backup` first)"),
    })]
    NoSnapshot {
        target: String,
        name: Option<String>,
    },
    #[error("on {target}, {what} is damaged")]
    Damaged { target: String, what: String },
    #[error("interrupted by a signal")]
    Interrupted,
}
