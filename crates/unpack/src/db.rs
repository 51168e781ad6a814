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

type PfileKey = (String, String, i64);

/// Finds or adds the pfiles (`DBInsertPfile`, see [`holdfast_site::db::upsert_pfiles`]) and
/// gives them the `mimetype_pk` their command has (`mimes`, same order as `hs`), when it
/// differs: the later command wins, and ununpack never clears one.
fn upsert_pfiles(
    tx: &mut postgres::Transaction,
    hs: &[&Hashes],
    mimes: &[Option<i32>],
) -> Result<HashMap<PfileKey, i32>, postgres::Error> {
    let files: Vec<_> = hs
        .iter()
        .map(|h| holdfast_site::db::PfileHashes {
            sha1: &h.sha1,
            md5: &h.md5,
            sha256: &h.sha256,
            size: h.size,
        })
        .collect();
    let pks: HashMap<PfileKey, i32> = holdfast_site::db::upsert_pfiles(tx, &files)?
        .into_iter()
        .map(|(n, pk)| ((n.sha1, n.md5, n.size as i64), pk))
        .collect();
    let mut by_pk: HashMap<i32, i32> = HashMap::new();
    for (h, m) in hs.iter().zip(mimes) {
        if let Some(m) = m {
            by_pk.insert(pks[&(h.sha1.clone(), h.md5.clone(), h.size as i64)], *m);
        }
    }
    let (pk, mt): (Vec<i32>, Vec<i32>) = by_pk.into_iter().unzip();
    tx.execute(
        "UPDATE pfile p SET pfile_mimetypefk = u.t
         FROM unnest($1::int4[], $2::int4[]) AS u(pk, t)
         WHERE p.pfile_pk = u.pk AND p.pfile_mimetypefk IS DISTINCT FROM u.t",
        &[&pk, &mt],
    )?;
    Ok(pks)
}

/// `InitCmd`: every type in ununpack's command table has a `mimetype` row (added in the
/// table's order when missing); returns their keys by name.
pub fn init_mimetypes(
    tx: &mut postgres::Transaction,
) -> Result<HashMap<&'static str, i32>, postgres::Error> {
    let mut out = HashMap::new();
    for e in crate::fossology::TABLE {
        let pk = match tx.query_opt(
            "SELECT mimetype_pk FROM mimetype WHERE mimetype_name = $1 ORDER BY mimetype_pk LIMIT 1",
            &[&e.magic],
        )? {
            Some(r) => r.get(0),
            None => tx
                .query_one(
                    "INSERT INTO mimetype (mimetype_name) VALUES ($1) RETURNING mimetype_pk",
                    &[&e.magic],
                )?
                .get(0),
        };
        out.insert(e.magic, pk);
    }
    Ok(out)
}

/// Where and for whom a new upload is made.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    /// `folder_pk`; `None`: FOSSology's root folder (the lowest folder_pk, 1 on a fresh site).
    pub folder: Option<i32>,
    /// `group_pk`; `None`: the user's own group (`users.group_fk`).
    pub group: Option<i32>,
}

/// The user FOSSology's own uploads from the command line go to (`fossy`, else the first).
fn upload_user(tx: &mut postgres::Transaction) -> Result<i32, postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT user_pk FROM users ORDER BY user_name <> 'fossy', user_pk LIMIT 1",
            &[],
        )?
        .map(|r| r.get(0))
        .unwrap_or(1))
}

/// The `agent_rev` holdfast registers its agent rows under (FOSSology's agents register
/// `VERSION.COMMIT` the same way, one row per revision).
pub fn agent_rev() -> String {
    format!("holdfast-{}", env!("CARGO_PKG_VERSION"))
}

/// `agent_pk` of holdfast's row for an agent (`fo_GetAgentKey`: found by name and revision,
/// added when missing), so `ununpack_ars` says which unpacker made an upload's rows.
fn agent_key(
    tx: &mut postgres::Transaction,
    name: &str,
    desc: &str,
) -> Result<i32, postgres::Error> {
    let rev = agent_rev();
    if let Some(r) = tx.query_opt(
        "SELECT agent_pk FROM agent WHERE agent_name = $1 AND agent_rev = $2 ORDER BY agent_pk LIMIT 1",
        &[&name, &rev],
    )? {
        return Ok(r.get(0));
    }
    Ok(tx
        .query_one(
            "INSERT INTO agent (agent_name, agent_rev, agent_desc) VALUES ($1, $2, $3) RETURNING agent_pk",
            &[&name, &rev, &desc],
        )?
        .get(0))
}

