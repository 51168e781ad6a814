//! Queries on FOSSology's database that several commands share.

use crate::pfile::PfileName;
use crate::repo::Repository;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A file's hashes as FOSSology keys a pfile (hex in any case; stored upper case).
#[derive(Debug, Clone, Copy)]
pub struct PfileHashes<'a> {
    pub sha1: &'a str,
    pub md5: &'a str,
    pub sha256: &'a str,
    pub size: u64,
}

/// Finds or adds the pfile rows of `files`; returns each one's `pfile_pk` by name.
///
/// FOSSology's only unique key on pfile is `pfile_md5_sha1_sha256_size_ukey` (md5, sha1,
/// sha256, size), but a pfile is named, and found by its agents, by sha1, md5 and size:
/// rows from before FOSSology stored sha256 have it NULL, which no unique key matches. So a
/// row with the same name is reused (its missing sha256 filled in), and only files with no
/// row are inserted; the unique key keeps a concurrent twin from being added twice.
pub fn upsert_pfiles(
    c: &mut impl postgres::GenericClient,
    files: &[PfileHashes],
) -> Result<std::collections::HashMap<PfileName, i32>, postgres::Error> {
    let mut seen = HashSet::new();
    let (mut s1, mut m5, mut s256, mut sz) = (vec![], vec![], vec![], vec![]);
    for f in files {
        if seen.insert(PfileName::new(f.sha1, f.md5, f.size)) {
            s1.push(f.sha1.to_ascii_uppercase());
            m5.push(f.md5.to_ascii_uppercase());
            s256.push(f.sha256.to_ascii_uppercase());
            sz.push(f.size as i64);
        }
    }
    let args: [&(dyn postgres::types::ToSql + Sync); 4] = [&s1, &m5, &s256, &sz];
    c.execute(
        "UPDATE pfile p SET pfile_sha256 = u.h
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(s, m, h, z)
         WHERE p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z
           AND p.pfile_sha256 IS NULL",
        &args,
    )?;
    c.execute(
        "INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_sha256, pfile_size)
         SELECT u.s, u.m, u.h, u.z
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(s, m, h, z)
         WHERE NOT EXISTS (SELECT 1 FROM pfile p
                           WHERE p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z)
         ON CONFLICT (pfile_md5, pfile_sha1, pfile_sha256, pfile_size) DO NOTHING",
        &args,
    )?;
    // The lowest key when old data holds twins of one name.
    let rows = c.query(
        "SELECT min(p.pfile_pk), p.pfile_sha1, p.pfile_md5, p.pfile_size
         FROM pfile p JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(s, m, z)
           ON p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z
         GROUP BY 2, 3, 4",
        &[&s1, &m5, &sz],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let size: i64 = r.get(3);
            (PfileName::new(r.get(1), r.get(2), size as u64), r.get(0))
        })
        .collect())
}

/// One `jobqueue` row with the job it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    pub jq_pk: i32,
    pub job_pk: i32,
    pub job_name: Option<String>,
    /// The agent: `ununpack`, `adj2nest`, `nomos`, ...
    pub jq_type: String,
    pub jq_args: Option<String>,
    pub jq_cmd_args: Option<String>,
    pub upload_fk: Option<i32>,
    /// True when the row had started (it was cut off), false when it was only queued.
    pub started: bool,
}

const QUEUE_SELECT: &str = "SELECT jq.jq_pk, j.job_pk, j.job_name, jq.jq_type, jq.jq_args, \
     jq.jq_cmd_args, j.job_upload_fk, jq.jq_starttime IS NOT NULL \
     FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk";

fn queue_rows(c: &mut postgres::Client, filter: &str) -> Result<Vec<QueueRow>, postgres::Error> {
    let sql = format!("{QUEUE_SELECT} WHERE {filter} ORDER BY jq.jq_pk");
    Ok(c.query(sql.as_str(), &[])?
        .iter()
        .map(|r| QueueRow {
            jq_pk: r.get(0),
            job_pk: r.get(1),
            job_name: r.get(2),
            jq_type: r.get(3),
            jq_args: r.get(4),
            jq_cmd_args: r.get(5),
            upload_fk: r.get(6),
            started: r.get(7),
        })
        .collect())
}

