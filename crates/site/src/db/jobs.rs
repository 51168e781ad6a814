//! FOSSology's job tables: `job` (one per request, naming its upload), `jobqueue` (one row
//! per agent run: queued, started, ended) and `ununpack_ars` (the unpack agent's record of
//! each run).

use serde::{Deserialize, Serialize};

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

/// Uploads a delete job (`delagent`) has not finished, by `DELETE UPLOAD <upload>`. The
/// agent removes the repository files before the rows that name them, so such an upload's
/// files may be gone while its rows remain; the job runs again when FOSSology's scheduler
/// starts with `--reset` (after a stop cut it off, or a restore) and finishes the deletion.
/// Queued rows count too: that start makes a cut-off row queued again until the agent runs
/// (a job that then fails has ended, and its upload's absent files are missing again).
/// A folder's deletion (`DELETE FOLDER`) does not count: delagent deletes some of the
/// folder's uploads and only unlinks others (shared or uploaded twice, `util.c`'s
/// `listFoldersRecurse`), and holdfast does not guess which.
pub fn uploads_being_deleted(
    c: &mut impl postgres::GenericClient,
) -> Result<std::collections::HashSet<i32>, postgres::Error> {
    if !has_job_queue(c) {
        return Ok(Default::default());
    }
    // At most nine digits: a hand-made row cannot overflow the cast and fail every check.
    let rows = c.query(
        "SELECT DISTINCT substring(btrim(jq_args) FROM '(?i)^DELETE UPLOAD ([0-9]{1,9})$')::int4 \
         FROM jobqueue WHERE jq_type = 'delagent' AND jq_endtime IS NULL \
         AND btrim(jq_args) ~* '^DELETE UPLOAD [0-9]{1,9}$'",
        &[],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, Option<i32>>(0))
        .collect())
}

