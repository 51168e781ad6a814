//! The stoney monitoring files each backup run leaves in the target's `.sepiola_backup/`,
//! so a stoney-style backup server watches FOSSology backups like any other client.

use crate::store::Store;
use crate::StoreError;
use chrono::{DateTime, FixedOffset, Local};
use holdfast_stoney::{
    BackupEnded, BackupStarted, Client, CustomSchedule, Schedule, SchedulerFile, ENDED_FILE,
    META_DIR, SCHEDULER_FILE, STARTED_FILE,
};

/// `<client>` for holdfast.
pub fn client() -> Client {
    let os = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        })
        .unwrap_or_else(|_| "Linux".into());
    Client {
        identifier: "holdfast".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        operating_system: os,
    }
}

pub fn now() -> DateTime<FixedOffset> {
    Local::now().fixed_offset()
}

fn write(target: &dyn Store, file: &str, xml: String) -> Result<(), StoreError> {
    target.write_atomic(&format!("{META_DIR}/{file}"), xml.as_bytes())
}

/// Writes `backupStarted.xml` and returns the id that pairs it with the end.
pub fn started(target: &dyn Store, start: DateTime<FixedOffset>) -> Result<String, StoreError> {
    let id = format!("{}{:05}", start.timestamp(), std::process::id() % 100_000);
    write(
        target,
        STARTED_FILE,
        BackupStarted {
            start,
            id: id.clone(),
            client: client(),
        }
        .to_xml(),
    )?;
    Ok(id)
}

pub fn ended(target: &dyn Store, id: &str, success: bool) -> Result<(), StoreError> {
    write(
        target,
        ENDED_FILE,
        BackupEnded {
            end: now(),
            id: id.to_string(),
            success,
            client: client(),
        }
        .to_xml(),
    )
}

/// Writes `scheduler.xml` for a daily run at `hour:minute` local time (`None`: no schedule).
pub fn schedule(target: &dyn Store, at: Option<(u32, u32)>) -> Result<(), StoreError> {
    let schedule = match at {
        None => Schedule::None,
        Some((hour, minute)) => Schedule::Custom(CustomSchedule {
            minutes: vec![minute],
            hours: vec![hour],
            days_of_month: None,
            months: None,
            days_of_week: None,
            timezone: *now().offset(),
        }),
    };
    write(
        target,
        SCHEDULER_FILE,
        SchedulerFile {
            schedule,
            client: client(),
        }
        .to_xml(),
    )
}