/// Rows an agent is working on: started, not ended.
pub fn running_jobs(c: &mut postgres::Client) -> Result<Vec<QueueRow>, postgres::Error> {
    queue_rows(c, "jq.jq_starttime IS NOT NULL AND jq.jq_endtime IS NULL")
}

/// Every row not ended: queued or cut off.
pub fn unfinished_jobs(c: &mut postgres::Client) -> Result<Vec<QueueRow>, postgres::Error> {
    queue_rows(c, "jq.jq_endtime IS NULL")
}

/// A repository file the database refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub upload_fk: i32,
    /// `gold` for an upload's own file, `files` for everything in its tree.
    pub kind: String,
    pub pfile_pk: i32,
    pub name: String,
    pub size: u64,
}

/// The distinct uploadtree tables the uploads use (`uploadtree_a` and per-upload ones).
pub fn uploadtree_tables(c: &mut postgres::Client) -> Result<Vec<String>, postgres::Error> {
    let rows = c.query(
        "SELECT DISTINCT COALESCE(uploadtree_tablename, 'uploadtree_a') FROM upload ORDER BY 1",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        // Only plain identifiers: the name is spliced into SQL.
        .filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect())
}

/// Every (upload, kind, pfile) the database names: each upload's gold file, in `gold` and in
/// `files`, and every pfile of its tree in `files`. Uploads whose unpack has not run yet
/// only need their gold.
pub fn references(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<Vec<Reference>, postgres::Error> {
    let mut out = Vec::new();
    let pf = "pfile_pk, pfile_sha1, pfile_md5, pfile_size";
    let push = |out: &mut Vec<Reference>, rows: Vec<postgres::Row>, kind: &str| {
        for r in rows {
            let sha1: String = r.get(2);
            let md5: String = r.get(3);
            let size: i64 = r.get(4);
            out.push(Reference {
                upload_fk: r.get(0),
                kind: kind.to_string(),
                pfile_pk: r.get(1),
                name: PfileName::new(&sha1, &md5, size as u64).to_string(),
                size: size as u64,
            });
        }
    };
    let golds = c.query(
        format!(
            "SELECT u.upload_pk, {pf} FROM upload u JOIN pfile p ON p.pfile_pk = u.pfile_fk \
             WHERE $1::int4 IS NULL OR u.upload_pk = $1 ORDER BY u.upload_pk"
        )
        .as_str(),
        &[&upload],
    )?;
    push(&mut out, golds, "gold");
    for table in uploadtree_tables(c)? {
        let rows = c.query(
            format!(
                "SELECT DISTINCT t.upload_fk, {pf} FROM {table} t JOIN pfile p ON p.pfile_pk = t.pfile_fk \
                 WHERE t.pfile_fk <> 0 AND ($1::int4 IS NULL OR t.upload_fk = $1) ORDER BY 1, 2"
            )
            .as_str(),
            &[&upload],
        )?;
        push(&mut out, rows, "files");
    }
    Ok(out)
}

/// Result of checking the repository against the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    pub checked: usize,
    pub missing: Vec<Reference>,
    /// Absent containers that repository slimming removed on purpose: rebuildable from
    /// gold, not damage (see [`slimmed_pfiles`]).
    #[serde(default)]
    pub slimmed: Vec<Reference>,
}

