//! Why a file is still missing after a reunpack.
//!
//! Three causes are expected and each says what to do: the gold itself is gone (maintenance
//! deleted it; that upload cannot be rebuilt), a member of an archive failed to unpack (the
//! unpacker's error names the archive and member), or the file is an `artifact.meta` whose
//! text names a path (FOSSology's random temporary unpack folder for a member, the repository
//! path for the top file) and so cannot be made again byte for byte; those are reported with
//! that reason but are not data lost. Anything else is `Unexplained` and counts as lost.

use crate::Result;
use holdfast_site::db::uploadtree::{self, TreeTable};
use holdfast_site::db::{self, Reference};
use holdfast_site::{mode, naming};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MissingReason {
    /// The upload's gold file is not in the repository: nothing to unpack from.
    GoldMissing { gold: String },
    /// The unpacker reported an error for a member (its message).
    UnpackFailed { error: String },
    /// An artifact whose content cannot be made again byte for byte (`why`); not data lost.
    NotReproducible {
        artifact: String,
        #[serde(default)]
        why: String,
    },
    /// Rebuilding was left to recovery on demand (`--lazy`).
    Deferred,
    /// No known cause: counts as data lost.
    Unexplained,
}

impl MissingReason {
    /// True when the file's content is gone for good (or unknown), not merely deferred or
    /// regenerated differently.
    pub fn is_loss(&self) -> bool {
        matches!(
            self,
            MissingReason::GoldMissing { .. }
                | MissingReason::UnpackFailed { .. }
                | MissingReason::Unexplained
        )
    }
}

/// A repository file the database references that is not there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingFile {
    pub upload_fk: i32,
    pub kind: String,
    pub pfile_pk: i32,
    pub name: String,
    pub size: u64,
    /// Where the file sits in the upload's tree (first path when it occurs several times).
    pub path: Option<String>,
    #[serde(flatten)]
    pub reason: MissingReason,
}

impl std::fmt::Display for MissingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.path.as_deref().unwrap_or(&self.name);
        write!(f, "upload {}: {} {at}: ", self.upload_fk, self.kind)?;
        match &self.reason {
            MissingReason::GoldMissing { gold } => write!(
                f,
                "gold file {gold} is missing, the upload cannot be rebuilt (restore its gold)"
            ),
            MissingReason::UnpackFailed { error } => write!(f, "failed to unpack: {error}"),
            MissingReason::NotReproducible { artifact, why } => {
                write!(f, "{artifact} cannot be rebuilt: {why}")
            }
            MissingReason::Deferred => {
                write!(f, "not rebuilt yet (lazy restore: recover on demand)")
            }
            MissingReason::Unexplained => write!(f, "missing, no known cause"),
        }
    }
}

/// Path (names from the root) and mode of every tree row holding `pfile` in `upload`.
pub fn tree_paths(c: &mut postgres::Client, upload: i32, pfile: i32) -> Result<Vec<(String, i32)>> {
    let table = upload_table(c, upload)?;
    Ok(uploadtree::paths_of(c, &table, upload, pfile)?)
}

/// The uploadtree table an upload's rows live in.
pub fn upload_table(c: &mut postgres::Client, upload: i32) -> Result<TreeTable> {
    db::uploads::tree_table(c, upload)?.ok_or(crate::RecoverError::NoUpload(upload))
}

/// Explains each missing reference; `unpack_errors` are the unpacker's messages for that
/// upload (empty when it ran cleanly or did not run), `gold_missing` the gold's name when the
/// upload could not be unpacked for want of it. A missing `gold` reference is always
/// `GoldMissing`.
pub fn explain(
    c: &mut postgres::Client,
    missing: &[Reference],
    gold_missing: Option<&str>,
    unpack_errors: &[String],
    deferred: bool,
) -> Result<Vec<MissingFile>> {
    let mut out = Vec::new();
    // Places in the tree are looked up only where they decide the reason and while there
    // are few: a lazy restore leaves millions of files missing, all for the same reason.
    let look_up = gold_missing.is_none() && !deferred && missing.len() <= MAX_PATH_LOOKUPS;
    for r in missing {
        let paths = if r.kind == "files" && look_up {
            tree_paths(c, r.upload_fk, r.pfile_pk)?
        } else {
            Vec::new()
        };
        let path = paths.first().map(|(p, _)| p.clone());
        let artifact = paths
            .iter()
            .find(|(p, m)| *m as u32 & mode::BIT_ARTIFACT != 0 && !is_dir_artifact(p))
            .map(|(p, _)| p.clone());
        let reason = if r.kind == "gold" {
            MissingReason::GoldMissing {
                gold: r.name.clone(),
            }
        } else if let Some(gold) = gold_missing {
            MissingReason::GoldMissing { gold: gold.into() }
        } else if deferred {
            MissingReason::Deferred
        } else if let Some((why, _)) = match &artifact {
            Some(_) => meta_reason(c, r.upload_fk, r.pfile_pk)?,
            None => None,
        } {
            MissingReason::NotReproducible {
                artifact: artifact.unwrap_or_default(),
                why: why.to_string(),
            }
        } else if let Some(e) = best_error(unpack_errors, path.as_deref()) {
            MissingReason::UnpackFailed { error: e }
        } else {
            MissingReason::Unexplained
        };
        out.push(MissingFile {
            upload_fk: r.upload_fk,
            kind: r.kind.clone(),
            pfile_pk: r.pfile_pk,
            name: r.name.clone(),
            size: r.size,
            path,
            reason,
        });
    }
    Ok(out)
}

