//! What the pages and the API show, read from FOSSology's tables and the repository
//! (blocking: call from `spawn_blocking`).

use holdfast_site::db::{
    self,
    uploadtree::{Pick, TreeTable},
};
use holdfast_site::mode;
use holdfast_site::repo::Repository;
use serde::Serialize;
use std::io::Read;

#[derive(Debug, Clone, Serialize)]
pub struct UploadRow {
    pub upload_pk: i32,
    pub filename: String,
    pub description: Option<String>,
    pub uploaded: Option<String>,
    pub gold_name: Option<String>,
    pub gold_size: i64,
    pub gold_present: bool,
    /// The top row of its tree (None when the upload was never unpacked).
    pub root_item: Option<i32>,
}

pub fn uploads(c: &mut postgres::Client, repo: &Repository) -> anyhow::Result<Vec<UploadRow>> {
    rows(c, repo, None)
}

/// Every upload's row, or only `only`'s (one page needs one, not the site's).
fn rows(
    c: &mut postgres::Client,
    repo: &Repository,
    only: Option<i32>,
) -> anyhow::Result<Vec<UploadRow>> {
    let mut out = Vec::new();
    for u in db::uploads::listing(c, only)? {
        out.push(UploadRow {
            upload_pk: u.pk,
            filename: u.filename,
            description: u.description,
            uploaded: u.uploaded,
            gold_present: u.gold.as_ref().is_some_and(|g| repo.has("gold", g)),
            gold_name: u.gold.as_ref().map(|g| g.to_string()),
            gold_size: u.gold_size,
            root_item: root_item(c, u.pk)?,
        });
    }
    Ok(out)
}

pub fn upload(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
) -> anyhow::Result<Option<UploadRow>> {
    Ok(rows(c, repo, Some(upload))?.into_iter().next())
}

/// The uploadtree table of `upload`, or an error naming it when it does not exist.
fn table(c: &mut postgres::Client, upload: i32) -> anyhow::Result<TreeTable> {
    db::uploads::tree_table(c, upload)?
        .ok_or_else(|| holdfast_recover::RecoverError::NoUpload(upload).into())
}

pub fn root_item(c: &mut postgres::Client, upload: i32) -> anyhow::Result<Option<i32>> {
    let table = table(c, upload)?;
    Ok(db::uploadtree::root(c, &table, upload)?)
}

/// One row of an upload's tree with its repository state.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub uploadtree_pk: i32,
    pub upload_fk: i32,
    pub parent: Option<i32>,
    pub name: String,
    pub mode: i32,
    pub is_dir: bool,
    pub is_container: bool,
    pub is_artifact: bool,
    pub pfile_pk: Option<i32>,
    /// Repository name `sha1.md5.size` when the row is a file.
    pub pfile_name: Option<String>,
    pub size: Option<i64>,
    pub mimetype: Option<String>,
    /// Present in the repository's `files` (None for directories).
    pub present: Option<bool>,
    pub children: i64,
}

fn items(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
    pick: Pick,
) -> anyhow::Result<Vec<Item>> {
    let table = table(c, upload)?;
    Ok(db::uploadtree::items(c, &table, upload, pick)?
        .into_iter()
        .map(|i| {
            let bits = i.mode as u32;
            Item {
                uploadtree_pk: i.uploadtree_pk,
                upload_fk: i.upload_fk,
                parent: i.parent,
                name: i.name,
                mode: i.mode,
                is_dir: mode::classify(i.mode) == mode::Class::Directory,
                is_container: bits & mode::BIT_CONTAINER != 0,
                is_artifact: bits & mode::BIT_ARTIFACT != 0,
                pfile_pk: i.pfile_pk,
                present: i.pfile.as_ref().map(|n| repo.has("files", n)),
                pfile_name: i.pfile.map(|n| n.to_string()),
                size: i.size,
                mimetype: i.mimetype,
                children: i.children,
            }
        })
        .collect())
}

pub fn item(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
    pk: i32,
) -> anyhow::Result<Option<Item>> {
    Ok(items(c, repo, upload, Pick::Row(pk))?.into_iter().next())
}

pub fn children(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
    parent: i32,
) -> anyhow::Result<Vec<Item>> {
    items(c, repo, upload, Pick::ChildrenOf(parent))
}

/// Names from the root down to `pk` (for the breadcrumb line).
pub fn trail(c: &mut postgres::Client, upload: i32, pk: i32) -> anyhow::Result<Vec<(i32, String)>> {
    let table = table(c, upload)?;
    Ok(db::uploadtree::trail(c, &table, upload, pk)?)
}

/// A present file's content for display: text when it looks like text, else nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Content {
    pub text: Option<String>,
    /// Only the first `max` bytes are shown.
    pub truncated: bool,
}

pub fn content(repo: &Repository, pfile: &str, max: u64) -> anyhow::Result<Content> {
    let path = repo
        .path("files", pfile)
        .ok_or_else(|| anyhow::anyhow!("no [REPOSITORY] line covers {pfile}"))?;
    let f = std::fs::File::open(&path)?;
    let len = f.metadata()?.len();
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    let text = if buf.contains(&0) {
        None
    } else {
        match std::str::from_utf8(&buf) {
            Ok(s) => Some(s.to_string()),
            // Cut in the middle of a character by the size limit: still text.
            Err(e) if e.error_len().is_none() => {
                Some(String::from_utf8_lossy(&buf[..e.valid_up_to()]).into_owned())
            }
            Err(_) => None,
        }
    };
    Ok(Content {
        text,
        truncated: len > max,
    })
}
