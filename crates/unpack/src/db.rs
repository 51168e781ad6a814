//! The database side of an unpack: FOSSology's upload, job and queue rows, and the tree as
//! `uploadtree` rows. The SQL lives in `holdfast_site::db`; this module turns the
//! unpacker's types into its calls and its errors into [`crate::UnpackError`].

use crate::hash::Hashes;
use crate::tree::Node;
use holdfast_site::db::{self as site_db, folders, jobs, uploads, uploadtree};
use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use postgres::Client;
use std::time::SystemTime;

pub use holdfast_site::db::jobs::agent_rev;
pub use holdfast_site::db::uploads::{Owner, UploadIds};

/// `upload.upload_mode` bits set when the unpack and the nested-set numbering are done.
pub const MODE_UNPACKED: i32 = holdfast_site::mode::UPLOAD_UNPACKED;
pub const MODE_NESTED: i32 = holdfast_site::mode::UPLOAD_NESTED;
/// Initial `upload_mode` of a file upload.
pub const MODE_FILE_UPLOAD: i32 = holdfast_site::mode::UPLOAD_FILE;

pub struct UploadInfo {
    pub filename: String,
    pub table: String,
    pub gold: PfileName,
    /// `jq_cmd_args` of the upload's latest ununpack queue row (e.g. `-I`).
    pub cmd_args: String,
}

pub fn load_upload(c: &mut Client, upload_pk: i32) -> Result<UploadInfo, crate::UnpackError> {
    let row = uploads::load(c, upload_pk)?.ok_or(crate::UnpackError::NoUpload(upload_pk))?;
    if !uploadtree::is_upload_table(&row.table) {
        return Err(crate::UnpackError::Repo(format!(
            "upload {upload_pk}: unexpected uploadtree_tablename {:?}",
            row.table
        )));
    }
    let cmd_args = jobs::unpack_cmd_args(c, upload_pk)?;
    let filename = row.filename;
    Ok(UploadInfo {
        cmd_args,
        filename: filename.rsplit('/').next().unwrap_or(&filename).to_string(),
        table: row.table,
        gold: row.gold,
    })
}

fn hashes(h: &Hashes) -> site_db::PfileHashes<'_> {
    site_db::PfileHashes {
        sha1: &h.sha1,
        md5: &h.md5,
        sha256: &h.sha256,
        size: h.size,
    }
}

/// Whether holdfast (not FOSSology's ununpack) made the upload's rows: the agent of its
/// first successful `ununpack_ars` row.
pub fn unpacked_by_holdfast(c: &mut Client, upload_pk: i32) -> Result<bool, postgres::Error> {
    jobs::unpacked_by_holdfast(c, upload_pk)
}

/// The rows FOSSology's upload page and `wget_agent` make for a new file upload (see
/// [`holdfast_site::db::uploads::create`]).
pub fn create_upload(
    c: &mut Client,
    filename: &str,
    h: &Hashes,
    cmd_args: Option<&str>,
    owner: &Owner,
) -> Result<UploadIds, crate::UnpackError> {
    uploads::create(c, filename, hashes(h), cmd_args, owner).map_err(|e| match e {
        uploads::CreateError::Db(e) => crate::UnpackError::Db(e),
        e => crate::UnpackError::Repo(e.to_string()),
    })
}

/// Marks the upload's queue rows finished as the scheduler does (end bits 0x1 ok, 0x2
/// failed; the scheduler's item count stays 0 for these agents).
pub fn finish_jobs(
    c: &mut Client,
    ids: &UploadIds,
    ok: bool,
    text: &str,
) -> Result<(), postgres::Error> {
    jobs::end_rows(c, &[ids.jq_unpack, ids.jq_nest], ok, text)
}

/// The table a new upload's rows go to (see [`holdfast_site::db::uploadtree::table_for`]).
pub fn tree_table_for(
    c: &mut Client,
    upload_pk: i32,
    size: u64,
) -> Result<String, postgres::Error> {
    uploadtree::table_for(c, upload_pk, size)
}

