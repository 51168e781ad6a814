//! Which uploads have files missing from the repository.
//!
//! A file counts as present when it exists under its content name with the size the name
//! says (a truncated copy is missing), exactly as `holdfast verify` checks it. A container
//! that repository slimming removed on purpose is counted apart, as slimmed and rebuildable.

use crate::Result;
use holdfast_site::db::{self, Reference};
use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One upload's repository state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCheck {
    pub upload_pk: i32,
    pub filename: String,
    /// The gold file's repository name (`sha1.md5.size`), when the upload has one.
    pub gold_name: Option<String>,
    /// The gold file is present (in `gold`, or FOSSology's copy of it in `files`), so the
    /// upload can be rebuilt.
    pub gold_present: bool,
    pub gold_bytes: u64,
    /// Distinct `files` entries the upload's tree names.
    pub files_total: u64,
    pub files_bytes: u64,
    pub missing_files: u64,
    pub missing_bytes: u64,
    /// Containers absent on purpose (repository slimming): "slimmed, rebuildable", not damage.
    #[serde(default)]
    pub slimmed_files: u64,
    #[serde(default)]
    pub slimmed_bytes: u64,
    /// The upload's unpack was cut off, so its tree may not name all its files yet: its
    /// `ununpack` queue row is still marked running (the agent died, or runs now).
    /// FOSSology's scheduler runs the job again after a `--reset` start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack_unfinished: Option<String>,
    /// The unpack left members out (`ununpack_ars` not successful, with its status): the
    /// tree is incomplete even when every file it names is present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unpack_incomplete: Option<String>,
    /// The missing `files` entries (name and size), for the checker's detail output.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub missing: Vec<Reference>,
    /// Files the database names that no unpack can make again (an `artifact.meta` that
    /// names FOSSology's temporary unpack folder), with the reason: not counted as missing.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub not_reproducible: Vec<NotReproducible>,
    /// A delete job (`delagent`) for the upload has not finished: its absent files are
    /// the deletion under way, not damage, and nothing is to be rebuilt.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub being_deleted: bool,
}

/// A file no unpack can rebuild, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotReproducible {
    pub name: String,
    pub size: u64,
    pub why: String,
}

impl UploadCheck {
    pub fn is_whole(&self) -> bool {
        self.being_deleted
            || self.missing_files == 0
                && self.gold_present
                && self.unpack_unfinished.is_none()
                && self.unpack_incomplete.is_none()
    }
    /// Missing files can come back from gold.
    pub fn recoverable(&self) -> bool {
        !self.being_deleted && self.missing_files > 0 && self.gold_present
    }
}

/// Checks every upload (or one) against the repository; uploads in `upload_pk` order.
pub fn check_repo(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: Option<i32>,
) -> Result<Vec<UploadCheck>> {
    let mut out: BTreeMap<i32, UploadCheck> = BTreeMap::new();
    for (pk, filename) in db::uploads::names(c, upload)? {
        out.insert(
            pk,
            UploadCheck {
                upload_pk: pk,
                filename,
                ..Default::default()
            },
        );
    }
    if let Some(u) = upload {
        if !out.contains_key(&u) {
            return Err(crate::RecoverError::NoUpload(u));
        }
    }
    // Deleted by FOSSology (delagent keeps the upload row, its pfile_fk NULL and
    // expire_action 'd'), or whose file has not arrived yet: no gold, no tree, nothing lost.
    let keys: Vec<i32> = out.keys().copied().collect();
    for u in db::uploads_deleted(c, &keys)? {
        out.remove(&u);
    }
    for (u, why) in unfinished_unpacks(c, upload)? {
        if let Some(e) = out.get_mut(&u) {
            e.unpack_unfinished = Some(why);
        }
    }
    for u in db::uploads_being_deleted(c)? {
        if let Some(e) = out.get_mut(&u) {
            e.being_deleted = true;
        }
    }
    let slimmed = db::slimmed_pfiles(c)?;
    for r in db::references(c, upload)? {
        let Some(entry) = out.get_mut(&r.upload_fk) else {
            continue;
        };
        let present = PfileName::parse(&r.name).is_some_and(|n| repo.has(&r.kind, &n));
        if r.kind == "gold" {
            entry.gold_name = Some(r.name.clone());
            entry.gold_present = present;
            entry.gold_bytes = r.size;
        } else {
            entry.files_total += 1;
            entry.files_bytes += r.size;
            if !present && slimmed.contains(&r.pfile_pk) {
                entry.slimmed_files += 1;
                entry.slimmed_bytes += r.size;
            } else if !present {
                entry.missing_files += 1;
                entry.missing_bytes += r.size;
                entry.missing.push(r);
            }
        }
    }
    // The latest unpack of each upload, when it finished with members left out (what
    // holdfast's unpacker records; a running or cut-off unpack has no such status).
    for (pk, ok, status) in db::jobs::latest_unpack_records(c, upload)? {
        if let (Some(e), false, Some(s)) = (out.get_mut(&pk), ok, status) {
            if s.starts_with("Completed with ") {
                e.unpack_incomplete = Some(s);
            }
        }
    }
    // A failed unpack (the agent failed, or holdfast's unpack was stopped), not followed by
    // a successful one: the tree is missing, whatever files there are.
    for (pk, text) in db::jobs::failed_unpacks(c, upload)? {
        if let Some(e) = out.get_mut(&pk) {
            e.unpack_incomplete = Some(format!("its ununpack job failed ({text})"));
        }
    }
    // Missing meta files that can never come back are not damage; say why instead.
    for e in out.values_mut() {
        if e.missing.is_empty() {
            continue;
        }
        let never = crate::explain::never_reproducible(c, e.upload_pk)?;
        let mut keep = Vec::new();
        for r in std::mem::take(&mut e.missing) {
            match never.get(&r.pfile_pk) {
                Some(why) => {
                    e.missing_files -= 1;
                    e.missing_bytes -= r.size;
                    e.not_reproducible.push(NotReproducible {
                        name: r.name.clone(),
                        size: r.size,
                        why: why.to_string(),
                    });
                }
                None => keep.push(r),
            }
        }
        e.missing = keep;
    }
    // The unpacker falls back to FOSSology's copy of the gold in `files`, as FOSSology does.
    for e in out.values_mut() {
        if !e.gold_present {
            e.gold_present = e
                .gold_name
                .as_deref()
                .and_then(PfileName::parse)
                .is_some_and(|n| repo.has("files", &n));
        }
    }
    Ok(out.into_values().collect())
}

/// Uploads whose unpack was cut off, with the reason: a killed `ununpack` leaves its queue
/// row started and never ended. (A queued row is work not done yet, not damage: after the
/// scheduler's `--reset` the cut-off row is queued again and runs.)
fn unfinished_unpacks(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<BTreeMap<i32, String>> {
    let mut out = BTreeMap::new();
    for (u, jq) in db::jobs::cut_off_unpacks(c, upload)? {
        out.entry(u).or_insert(format!(
            "its ununpack job (jobqueue row {jq}) started and never ended: the agent died or still runs"
        ));
    }
    Ok(out)
}

/// Only the uploads with something missing (files, or the gold itself).
pub fn incomplete(checks: &[UploadCheck]) -> Vec<&UploadCheck> {
    checks.iter().filter(|c| !c.is_whole()).collect()
}