/// Whether holdfast (not FOSSology's ununpack) made the upload's rows: the agent of its
/// first successful `ununpack_ars` row.
pub fn unpacked_by_holdfast(c: &mut Client, upload_pk: i32) -> Result<bool, postgres::Error> {
    Ok(c.query_opt(
        "SELECT a.agent_rev FROM ununpack_ars r JOIN agent a ON a.agent_pk = r.agent_fk
             WHERE r.upload_fk = $1 AND r.ars_success ORDER BY r.ars_pk LIMIT 1",
        &[&upload_pk],
    )?
    .and_then(|r| r.get::<_, Option<String>>(0))
    .is_some_and(|rev| rev.starts_with("holdfast-")))
}

/// The rows FOSSology's upload page and `wget_agent` make for a new file upload: pfile,
/// `upload` (`upload_mode` 8), `foldercontents` (so it shows in Browse), `perm_upload`
/// (admin for the group), `job` and its two `jobqueue` rows (ununpack, then adj2nest).
pub fn create_upload(
    c: &mut Client,
    filename: &str,
    h: &Hashes,
    cmd_args: Option<&str>,
    owner: &Owner,
) -> Result<UploadIds, crate::UnpackError> {
    let mut tx = c.transaction()?;
    agent_key(&mut tx, "wget_agent", "Network downloader.  Uses wget(1).")?;
    agent_key(&mut tx, "ununpack", "Unpacks archives (iso, tar, etc)")?;
    agent_key(&mut tx, "adj2nest", "Adj2nest Agent")?;
    let pf = upsert_pfiles(&mut tx, &[h], &[None])?;
    let pfile_pk = pf[&(h.sha1.clone(), h.md5.clone(), h.size as i64)];
    let user = upload_user(&mut tx)?;
    let group: i32 = match owner.group {
        Some(g) => g,
        // The user's group (users.group_fk), else the group named after the user that
        // the user belongs to, as FOSSology's login picks it.
        None => tx
            .query_opt(
                "SELECT coalesce(u.group_fk,
                        (SELECT g.group_pk FROM groups g
                         JOIN group_user_member m ON m.group_fk = g.group_pk
                         WHERE m.user_fk = u.user_pk
                         ORDER BY g.group_name = u.user_name DESC, g.group_pk LIMIT 1))
                 FROM users u WHERE u.user_pk = $1",
                &[&user],
            )?
            .and_then(|r| r.get::<_, Option<i32>>(0))
            .ok_or_else(|| {
                crate::UnpackError::Repo(format!(
                    "user {user} has no group (users.group_fk); name one with --group"
                ))
            })?,
    };
    let folder: i32 = match owner.folder {
        Some(f) => f,
        None => tx
            .query_opt("SELECT min(folder_pk) FROM folder", &[])?
            .and_then(|r| r.get::<_, Option<i32>>(0))
            .ok_or_else(|| {
                crate::UnpackError::Repo("the site has no folder (table folder is empty)".into())
            })?,
    };
    let upload_pk: i32 = tx
        .query_one(
            "INSERT INTO upload (upload_desc, upload_filename, user_fk, upload_mode, upload_origin,
                                 public_perm, pfile_fk)
             VALUES (NULL, $1, $2, $3, $1, 0, $4) RETURNING upload_pk",
            &[&filename, &user, &MODE_FILE_UPLOAD, &pfile_pk],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO foldercontents (parent_fk, foldercontents_mode, child_id) VALUES ($1, 2, $2)",
        &[&folder, &upload_pk],
    )?;
    tx.execute(
        "INSERT INTO perm_upload (perm, upload_fk, group_fk) VALUES (10, $1, $2)",
        &[&upload_pk, &group],
    )?;
    let job_pk: i32 = tx
        .query_one(
            "INSERT INTO job (job_user_fk, job_group_fk, job_queued, job_priority, job_name, job_upload_fk)
             VALUES ($1, $2, now(), 0, $3, $4) RETURNING job_pk",
            &[&user, &group, &filename, &upload_pk],
        )?
        .get(0);
    let args = upload_pk.to_string();
    let jq_unpack: i32 = tx
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host, jq_cmd_args)
             VALUES ($1, 'ununpack', $2, now(), 'localhost', $3) RETURNING jq_pk",
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