/// Takes out of `report.missing` the meta files that cannot be made again byte for byte
/// (their text names the path their container was unpacked at, so after a restore elsewhere
/// no unpack gives them back: not data lost) and returns them, explained. What is left in
/// `report.missing` is what a site should still worry about.
pub fn set_apart_not_reproducible(
    c: &mut postgres::Client,
    report: &mut db::VerifyReport,
) -> Result<Vec<MissingFile>> {
    // `explain` gives one entry per reference, in order.
    let explained = explain(c, &report.missing, None, &[], false)?;
    let mut apart = Vec::new();
    let mut keep = Vec::new();
    for (r, m) in std::mem::take(&mut report.missing)
        .into_iter()
        .zip(explained)
    {
        match m.reason {
            MissingReason::NotReproducible { .. } => apart.push(m),
            _ => keep.push(r),
        }
    }
    report.missing = keep;
    Ok(apart)
}

/// Why an `artifact.meta` holding `pfile` in `upload` cannot be rebuilt, when that is so:
/// its text names a path (see [`holdfast_unpack::fossology::irreproducible_meta`]), or its
/// container's type is unknown (made by an unpacker whose meta text differs from ours).
/// The flag says it can never be rebuilt (not even on the site where it was made).
pub fn meta_reason(
    c: &mut postgres::Client,
    upload: i32,
    pfile: i32,
) -> Result<Option<(&'static str, bool)>> {
    let table = upload_table(c, upload)?;
    let Some(row) = uploadtree::meta_row(c, &table, upload, pfile)? else {
        return Ok(None);
    };
    Ok(classify_meta(
        row.container_mime.as_deref(),
        row.container_is_top,
    ))
}

/// The pfiles of an upload's `artifact.meta` rows that no unpack can ever make again (see
/// [`meta_reason`]), with the reason; one query for the whole upload.
pub fn never_reproducible(
    c: &mut postgres::Client,
    upload: i32,
) -> Result<std::collections::HashMap<i32, &'static str>> {
    let table = upload_table(c, upload)?;
    let rows = uploadtree::meta_rows_of(c, &table, upload)?;
    let mut out = std::collections::HashMap::new();
    // holdfast puts members at a fixed place for these commands: its own uploads' meta
    // files come back on every unpack.
    if holdfast_unpack::db::unpacked_by_holdfast(c, upload)? {
        return Ok(out);
    }
    for r in rows {
        if let Some((why, true)) = classify_meta(r.container_mime.as_deref(), r.container_is_top) {
            out.insert(r.pfile, why);
        }
    }
    Ok(out)
}

fn classify_meta(mime: Option<&str>, top: bool) -> Option<(&'static str, bool)> {
    match mime {
        None => Some((
            "its container's type is not recorded (made by an unpacker whose meta text differs \
             from this one's); not data lost",
            true,
        )),
        Some(m) => holdfast_unpack::fossology::irreproducible_meta(Some(m), top).map(|w| {
            (
                w,
                holdfast_unpack::fossology::meta_never_reproducible(Some(m), top),
            )
        }),
    }
}

/// Above this many missing files in one upload, reasons are given without tree look-ups.
pub const MAX_PATH_LOOKUPS: usize = 5000;

fn is_dir_artifact(p: &str) -> bool {
    let last = p.rsplit('/').next().unwrap_or(p);
    last == naming::ARTIFACT_DIR || last == naming::ARTIFACT_UNPACKED
}

/// The unpack error that names the file's container (the nearest ancestor), else the first.
fn best_error(errors: &[String], path: Option<&str>) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    if let Some(path) = path {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.starts_with("artifact."))
            .collect();
        for name in parts.iter().rev() {
            if let Some(e) = errors.iter().find(|e| e.contains(name)) {
                return Some(e.clone());
            }
        }
    }
    Some(errors[0].clone())
}

/// What recovering `upload` brings back: every missing reference, and the containers that
/// repository slimming removed on purpose (not damage, but asked for explicitly they return).
pub fn to_recover(
    c: &mut postgres::Client,
    repo: &holdfast_site::repo::Repository,
    upload: i32,
) -> Result<Vec<Reference>> {
    let v = db::verify(c, repo, Some(upload))?;
    Ok(v.missing.into_iter().chain(v.slimmed).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_naming_the_nearest_container_wins() {
        let errors = vec![
            "a.tar.gz: member x: truncated".to_string(),
            "a.tar.gz/artifact.dir/inner.zip: bad central directory".to_string(),
        ];
        let e = best_error(
            &errors,
            Some("a.tar.gz/artifact.dir/inner.zip/artifact.dir/lib.c"),
        );
        assert_eq!(e.as_deref(), Some(errors[1].as_str()));
        assert_eq!(best_error(&[], Some("x")), None);
        assert_eq!(
            best_error(&errors, None).as_deref(),
            Some(errors[0].as_str())
        );
    }

    #[test]
    fn only_loss_counts_as_lost_and_lines_say_what_to_do() {
        let f = |reason| MissingFile {
            upload_fk: 7,
            kind: "files".into(),
            pfile_pk: 1,
            name: "n".into(),
            size: 1,
            path: Some("a.zip/artifact.meta".into()),
            reason,
        };
        let na = f(MissingReason::NotReproducible {
            artifact: "a.zip/artifact.meta".into(),
            why: "names the folder (not data lost)".into(),
        });
        assert!(!na.reason.is_loss());
        assert!(na.to_string().contains("not data lost"));
        assert!(!MissingReason::Deferred.is_loss());
        let g = f(MissingReason::GoldMissing { gold: "g".into() });
        assert!(g.reason.is_loss());
        assert!(g
            .to_string()
            .starts_with("upload 7: files a.zip/artifact.meta: gold file g is missing"));
        assert!(is_dir_artifact("x/artifact.dir") && !is_dir_artifact("x/artifact.meta"));
    }
}
