//! The uploadtree tables (`uploadtree_a` and per-upload ones): one row per file or folder of
//! an unpacked upload, nested by `parent` and by `lft`/`rgt`.

use crate::mode;
use crate::pfile::PfileName;
use std::collections::HashSet;
use std::fmt;

/// The name of an uploadtree table: a plain identifier (it is spliced into SQL).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeTable(String);

impl TreeTable {
    /// `name` when it is a plain identifier (letters, digits, `_`), else None.
    pub fn new(name: impl Into<String>) -> Option<Self> {
        let name = name.into();
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then_some(TreeTable(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `uploadtree_a`, where FOSSology puts every upload's rows unless told otherwise.
impl Default for TreeTable {
    fn default() -> Self {
        TreeTable("uploadtree_a".into())
    }
}

impl fmt::Display for TreeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file row (one with a pfile) and whether it has children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRow {
    pub upload: i32,
    pub pfile: i32,
    /// `ufile_mode` (0 when NULL).
    pub mode: i32,
    pub has_children: bool,
}

/// The distinct file rows of `uploads` in `table`. A row has children when a file row lies
/// below it, directly or through folders: FOSSology gives every container it opens an
/// artifact folder, even one unpacking left empty, so a child row alone says nothing.
pub fn file_rows(
    c: &mut postgres::Client,
    table: &TreeTable,
    uploads: &[i32],
) -> Result<Vec<FileRow>, postgres::Error> {
    let sql = format!(
        "WITH RECURSIVE owners(pk) AS ( \
             SELECT parent FROM {table} \
             WHERE parent IS NOT NULL AND pfile_fk IS NOT NULL AND pfile_fk <> 0 \
                   AND upload_fk = ANY($1) \
             UNION \
             SELECT f.parent FROM owners o JOIN {table} f ON f.uploadtree_pk = o.pk \
             WHERE (f.pfile_fk IS NULL OR f.pfile_fk = 0) AND f.parent IS NOT NULL) \
         SELECT DISTINCT t.upload_fk, t.pfile_fk, COALESCE(t.ufile_mode, 0), \
                o.pk IS NOT NULL \
         FROM {table} t LEFT JOIN owners o ON o.pk = t.uploadtree_pk \
         WHERE t.pfile_fk IS NOT NULL AND t.pfile_fk <> 0 AND t.upload_fk = ANY($1)"
    );
    Ok(c.query(sql.as_str(), &[&uploads])?
        .iter()
        .map(|r| FileRow {
            upload: r.get(0),
            pfile: r.get(1),
            mode: r.get(2),
            has_children: r.get(3),
        })
        .collect())
}

/// SQL that is true when the `ufile_mode` column `col` marks a plain file: neither a
/// container nor a folder (the rule of [`mode::classify`]).
fn plain_file_sql(col: &str) -> String {
    format!(
        "(COALESCE({col}, 0) & {c}) = 0 AND (COALESCE({col}, 0) & {d}) = 0 \
         AND (COALESCE({col}, 0) & {fmt}) <> {dir}",
        c = mode::BIT_CONTAINER,
        d = mode::BIT_DIRECTORY_LEGACY,
        fmt = mode::S_IFMT,
        dir = mode::S_IFDIR,
    )
}

/// Which of `pfiles` are, right now, an upload's gold or a leaf or artifact in some tree
/// (neither a container nor a folder by [`mode::classify`]).
pub fn used_as_non_container(
    c: &mut postgres::Client,
    pfiles: &[i32],
) -> Result<HashSet<i32>, postgres::Error> {
    let mut out: HashSet<i32> = c
        .query(
            "SELECT DISTINCT pfile_fk FROM upload WHERE pfile_fk = ANY($1)",
            &[&pfiles],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in super::uploadtree_tables(c)? {
        let sql = format!(
            "SELECT DISTINCT pfile_fk FROM {table} WHERE pfile_fk = ANY($1) AND {}",
            plain_file_sql("ufile_mode")
        );
        out.extend(
            c.query(sql.as_str(), &[&pfiles])?
                .iter()
                .map(|r| r.get::<_, i32>(0)),
        );
    }
    Ok(out)
}

/// The repository names of the files `upload`'s rows hold only as plain files: no row of
/// the upload makes that pfile a container or a folder. A repository-only rebuild stores
/// them without asking libmagic again (most of its time), as no row needs their contents.
pub fn plain_file_names(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
) -> Result<HashSet<String>, postgres::Error> {
    let sql = format!(
        "SELECT p.pfile_sha1, p.pfile_md5, p.pfile_size FROM {table} t \
           JOIN pfile p ON p.pfile_pk = t.pfile_fk \
         WHERE t.upload_fk = $1 AND t.pfile_fk <> 0 \
         GROUP BY p.pfile_pk HAVING bool_and({})",
        plain_file_sql("t.ufile_mode")
    );
    Ok(c.query(sql.as_str(), &[&upload])?
        .iter()
        .filter_map(|r| super::pfiles::name_of(r.get(0), r.get(1), r.get(2)))
        .map(|n| n.to_string())
        .collect())
}

/// The top row of an upload's tree (None when it was never unpacked).
pub fn root(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
) -> Result<Option<i32>, postgres::Error> {
    let sql = format!(
        "SELECT uploadtree_pk FROM {table} WHERE upload_fk = $1 AND parent IS NULL \
         ORDER BY uploadtree_pk LIMIT 1"
    );
    Ok(c.query_opt(sql.as_str(), &[&upload])?.map(|r| r.get(0)))
}

/// Which rows [`items`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// The row with this `uploadtree_pk`.
    Row(i32),
    /// The children of this row.
    ChildrenOf(i32),
}

/// A tree row with its pfile, mimetype and number of children.
#[derive(Debug, Clone)]
pub struct Item {
    pub uploadtree_pk: i32,
    pub upload_fk: i32,
    pub parent: Option<i32>,
    /// `ufile_name` (empty when NULL).
    pub name: String,
    /// `ufile_mode` (0 when NULL).
    pub mode: i32,
    pub pfile_pk: Option<i32>,
    pub pfile: Option<PfileName>,
    pub size: Option<i64>,
    pub mimetype: Option<String>,
    pub children: i64,
}

/// The rows of `upload` that `pick` names, by name then key.
pub fn items(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
    pick: Pick,
) -> Result<Vec<Item>, postgres::Error> {
    let (filter, arg) = match pick {
        Pick::Row(pk) => ("t.uploadtree_pk = $2", pk),
        Pick::ChildrenOf(pk) => ("t.parent = $2", pk),
    };
    let sql = format!(
        "SELECT t.uploadtree_pk, t.upload_fk, t.parent, t.ufile_name, COALESCE(t.ufile_mode, 0), \
           p.pfile_pk, p.pfile_sha1, p.pfile_md5, p.pfile_size, m.mimetype_name, \
           (SELECT count(*) FROM {table} k WHERE k.parent = t.uploadtree_pk) \
         FROM {table} t LEFT JOIN pfile p ON p.pfile_pk = t.pfile_fk AND t.pfile_fk <> 0 \
         LEFT JOIN mimetype m ON m.mimetype_pk = p.pfile_mimetypefk \
         WHERE t.upload_fk = $1 AND {filter} ORDER BY t.ufile_name, t.uploadtree_pk"
    );
    Ok(c.query(sql.as_str(), &[&upload, &arg])?
        .iter()
        .map(|r| Item {
            uploadtree_pk: r.get(0),
            upload_fk: r.get(1),
            parent: r.get(2),
            name: r.get::<_, Option<String>>(3).unwrap_or_default(),
            mode: r.get(4),
            pfile_pk: r.get(5),
            pfile: super::pfiles::name_of(r.get(6), r.get(7), r.get(8)),
            size: r.get(8),
            mimetype: r.get(9),
            children: r.get(10),
        })
        .collect())
}

/// `(uploadtree_pk, ufile_name)` from the root down to row `pk` of `upload`.
pub fn trail(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
    pk: i32,
) -> Result<Vec<(i32, String)>, postgres::Error> {
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

/// Path (names from the root, `/`-joined) and mode of every row holding `pfile` in
/// `upload`, by row key.
pub fn paths_of(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
    pfile: i32,
) -> Result<Vec<(String, i32)>, postgres::Error> {
    let sql = format!(
        "WITH RECURSIVE up AS ( \
           SELECT uploadtree_pk AS leaf, parent, ufile_name::text AS path, ufile_mode AS mode \
             FROM {table} WHERE upload_fk = $1 AND pfile_fk = $2 \
           UNION ALL \
           SELECT up.leaf, t.parent, t.ufile_name || '/' || up.path, up.mode \
             FROM up JOIN {table} t ON t.uploadtree_pk = up.parent) \
         SELECT path, mode FROM up WHERE parent IS NULL ORDER BY leaf"
    );
    Ok(c.query(sql.as_str(), &[&upload, &pfile])?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, Option<i32>>(1).unwrap_or(0),
            )
        })
        .collect())
}

/// An `artifact.meta` row and what its container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRow {
    pub pfile: i32,
    /// The container's mimetype, when recorded.
    pub container_mime: Option<String>,
    /// The container is the upload's top row.
    pub container_is_top: bool,
}

fn meta_rows(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
    pfile: Option<i32>,
) -> Result<Vec<MetaRow>, postgres::Error> {
    let (select, filter) = match pfile {
        Some(_) => ("", "AND t.pfile_fk = $2 LIMIT 1"),
        None => ("DISTINCT", ""),
    };
    let sql = format!(
        "SELECT {select} t.pfile_fk, m.mimetype_name, ct.parent IS NULL FROM {table} t \
         JOIN {table} ct ON ct.uploadtree_pk = t.parent \
         LEFT JOIN pfile cp ON cp.pfile_pk = ct.pfile_fk \
         LEFT JOIN mimetype m ON m.mimetype_pk = cp.pfile_mimetypefk \
         WHERE t.upload_fk = $1 AND t.ufile_name = '{name}' {filter}",
        name = crate::naming::ARTIFACT_META,
    );
    let rows = match pfile {
        Some(p) => c.query(sql.as_str(), &[&upload, &p])?,
        None => c.query(sql.as_str(), &[&upload])?,
    };
    Ok(rows
        .iter()
        .map(|r| MetaRow {
            pfile: r.get(0),
            container_mime: r.get(1),
            container_is_top: r.get::<_, Option<bool>>(2).unwrap_or(false),
        })
        .collect())
}

/// One `artifact.meta` row of `upload` holding `pfile`, if any.
pub fn meta_row(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
    pfile: i32,
) -> Result<Option<MetaRow>, postgres::Error> {
    Ok(meta_rows(c, table, upload, Some(pfile))?.into_iter().next())
}

/// Every distinct `artifact.meta` row of `upload`.
pub fn meta_rows_of(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
) -> Result<Vec<MetaRow>, postgres::Error> {
    meta_rows(c, table, upload, None)
}

/// `(ufile_name, pfile name or "", ufile_mode)` of every row of `upload`, sorted: what
/// two unpacks of the same file must agree on (keys differ between uploads).
pub fn signature(
    c: &mut postgres::Client,
    table: &TreeTable,
    upload: i32,
) -> Result<Vec<(String, String, i32)>, postgres::Error> {
    let sql = format!(
        "SELECT t.ufile_name, COALESCE(p.pfile_sha1 || '.' || p.pfile_md5 || '.' || p.pfile_size, ''), \
         t.ufile_mode FROM {table} t LEFT JOIN pfile p ON p.pfile_pk = t.pfile_fk \
         WHERE t.upload_fk = $1 ORDER BY 1, 2, 3"
    );
    Ok(c.query(sql.as_str(), &[&upload])?
        .iter()
        .map(|r| (r.get(0), r.get::<_, String>(1).to_lowercase(), r.get(2)))
        .collect())
}

/// How many rows `upload` has in `table`.
pub fn count(
    c: &mut impl postgres::GenericClient,
    table: &TreeTable,
    upload: i32,
) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        format!("SELECT count(*) FROM {table} WHERE upload_fk = $1").as_str(),
        &[&upload],
    )?
    .get(0))
}