/// Marks the upload's queue rows finished as the scheduler does (end bits 0x1 ok, 0x2
/// failed; the scheduler's item count stays 0 for these agents).
pub fn finish_jobs(
    c: &mut Client,
    ids: &UploadIds,
    ok: bool,
    text: &str,
) -> Result<(), postgres::Error> {
    let bits: i16 = if ok { 1 } else { 2 };
    c.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = $2, jq_endtext = $3
         WHERE jq_pk = ANY($1)",
        &[&vec![ids.jq_unpack, ids.jq_nest], &bits, &text],
    )?;
    let _ = ids.job_pk;
    Ok(())
}

/// The table a new upload's rows go to, as ununpack decides it: uploads over 500 MB get
/// their own `uploadtree_<upload_pk>` (inheriting `uploadtree`), the rest `uploadtree_a`;
/// the upload row is told which.
pub fn tree_table_for(
    c: &mut Client,
    upload_pk: i32,
    size: u64,
) -> Result<String, postgres::Error> {
    let table = if size > 500_000_000 {
        format!("uploadtree_{upload_pk}")
    } else {
        "uploadtree_a".to_string()
    };
    let mut tx = c.transaction()?;
    if table != "uploadtree_a" {
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
            .get(0);
        if !exists {
            tx.batch_execute(&format!(
                "CREATE TABLE {table} (LIKE uploadtree INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
                 ALTER TABLE {table} ADD CONSTRAINT {table} CHECK (upload_fk={upload_pk});
                 ALTER TABLE {table} INHERIT uploadtree"
            ))?;
        }
    }
    tx.execute(
        "UPDATE upload SET uploadtree_tablename = $2 WHERE upload_pk = $1",
        &[&upload_pk, &table],
    )?;
    tx.commit()?;
    Ok(table)
}

/// Resolves a folder given by number or name.
pub fn folder_pk(c: &mut Client, folder: &str) -> Result<i32, crate::UnpackError> {
    lookup(
        c,
        folder,
        "folder",
        "SELECT folder_pk FROM folder WHERE folder_pk::text = $1 OR folder_name = $1",
    )
}

/// Resolves a group given by number or name.
pub fn group_pk(c: &mut Client, group: &str) -> Result<i32, crate::UnpackError> {
    lookup(
        c,
        group,
        "group",
        "SELECT group_pk FROM groups WHERE group_pk::text = $1 OR group_name = $1",
    )
}

