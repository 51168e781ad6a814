//! The site's snapshots as people want to see them (the `/backups` page of `holdfast serve`
//! and its JSON): size, how long each backup took and kept the scheduler stopped, and what
//! the last content verification of each found.

use crate::content;
use crate::{BackupConfig, BackupError};
use serde::Serialize;

/// One snapshot on the target.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    pub name: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// `full` or `gold`.
    pub mode: String,
    pub finished: String,
    /// The backup run from start to end.
    pub secs: f64,
    /// How long FOSSology's scheduler was stopped for it.
    pub downtime_secs: f64,
    pub files: u64,
    pub bytes: u64,
    pub dump_bytes: u64,
    pub verify: Option<VerifyRow>,
}

/// The latest content verification of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRow {
    /// `None` while unfinished (the next `verify` resumes it).
    pub finished: Option<String>,
    pub ok: bool,
    pub checked_files: u64,
    pub checked_bytes: u64,
    pub bad_files: usize,
    pub dump_problem: Option<String>,
    pub sample_percent: Option<f64>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Every snapshot on `cfg`'s target, newest first.
pub fn snapshots(cfg: &BackupConfig) -> Result<Vec<SnapshotRow>, BackupError> {
    let target = cfg.target()?;
    let mut rows = Vec::new();
    for s in holdfast_store::layout::snapshots(&target)? {
        let m = &s.manifest;
        let verify = content::read_record(&target, &s)?.map(|r| VerifyRow {
            ok: r.is_ok(),
            finished: r.finished.map(time),
            checked_files: r.checked_files,
            checked_bytes: r.checked_bytes,
            bad_files: r.bad.len(),
            dump_problem: r.dump_problem.clone(),
            sample_percent: r.sample_percent,
        });
        rows.push(SnapshotRow {
            name: s.name.clone(),
            kind: m.kind.clone(),
            mode: m.mode.clone(),
            finished: time(m.finished),
            secs: (m.finished - m.started).num_milliseconds().max(0) as f64 / 1000.0,
            downtime_secs: m.timings.downtime_secs,
            files: m.repository.files,
            bytes: m.repository.bytes,
            dump_bytes: m.database.bytes,
            verify,
        });
    }
    rows.sort_by(|a, b| b.finished.cmp(&a.finished));
    Ok(rows)
}
