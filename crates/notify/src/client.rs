//! Reading what each computer (prefix) of an account uploaded: `incoming/<prefix>/.sepiola_backup/`.
//! Every problem with a file becomes a finding (logged by the caller); the other files and
//! prefixes are still read.

use chrono::{DateTime, FixedOffset, Utc};
use holdfast_stoney::{parse, BackupEnded, BackupStarted, Client, SchedulerFile};
use std::path::{Path, PathBuf};

/// The client files of one prefix, each `None` when missing or unreadable.
#[derive(Debug, Clone, Default)]
pub struct PrefixFiles {
    pub prefix: String,
    pub started: Option<BackupStarted>,
    pub ended: Option<BackupEnded>,
    pub scheduler: Option<SchedulerFile>,
    /// When `scheduler.xml` was last written (its upload time).
    pub scheduler_mtime: Option<DateTime<Utc>>,
    /// One line per bad file: path and what is wrong.
    pub findings: Vec<String>,
}

impl PrefixFiles {
    /// The newest client description among the three files: ended, then started, then the
    /// schedule (they are uploaded in that reverse order).
    pub fn client(&self) -> Option<&Client> {
        let mut cands: Vec<(DateTime<Utc>, &Client)> = Vec::new();
        if let Some(e) = &self.ended {
            cands.push((e.end.with_timezone(&Utc), &e.client));
        }
        if let Some(s) = &self.started {
            cands.push((s.start.with_timezone(&Utc), &s.client));
        }
        if let (Some(s), Some(t)) = (&self.scheduler, self.scheduler_mtime) {
            cands.push((t, &s.client));
        }
        cands.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        cands
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| !c.identifier.is_empty())
    }

    /// True when the prefix shows any sign of a backup ever having run.
    pub fn ever_ran(&self) -> bool {
        self.started.is_some() || self.ended.is_some()
    }
}

fn mtime(p: &Path) -> Option<DateTime<FixedOffset>> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(DateTime::<Utc>::from(t).fixed_offset())
}

fn read(p: &Path, findings: &mut Vec<String>) -> Option<String> {
    match std::fs::read(p) {
        Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            findings.push(format!("{}: cannot read: {e}", p.display()));
            None
        }
    }
}

/// Reads one prefix folder (`incoming/<prefix>`).
pub fn read_prefix(prefix_dir: &Path) -> PrefixFiles {
    let prefix = prefix_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = prefix_dir.join(holdfast_stoney::META_DIR);
    let mut out = PrefixFiles {
        prefix,
        ..Default::default()
    };
    let mut f = Vec::new();
    let sp = meta.join(holdfast_stoney::STARTED_FILE);
    if let Some(x) = read(&sp, &mut f) {
        let r = match mtime(&sp) {
            Some(m) => parse::backup_started_or(&x, m),
            None => parse::backup_started(&x),
        };
        match r {
            Ok(v) => out.started = Some(v),
            Err(e) => f.push(format!("{}: {e}", sp.display())),
        }
    }
    let ep = meta.join(holdfast_stoney::ENDED_FILE);
    if let Some(x) = read(&ep, &mut f) {
        let r = match mtime(&ep) {
            Some(m) => parse::backup_ended_or(&x, m),
            None => parse::backup_ended(&x),
        };
        match r {
            Ok(v) => out.ended = Some(v),
            Err(e) => f.push(format!("{}: {e}", ep.display())),
        }
    }
    let cp = meta.join(holdfast_stoney::SCHEDULER_FILE);
    if let Some(x) = read(&cp, &mut f) {
        match parse::scheduler(&x) {
            Ok(v) => {
                out.scheduler = Some(v);
                out.scheduler_mtime = mtime(&cp).map(|t| t.with_timezone(&Utc));
            }
            Err(e) => f.push(format!("{}: {e}", cp.display())),
        }
    }
    out.findings = f;
    out
}

/// Every prefix under `<home>/incoming/`, sorted by name. A missing `incoming` folder means
/// no computer ever uploaded: an empty list, not an error.
pub fn read_account(home: &Path) -> (Vec<PrefixFiles>, Vec<String>) {
    let incoming = home.join("incoming");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&incoming) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return (Vec::new(), vec![format!("{}: {e}", incoming.display())]),
    };
    dirs.sort();
    (dirs.iter().map(|d| read_prefix(d)).collect(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_findings_and_good_ones_still_read() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("incoming/pc1/.sepiola_backup");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(t.path().join("incoming/pc2")).unwrap();
        std::fs::write(m.join("backupStarted.xml"), "<backup_started><startdate>2026-11-20T02:00:00-00:00</startdate><id>9</id><client><identifier>sepiola</identifier><version>2.4.1</version></client></backup_started>").unwrap();
        std::fs::write(
            m.join("backupEnded.xml"),
            "<backup_ended><enddate>2026-11-2",
        )
        .unwrap();
        std::fs::write(m.join("scheduler.xml"), "<online_backup_schedule><custom_online_backup><minutes><minute_selected>00</minute_selected></minutes><hours><hour_selected>02</hour_selected></hours><timezone>-00:00</timezone></custom_online_backup></online_backup_schedule>").unwrap();
        let (p, errs) = read_account(t.path());
        assert!(errs.is_empty());
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].prefix, "pc1");
        assert_eq!(p[0].started.as_ref().unwrap().id, "9");
        assert!(p[0].ended.is_none());
        assert!(p[0].scheduler.is_some());
        assert_eq!(p[0].findings.len(), 1);
        assert!(p[0].findings[0].contains("backupEnded.xml"));
        assert_eq!(p[0].client().unwrap().version, "2.4.1");
        assert!(p[0].ever_ran());
        assert!(!p[1].ever_ran() && p[1].findings.is_empty());
        // An account that never uploaded anything.
        let (p, errs) = read_account(&t.path().join("nothing"));
        assert!(p.is_empty() && errs.is_empty());
    }
}
