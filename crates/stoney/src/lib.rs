//! The stoney backup service's model: its directory's accounts, people and resellers
//! ([`account`]), and the files every stoney backup client uploads into
//! `incoming/<prefix>/.sepiola_backup/`: `backupStarted.xml`, `backupEnded.xml` and
//! `scheduler.xml`.
//!
//! holdfast writes them after each FOSSology backup (so a stoney server watches those like
//! any client) and the backup server reads them to find missed and failed backups. Reading is
//! defensive: the real clients write wrong timezone offsets, leading zeros, and files cut off
//! mid-upload; [`parse`] returns an error for the caller to log, never a panic.

pub mod account;
pub mod parse;
pub mod plan;
pub mod render;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub const STARTED_FILE: &str = "backupStarted.xml";
pub const ENDED_FILE: &str = "backupEnded.xml";
pub const SCHEDULER_FILE: &str = "scheduler.xml";
/// The folder inside a prefix that holds the three files.
pub const META_DIR: &str = ".sepiola_backup";

/// `<client>`: which program made the backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub identifier: String,
    pub version: String,
    pub operating_system: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStarted {
    pub start: DateTime<FixedOffset>,
    /// Pairs a start with its end.
    pub id: String,
    pub client: Client,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEnded {
    pub end: DateTime<FixedOffset>,
    pub id: String,
    pub success: bool,
    pub client: Client,
}

/// `scheduler.xml`: when the client plans to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `<no_schedule/>`: the user starts backups by hand.
    None,
    /// `<backup_after_startup>`: N minutes after the computer starts.
    AfterStartup { minutes: u32 },
    /// `<custom_online_backup>`: a cron-like plan. `None` in a field means "every".
    Custom(CustomSchedule),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSchedule {
    pub minutes: Vec<u32>,
    pub hours: Vec<u32>,
    pub days_of_month: Option<Vec<u32>>,
    pub months: Option<Vec<u32>>,
    /// 1 = Monday ... 7 = Sunday.
    pub days_of_week: Option<Vec<u32>>,
    pub timezone: FixedOffset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerFile {
    pub schedule: Schedule,
    pub client: Client,
}