fn lookup(c: &mut Client, v: &str, what: &str, sql: &str) -> Result<i32, crate::UnpackError> {
    let rows = c.query(sql, &[&v])?;
    match rows.len() {
        1 => Ok(rows[0].get(0)),
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
    let enc: String = c.query_one("SHOW server_encoding", &[])?.get(0);
    Ok(enc.eq_ignore_ascii_case("UTF8"))
}

/// adj2nest: siblings in the order of `ORDER BY parent, ufile_mode&(1<<29) DESC,
/// ufile_name` (so in the database's own collation), numbered depth first.
fn adj2nest(
    tx: &mut postgres::Transaction,
    table: &str,
    upload_pk: i32,
) -> Result<(), postgres::Error> {
    let kids = tx.query(
        &format!(
            "SELECT uploadtree_pk, parent FROM {table} WHERE upload_fk = $1 AND parent IS NOT NULL
             ORDER BY parent, ufile_mode&(1<<29) DESC, ufile_name"
        ),
        &[&upload_pk],
    )?;
    let roots = tx.query(
        &format!("SELECT uploadtree_pk FROM {table} WHERE upload_fk = $1 AND parent IS NULL"),
        &[&upload_pk],
    )?;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for r in &kids {
        children.entry(r.get(1)).or_default().push(r.get(0));
    }
    let (mut pks, mut lfts, mut rgts) = (vec![], vec![], vec![]);
    let mut set: i32 = 1;
    for r in &roots {
        let root: i32 = r.get(0);
        // Iterative walk (uploads can be deep): (pk, next child index).
        let mut stack: Vec<(i32, usize, i32)> = vec![(root, 0, set)];
        set += 1;
        while let Some(top) = stack.last_mut() {
            let (pk, i, lft) = *top;
            let next = children.get(&pk).and_then(|v| v.get(i)).copied();
            match next {
                Some(c) => {
                    top.1 += 1;
                    stack.push((c, 0, set));
                    set += 1;
                }
                None => {
                    stack.pop();
                    pks.push(pk);
                    lfts.push(lft);
                    rgts.push(set);
                    set += 1;
                }
            }
        }
    }
    tx.execute(
        &format!(
            "UPDATE {table} t SET lft = u.l, rgt = u.r
             FROM unnest($1::int4[], $2::int4[], $3::int4[]) AS u(pk, l, r)
             WHERE t.uploadtree_pk = u.pk"
        ),
        &[&pks, &lfts, &rgts],
    )?;
    Ok(())
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
    assert!(table_ok(table), "checked table name");
    let mut tx = c.transaction()?;
    let mimetypes = init_mimetypes(&mut tx)?;
    let existing: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE upload_fk = $1"),
            &[&upload_pk],
        )?
        .get(0);
    let mut inserted = 0u64;
    // A top file ununpack skips (a tar that tar cannot list) leaves the upload without rows.
    if existing == 0 && !root.skip {
        let flat = root.flatten();
        let mut hs = Vec::new();
        let mut mimes = Vec::new();
        for f in &flat {
            if let Some(h) = &f.node.pfile {
                hs.push(h);
                mimes.push(f.node.mime.and_then(|m| mimetypes.get(m).copied()));
            }
        }
        let pf = upsert_pfiles(&mut tx, &hs, &mimes)?;
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
            name.push(f.node.name.as_str());
        }
        inserted = tx.execute(
            &format!(
                "INSERT INTO {table} (uploadtree_pk, parent, realparent, upload_fk, pfile_fk,
                                      ufile_mode, ufile_name)
                 SELECT u.pk, u.parent, u.rp, $6, u.pf, u.mode, u.name
                 FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::int4[], $5::int4[],
                             $7::text[])
                      AS u(pk, parent, rp, pf, mode, name)"
            ),
            &[&pks, &parent, &realparent, &pfile, &mode, &upload_pk, &name],
        )?;
        adj2nest(&mut tx, table, upload_pk)?;
    }
    tx.execute(
        "UPDATE upload SET upload_mode = upload_mode | $2 | $3 WHERE upload_pk = $1",
        &[&upload_pk, &MODE_UNPACKED, &MODE_NESTED],
    )?;
    // Like ununpack, an upload that already has its rows gets no second success row.
    if existing == 0 {
        let agent = agent_key(&mut tx, "ununpack", "Unpacks archives (iso, tar, etc)")?;
        tx.execute(
            "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success, ars_starttime, ars_endtime)
             VALUES ($1, $2, true, $3, now())",
            &[&agent, &upload_pk, &started],
        )?;
    }
    tx.commit()?;
    Ok(inserted)
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
    assert!(table_ok(table), "checked table name");
    let rows = c.query(
        &format!(
            "SELECT DISTINCT p.pfile_sha1, p.pfile_md5, p.pfile_size, t.ufile_name, m.mimetype_name,
                    ct.parent IS NULL AS top
             FROM {table} t JOIN pfile p ON p.pfile_pk = t.pfile_fk
             LEFT JOIN {table} ct ON ct.uploadtree_pk = t.parent
             LEFT JOIN pfile cp ON cp.pfile_pk = ct.pfile_fk
             LEFT JOIN mimetype m ON m.mimetype_pk = cp.pfile_mimetypefk
             WHERE t.upload_fk = $1 AND ($2 = false OR t.ufile_mode & (1<<29) = 0)"
        ),
        &[&upload_pk, &slim],
    )?;
    let by_holdfast = unpacked_by_holdfast(c, upload_pk)?;
    let mut out = Vec::new();
    for r in rows {
        let size: i64 = r.get(2);
        let n = PfileName::new(r.get(0), r.get(1), size as u64);
        if !repo.has("files", &n) {
            let uname: String = r.get(3);
            let mime: Option<String> = r.get(4);
            let top: Option<bool> = r.get(5);
            let top = top.unwrap_or(false);
            // holdfast's own uploads name a fixed place for members: those come back.
            let why = (uname == holdfast_site::naming::ARTIFACT_META && (top || !by_holdfast))
                .then(|| crate::fossology::irreproducible_meta(mime.as_deref(), top))
                .flatten()
                .unwrap_or("this unpack did not produce it");
            out.push(format!("{n} ({uname}): {why}"));
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
    let agent = agent_key(&mut tx, "ununpack", "Unpacks archives (iso, tar, etc)")?;
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
