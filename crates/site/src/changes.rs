//! What FOSSology's database says changed in the repository since a moment recorded as
//! high-water marks: the rows that name repository files carry serial keys, so the files
//! new since then are the ones named by rows above the marks.
//!
//! FOSSology writes a repository file and then its rows, or its rows and then the file:
//! - an upload's gold: the upload agent stores the file, adds (or finds) its `pfile` row and
//!   sets `upload.pfile_fk`; an upload row whose `pfile_fk` is still empty is remembered in
//!   the marks and looked at again next time (its gold may arrive later, under an old pfile);
//! - an unpack (`ununpack`) stores every member in `files` and adds its `uploadtree` rows
//!   (in `uploadtree_a` or a per-upload table; both inherit `uploadtree`, one sequence), so
//!   an old pfile newly stored by a new unpack is found through its new `uploadtree` row.
//!
//! Deletions (`delagent`) remove rows and then files: the number of rows at or below each
//! mark shrinks. Only then is the whole set of names read (from the database, no file is
//! touched), and a caller drops what is no longer named and is gone from the disk.
//!
//! Anything written behind the database's back (a file restored by hand, a repair) is not
//! seen here: callers walk the whole repository on a slower cadence for that.

use crate::db::{uploadtree_tables, Reference};
use crate::pfile::PfileName;
use serde::{Deserialize, Serialize};

/// High-water marks of the rows that name repository files, read with the scheduler
/// stopped (nothing adds rows then).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    pub pfile: i32,
    pub upload: i32,
    pub uploadtree: i32,
    /// Rows at or below each mark when it was read: fewer later means rows were deleted.
    pub pfile_rows: i64,
    pub upload_rows: i64,
    pub uploadtree_rows: i64,
    /// Uploads at or below the mark whose gold was not stored yet (`pfile_fk` empty).
    #[serde(default)]
    pub pending_uploads: Vec<i32>,
}

/// Reads the marks now.
pub fn marks(c: &mut postgres::Client) -> Result<Marks, postgres::Error> {
    let max_count = |c: &mut postgres::Client, table: &str, key: &str| {
        c.query_one(
            format!("SELECT COALESCE(max({key}), 0), count(*) FROM {table}").as_str(),
            &[],
        )
        .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
    };
    let (pfile, pfile_rows) = max_count(c, "pfile", "pfile_pk")?;
    let (upload, upload_rows) = max_count(c, "upload", "upload_pk")?;
    let (uploadtree, uploadtree_rows) = max_count(c, "uploadtree", "uploadtree_pk")?;
    let pending_uploads = c
        .query(
            "SELECT upload_pk FROM upload WHERE pfile_fk IS NULL ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Marks {
        pfile,
        upload,
        uploadtree,
        pfile_rows,
        upload_rows,
        uploadtree_rows,
        pending_uploads,
    })
}

/// Whether rows at or below `m` were deleted since `m` was read.
pub fn deleted_since(c: &mut postgres::Client, m: &Marks) -> Result<bool, postgres::Error> {
    let count = |c: &mut postgres::Client, table: &str, key: &str, mark: i32| {
        c.query_one(
            format!("SELECT count(*) FROM {table} WHERE {key} <= $1").as_str(),
            &[&mark],
        )
        .map(|r| r.get::<_, i64>(0))
    };
    Ok(count(c, "pfile", "pfile_pk", m.pfile)? < m.pfile_rows
        || count(c, "upload", "upload_pk", m.upload)? < m.upload_rows
        || count(c, "uploadtree", "uploadtree_pk", m.uploadtree)? < m.uploadtree_rows)
}

/// The repository files named by rows added since `m` and their bytes, each name once: the size of a night's copy as the database sees it, before any disk is read.
pub fn new_data(c: &mut postgres::Client, m: &Marks) -> Result<(u64, u64), postgres::Error> {
    let mut seen = std::collections::HashSet::new();
    let (mut files, mut bytes) = (0, 0);
    for r in named_since(c, m)? {
        // A gold file and its files twin are one inode on the site and one object in a pool.
        if seen.insert(r.name) {
            files += 1;
            bytes += r.size;
        }
    }
    Ok((files, bytes))
}

/// The (kind, name) of every repository file named by rows added since `m`: `gold` for
/// uploads (new, or pending at `m`) and `files` for new tree rows and new pfiles. A name
/// may appear more than once.
pub fn named_since(c: &mut postgres::Client, m: &Marks) -> Result<Vec<Reference>, postgres::Error> {
    let mut out = Vec::new();
    let pf = "p.pfile_pk, p.pfile_sha1, p.pfile_md5, p.pfile_size";
    let mut push = |rows: Vec<postgres::Row>, kind: &str| {
        for r in rows {
            let size: i64 = r.get(4);
            out.push(Reference {
                upload_fk: r.get(0),
                kind: kind.to_string(),
                pfile_pk: r.get(1),
                name: PfileName::new(&r.get::<_, String>(2), &r.get::<_, String>(3), size as u64)
                    .to_string(),
                size: size as u64,
            });
        }
    };
    push(
        c.query(
            format!(
                "SELECT u.upload_pk, {pf} FROM upload u JOIN pfile p ON p.pfile_pk = u.pfile_fk \
                 WHERE u.upload_pk > $1 OR u.upload_pk = ANY($2) OR p.pfile_pk > $3"
            )
            .as_str(),
            &[&m.upload, &m.pending_uploads, &m.pfile],
        )?,
        "gold",
    );
    // New tree rows, and tree rows of new pfiles (the latter by the pfile index).
    for table in uploadtree_tables(c)? {
        push(
            c.query(
                format!(
                    "SELECT DISTINCT t.upload_fk, {pf} FROM {table} t JOIN pfile p ON p.pfile_pk = t.pfile_fk \
                     WHERE t.uploadtree_pk > $1 AND t.pfile_fk <> 0"
                )
                .as_str(),
                &[&m.uploadtree],
            )?,
            "files",
        );
    }
    push(
        c.query(
            format!("SELECT 0, {pf} FROM pfile p WHERE p.pfile_pk > $1").as_str(),
            &[&m.pfile],
        )?,
        "files",
    );
    Ok(out)
}
