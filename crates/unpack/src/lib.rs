//! FOSSology-compatible recursive unpacker.

use holdfast_site::Site;
use serde::{Deserialize, Serialize};

/// `[unpack]` in holdfast.toml: limits against hostile archives and parallelism.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnpackConfig {}

/// How to unpack an existing upload.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Write repository files only; leave every table untouched (the plan's switch).
    pub repo_only: bool,
    /// Do not keep containers in `files` (see repository slimming).
    pub slim: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnpackSummary {
    pub upload_pk: i32,
    /// Regular files seen (leaves, containers, artifacts).
    pub files: u64,
    pub bytes: u64,
    /// Files written to the repository (the others were already there).
    pub written: u64,
    /// Members that could not be unpacked: which archive, which member, why.
    pub errors: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("upload {0} does not exist")]
    NoUpload(i32),
    #[error("upload {upload}: its gold file {path} is missing, so it cannot be rebuilt")]
    GoldMissing { upload: i32, path: String },
    #[error("not built yet")]
    NotBuilt,
}

/// Unpacks upload `upload_pk` again from its gold file.
pub fn unpack_upload(
    _site: &Site,
    _upload_pk: i32,
    _cfg: &UnpackConfig,
    _opts: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    Err(UnpackError::NotBuilt)
}