/// Of `uploads`, those deleted: no row, or the row delagent leaves (no gold file,
/// `expire_action = 'd'`).
pub fn uploads_deleted(
    c: &mut impl postgres::GenericClient,
    uploads: &[i32],
) -> Result<std::collections::HashSet<i32>, postgres::Error> {
    Ok(c.query(
        "SELECT u FROM unnest($1::int4[]) u WHERE NOT EXISTS (SELECT 1 FROM upload \
                 WHERE upload_pk = u AND pfile_fk IS NOT NULL \
                 AND expire_action IS DISTINCT FROM 'd')",
        &[&uploads],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Of `uploads`, those deleted by now ([`uploads_deleted`]) or being deleted
/// ([`uploads_being_deleted`]), both read at one moment: read apart, a deletion that ends
/// between the two reads is in neither (its job ended after the first, its rows changed
/// before the second).
pub fn uploads_deleted_by_now(
    c: &mut postgres::Client,
    uploads: &[i32],
) -> Result<std::collections::HashSet<i32>, postgres::Error> {
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut out = uploads_deleted(&mut tx, uploads)?;
    let deleting = uploads_being_deleted(&mut tx)?;
    tx.commit()?;
    out.extend(uploads.iter().filter(|u| deleting.contains(u)));
    Ok(out)
}

/// Queues `upload`'s deletion as FOSSology's UI does (a `Delete` job, its `delagent` row
/// `DELETE UPLOAD <upload>`), marked started as a stop leaves a cut-off row: its files are
/// already gone, and the scheduler's `--reset` start runs it again. The job is an
/// administrator's (`user_perm >= 10`: delagent checks the job user's right to delete, and
/// the scheduler never runs a job whose user is gone), else the uploader's, with that
/// user's group, as `JobAddJob` sets it. Returns the row, or `None` when the database has
/// no such upload or no user to run it.
pub fn queue_cut_off_deletion(
    c: &mut postgres::Client,
    upload: i32,
) -> Result<Option<i32>, postgres::Error> {
    let args = format!("DELETE UPLOAD {upload}");
    Ok(c.query_opt(
        "WITH u AS ( \
             SELECT up.upload_pk, COALESCE( \
                 (SELECT min(user_pk) FROM users WHERE user_perm >= 10), \
                 (SELECT user_pk FROM users WHERE user_pk = up.user_fk)) AS user_pk \
             FROM upload up WHERE up.upload_pk = $1), \
         j AS (INSERT INTO job (job_user_fk, job_group_fk, job_queued, job_priority, \
                 job_name, job_upload_fk) \
             SELECT u.user_pk, (SELECT group_fk FROM users WHERE user_pk = u.user_pk), now(), 0, \
                 'Delete', u.upload_pk FROM u WHERE u.user_pk IS NOT NULL \
             RETURNING job_pk) \
         INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) \
             SELECT job_pk, 'delagent', $2, now() FROM j RETURNING jq_pk",
        &[&upload, &args],
    )?
    .map(|r| r.get(0)))
}

/// Rows an agent is working on: started, not ended.
pub fn running_jobs(c: &mut postgres::Client) -> Result<Vec<QueueRow>, postgres::Error> {
    queue_rows(c, "jq.jq_starttime IS NOT NULL AND jq.jq_endtime IS NULL")
}

/// Every row not ended: queued or cut off.
pub fn unfinished_jobs(c: &mut postgres::Client) -> Result<Vec<QueueRow>, postgres::Error> {
    queue_rows(c, "jq.jq_endtime IS NULL")
}

/// True when the database has FOSSology's job queue (a database being restored may not).
pub fn has_job_queue(c: &mut impl postgres::GenericClient) -> bool {
    c.query_one("SELECT to_regclass('jobqueue') IS NOT NULL", &[])
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
}

/// The latest unpack record of each upload (or of `upload`): `(upload, success, status)`.
pub fn latest_unpack_records(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<Vec<(i32, bool, Option<String>)>, postgres::Error> {
    Ok(c.query(
        "SELECT DISTINCT ON (upload_fk) upload_fk, ars_success, ars_status FROM ununpack_ars \
             WHERE $1::int4 IS NULL OR upload_fk = $1 ORDER BY upload_fk, ars_pk DESC",
        &[&upload],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect())
}

/// Uploads (all, or `upload`) whose `ununpack` job failed (`jq_end_bits` 2) with no
/// successful unpack record since: `(upload, jq_endtext)`, by queue row.
pub fn failed_unpacks(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<Vec<(i32, String)>, postgres::Error> {
    Ok(c.query(
        "SELECT j.job_upload_fk, coalesce(jq.jq_endtext, '') FROM jobqueue jq \
             JOIN job j ON j.job_pk = jq.jq_job_fk \
             WHERE jq.jq_type = 'ununpack' AND jq.jq_end_bits & 2 <> 0 \
             AND j.job_upload_fk IS NOT NULL AND ($1::int4 IS NULL OR j.job_upload_fk = $1) \
             AND NOT EXISTS (SELECT 1 FROM ununpack_ars a \
                             WHERE a.upload_fk = j.job_upload_fk AND a.ars_success) \
             ORDER BY jq.jq_pk",
        &[&upload],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// `ununpack` rows (all uploads, or `upload`) started and never ended: `(upload, jq_pk)`,
/// by queue row.
pub fn cut_off_unpacks(
    c: &mut postgres::Client,
    upload: Option<i32>,
) -> Result<Vec<(i32, i32)>, postgres::Error> {
    Ok(c
        .query(
            "SELECT j.job_upload_fk, jq.jq_pk FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk \
             WHERE jq.jq_type = 'ununpack' AND jq.jq_starttime IS NOT NULL AND jq.jq_endtime IS NULL \
             AND j.job_upload_fk IS NOT NULL AND ($1::int4 IS NULL OR j.job_upload_fk = $1) \
             ORDER BY jq.jq_pk",
            &[&upload],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Resets the cut-off rows among `jq_pks` as FOSSology's scheduler `--reset` does, and
/// clears the success flag of `unpack_uploads`' unpack records as its reunpack page does,
/// in one transaction. Returns the rows reset.
pub fn requeue(
    c: &mut postgres::Client,
    jq_pks: &[i32],
    unpack_uploads: &[i32],
) -> Result<Vec<i32>, postgres::Error> {
    let mut tx = c.transaction()?;
    let reset: Vec<i32> = tx
        .query(
            "UPDATE jobqueue SET jq_starttime = NULL, jq_endtext = 'Restart', jq_schedinfo = NULL \
             WHERE jq_pk = ANY($1) AND jq_starttime IS NOT NULL AND jq_endtime IS NULL \
             RETURNING jq_pk",
            &[&jq_pks],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !unpack_uploads.is_empty() {
        tx.execute(
            "UPDATE ununpack_ars SET ars_success = false WHERE upload_fk = ANY($1)",
            &[&unpack_uploads],
        )?;
    }
    tx.commit()?;
    Ok(reset)
}

/// Ends the cut-off rows among `jq_pks` as failed, with `why`, and fails the rows behind
/// them, as FOSSology's scheduler fails a job (`jobsql_failed`, `jobsql_fail_dependents`):
/// an ended row survives the `--reset` start, which queues every row not ended again, so
/// a job whose files are not there does not run on them. Returns the rows ended.
pub fn fail_cut_off(
    c: &mut postgres::Client,
    jq_pks: &[i32],
    why: &str,
) -> Result<Vec<i32>, postgres::Error> {
    let mut tx = c.transaction()?;
    let mut ended: Vec<i32> = tx
        .query(
            "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2, \
             jq_schedinfo = NULL, jq_endtext = $2 \
             WHERE jq_pk = ANY($1) AND jq_endtime IS NULL RETURNING jq_pk",
            &[&jq_pks, &why],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let dependents: Vec<i32> = tx
        .query(
            "WITH RECURSIVE deps(jq_pk, depth) AS (
               SELECT jdep_jq_fk, 1 FROM jobdepends WHERE jdep_jq_depends_fk = ANY($1)
               UNION ALL
               SELECT jd.jdep_jq_fk, deps.depth + 1 FROM jobdepends jd
                 JOIN deps ON deps.jq_pk = jd.jdep_jq_depends_fk WHERE deps.depth < 20)
             UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2,
                    jq_schedinfo = NULL, jq_endtext = 'dependency failed'
             WHERE jq_pk IN (SELECT jq_pk FROM deps) AND jq_endtime IS NULL RETURNING jq_pk",
            &[&ended],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.commit()?;
    ended.extend(dependents);
    Ok(ended)
}

/// The statement FOSSology's scheduler runs at `--reset`: every row started and never ended
/// is queued again (for scripts standing in for the scheduler).
pub const SCHEDULER_RESET_SQL: &str =
    "UPDATE jobqueue SET jq_starttime = NULL, jq_endtext = 'Restart' \
     WHERE jq_starttime IS NOT NULL AND jq_endtime IS NULL";

/// Queues an `agent` job on `upload` for the upload user ([`crate::users::upload_user`])
/// and marks its row started, as the scheduler does when it hands the row to an agent
/// process. Returns the `jq_pk`.
pub fn start_agent(
    c: &mut postgres::Client,
    upload: i32,
    agent: &str,
) -> Result<i32, postgres::Error> {
    let user = crate::users::upload_user(c)?;
    let job: i32 = c
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ($1, $2, $3) RETURNING job_pk",
            &[&agent, &upload, &user],
        )?
        .get(0);
    Ok(c.query_one(
        "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host) \
             VALUES ($1, $2, $3, now(), 'localhost') RETURNING jq_pk",
        &[&job, &agent, &upload.to_string()],
    )?
    .get(0))
}

/// (started, ended) of queue row `jq`, None when it is gone.
pub fn row_state(
    c: &mut postgres::Client,
    jq: i32,
) -> Result<Option<(bool, bool)>, postgres::Error> {
    Ok(c.query_opt(
        "SELECT jq_starttime IS NOT NULL, jq_endtime IS NOT NULL FROM jobqueue WHERE jq_pk = $1",
        &[&jq],
    )?
    .map(|r| (r.get(0), r.get(1))))
}

/// What the scheduler does when an agent finishes: `upload`'s open `ununpack` and
/// `adj2nest` rows end successfully. Returns the rows ended.
pub fn complete_unpack_rows(c: &mut postgres::Client, upload: i32) -> Result<u64, postgres::Error> {
    c.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = 1, jq_endtext = 'Completed', \
         jq_starttime = COALESCE(jq_starttime, now()) \
         WHERE jq_endtime IS NULL AND jq_type IN ('ununpack', 'adj2nest') \
         AND jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = $1)",
        &[&upload],
    )
}

/// How many `ununpack` rows of `upload` are queued (not started, not ended).
pub fn queued_unpacks(c: &mut postgres::Client, upload: i32) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        "SELECT count(*) FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk \
             WHERE j.job_upload_fk = $1 AND jq.jq_type = 'ununpack' \
             AND jq.jq_starttime IS NULL AND jq.jq_endtime IS NULL",
        &[&upload],
    )?
    .get(0))
}

/// Marks `upload`'s open `ununpack` rows started, as the scheduler does when it runs them.
pub fn start_unpack_rows(c: &mut postgres::Client, upload: i32) -> Result<u64, postgres::Error> {
    c.execute(
        "UPDATE jobqueue SET jq_starttime = now() WHERE jq_type = 'ununpack' \
         AND jq_endtime IS NULL AND jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = $1)",
        &[&upload],
    )
}

/// Adds a `job` named `name` on `upload` for `user`; returns its `job_pk`.
pub fn insert_job(
    c: &mut impl postgres::GenericClient,
    name: &str,
    upload: i32,
    user: i32,
) -> Result<i32, postgres::Error> {
    Ok(c
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ($1, $2, $3) RETURNING job_pk",
            &[&name, &upload, &user],
        )?
        .get(0))
}

/// Adds a queue row of `agent` to `job` with `args`: finished successfully (`ended`), or
/// queued.
pub fn insert_queue_row(
    c: &mut impl postgres::GenericClient,
    job: i32,
    agent: &str,
    args: &str,
    ended: bool,
) -> Result<(), postgres::Error> {
    if ended {
        c.execute(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_endtime, jq_end_bits, jq_endtext) \
             VALUES ($1, $2, $3, now(), now(), 1, 'Completed')",
            &[&job, &agent, &args],
        )?;
    } else {
        c.execute(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args) VALUES ($1, $2, $3)",
            &[&job, &agent, &args],
        )?;
    }
    Ok(())
}

/// The `agent_rev` holdfast registers its agent rows under (FOSSology's agents register
/// `VERSION.COMMIT` the same way, one row per revision).
pub fn agent_rev() -> String {
    format!("holdfast-{}", env!("CARGO_PKG_VERSION"))
}

/// `agent_pk` of holdfast's row for an agent (`fo_GetAgentKey`: found by name and revision,
/// added when missing), so `ununpack_ars` says which unpacker made an upload's rows.
pub fn agent_key(
    c: &mut impl postgres::GenericClient,
    name: &str,
    desc: &str,
) -> Result<i32, postgres::Error> {
    let rev = agent_rev();
    if let Some(r) = c.query_opt(
        "SELECT agent_pk FROM agent WHERE agent_name = $1 AND agent_rev = $2 ORDER BY agent_pk LIMIT 1",
        &[&name, &rev],
    )? {
        return Ok(r.get(0));
    }
    Ok(c
        .query_one(
            "INSERT INTO agent (agent_name, agent_rev, agent_desc) VALUES ($1, $2, $3) RETURNING agent_pk",
            &[&name, &rev, &desc],
        )?
        .get(0))
}

/// The description FOSSology's ununpack registers its agent row with.
pub const UNPACK_AGENT_DESC: &str = "Unpacks archives (iso, tar, etc)";

/// Whether holdfast (not FOSSology's ununpack) made the upload's rows: the agent of its
/// first successful `ununpack_ars` row.
pub fn unpacked_by_holdfast(
    c: &mut postgres::Client,
    upload_pk: i32,
) -> Result<bool, postgres::Error> {
    Ok(c.query_opt(
        "SELECT a.agent_rev FROM ununpack_ars r JOIN agent a ON a.agent_pk = r.agent_fk
             WHERE r.upload_fk = $1 AND r.ars_success ORDER BY r.ars_pk LIMIT 1",
        &[&upload_pk],
    )?
    .and_then(|r| r.get::<_, Option<String>>(0))
    .is_some_and(|rev| rev.starts_with("holdfast-")))
}

/// `jq_cmd_args` of the upload's latest `ununpack` queue row (e.g. `-I`), empty when none.
pub fn unpack_cmd_args(
    c: &mut postgres::Client,
    upload_pk: i32,
) -> Result<String, postgres::Error> {
    Ok(c.query_opt(
        "SELECT coalesce(jq.jq_cmd_args, '') FROM jobqueue jq JOIN job j ON j.job_pk = jq.jq_job_fk
             WHERE j.job_upload_fk = $1 AND jq.jq_type = 'ununpack' ORDER BY jq.jq_pk DESC LIMIT 1",
        &[&upload_pk],
    )?
    .map(|r| r.get(0))
    .unwrap_or_default())
}

/// The job of a new upload and its two queue rows.
#[derive(Debug, Clone, Copy)]
pub struct UploadJob {
    pub job_pk: i32,
    pub jq_unpack: i32,
    pub jq_nest: i32,
}

/// The job FOSSology's upload page queues for a new upload: a `job` for `user` and
/// `group`, its `ununpack` row (with `cmd_args`) and the `adj2nest` row depending on it,
/// both started on `localhost`.
pub fn insert_upload_job(
    c: &mut impl postgres::GenericClient,
    upload: i32,
    name: &str,
    user: i32,
    group: i32,
    cmd_args: Option<&str>,
) -> Result<UploadJob, postgres::Error> {
    let job_pk: i32 = c
        .query_one(
            "INSERT INTO job (job_user_fk, job_group_fk, job_queued, job_priority, job_name, job_upload_fk)
             VALUES ($1, $2, now(), 0, $3, $4) RETURNING job_pk",
            &[&user, &group, &name, &upload],
        )?
        .get(0);
    let args = upload.to_string();
    let jq_unpack: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host, jq_cmd_args)
             VALUES ($1, 'ununpack', $2, now(), 'localhost', $3) RETURNING jq_pk",
            &[&job_pk, &args, &cmd_args],
        )?
        .get(0);
    let jq_nest: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_host)
             VALUES ($1, 'adj2nest', $2, now(), 'localhost') RETURNING jq_pk",
            &[&job_pk, &args],
        )?
        .get(0);
    c.execute(
        "INSERT INTO jobdepends (jdep_jq_fk, jdep_jq_depends_fk) VALUES ($1, $2)",
        &[&jq_nest, &jq_unpack],
    )?;
    Ok(UploadJob {
        job_pk,
        jq_unpack,
        jq_nest,
    })
}

/// Ends queue rows `jq_pks` as the scheduler does (end bits 0x1 ok, 0x2 failed; the
/// scheduler's item count stays 0 for these agents).
pub fn end_rows(
    c: &mut postgres::Client,
    jq_pks: &[i32],
    ok: bool,
    text: &str,
) -> Result<(), postgres::Error> {
    let bits: i16 = if ok { 1 } else { 2 };
    c.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = $2, jq_endtext = $3
         WHERE jq_pk = ANY($1)",
        &[&jq_pks, &bits, &text],
    )?;
    Ok(())
}