impl VerifyReport {
    pub fn is_whole(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Checks that every referenced file exists under its name with its size.
pub fn verify(
    c: &mut postgres::Client,
    repo: &Repository,
    upload: Option<i32>,
) -> Result<VerifyReport, postgres::Error> {
    let refs = references(c, upload)?;
    let mut report = VerifyReport {
        checked: refs.len(),
        ..Default::default()
    };
    let mut slimmed: Option<HashSet<i32>> = None;
    for r in refs {
        let name = PfileName::parse(&r.name).expect("names built from hashes parse");
        if !repo.has(&r.kind, &name) {
            // Read the slimming record only when something is absent.
            if slimmed.is_none() {
                slimmed = Some(slimmed_pfiles(c)?);
            }
            let s = slimmed.as_ref().expect("just read");
            if r.kind == "files" && s.contains(&r.pfile_pk) {
                report.slimmed.push(r);
            } else {
                report.missing.push(r);
            }
        }
    }
    Ok(report)
}

/// The table where repository slimming records every container it removed from `files`
/// (and every container a slim unpack never stored). Holdfast owns it; FOSSology ignores it.
pub const SLIMMED_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS holdfast_slimmed ( \
     pfile_pk int4 PRIMARY KEY, \
     name text NOT NULL, \
     bytes int8 NOT NULL, \
     removed_at timestamptz NOT NULL DEFAULT now())";

/// Creates `holdfast_slimmed` when it does not exist yet.
pub fn ensure_slimmed_table(c: &mut postgres::Client) -> Result<(), postgres::Error> {
    c.batch_execute(SLIMMED_TABLE_SQL)
}

/// Records containers as removed on purpose (idempotent: a pfile already recorded stays as
/// it is). Record *before* deleting the file, so an interruption never leaves an absent
/// container without its record.
pub fn record_slimmed(
    c: &mut postgres::Client,
    pfiles: &[(i32, String, u64)],
) -> Result<(), postgres::Error> {
    ensure_slimmed_table(c)?;
    let stmt = c.prepare(
        "INSERT INTO holdfast_slimmed (pfile_pk, name, bytes) VALUES ($1, $2, $3) \
         ON CONFLICT (pfile_pk) DO NOTHING",
    )?;
    let mut tx = c.transaction()?;
    for (pk, name, bytes) in pfiles {
        tx.execute(&stmt, &[pk, name, &(*bytes as i64)])?;
    }
    tx.commit()
}

/// Whether `holdfast_slimmed` exists (nothing was ever slimmed when it does not).
pub fn slimmed_table_exists(c: &mut postgres::Client) -> Result<bool, postgres::Error> {
    Ok(
        c.query_one("SELECT to_regclass('holdfast_slimmed') IS NOT NULL", &[])?
            .get(0),
    )
}

/// The pfiles whose absence from `files` is intended: recorded in `holdfast_slimmed` and,
/// right now, neither an upload's gold nor used as anything but a container in any tree
/// (a record never excuses a missing leaf). Empty when the table does not exist.
pub fn slimmed_pfiles(c: &mut postgres::Client) -> Result<HashSet<i32>, postgres::Error> {
    if !slimmed_table_exists(c)? {
        return Ok(HashSet::new());
    }
    let mut sql = String::from(
        "SELECT s.pfile_pk FROM holdfast_slimmed s \
         WHERE NOT EXISTS (SELECT 1 FROM upload u WHERE u.pfile_fk = s.pfile_pk)",
    );
    for table in uploadtree_tables(c)? {
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.pfile_fk = s.pfile_pk \
               AND (COALESCE(t.ufile_mode, 0) & {CONTAINER_BIT}) = 0)"
        ));
    }
    Ok(c.query(sql.as_str(), &[])?
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect())
}

/// `ufile_mode` bit of a container row (archives, compressed files, packages; FOSSology also
/// sets it on directories, which have no pfile).
pub const CONTAINER_BIT: i32 = 1 << 29;

/// True when upload `upload_pk` exists.
pub fn upload_exists(c: &mut postgres::Client, upload_pk: i32) -> Result<bool, postgres::Error> {
    Ok(
        c.query_opt("SELECT 1 FROM upload WHERE upload_pk = $1", &[&upload_pk])?
            .is_some(),
    )
}

/// Uploads made after `t` (what a restore of a snapshot taken at `t` loses): how many, and
/// the newest one's time.
pub fn uploads_since(
    c: &mut postgres::Client,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<(i64, Option<String>), postgres::Error> {
    let r = c.query_one(
        "SELECT count(*), to_char(max(upload_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI UTC') \
         FROM upload WHERE upload_ts > $1::text::timestamptz",
        &[&t.to_rfc3339()],
    )?;
    Ok((r.get(0), r.get(1)))
}

/// `s` as a quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `s` as a quoted SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// True when the database has FOSSology's job queue (a database being restored may not).
pub fn has_job_queue(c: &mut postgres::Client) -> bool {
    c.query_one("SELECT to_regclass('jobqueue') IS NOT NULL", &[])
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
}
