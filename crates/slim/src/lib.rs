//! Repository slimming: classify what the unpacker stored, remove what can be rebuilt.
//!
//! FOSSology's unpacker stores three kinds of files in `files`: *leaves* (what agents scan),
//! *containers* (archives, compressed files, packages: unpacked into leaves, so their own
//! bytes are only needed to unpack them again, and the upload's gold can do that) and
//! *artifacts* (`artifact.meta` and the like). The class comes from each `uploadtree` row's
//! `ufile_mode` bits ([`inventory::Class`]).
//!
//! [`inventory::Inventory`] reads every upload, row and pfile once and decides per pfile,
//! site-wide, whether its `files` entry may go: a container is kept when it is any upload's
//! gold, when any upload uses the same pfile as a leaf or artifact, when an upload that
//! contains it has lost its gold, when unpacking it left no children, or when its inode has
//! other links (removing it would free nothing). [`report::report`] turns that into files and
//! bytes per upload and in total; [`apply::apply`] removes the safe containers, recording each
//! in FOSSology's database table `holdfast_slimmed` first, so that `verify`, `check-repo` and
//! the restore verification call the absent file "slimmed, rebuildable" instead of damage
//! ([`holdfast_site::db::slimmed_pfiles`]), and recovery from gold brings it back unchanged.

pub mod apply;
pub mod inventory;
pub mod report;

pub use apply::{apply, record_unstored, ApplyOptions, ApplyReport, Slimmed};
pub use inventory::{Class, Inventory, KeepReason, Verdict};
pub use report::{report, Count, Report, UploadReport};

use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    #[error("database: {0}")]
    Db(#[from] postgres::Error),
    #[error("upload {upload}: uploadtree table name {table:?} is not a plain identifier (fix upload.uploadtree_tablename)")]
    BadTable { upload: i32, table: String },
    #[error("cannot remove {path}: {source} (run as the repository's owner, fossy, or root)")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upload {0} does not exist")]
    NoUpload(i32),
    #[error(transparent)]
    Interrupted(#[from] holdfast_site::interrupt::Interrupted),
}

pub type Result<T, E = SlimError> = std::result::Result<T, E>;

/// The containers whose absence from `files` is intended (see
/// [`holdfast_site::db::slimmed_pfiles`]); empty when nothing was ever slimmed.
pub fn slimmed(c: &mut postgres::Client) -> Result<HashSet<i32>> {
    Ok(holdfast_site::db::slimmed_pfiles(c)?)
}

/// Reads the site and builds the report (`only`: one upload's row; totals stay site-wide).
pub fn site_report(
    c: &mut postgres::Client,
    repo: &holdfast_site::repo::Repository,
    only: Option<i32>,
) -> Result<Report> {
    let inv = Inventory::load(c, repo)?;
    if let Some(u) = only {
        if !inv.uploads.contains_key(&u) {
            return Err(SlimError::NoUpload(u));
        }
    }
    Ok(report::report(&inv, only))
}
