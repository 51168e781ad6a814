//! Every SQL statement holdfast runs against FOSSology's tables, with typed functions the
//! other crates call, grouped by what they are about: [`uploads`], [`uploadtree`],
//! [`pfiles`], [`jobs`], [`folders`] (folders and permissions) and [`crate::users`]. This
//! module holds what spans several of them (the references `verify` checks) and holdfast's
//! own `holdfast_slimmed` record; the other holdfast table, `holdfast_recovery`, stays with
//! its owner (`holdfast_recover::queue`). No other crate names a FOSSology table (the test
//! `tests/one_home.rs` enforces it).

pub mod folders;
pub mod jobs;
pub mod pfiles;
pub mod standin;
pub mod uploads;
pub mod uploadtree;
pub use crate::users;

pub use jobs::{
    has_job_queue, queue_cut_off_deletion, running_jobs, unfinished_jobs, uploads_being_deleted,
    uploads_deleted, uploads_deleted_by_now, QueueRow,
};
pub use pfiles::{upsert as upsert_pfiles, PfileHashes};
pub use uploads::{exists as upload_exists, since as uploads_since};

use crate::mode;
use crate::pfile::PfileName;
use crate::repo::Repository;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

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

/// The uploads `refs` belong to, once each, in order.
pub fn uploads_of(refs: &[Reference]) -> Vec<i32> {
    let set: std::collections::BTreeSet<i32> = refs.iter().map(|r| r.upload_fk).collect();
    set.into_iter().collect()
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
    /// Absent files of uploads a delete job had begun on (see [`uploads_being_deleted`]):
    /// the job finishes the deletion when it runs again, not damage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub being_deleted: Vec<Reference>,
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
    check(c, repo, refs)
}

/// [`verify`] of references already read (see [`references`]).
pub fn check(
    c: &mut postgres::Client,
    repo: &Repository,
    refs: Vec<Reference>,
) -> Result<VerifyReport, postgres::Error> {
    let mut report = VerifyReport {
        checked: refs.len(),
        ..Default::default()
    };
    // Looked up in parallel: on a cold cache each look-up waits on folder and inode reads.
    let absent: Vec<Reference> = {
        use rayon::prelude::*;
        holdfast_core::threads::io_pool().install(|| {
            refs.into_par_iter()
                .filter(|r| {
                    let name = PfileName::parse(&r.name).expect("names built from hashes parse");
                    !repo.has(&r.kind, &name)
                })
                .collect()
        })
    };
    // Read the slimming record and the delete jobs only when something is absent.
    let mut why: Option<(HashSet<i32>, HashSet<i32>)> = None;
    for r in absent {
        if why.is_none() {
            why = Some((slimmed_pfiles(c)?, uploads_being_deleted(c)?));
        }
        let (slimmed, deleting) = why.as_ref().expect("just read");
        if r.kind == "files" && slimmed.contains(&r.pfile_pk) {
            report.slimmed.push(r);
        } else if deleting.contains(&r.upload_fk) {
            report.being_deleted.push(r);
        } else {
            report.missing.push(r);
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

/// Every `holdfast_slimmed` record: pfile → bytes (empty when the table does not exist).
pub fn slimmed_records(
    c: &mut postgres::Client,
) -> Result<std::collections::HashMap<i32, u64>, postgres::Error> {
    if !slimmed_table_exists(c)? {
        return Ok(Default::default());
    }
    Ok(
        c.query("SELECT pfile_pk, bytes FROM holdfast_slimmed", &[])?
            .iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1) as u64))
            .collect(),
    )
}

/// Mimetypes whose files FOSSology's pkgagent opens in `files` itself (`pkgagent.c`:
/// `GetMetadata` for RPMs, `GetMetadataDebSource` for `.dsc`), though they are containers.
pub const PKGAGENT_READS: [&str; 2] = ["application/x-rpm", "application/x-debian-source"];

/// The pfiles pkgagent would still open (one of [`PKGAGENT_READS`], no `pkg_rpm` or
/// `pkg_deb` row for it yet), with their mimetype.
pub fn pkgagent_pending(
    c: &mut postgres::Client,
) -> Result<std::collections::HashMap<i32, String>, postgres::Error> {
    let has = |c: &mut postgres::Client, t: &str| -> Result<bool, postgres::Error> {
        Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&t])?
            .get(0))
    };
    let mut done = String::new();
    for t in ["pkg_rpm", "pkg_deb"] {
        if has(c, t)? {
            done.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM {t} k WHERE k.pfile_fk = p.pfile_pk)"
            ));
        }
    }
    let sql = format!(
        "SELECT p.pfile_pk, m.mimetype_name FROM pfile p \
         JOIN mimetype m ON m.mimetype_pk = p.pfile_mimetypefk \
         WHERE m.mimetype_name = ANY($1){done}"
    );
    Ok(c.query(sql.as_str(), &[&PKGAGENT_READS.as_slice()])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Drops the records of `pfiles` (they are no longer absent on purpose).
pub fn drop_slimmed(c: &mut postgres::Client, pfiles: &[i32]) -> Result<(), postgres::Error> {
    ensure_slimmed_table(c)?;
    c.execute(
        "DELETE FROM holdfast_slimmed WHERE pfile_pk = ANY($1)",
        &[&pfiles],
    )?;
    Ok(())
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
               AND (COALESCE(t.ufile_mode, 0) & {}) = 0)",
            mode::BIT_CONTAINER
        ));
    }
    Ok(c.query(sql.as_str(), &[])?
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect())
}

/// `s` as a quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `s` as a quoted SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Rows in each of `tables` (FOSSology table names; anything else is refused).
pub fn row_counts(
    c: &mut postgres::Client,
    tables: &[&str],
) -> Result<Vec<(String, i64)>, postgres::Error> {
    let mut out = Vec::new();
    for t in tables {
        assert!(
            t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "a table name, not {t:?}"
        );
        let n: i64 = c
            .query_one(format!("SELECT count(*) FROM {t}").as_str(), &[])?
            .get(0);
        out.push((t.to_string(), n));
    }
    Ok(out)
}

/// Whether the connection's client encoding is UTF8 (libpq takes the database's): then
/// ununpack's escaping refuses names that are not UTF-8.
pub fn client_is_utf8(c: &mut postgres::Client) -> Result<bool, postgres::Error> {
    let enc: String = c.query_one("SHOW server_encoding", &[])?.get(0);
    Ok(enc.eq_ignore_ascii_case("UTF8"))
}
