//! Recovery on demand: a job queue in FOSSology's database, worked by `holdfast serve`.
//!
//! `holdfast_recovery` is holdfast's own table (created on first use). A job is `queued`,
//! then `running` (a worker claimed it with `FOR UPDATE SKIP LOCKED` and keeps a heartbeat),
//! then `done` or `failed`. A unique partial index on `upload_fk` over the queued and running
//! rows means a second request for an upload that is already queued or running returns the
//! existing job instead of a new one: the same upload is never reunpacked twice at once. A
//! failed attempt is queued again after a pause until `max_attempts`; a running job whose
//! worker stopped sending heartbeats (killed) is queued again by the next worker.

use crate::Result;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS holdfast_recovery (
  rj_pk bigserial PRIMARY KEY,
  upload_fk int4 NOT NULL,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
  requested_by text,
  queued_at timestamptz NOT NULL DEFAULT now(),
  not_before timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  heartbeat timestamptz,
  worker text,
  attempts int4 NOT NULL DEFAULT 0,
  max_attempts int4 NOT NULL DEFAULT 3,
  files_total int8 NOT NULL DEFAULT 0,
  files_done int8 NOT NULL DEFAULT 0,
  files_written int8 NOT NULL DEFAULT 0,
  still_missing int8 NOT NULL DEFAULT 0,
  message text
);
CREATE UNIQUE INDEX IF NOT EXISTS holdfast_recovery_one_active
  ON holdfast_recovery (upload_fk) WHERE state IN ('queued', 'running');
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryState {
    Queued,
    Running,
    Done,
    Failed,
}

