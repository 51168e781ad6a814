//! The database side: FOSSology's upload, job and queue rows, and the tree as
//! `uploadtree` rows (inserted in bulk through arrays, one transaction per upload).

use crate::hash::Hashes;
use crate::tree::Node;
use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use postgres::Client;
use std::collections::HashMap;
use std::time::SystemTime;

/// `upload.upload_mode` bits set when the unpack and the nested-set numbering are done.
pub const MODE_UNPACKED: i32 = 1 << 5;
pub const MODE_NESTED: i32 = 1 << 6;
/// Initial `upload_mode` of a file upload.
pub const MODE_FILE_UPLOAD: i32 = 1 << 3;

pub struct UploadInfo {
    pub filename: String,
    pub table: String,
    pub gold: PfileName,
    /// `jq_cmd_args` of the upload's latest ununpack queue row (e.g. `-I`).
    pub cmd_args: String,
}

fn table_ok(t: &str) -> bool {
    t == "uploadtree_a"
        || t == "uploadtree"
        || t.strip_prefix("uploadtree_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn load_upload(c: &mut Client, upload_pk: i32) -> Result<UploadInfo, crate::UnpackError> {
    let row = c
        .query_opt(
            "SELECT u.upload_filename, coalesce(u.uploadtree_tablename, 'uploadtree_a'),
                    p.pfile_sha1, p.pfile_md5, p.pfile_size
             FROM upload u JOIN pfile p ON p.pfile_pk = u.pfile_fk WHERE u.upload_pk = $1",
            &[&upload_pk],
        )?
        .ok_or(crate::UnpackError::NoUpload(upload_pk))?;
    let filename: String = row.get(0);
    let table: String = row.get(1);
    if !table_ok(&table) {
        return Err(crate::UnpackError::Repo(format!(
            "upload {upload_pk}: unexpected uploadtree_tablename {table:?}"
        )));
    }
    let size: i64 = row.get(4);
    let cmd_args: String = c
        .query_opt(
            "SELECT coalesce(jq.jq_cmd_args, '') FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk
             WHERE j.job_upload_fk = $1 AND jq.jq_type = 'ununpack' ORDER BY jq.jq_pk DESC LIMIT 1",
            &[&upload_pk],
        )?
        .map(|r| r.get(0))
        .unwrap_or_default();
    Ok(UploadInfo {
        cmd_args,
        filename: filename.rsplit('/').next().unwrap_or(&filename).to_string(),
        table,
        gold: PfileName::new(row.get(2), row.get(3), size as u64),
    })
}

pub struct UploadIds {
    pub upload_pk: i32,
    pub job_pk: i32,
    pub jq_unpack: i32,
    pub jq_nest: i32,
}

fn upsert_pfiles(
    tx: &mut postgres::Transaction,
    hs: &[&Hashes],
) -> Result<HashMap<(String, String, i64), i32>, postgres::Error> {
    let files: Vec<_> = hs
        .iter()
        .map(|h| holdfast_site::db::PfileHashes {
            sha1: &h.sha1,
            md5: &h.md5,
            sha256: &h.sha256,
            size: h.size,
        })
        .collect();
    Ok(holdfast_site::db::upsert_pfiles(tx, &files)?
        .into_iter()
        .map(|(n, pk)| ((n.sha1, n.md5, n.size as i64), pk))
        .collect())
}

/// The pfile, upload, job and queue rows of a new file upload (queue rows started).
pub fn create_upload(
    c: &mut Client,
    filename: &str,
    h: &Hashes,
    cmd_args: Option<&str>,
) -> Result<UploadIds, postgres::Error> {
    let mut tx = c.transaction()?;
    let pf = upsert_pfiles(&mut tx, &[h])?;
    let pfile_pk = pf[&(h.sha1.clone(), h.md5.clone(), h.size as i64)];
    let user: i32 = tx
        .query_opt(
            "SELECT user_pk FROM users ORDER BY user_name <> 'fossy', user_pk LIMIT 1",
            &[],
        )?
        .map(|r| r.get(0))
        .unwrap_or(1);
    let upload_pk: i32 = tx
        .query_one(
            "INSERT INTO upload (upload_desc, upload_filename, user_fk, upload_mode, pfile_fk,
                                 upload_origin, uploadtree_tablename, public_perm)
             VALUES (NULL, $1, $2, $3, $4, $1, 'uploadtree_a', 0) RETURNING upload_pk",
            &[&filename, &user, &MODE_FILE_UPLOAD, &pfile_pk],
        )?
        .get(0);
    let job_pk: i32 = tx
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk, job_user_fk, job_priority)
             VALUES ($1, $2, $3, 0) RETURNING job_pk",
            &[&filename, &upload_pk, &user],
        )?
        .get(0);
    let args = upload_pk.to_string();
    let jq_unpack: i32 = tx
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host, jq_runonpfile,
                                   jq_cmd_args)
             VALUES ($1, 'ununpack', $2, now(), 'localhost', 'pfile_fk', $3) RETURNING jq_pk",
            &[&job_pk, &args, &cmd_args],
        )?
        .get(0);
    let jq_nest: i32 = tx
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host)
             VALUES ($1, 'adj2nest', $2, now(), 'localhost') RETURNING jq_pk",
            &[&job_pk, &args],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO jobdepends (jdep_jq_fk, jdep_jq_depends_fk) VALUES ($1, $2)",
        &[&jq_nest, &jq_unpack],
    )?;
    tx.commit()?;
    Ok(UploadIds {
        upload_pk,
        job_pk,
        jq_unpack,
        jq_nest,
    })
}