/// Marks a failed unpack as FOSSology's scheduler marks a failed ununpack agent: its queue
/// row ends with bit 0x2 and `Failed` (with the reason), the adj2nest row that depends on it
/// with bit 0x2 and `dependency failed`, and `ununpack_ars` holds only the start record the
/// agent writes first (`ars_success` false, no end time), so the upload reads as not unpacked.
pub fn fail_unpack(
    c: &mut postgres::Client,
    upload: i32,
    job: &UploadJob,
    started: std::time::SystemTime,
    why: &str,
) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2, jq_endtext = $2
         WHERE jq_pk = $1",
        &[&job.jq_unpack, &format!("Failed: {why}")],
    )?;
    tx.execute(
        "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = jq_end_bits | 2,
                jq_endtext = 'dependency failed'
         WHERE jq_pk = $1 AND jq_endtime IS NULL",
        &[&job.jq_nest],
    )?;
    let agent = agent_key(&mut tx, "ununpack", UNPACK_AGENT_DESC)?;
    tx.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success, ars_starttime)
         VALUES ($1, $2, false, $3)",
        &[&agent, &upload, &started],
    )?;
    tx.commit()
}

/// Records a successful unpack of `upload` by holdfast's `ununpack` agent row.
pub fn record_unpack_success(
    c: &mut impl postgres::GenericClient,
    upload: i32,
    started: std::time::SystemTime,
) -> Result<(), postgres::Error> {
    let agent = agent_key(c, "ununpack", UNPACK_AGENT_DESC)?;
    c.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success, ars_starttime, ars_endtime)
         VALUES ($1, $2, true, $3, now())",
        &[&agent, &upload, &started],
    )?;
    Ok(())
}

/// Records an unpack that finished with members left out: the rows stand (the queue rows
/// end with bit 0x1, so scanners run on what was unpacked, their end text says how many
/// members are missing), but `ununpack_ars` says not successful, with the first error as
/// status, so the upload reads as incomplete and is unpacked again once the cause is fixed.
pub fn mark_partial(
    c: &mut postgres::Client,
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
