//! `manifest.json`, written into a snapshot last, just before it becomes visible: what the
//! snapshot holds and the state of the site when it was taken.

use chrono::{DateTime, Utc};
use holdfast_site::db::QueueRow;
use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "manifest.json";
/// Folder of the database dump inside a snapshot.
pub const DB_DIR: &str = "db";
/// Folder of the repository copy inside a snapshot.
pub const REPO_DIR: &str = "repository";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub site: String,
    /// `full` (gold, files, logs, license) or `gold` (gold, license, logs).
    pub mode: String,
    /// `rolling` or `rotating`.
    pub layout: String,
    /// `full` or `incremental` (rotating layout: only files its base lacks).
    pub kind: String,
    /// For an incremental: the base and earlier incrementals it builds on, oldest first.
    #[serde(default)]
    pub builds_on: Vec<String>,
    pub holdfast_version: String,
    /// The snapshot's place in its store: one more than the highest there when it was
    /// committed (0: written before holdfast counted). Snapshots are ordered by it, not by
    /// the clock, so one made while the clock was ahead does not stay "newest".
    #[serde(default)]
    pub sequence: u64,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub database: DumpInfo,
    pub repository: RepoInfo,
    pub jobs: JobsInfo,
    #[serde(default)]
    pub timings: Timings,
    /// On a copy (`[[backup.copy]]`): where the snapshot was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<CopyInfo>,
    /// Online mode (the scheduler never stopped): the snapshot point and what was done to
    /// make the copy match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineInfo>,
}

/// Where a copy's snapshot came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopyInfo {
    /// The store it was copied from, as the operator wrote it.
    pub from: String,
    /// The snapshot's name there.
    pub snapshot: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OnlineInfo {
    /// When the database snapshot was taken (the server's clock): the dump is the database
    /// as of that moment.
    pub snapshot_at: DateTime<Utc>,
    /// Jobs an agent was running at that moment. The dump has them started and not ended,
    /// as a stop cuts jobs off: FOSSology's scheduler runs them again after a restore
    /// (`--reset`).
    pub running: Vec<QueueRow>,
    /// Files the dump names that were deleted from the repository before the copy reached
    /// them, taken from an earlier snapshot instead (repository-relative).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_earlier: Vec<String>,
    /// Files caught half-written by the copy (their size or hashes did not match their
    /// name) and copied again once whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recopied: Vec<String>,
    /// Files caught half-written that were still not whole: left out of the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Uploads deleted on the site after the snapshot point, whose files went before the
    /// copy reached them (and no earlier snapshot had them): a restore queues their
    /// deletion again, as a cut-off delete job, so the site it makes is whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_after: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DumpInfo {
    /// Path inside the snapshot, e.g. `db/fossology.sql.gz`.
    pub file: String,
    /// `gzip` or `zstd`.
    pub compression: String,
    /// sha256 of the compressed file, lower-case hex.
    pub sha256: String,
    /// Size of the compressed file.
    pub bytes: u64,
    /// Size of the SQL text before compression.
    pub raw_bytes: u64,
    pub dbname: String,
    pub owner: String,
    /// Server encoding of the site database (`UTF8`, or `SQL_ASCII` on container installs).
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// How the dump reached the target: `stream` (straight through ssh) or `rsync` (sent
    /// against the previous snapshot's dump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_by: Option<String>,
    /// The snapshot whose dump rsync used as the basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_against: Option<String>,
    /// Bytes that crossed the wire for the dump (rsync's `Total bytes sent`; the whole
    /// compressed size when streamed).
    #[serde(default)]
    pub sent_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RepoInfo {
    /// The repository root on the FOSSology server.
    pub root: String,
    pub hosts: Vec<String>,
    pub types: Vec<String>,
    /// Regular files and their bytes in the source (hard links counted per name).
    pub files: u64,
    pub bytes: u64,
    /// Files and bytes this run copied (the rest were linked or already there).
    pub new_files: u64,
    pub new_bytes: u64,
    /// Files whose content did not match their name on the site itself when this snapshot
    /// was made (repository-relative); the snapshot holds them as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// How this run found what to copy: `walk` (the whole repository read) or `database`
    /// (FOSSology's rows above the previous snapshot's marks, see `holdfast_site::changes`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub found_by: String,
    /// The database's high-water marks with the scheduler stopped: the next run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks: Option<holdfast_site::changes::Marks>,
    /// When the repository was last walked whole (this run, or carried from the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walked: Option<DateTime<Utc>>,
    /// Files the database named that the repository lacked: looked at again by the next run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<holdfast_site::db::Reference>,
    /// Files the database named that were gone because a delete job (`delagent`) had begun
    /// on their upload (it removes files before rows): not lost, the job runs again after a
    /// restore and finishes the deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub being_deleted: Vec<holdfast_site::db::Reference>,
    /// Files in the gold and files folders that no row named (strays): looked at again by
    /// the next run, which drops them once they are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unnamed: Vec<String>,
    /// Files left out because no list can carry their names (not UTF-8, or holding a line
    /// break), shown with escapes: the backup is incomplete until they are renamed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JobsInfo {
    /// Queue rows not ended when the scheduler had stopped: queued, or cut off.
    pub unfinished: Vec<QueueRow>,
    /// Rows marked running although no agent process was left (crash leftovers).
    pub stale_running: Vec<QueueRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub quiesce_secs: f64,
    /// The dump runs beside the copy (both with the scheduler stopped): they overlap.
    pub dump_secs: f64,
    /// With pre-copy: the delta pass only (the scheduler stopped); else the whole copy.
    pub copy_secs: f64,
    pub total_secs: f64,
    /// The repository copy made while the scheduler ran (0 without pre-copy).
    #[serde(default)]
    pub precopy_secs: f64,
    /// FOSSology's scheduler was stopped this long: from the stop command until it was
    /// started again (0 in manifests older than this field).
    #[serde(default)]
    pub downtime_secs: f64,
}

impl Manifest {
    /// Where the snapshot stands among its store's, oldest first: its sequence, then (for
    /// snapshots older than sequences, or equal ones) its start.
    pub fn order(&self) -> (u64, DateTime<Utc>) {
        (self.sequence, self.started)
    }

    /// Whether the snapshot's list (`files.list.gz`), when there is one, names what it holds:
    /// an online rolling night writes none, and its day, begun as a btrfs snapshot of the day
    /// before, may carry that day's.
    pub fn list_is_its_own(&self) -> bool {
        !(self.layout == "rolling" && self.online.is_some())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    /// Reads a manifest, refusing one whose dump lies outside the snapshot's `db/` folder:
    /// the path is used as written (a copy writes the dump there), and a manifest on a
    /// backup server someone else controls could name `../../root/.ssh/authorized_keys`.
    pub fn from_json(data: &[u8]) -> Result<Manifest, serde_json::Error> {
        let m: Manifest = serde_json::from_slice(data)?;
        let file = &m.database.file;
        let in_db = file
            .strip_prefix(DB_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(crate::pool::is_inside);
        if !in_db {
            return Err(<serde_json::Error as serde::de::Error>::custom(format!(
                "database.file {file:?} is not a file under the snapshot's {DB_DIR}/ folder: \
                 the manifest was altered, or is not holdfast's"
            )));
        }
        Ok(m)
    }
}