/// Marks the upload's queue rows finished (end bits 0x1 ok, 0x2 failed).
pub fn finish_jobs(
    c: &mut Client,
    ids: &UploadIds,
    ok: bool,
    items: u64,
    text: &str,
) -> Result<(), postgres::Error> {
    let bits: i16 = if ok { 1 } else { 2 };
    let items = items.min(i32::MAX as u64) as i32;
    c.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = $2, jq_endtext = $3,
                jq_itemsprocessed = $4
         WHERE jq_pk = ANY($1)",
        &[&vec![ids.jq_unpack, ids.jq_nest], &bits, &text, &items],
    )?;
    let _ = ids.job_pk;
    Ok(())
}

fn agent_pk(tx: &mut postgres::Transaction) -> Result<i32, postgres::Error> {
    if let Some(r) = tx.query_opt(
        "SELECT agent_pk FROM agent WHERE agent_name = 'ununpack' ORDER BY agent_enabled DESC, agent_pk DESC LIMIT 1",
        &[],
    )? {
        return Ok(r.get(0));
    }
    Ok(tx
        .query_one(
            "INSERT INTO agent (agent_name, agent_rev, agent_desc) VALUES ('ununpack', $1,
             'Unpacks archives (holdfast, FOSSology compatible)') RETURNING agent_pk",
            &[&format!("holdfast-{}", env!("CARGO_PKG_VERSION"))],
        )?
        .get(0))
}

/// Inserts the tree unless the upload already has rows (then, like FOSSology, none), sets
/// the `upload_mode` bits and writes an `ununpack_ars` success row. Returns rows inserted.
pub fn store_tree(
    c: &mut Client,
    upload_pk: i32,
    table: &str,
    root: &Node,
    started: SystemTime,
) -> Result<u64, postgres::Error> {
    assert!(table_ok(table), "checked table name");
    let mut tx = c.transaction()?;
    let existing: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE upload_fk = $1"),
            &[&upload_pk],
        )?
        .get(0);
    let mut inserted = 0u64;
    if existing == 0 {
        let mut hs = Vec::new();
        root.pfiles(&mut hs);
        let pf = upsert_pfiles(&mut tx, &hs)?;
        let flat = root.flatten();
        let n = flat.len() as i64;
        let pks: Vec<i32> = tx
            .query(
                "SELECT nextval('uploadtree_uploadtree_pk_seq')::int4 FROM generate_series(1, $1::int8)",
                &[&n],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut parent = Vec::with_capacity(flat.len());
        let mut realparent = Vec::with_capacity(flat.len());
        let mut pfile = Vec::with_capacity(flat.len());
        let mut mode = Vec::with_capacity(flat.len());
        let mut lft = Vec::with_capacity(flat.len());
        let mut rgt = Vec::with_capacity(flat.len());
        let mut name = Vec::with_capacity(flat.len());
        for f in &flat {
            parent.push(f.parent.map(|p| pks[p]));
            realparent.push(f.realparent.map(|p| pks[p]));
            pfile.push(
                f.node
                    .pfile
                    .as_ref()
                    .map(|h| pf[&(h.sha1.clone(), h.md5.clone(), h.size as i64)])
                    .unwrap_or(0),
            );
            mode.push(f.node.mode as i32);
            lft.push(f.lft as i32);
            rgt.push(f.rgt as i32);
            name.push(f.node.name.as_str());
        }
        inserted = tx.execute(
            &format!(
                "INSERT INTO {table} (uploadtree_pk, parent, realparent, upload_fk, pfile_fk,
                                      ufile_mode, lft, rgt, ufile_name)
                 SELECT u.pk, u.parent, u.rp, $8, u.pf, u.mode, u.lft, u.rgt, u.name
                 FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::int4[], $5::int4[],
                             $6::int4[], $7::int4[], $9::text[])
                      AS u(pk, parent, rp, pf, mode, lft, rgt, name)"
            ),
            &[
                &pks,
                &parent,
                &realparent,
                &pfile,
                &mode,
                &lft,
                &rgt,
                &upload_pk,
                &name,
            ],
        )?;
    }
    tx.execute(
        "UPDATE upload SET upload_mode = upload_mode | $2 | $3 WHERE upload_pk = $1",
        &[&upload_pk, &MODE_UNPACKED, &MODE_NESTED],
    )?;
    let agent = agent_pk(&mut tx)?;
    tx.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success, ars_status, ars_starttime, ars_endtime)
         VALUES ($1, $2, true, 'Completed', $3, now())",
        &[&agent, &upload_pk, &started],
    )?;
    tx.commit()?;
    Ok(inserted)
}

