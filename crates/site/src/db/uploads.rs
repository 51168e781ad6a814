//! The `upload` table: one row per upload, naming its gold pfile and its uploadtree table.

use super::uploadtree::TreeTable;
use crate::pfile::PfileName;

/// True when upload `upload_pk` exists.
pub fn exists(
    c: &mut impl postgres::GenericClient,
    upload_pk: i32,
) -> Result<bool, postgres::Error> {
    Ok(
        c.query_opt("SELECT 1 FROM upload WHERE upload_pk = $1", &[&upload_pk])?
            .is_some(),
    )
}

/// Uploads made after `t` (what a restore of a snapshot taken at `t` loses): how many, and
/// the newest one's time.
pub fn since(
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

/// An upload, its gold pfile and the uploadtree table its rows live in.
#[derive(Debug, Clone)]
pub struct Upload {
    pub pk: i32,
    pub filename: String,
    /// `pfile_fk` (None when NULL or 0).
    pub gold: Option<i32>,
    /// `uploadtree_tablename` (`uploadtree_a` when NULL), as stored: check it with
    /// [`TreeTable::new`] before use.
    pub table: String,
}

/// `upload_filename` as its bytes: a SQL_ASCII database (FOSSology's Docker set-up) may
/// hold a name that is not UTF-8 (a Latin-1 file name), which the driver refuses as text.
const FILENAME_BYTES: &str = "convert_to(upload_filename, current_setting('server_encoding'))";

fn lossy(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Every upload, by `upload_pk`.
pub fn all(c: &mut postgres::Client) -> Result<Vec<Upload>, postgres::Error> {
    Ok(c.query(
        &format!(
            "SELECT upload_pk, {FILENAME_BYTES}, pfile_fk, \
                    COALESCE(uploadtree_tablename, 'uploadtree_a') \
             FROM upload ORDER BY upload_pk"
        ),
        &[],
    )?
    .iter()
    .map(|r| Upload {
        pk: r.get(0),
        filename: lossy(r.get(1)),
        gold: r.get::<_, Option<i32>>(2).filter(|g| *g != 0),
        table: r.get(3),
    })
    .collect())
}

/// All upload keys, ascending.
pub fn keys(c: &mut impl postgres::GenericClient) -> Result<Vec<i32>, postgres::Error> {
    keys_after(c, 0)
}

/// Upload keys above `after`, ascending.
pub fn keys_after(
    c: &mut impl postgres::GenericClient,
    after: i32,
) -> Result<Vec<i32>, postgres::Error> {
    Ok(c.query(
        "SELECT upload_pk FROM upload WHERE upload_pk > $1 ORDER BY upload_pk",
        &[&after],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// The highest upload key, 0 when there is none.
pub fn max_key(c: &mut impl postgres::GenericClient) -> Result<i32, postgres::Error> {
    Ok(
        c.query_one("SELECT COALESCE(max(upload_pk), 0) FROM upload", &[])?
            .get(0),
    )
}

/// How many uploads there are.
pub fn count(c: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    Ok(c.query_one("SELECT count(*) FROM upload", &[])?.get(0))
}

/// Uploads from `origin` (`upload_origin`) whose gold file is known (unpacked at least).
pub fn count_from_origin(
    c: &mut impl postgres::GenericClient,
    origin: &str,
) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        "SELECT count(*) FROM upload WHERE upload_origin = $1 AND pfile_fk IS NOT NULL",
        &[&origin],
    )?
    .get(0))
}

/// The uploadtree table of `upload` (None when the upload does not exist; `uploadtree_a`
/// when the stored name is not a plain identifier).
pub fn tree_table(
    c: &mut impl postgres::GenericClient,
    upload: i32,
) -> Result<Option<TreeTable>, postgres::Error> {
    let row = c.query_opt(
        "SELECT COALESCE(uploadtree_tablename, 'uploadtree_a') FROM upload WHERE upload_pk = $1",
        &[&upload],
    )?;
    Ok(row.map(|r| TreeTable::new(r.get::<_, String>(0)).unwrap_or_default()))
}

/// An upload as the web pages list it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub pk: i32,
    pub filename: String,
    pub description: Option<String>,
    /// `upload_ts` as `YYYY-MM-DD HH24:MI`.
    pub uploaded: Option<String>,
    /// The gold's name, when its pfile row exists.
    pub gold: Option<PfileName>,
    pub gold_size: i64,
}

/// Every upload with its gold, by `upload_pk`.
pub fn listing(
    c: &mut postgres::Client,
    only: Option<i32>,
) -> Result<Vec<Listed>, postgres::Error> {
    Ok(c.query(
        &format!(
            "SELECT u.upload_pk, {FILENAME_BYTES}, u.upload_desc, \
               to_char(u.upload_ts, 'YYYY-MM-DD HH24:MI'), p.pfile_sha1, p.pfile_md5, p.pfile_size \
             FROM upload u LEFT JOIN pfile p ON p.pfile_pk = u.pfile_fk \
             WHERE $1::int4 IS NULL OR u.upload_pk = $1 ORDER BY u.upload_pk"
        ),
        &[&only],
    )?
    .iter()
    .map(|r| Listed {
        pk: r.get(0),
        filename: lossy(r.get(1)),
        description: r.get(2),
        uploaded: r.get(3),
        gold: super::pfiles::name_of(r.get(4), r.get(5), r.get(6)),
        gold_size: r.get::<_, Option<i64>>(6).unwrap_or(0),
    })
    .collect())
}

/// `(upload_pk, upload_filename)` of every upload (or only `upload`), by key.
pub fn names(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<Vec<(i32, String)>, postgres::Error> {
    Ok(c.query(
        &format!(
            "SELECT upload_pk, {FILENAME_BYTES} FROM upload \
             WHERE $1::int4 IS NULL OR upload_pk = $1 ORDER BY upload_pk"
        ),
        &[&upload],
    )?
    .iter()
    .map(|r| (r.get(0), lossy(r.get(1))))
    .collect())
}

/// `(upload_pk, gold size)` of every upload by key (0 when its gold has no pfile row).
pub fn gold_sizes(c: &mut postgres::Client) -> Result<Vec<(i32, i64)>, postgres::Error> {
    Ok(c.query(
        "SELECT u.upload_pk, COALESCE(p.pfile_size, 0) FROM upload u \
             LEFT JOIN pfile p ON p.pfile_pk = u.pfile_fk ORDER BY u.upload_pk",
        &[],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// A new `upload` row.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    pub filename: &'a str,
    pub origin: &'a str,
    /// The gold's `pfile_pk`.
    pub pfile: i32,
    /// `users.user_pk` (see [`crate::users::upload_user`]).
    pub user: i32,
    /// `upload_mode` bits ([`crate::mode::UPLOAD_FILE`], ...).
    pub mode: i32,
}

/// Adds an upload row; returns its `upload_pk`.
pub fn insert(c: &mut impl postgres::GenericClient, u: &NewUpload) -> Result<i32, postgres::Error> {
    Ok(c.query_one(
        "INSERT INTO upload (upload_filename, user_fk, upload_mode, pfile_fk, upload_origin) \
             VALUES ($1, $2, $3, $4, $5) RETURNING upload_pk",
        &[&u.filename, &u.user, &u.mode, &u.pfile, &u.origin],
    )?
    .get(0))
}

/// What unpacking an upload needs from its row.
#[derive(Debug, Clone)]
pub struct Stored {
    /// `upload_filename` as stored (it may hold a path).
    pub filename: String,
    /// `uploadtree_tablename` (`uploadtree_a` when NULL), unchecked.
    pub table: String,
    pub gold: PfileName,
}

/// Upload `upload_pk` with its gold's name; None when it (or its gold's pfile row) does
/// not exist.
pub fn load(c: &mut postgres::Client, upload_pk: i32) -> Result<Option<Stored>, postgres::Error> {
    Ok(c.query_opt(
        "SELECT u.upload_filename, coalesce(u.uploadtree_tablename, 'uploadtree_a'),
                    p.pfile_sha1, p.pfile_md5, p.pfile_size
             FROM upload u JOIN pfile p ON p.pfile_pk = u.pfile_fk WHERE u.upload_pk = $1",
        &[&upload_pk],
    )?
    .map(|row| {
        let size: i64 = row.get(4);
        Stored {
            filename: row.get(0),
            table: row.get(1),
            gold: PfileName::new(row.get(2), row.get(3), size as u64),
        }
    }))
}

/// Where and for whom a new upload is made.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    /// `folder_pk`; `None`: FOSSology's top folder (the lowest folder_pk, 1 on a fresh site).
    pub folder: Option<i32>,
    /// `group_pk`; `None`: the user's own group (see [`crate::users::default_group`]).
    pub group: Option<i32>,
}

/// The keys of a new upload's rows.
#[derive(Debug, Clone, Copy)]
pub struct UploadIds {
    pub upload_pk: i32,
    pub job_pk: i32,
    pub jq_unpack: i32,
    pub jq_nest: i32,
}

impl UploadIds {
    pub fn job(&self) -> super::jobs::UploadJob {
        super::jobs::UploadJob {
            job_pk: self.job_pk,
            jq_unpack: self.jq_unpack,
            jq_nest: self.jq_nest,
        }
    }
}

/// Why a new upload could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Db(#[from] postgres::Error),
    #[error("user {0} has no group (users.group_fk); name one with --group")]
    NoGroup(i32),
    #[error("the site has no folder (table folder is empty)")]
    NoFolder,
}

/// The rows FOSSology's upload page and `wget_agent` make for a new file upload: the agent
/// rows, the gold's pfile, `upload` (`upload_mode` 8) for the upload user, `foldercontents`
/// (so it shows in Browse), `perm_upload` (admin for the group), `job` and its two
/// `jobqueue` rows (ununpack, then adj2nest). One transaction.
pub fn create(
    c: &mut postgres::Client,
    filename: &str,
    gold: super::PfileHashes,
    cmd_args: Option<&str>,
    owner: &Owner,
) -> Result<UploadIds, CreateError> {
    use super::jobs;
    let mut tx = c.transaction()?;
    jobs::agent_key(&mut tx, "wget_agent", "Network downloader.  Uses wget(1).")?;
    jobs::agent_key(&mut tx, "ununpack", jobs::UNPACK_AGENT_DESC)?;
    jobs::agent_key(&mut tx, "adj2nest", "Adj2nest Agent")?;
    let pf = super::pfiles::upsert_with_mimetypes(&mut tx, &[gold], &[None])?;
    let pfile_pk = pf[&PfileName::new(gold.sha1, gold.md5, gold.size)];
    let user = crate::users::upload_user(&mut tx)?;
    let group = match owner.group {
        Some(g) => g,
        None => crate::users::default_group(&mut tx, user)?.ok_or(CreateError::NoGroup(user))?,
    };
    let folder = match owner.folder {
        Some(f) => f,
        None => super::folders::top_folder(&mut tx)?.ok_or(CreateError::NoFolder)?,
    };
    let upload_pk: i32 = tx
        .query_one(
            "INSERT INTO upload (upload_desc, upload_filename, user_fk, upload_mode, upload_origin,
                                 public_perm, pfile_fk)
             VALUES (NULL, $1, $2, $3, $1, 0, $4) RETURNING upload_pk",
            &[&filename, &user, &crate::mode::UPLOAD_FILE, &pfile_pk],
        )?
        .get(0);
    super::folders::add_upload(&mut tx, folder, upload_pk)?;
    super::folders::grant_upload(&mut tx, upload_pk, group)?;
    let job = jobs::insert_upload_job(&mut tx, upload_pk, filename, user, group, cmd_args)?;
    tx.commit()?;
    Ok(UploadIds {
        upload_pk,
        job_pk: job.job_pk,
        jq_unpack: job.jq_unpack,
        jq_nest: job.jq_nest,
    })
}

/// Takes the session lock holdfast's unpacks of `upload` share (a PostgreSQL advisory lock,
/// released when `c` closes), waiting for another holder: `recover --all`, the recovery
/// queue's workers, a restore's rebuild and `unpack` never unpack one upload twice at once.
/// The wait is a poll, so a stop signal ends it: `Ok(false)` then.
pub fn lock_for_unpack(c: &mut postgres::Client, upload: i32) -> Result<bool, postgres::Error> {
    loop {
        let got: bool = c
            .query_one("SELECT pg_try_advisory_lock(7340212, $1)", &[&upload])?
            .get(0);
        if got {
            return Ok(true);
        }
        if crate::interrupt::requested() {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