impl RecoveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryState::Queued => "queued",
            RecoveryState::Running => "running",
            RecoveryState::Done => "done",
            RecoveryState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "running" => RecoveryState::Running,
            "done" => RecoveryState::Done,
            "failed" => RecoveryState::Failed,
            _ => RecoveryState::Queued,
        }
    }
    pub fn finished(self) -> bool {
        matches!(self, RecoveryState::Done | RecoveryState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryJob {
    pub id: i64,
    pub upload_fk: i32,
    pub state: RecoveryState,
    pub requested_by: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub worker: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub files_total: i64,
    pub files_done: i64,
    pub files_written: i64,
    pub still_missing: i64,
    pub message: Option<String>,
}

impl RecoveryJob {
    /// Percent of the files that were missing at the start which are back.
    pub fn percent(&self) -> u32 {
        if self.files_total <= 0 {
            return if self.state == RecoveryState::Done {
                100
            } else {
                0
            };
        }
        ((self.files_done.min(self.files_total) * 100) / self.files_total) as u32
    }
}

const COLS: &str = "rj_pk, upload_fk, state, requested_by, \
    to_char(queued_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), \
    to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS'), worker, attempts, max_attempts, \
    files_total, files_done, files_written, still_missing, message";

fn job(r: &postgres::Row) -> RecoveryJob {
    RecoveryJob {
        id: r.get(0),
        upload_fk: r.get(1),
        state: RecoveryState::parse(r.get(2)),
        requested_by: r.get(3),
        queued_at: r.get::<_, Option<String>>(4).unwrap_or_default(),
        started_at: r.get(5),
        finished_at: r.get(6),
        worker: r.get(7),
        attempts: r.get(8),
        max_attempts: r.get(9),
        files_total: r.get(10),
        files_done: r.get(11),
        files_written: r.get(12),
        still_missing: r.get(13),
        message: r.get(14),
    }
}

/// The queue's policy; the table itself is shared by every process on the site.
#[derive(Debug, Clone)]
pub struct RecoveryQueue {
    pub max_attempts: i32,
    /// Pause before a failed attempt is tried again.
    pub retry_after: Duration,
    /// A running job without a heartbeat for this long is taken to be abandoned.
    pub stale_after: Duration,
}

impl Default for RecoveryQueue {
    fn default() -> Self {
        RecoveryQueue {
            max_attempts: 3,
            retry_after: Duration::from_secs(30),
            stale_after: Duration::from_secs(60),
        }
    }
}

impl RecoveryQueue {
    /// Creates the table and index when missing (an advisory lock serialises concurrent
    /// first uses, which `IF NOT EXISTS` alone does not).
    pub fn ensure_schema(c: &mut postgres::Client) -> Result<()> {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(7340211)", &[])?;
        tx.batch_execute(SCHEMA)?;
        tx.commit()?;
        Ok(())
    }

    /// Makes queued job `id` due now (its retry pause is over).
    pub fn due_now(c: &mut postgres::Client, id: i64) -> Result<()> {
        c.execute(
            "UPDATE holdfast_recovery SET not_before = now() WHERE rj_pk = $1 AND state = 'queued'",
            &[&id],
        )?;
        Ok(())
    }

    /// How many jobs are in each state (states with none are left out).
    pub fn counts(c: &mut postgres::Client) -> Result<Vec<(String, i64)>> {
        Self::ensure_schema(c)?;
        Ok(c.query(
            "SELECT state, count(*) FROM holdfast_recovery GROUP BY state",
            &[],
        )?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect())
    }

    /// Queues a recovery of `upload`, or returns the job already queued or running for it.
    /// The bool is true when a new job was created.
    pub fn enqueue(
        &self,
        c: &mut postgres::Client,
        upload: i32,
        requested_by: &str,
    ) -> Result<(RecoveryJob, bool)> {
        Self::ensure_schema(c)?;
        if !holdfast_site::db::upload_exists(c, upload)? {
            return Err(crate::RecoverError::NoUpload(upload));
        }
        // The active job may finish between the insert and the select: try again then.
        for _ in 0..5 {
            let sql = format!(
                "INSERT INTO holdfast_recovery (upload_fk, requested_by, max_attempts) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (upload_fk) WHERE state IN ('queued', 'running') DO NOTHING \
                 RETURNING {COLS}"
            );
            if let Some(r) =
                c.query_opt(sql.as_str(), &[&upload, &requested_by, &self.max_attempts])?
            {
                let j = job(&r);
                tracing::info!(job = j.id, upload, requested_by, "recovery queued");
                return Ok((j, true));
            }
            if let Some(j) = self.active_for(c, upload)? {
                return Ok((j, false));
            }
        }
        Err(crate::RecoverError::Unpack {
            upload,
            message: "the recovery queue keeps changing; try again".into(),
        })
    }

    /// The queued or running job of an upload.
    pub fn active_for(&self, c: &mut postgres::Client, upload: i32) -> Result<Option<RecoveryJob>> {
        let sql = format!(
            "SELECT {COLS} FROM holdfast_recovery \
             WHERE upload_fk = $1 AND state IN ('queued', 'running')"
        );
        Ok(c.query_opt(sql.as_str(), &[&upload])?.map(|r| job(&r)))
    }

    /// True when a queued job is due (a cheap look before a worker takes the site lock).
    pub fn has_due(&self, c: &mut postgres::Client) -> Result<bool> {
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM holdfast_recovery \
             WHERE state = 'queued' AND not_before <= now())",
            &[],
        )?
        .get(0))
    }

    /// Claims the oldest queued job that is due; `None` when there is nothing to do.
    pub fn claim_next(
        &self,
        c: &mut postgres::Client,
        worker: &str,
    ) -> Result<Option<RecoveryJob>> {
        let sql = format!(
            "UPDATE holdfast_recovery SET state = 'running', attempts = attempts + 1, \
               started_at = now(), heartbeat = now(), worker = $1, files_done = 0 \
             WHERE rj_pk = (SELECT rj_pk FROM holdfast_recovery \
                            WHERE state = 'queued' AND not_before <= now() \
                            ORDER BY rj_pk LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLS}"
        );
        Ok(c.query_opt(sql.as_str(), &[&worker])?.map(|r| job(&r)))
    }

    /// Claims one given job if it is still queued (the CLI's `recover --upload`).
    pub fn claim(
        &self,
        c: &mut postgres::Client,
        id: i64,
        worker: &str,
    ) -> Result<Option<RecoveryJob>> {
        let sql = format!(
            "UPDATE holdfast_recovery SET state = 'running', attempts = attempts + 1, \
               started_at = now(), heartbeat = now(), worker = $2, files_done = 0 \
             WHERE rj_pk = $1 AND state = 'queued' RETURNING {COLS}"
        );
        Ok(c.query_opt(sql.as_str(), &[&id, &worker])?.map(|r| job(&r)))
    }

    /// Progress and liveness of a running job.
    pub fn heartbeat(
        &self,
        c: &mut postgres::Client,
        job: &RecoveryJob,
        total: i64,
        done: i64,
    ) -> Result<()> {
        c.execute(
            "UPDATE holdfast_recovery SET heartbeat = now(), files_total = $2, files_done = $3 \
             WHERE rj_pk = $1 AND state = 'running' AND worker IS NOT DISTINCT FROM $4",
            &[&job.id, &total, &done, &job.worker],
        )?;
        Ok(())
    }

    /// Records success: files written, and how many are still missing (explained in message).
    /// False when the job is no longer this claim's (it went silent and another worker took
    /// it over): that worker's result will be recorded instead.
    pub fn finish_done(
        &self,
        c: &mut postgres::Client,
        job: &RecoveryJob,
        written: i64,
        still_missing: i64,
        message: &str,
    ) -> Result<bool> {
        let n = c.execute(
            "UPDATE holdfast_recovery SET state = 'done', finished_at = now(), heartbeat = now(), \
               files_done = GREATEST(files_total - $3, 0), files_written = $2, still_missing = $3, \
               message = $4 \
             WHERE rj_pk = $1 AND state = 'running' AND worker IS NOT DISTINCT FROM $5",
            &[&job.id, &written, &still_missing, &message, &job.worker],
        )?;
        Ok(n == 1)
    }

    /// Records a failed attempt: queued again after a pause, or `failed` for good when the
    /// attempts are used up or `permanent` (the gold is gone).
    pub fn finish_failed(
        &self,
        c: &mut postgres::Client,
        job: &RecoveryJob,
        message: &str,
        permanent: bool,
    ) -> Result<RecoveryState> {
        let secs = self.retry_after.as_secs_f64();
        let r = c.query_opt(
            "UPDATE holdfast_recovery SET \
               state = CASE WHEN $3 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
               finished_at = CASE WHEN $3 OR attempts >= max_attempts THEN now() END, \
               not_before = now() + make_interval(secs => $4), message = $2 \
             WHERE rj_pk = $1 AND state = 'running' AND worker IS NOT DISTINCT FROM $5 \
             RETURNING state",
            &[&job.id, &message, &permanent, &secs, &job.worker],
        )?;
        // Taken over by another worker: the job runs on there.
        Ok(r.map_or(RecoveryState::Running, |r| RecoveryState::parse(r.get(0))))
    }

    /// Puts running job `id` back in the queue as it was before it was claimed: a stop
    /// signal cut it off, which is no failure of the job and costs it no attempt.
    pub fn release(&self, c: &mut postgres::Client, job: &RecoveryJob) -> Result<()> {
        c.execute(
            "UPDATE holdfast_recovery SET state = 'queued', attempts = greatest(attempts - 1, 0), \
               not_before = now(), message = 'stopped with holdfast serve; queued again' \
             WHERE rj_pk = $1 AND state = 'running' AND worker IS NOT DISTINCT FROM $2",
            &[&job.id, &job.worker],
        )?;
        Ok(())
    }

    /// Running jobs whose worker went silent: queued again (or failed when out of attempts).
    pub fn requeue_stale(&self, c: &mut postgres::Client) -> Result<u64> {
        Self::ensure_schema(c)?;
        let secs = self.stale_after.as_secs_f64();
        let n = c.execute(
            "UPDATE holdfast_recovery SET \
               state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
               finished_at = CASE WHEN attempts >= max_attempts THEN now() END, \
               message = 'worker stopped (no heartbeat); queued again' \
             WHERE state = 'running' AND heartbeat < now() - make_interval(secs => $1)",
            &[&secs],
        )?;
        if n > 0 {
            tracing::warn!(
                jobs = n,
                "recovery jobs abandoned by a stopped worker queued again"
            );
        }
        Ok(n)
    }

    pub fn get(&self, c: &mut postgres::Client, id: i64) -> Result<RecoveryJob> {
        Self::ensure_schema(c)?;
        let sql = format!("SELECT {COLS} FROM holdfast_recovery WHERE rj_pk = $1");
        c.query_opt(sql.as_str(), &[&id])?
            .map(|r| job(&r))
            .ok_or(crate::RecoverError::NoJob(id))
    }

    /// The newest jobs first.
    pub fn list(&self, c: &mut postgres::Client, limit: i64) -> Result<Vec<RecoveryJob>> {
        Self::ensure_schema(c)?;
        let sql = format!("SELECT {COLS} FROM holdfast_recovery ORDER BY rj_pk DESC LIMIT $1");
        Ok(c.query(sql.as_str(), &[&limit])?.iter().map(job).collect())
    }
}