/// Repository names the upload's rows reference that are still missing after an unpack.
/// With `slim`, containers are expected to be missing and are not reported.
pub fn unreproduced(
    c: &mut Client,
    upload_pk: i32,
    table: &str,
    repo: &Repository,
    slim: bool,
) -> Result<Vec<String>, postgres::Error> {
    assert!(table_ok(table), "checked table name");
    let rows = c.query(
        &format!(
            "SELECT DISTINCT p.pfile_sha1, p.pfile_md5, p.pfile_size, t.ufile_name
             FROM {table} t JOIN pfile p ON p.pfile_pk = t.pfile_fk
             WHERE t.upload_fk = $1 AND ($2 = false OR t.ufile_mode & (1<<29) = 0)"
        ),
        &[&upload_pk, &slim],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let size: i64 = r.get(2);
        let n = PfileName::new(r.get(0), r.get(1), size as u64);
        if !repo.has("files", &n) {
            let uname: String = r.get(3);
            out.push(format!("{n} ({uname})"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Marks a failed unpack as FOSSology's scheduler marks a failed ununpack agent: its queue
/// row ends with bit 0x2 and `Failed` (with the reason), the adj2nest row that depends on it
/// with bit 0x2 and `dependency failed`, and `ununpack_ars` holds only the start record the
/// agent writes first (`ars_success` false, no end time), so the upload reads as not unpacked.
pub fn fail_jobs(
    c: &mut Client,
    ids: &UploadIds,
    started: SystemTime,
    why: &str,
) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2, jq_endtext = $2
         WHERE jq_pk = $1",
        &[&ids.jq_unpack, &format!("Failed: {why}")],
    )?;
    tx.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2,
                jq_endtext = 'dependency failed'
         WHERE jq_pk = $1 AND jq_endtime IS NULL",
        &[&ids.jq_nest],
    )?;
    let agent = agent_pk(&mut tx)?;
    tx.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success, ars_starttime)
         VALUES ($1, $2, false, $3)",
        &[&agent, &ids.upload_pk, &started],
    )?;
    tx.commit()
}

/// Records an unpack that finished with members left out: the rows stand (the queue rows
/// end with bit 0x1, so scanners run on what was unpacked, their end text says how many
/// members are missing), but `ununpack_ars` says not successful, with the first error as
/// status, so the upload reads as incomplete and is unpacked again once the cause is fixed.
pub fn mark_partial(
    c: &mut Client,
    upload_pk: i32,
    jq_unpack: Option<i32>,
    errors: &[String],
) -> Result<(), postgres::Error> {
    let text = format!(
        "Completed with {} member error{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    let status = format!(
        "{text}; first: {}",
        errors.first().map_or("", |e| e.as_str())
    );
    let mut tx = c.transaction()?;
    if let Some(jq) = jq_unpack {
        tx.execute(
            "UPDATE jobqueue SET jq_endtext = $2 WHERE jq_pk = $1",
            &[&jq, &text],
        )?;
    }
    tx.execute(
        "UPDATE ununpack_ars SET ars_success = false, ars_status = $2
         WHERE ars_pk = (SELECT max(ars_pk) FROM ununpack_ars WHERE upload_fk = $1)",
        &[&upload_pk, &status],
    )?;
    tx.commit()
}
