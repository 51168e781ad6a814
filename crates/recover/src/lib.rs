//! Repository checks and recovery of missing files from gold.
//!
//! The gold-only model: a backup keeps the database and each upload's original file (its
//! *gold*), not the unpacked `files`. Everything in `files` can be rebuilt by unpacking the
//! gold again with the unpacker's repository-only switch, which writes repository files and
//! leaves every table alone. This crate holds the three ways that rebuild happens:
//!
//! - [`check`]: which uploads have files missing from the repository, how many, how many
//!   bytes, and whether their gold is still there (`holdfast check-repo`);
//! - [`rebuild`]: after a gold-only restore, reunpack every upload (the ones whose jobs the
//!   backup cut off first), in parallel, resumable, then hand the cut-off jobs back to
//!   FOSSology's scheduler and explain every file still missing;
//! - [`queue`]: recovery on demand, a job table `holdfast_recovery` that holdfast creates in
//!   FOSSology's database; `holdfast recover` and the web UI queue work there and
//!   `holdfast serve` works it. A unique partial index keeps one active job per upload, so
//!   the same upload is never reunpacked twice at once.
//!
//! [`damage`] walks the repository for what a power cut leaves: files under their final
//! name that are shorter than the name says, and writers' temporary files.
//!
//! [`explain`] turns a file still missing after a reunpack into a reason an operator can act
//! on: the gold itself is gone, a member failed to unpack, or an artifact that cannot be
//! reproduced byte for byte (which is not data loss).

pub mod check;
pub mod damage;
pub mod explain;
pub mod queue;
pub mod rebuild;
pub mod work;

pub use check::{check_repo, UploadCheck};
pub use explain::{MissingFile, MissingReason};
pub use queue::{RecoveryJob, RecoveryQueue, RecoveryState};
pub use rebuild::{
    one_at_a_time, rebuild, rebuild_after_restore, recover_upload, RebuildOptions, RebuildReport,
    UploadOutcome,
};
pub use work::{recover_now, work_job, work_until_idle};

/// Errors of this crate; each names the upload or table concerned.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("database: {0}")]
    Db(#[from] postgres::Error),
    #[error("upload {0} does not exist")]
    NoUpload(i32),
    #[error("upload {upload}: its gold file {path} is missing, so it cannot be rebuilt (restore the gold from a backup first)")]
    GoldMissing { upload: i32, path: String },
    #[error("upload {upload}: unpack failed: {message}")]
    Unpack { upload: i32, message: String },
    #[error(transparent)]
    Interrupted(#[from] holdfast_site::interrupt::Interrupted),
    #[error("recovery job {0} does not exist")]
    NoJob(i64),
}

pub type Result<T, E = RecoverError> = std::result::Result<T, E>;