/// A new tree row with its nested-set numbers.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    pub parent: Option<i32>,
    pub realparent: Option<i32>,
    pub upload: i32,
    /// `pfile_pk`, 0 for a folder.
    pub pfile: i32,
    pub mode: i32,
    pub lft: i32,
    pub rgt: i32,
    pub name: &'a str,
}

/// Adds one row to `table`; returns its `uploadtree_pk`.
pub fn insert(
    c: &mut impl postgres::GenericClient,
    table: &TreeTable,
    r: &NewRow,
) -> Result<i32, postgres::Error> {
    let sql = format!(
        "INSERT INTO {table} (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING uploadtree_pk"
    );
    Ok(c.query_one(
        sql.as_str(),
        &[
            &r.parent,
            &r.realparent,
            &r.upload,
            &r.pfile,
            &r.mode,
            &r.lft,
            &r.rgt,
            &r.name,
        ],
    )?
    .get(0))
}

/// Whether `t` is a table FOSSology keeps upload rows in: `uploadtree_a`, `uploadtree`
/// or a per-upload `uploadtree_<upload_pk>`.
pub fn is_upload_table(t: &str) -> bool {
    t == "uploadtree_a"
        || t == "uploadtree"
        || t.strip_prefix("uploadtree_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Uploads bigger than this get their own table (ununpack's rule).
pub const OWN_TABLE_ABOVE: u64 = 500_000_000;

/// The table a new upload's rows go to, as ununpack decides it: uploads over 500 MB get
/// their own `uploadtree_<upload_pk>` (inheriting `uploadtree`), the rest `uploadtree_a`;
/// the upload row is told which.
pub fn table_for(
    c: &mut postgres::Client,
    upload_pk: i32,
    size: u64,
) -> Result<String, postgres::Error> {
    let table = if size > OWN_TABLE_ABOVE {
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

/// One row of a tree to store, in pre-order; `parent` and `realparent` are indexes into
/// the same slice.
#[derive(Debug, Clone)]
pub struct TreeRow<'a> {
    pub parent: Option<usize>,
    pub realparent: Option<usize>,
    pub pfile: Option<super::PfileHashes<'a>>,
    /// The `mimetype_name` its command gives the pfile.
    pub mime: Option<&'a str>,
    /// Full `ufile_mode`, with FOSSology's bits.
    pub mode: u32,
    pub name: &'a str,
}

/// Inserts `rows` unless the upload already has rows in `table` (then, like FOSSology,
/// none, unless they are what an unpack that never finished left: those are replaced; an
/// empty `rows` is a top file ununpack skips), numbers them as adj2nest does, sets
/// the `upload_mode` bits and writes an `ununpack_ars` success row, in one transaction.
/// `mimetypes`: every name ununpack's command table knows (see
/// [`super::pfiles::init_mimetypes`]). Returns rows inserted.
pub fn store(
    c: &mut postgres::Client,
    upload_pk: i32,
    table: &str,
    rows: &[TreeRow],
    mimetypes: &[&str],
    started: std::time::SystemTime,
) -> Result<u64, postgres::Error> {
    assert!(is_upload_table(table), "checked table name");
    let mut tx = c.transaction()?;
    let mime_pks = super::pfiles::init_mimetypes(&mut tx, mimetypes)?;
    let mut existing: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE upload_fk = $1"),
            &[&upload_pk],
        )?
        .get(0);
    // FOSSology's ununpack commits one row at a time and marks the upload unpacked only at
    // its end (upload_mode bit 5, realparent, then its ununpack_ars row ended and
    // successful); rows of an upload no unpack of which ever ended are what an agent that
    // died mid-write left (see `cut_off_rows`). Its own rerun would keep them (it writes rows only when the
    // upload has none), leaving the tree half, or holding artifact.meta files that name the
    // dead agent's temporary folder and can never be made again: they are replaced with
    // the whole tree instead.
    if existing > 0 && cut_off_rows(&mut tx, upload_pk)? {
        let n = tx.execute(
            &format!("DELETE FROM {table} WHERE upload_fk = $1"),
            &[&upload_pk],
        )?;
        tracing::warn!(
            "upload {upload_pk}: replacing the {n} rows an unpack that died mid-write left (no end mark)"
        );
        existing = 0;
    }
    let mut inserted = 0u64;
    if existing == 0 && !rows.is_empty() {
        let mut hs = Vec::new();
        let mut mimes = Vec::new();
        for r in rows {
            if let Some(h) = r.pfile {
                hs.push(h);
                mimes.push(r.mime.and_then(|m| mime_pks.get(m).copied()));
            }
        }
        let pf = super::pfiles::upsert_with_mimetypes(&mut tx, &hs, &mimes)?;
        let n = rows.len() as i64;
        let pks: Vec<i32> = tx
            .query(
                "SELECT nextval('uploadtree_uploadtree_pk_seq')::int4 FROM generate_series(1, $1::int8)",
                &[&n],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut parent = Vec::with_capacity(rows.len());
        let mut realparent = Vec::with_capacity(rows.len());
        let mut pfile = Vec::with_capacity(rows.len());
        let mut mode = Vec::with_capacity(rows.len());
        let mut name = Vec::with_capacity(rows.len());
        for r in rows {
            parent.push(r.parent.map(|p| pks[p]));
            realparent.push(r.realparent.map(|p| pks[p]));
            pfile.push(
                r.pfile
                    .map(|h| pf[&PfileName::new(h.sha1, h.md5, h.size)])
                    .unwrap_or(0),
            );
            mode.push(r.mode as i32);
            name.push(r.name);
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
        &[&upload_pk, &mode::UPLOAD_UNPACKED, &mode::UPLOAD_NESTED],
    )?;
    // Like ununpack, an upload that already has its rows gets no second success row.
    if existing == 0 {
        super::jobs::record_unpack_success(&mut tx, upload_pk, started)?;
    }
    tx.commit()?;
    Ok(inserted)
}

/// Deletes the rows an unpack that died mid-write left ([`cut_off_rows`]) for each upload
/// whose `ununpack` queue row was cut off, so FOSSology's rerun writes the whole tree: it
/// writes rows only when the upload has none (`ununpack.c`, `ReunpackSwitch`) and would
/// otherwise mark the half tree unpacked. Run on a restored database before the scheduler
/// starts. Returns `(upload, rows deleted)` for each tree dropped.
pub fn drop_cut_off_trees(c: &mut postgres::Client) -> Result<Vec<(i32, u64)>, postgres::Error> {
    let mut dropped = Vec::new();
    let mut uploads: Vec<i32> = super::jobs::cut_off_unpacks(c, None)?
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    uploads.sort_unstable();
    uploads.dedup();
    for upload in uploads {
        let mut tx = c.transaction()?;
        if !cut_off_rows(&mut tx, upload)? {
            continue;
        }
        // Through the parent table: ununpack writes a big upload's rows into its own
        // `uploadtree_<upload>` (inheriting `uploadtree`) and names that table in the upload
        // row only at its end, so a cut-off run's rows may be where the row does not say.
        let n = tx.execute("DELETE FROM uploadtree WHERE upload_fk = $1", &[&upload])?;
        tx.commit()?;
        if n > 0 {
            tracing::warn!(
                "upload {upload}: removed the {n} tree rows its cut-off unpack left, so the \
                 scheduler's rerun unpacks it whole"
            );
            dropped.push((upload, n));
        }
    }
    Ok(dropped)
}

/// Whether the upload's rows are a cut-off write: no unpack of the upload ever ended, and
/// one started or the upload is not marked unpacked.
///
/// ununpack writes its `ununpack_ars` row at its start (`fo_WriteARS`: `ars_success`
/// false, no end time) and only at its very end sets `ars_endtime` and `ars_success`, after
/// `upload_mode` bit 5 and `realparent`; its own test for "already unpacked" is a
/// successful row. So a run killed anywhere, between its end marks too, leaves rows, maybe
/// bit 5, and a row that never ended. Rows are kept when any unpack of the upload ended:
/// FOSSology's reunpack page (`ui-reunpack.php`) and a gold-only restore's requeue set
/// `ars_success` false on rows that ended, and ununpack's rerun then keeps the tree the
/// analyses refer to; so are rows marked unpacked with no `ununpack_ars` row at all (a
/// site whose agent rows were purged).
fn cut_off_rows(tx: &mut postgres::Transaction, upload_pk: i32) -> Result<bool, postgres::Error> {
    Ok(tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM ununpack_ars WHERE upload_fk = $1
                                AND (ars_success OR ars_endtime IS NOT NULL))
                    AND (EXISTS (SELECT 1 FROM ununpack_ars
                                 WHERE upload_fk = $1 AND ars_endtime IS NULL)
                         OR (SELECT upload_mode & $2 = 0 FROM upload WHERE upload_pk = $1))",
            &[&upload_pk, &mode::UPLOAD_UNPACKED],
        )?
        .get::<_, Option<bool>>(0)
        .unwrap_or(false))
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
             ORDER BY parent, ufile_mode&{} DESC, ufile_name",
            mode::BIT_CONTAINER
        ),
        &[&upload_pk],
    )?;
    let roots = tx.query(
        &format!("SELECT uploadtree_pk FROM {table} WHERE upload_fk = $1 AND parent IS NULL"),
        &[&upload_pk],
    )?;
    let mut children: std::collections::HashMap<i32, Vec<i32>> = Default::default();
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

/// A file row of an upload with what its container is.
#[derive(Debug, Clone)]
pub struct FileInContainer {
    pub pfile: PfileName,
    /// `ufile_name`; None when NULL or not valid in the client encoding (a `SQL_ASCII`
    /// database holds any byte).
    pub name: Option<String>,
    /// The container's mimetype, when recorded.
    pub container_mime: Option<String>,
    /// The container is the upload's top row (false for the top row itself).
    pub container_is_top: bool,
}

/// The distinct file rows of `upload` in `table`, with their container's type; with
/// `skip_containers`, rows with the container bit are left out.
pub fn files_in_containers(
    c: &mut postgres::Client,
    upload_pk: i32,
    table: &str,
    skip_containers: bool,
) -> Result<Vec<FileInContainer>, postgres::Error> {
    assert!(is_upload_table(table), "checked table name");
    let rows = c.query(
        &format!(
            "SELECT DISTINCT p.pfile_sha1, p.pfile_md5, p.pfile_size, t.ufile_name, m.mimetype_name,
                    ct.parent IS NULL AS top
             FROM {table} t JOIN pfile p ON p.pfile_pk = t.pfile_fk
             LEFT JOIN {table} ct ON ct.uploadtree_pk = t.parent
             LEFT JOIN pfile cp ON cp.pfile_pk = ct.pfile_fk
             LEFT JOIN mimetype m ON m.mimetype_pk = cp.pfile_mimetypefk
             WHERE t.upload_fk = $1 AND ($2 = false OR t.ufile_mode & {} = 0)",
            mode::BIT_CONTAINER
        ),
        &[&upload_pk, &skip_containers],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let size: i64 = r.get(2);
            FileInContainer {
                pfile: PfileName::new(r.get(0), r.get(1), size as u64),
                name: r.try_get(3).ok().flatten(),
                container_mime: r.get(4),
                container_is_top: r.get::<_, Option<bool>>(5).unwrap_or(false),
            }
        })
        .collect())
}