/// Resolves a folder given by number or name.
pub fn folder_pk(c: &mut Client, folder: &str) -> Result<i32, crate::UnpackError> {
    one(folders::find_folders(c, folder)?, folder, "folder")
}

/// Resolves a group given by number or name.
pub fn group_pk(c: &mut Client, group: &str) -> Result<i32, crate::UnpackError> {
    one(folders::find_groups(c, group)?, group, "group")
}

fn one(found: Vec<i32>, v: &str, what: &str) -> Result<i32, crate::UnpackError> {
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(crate::UnpackError::Input {
            path: format!("--{what} {v}"),
            why: format!("no such {what} in FOSSology's database; give its number or exact name"),
        }),
        _ => Err(crate::UnpackError::Input {
            path: format!("--{what} {v}"),
            why: format!("several {what}s have this name; give the number"),
        }),
    }
}

/// Whether the connection's client encoding is UTF8 (libpq takes the database's): then
/// ununpack's escaping refuses names that are not UTF-8.
pub fn client_is_utf8(c: &mut Client) -> Result<bool, postgres::Error> {
    site_db::client_is_utf8(c)
}

/// Inserts the tree unless the upload already has rows (then, like FOSSology, none), numbers
/// it as adj2nest does, sets the `upload_mode` bits and writes an `ununpack_ars` success
/// row. Returns rows inserted.
pub fn store_tree(
    c: &mut Client,
    upload_pk: i32,
    table: &str,
    root: &Node,
    started: SystemTime,
) -> Result<u64, postgres::Error> {
    // A top file ununpack skips (a tar that tar cannot list) leaves the upload without rows.
    let flat = if root.skip {
        Vec::new()
    } else {
        root.flatten()
    };
    let rows: Vec<uploadtree::TreeRow> = flat
        .iter()
        .map(|f| uploadtree::TreeRow {
            parent: f.parent,
            realparent: f.realparent,
            pfile: f.node.pfile.as_ref().map(hashes),
            mime: f.node.mime,
            mode: f.node.mode,
            name: &f.node.name,
        })
        .collect();
    let mimetypes: Vec<&str> = crate::fossology::TABLE.iter().map(|e| e.magic).collect();
    uploadtree::store(c, upload_pk, table, &rows, &mimetypes, started)
}

/// Repository names the upload's rows reference that are still missing after an unpack,
/// each with its place in the tree and why it was not rebuilt. With `slim`, containers are
/// expected to be missing and are not reported.
pub fn unreproduced(
    c: &mut Client,
    upload_pk: i32,
    table: &str,
    repo: &Repository,
    slim: bool,
) -> Result<Vec<String>, postgres::Error> {
    let rows = uploadtree::files_in_containers(c, upload_pk, table, slim)?;
    let by_holdfast = unpacked_by_holdfast(c, upload_pk)?;
    let mut out = Vec::new();
    for r in rows {
        let n = r.pfile;
        if !repo.has("files", &n) {
            let uname = r.name.unwrap_or_default();
            let top = r.container_is_top;
            // holdfast's own uploads name a fixed place for members: those come back.
            let why = (uname == holdfast_site::naming::ARTIFACT_META && (top || !by_holdfast))
                .then(|| crate::fossology::irreproducible_meta(r.container_mime.as_deref(), top))
                .flatten()
                .unwrap_or("this unpack did not produce it");
            out.push(format!("{n} ({uname}): {why}"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Marks a failed unpack as FOSSology's scheduler marks a failed ununpack agent (see
/// [`holdfast_site::db::jobs::fail_unpack`]).
pub fn fail_jobs(
    c: &mut Client,
    ids: &UploadIds,
    started: SystemTime,
    why: &str,
) -> Result<(), postgres::Error> {
    jobs::fail_unpack(c, ids.upload_pk, &ids.job(), started, why)
}

/// Records an unpack that finished with members left out (see
/// [`holdfast_site::db::jobs::mark_partial`]).
pub fn mark_partial(
    c: &mut Client,
    upload_pk: i32,
    jq_unpack: Option<i32>,
    errors: &[String],
) -> Result<(), postgres::Error> {
    jobs::mark_partial(c, upload_pk, jq_unpack, errors)
}
