//! What the pages and the API show, read from FOSSology's tables and the repository
//! (blocking: call from `spawn_blocking`).

use holdfast_recover::explain::upload_table;
use holdfast_recover::mode;
use holdfast_site::pfile::PfileName;
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
    let rows = c.query(
        "SELECT u.upload_pk, u.upload_filename, u.upload_desc, \
           to_char(u.upload_ts, 'YYYY-MM-DD HH24:MI'), p.pfile_sha1, p.pfile_md5, p.pfile_size \
         FROM upload u LEFT JOIN pfile p ON p.pfile_pk = u.pfile_fk ORDER BY u.upload_pk",
        &[],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let upload: i32 = r.get(0);
        let gold = gold_name(r.get(4), r.get(5), r.get(6));
        out.push(UploadRow {
            upload_pk: upload,
            filename: r.get(1),
            description: r.get(2),
            uploaded: r.get(3),
            gold_present: gold.as_ref().is_some_and(|g| repo.has("gold", g)),
            gold_name: gold.as_ref().map(|g| g.to_string()),
            gold_size: r.get::<_, Option<i64>>(6).unwrap_or(0),
            root_item: root_item(c, upload)?,
        });
    }
    Ok(out)
}

fn gold_name(sha1: Option<String>, md5: Option<String>, size: Option<i64>) -> Option<PfileName> {
    Some(PfileName::new(&sha1?, &md5?, size? as u64))
}

pub fn upload(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
) -> anyhow::Result<Option<UploadRow>> {
    Ok(uploads(c, repo)?
        .into_iter()
        .find(|u| u.upload_pk == upload))
}

pub fn root_item(c: &mut postgres::Client, upload: i32) -> anyhow::Result<Option<i32>> {
    let table = upload_table(c, upload)?;
    let sql = format!(
        "SELECT uploadtree_pk FROM {table} WHERE upload_fk = $1 AND parent IS NULL \
         ORDER BY uploadtree_pk LIMIT 1"
    );
    Ok(c.query_opt(sql.as_str(), &[&upload])?.map(|r| r.get(0)))
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
    filter: &str,
    arg: i32,
) -> anyhow::Result<Vec<Item>> {
    let table = upload_table(c, upload)?;
    let sql = format!(
        "SELECT t.uploadtree_pk, t.upload_fk, t.parent, t.ufile_name, COALESCE(t.ufile_mode, 0), \
           p.pfile_pk, p.pfile_sha1, p.pfile_md5, p.pfile_size, m.mimetype_name, \
           (SELECT count(*) FROM {table} k WHERE k.parent = t.uploadtree_pk) \
         FROM {table} t LEFT JOIN pfile p ON p.pfile_pk = t.pfile_fk AND t.pfile_fk <> 0 \
         LEFT JOIN mimetype m ON m.mimetype_pk = p.pfile_mimetypefk \
         WHERE t.upload_fk = $1 AND {filter} ORDER BY t.ufile_name, t.uploadtree_pk"
    );
    let mut out = Vec::new();
    for r in c.query(sql.as_str(), &[&upload, &arg])? {
        let mode_bits: i32 = r.get(4);
        let name = gold_name(r.get(6), r.get(7), r.get(8));
        out.push(Item {
            uploadtree_pk: r.get(0),
            upload_fk: r.get(1),
            parent: r.get(2),
            name: r.get::<_, Option<String>>(3).unwrap_or_default(),
            mode: mode_bits,
            is_dir: mode_bits & mode::DIRECTORY != 0,
            is_container: mode_bits & mode::CONTAINER != 0,
            is_artifact: mode_bits & mode::ARTIFACT != 0,
            pfile_pk: r.get(5),
            present: name.as_ref().map(|n| repo.has("files", n)),
            pfile_name: name.map(|n| n.to_string()),
            size: r.get(8),
            mimetype: r.get(9),
            children: r.get(10),
        });
    }
    Ok(out)
}

pub fn item(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
    pk: i32,
) -> anyhow::Result<Option<Item>> {
    Ok(items(c, repo, upload, "t.uploadtree_pk = $2", pk)?
        .into_iter()
        .next())
}

pub fn children(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: i32,
    parent: i32,
) -> anyhow::Result<Vec<Item>> {
    items(c, repo, upload, "t.parent = $2", parent)
}

/// Names from the root down to `pk` (for the breadcrumb line).
pub fn trail(c: &mut postgres::Client, upload: i32, pk: i32) -> anyhow::Result<Vec<(i32, String)>> {
    let table = upload_table(c, upload)?;
    let sql = format!(
        "WITH RECURSIVE up AS ( \
           SELECT uploadtree_pk, parent, ufile_name, 0 AS depth FROM {table} \
             WHERE uploadtree_pk = $1 AND upload_fk = $2 \
           UNION ALL SELECT t.uploadtree_pk, t.parent, t.ufile_name, up.depth + 1 \
             FROM {table} t JOIN up ON t.uploadtree_pk = up.parent) \
         SELECT uploadtree_pk, ufile_name FROM up ORDER BY depth DESC"
    );
    Ok(c.query(sql.as_str(), &[&pk, &upload])?
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect())
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
