//! Reading what each computer (prefix) of an account uploaded: `incoming/<prefix>/.sepiola_backup/`.
//! Every problem with a file becomes a finding (logged by the caller); the other files and
//! prefixes are still read. The client owns everything below `incoming/`, so nothing there
//! is followed: see [`holdfast_server::safe`].

use chrono::{DateTime, FixedOffset, Utc};
use holdfast_server::safe::{self, FileRead};
use holdfast_stoney::{parse, BackupEnded, BackupStarted, Client, SchedulerFile};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;

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
    /// The prefix folder holds something: a client uploaded to it, with or without
    /// readable client files (older clients and plain rsync write none).
    pub uploaded: bool,
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

/// True for prefix names that can be stored in `sstBackupLastSuccessfulBackup` and named in
/// mail: valid UTF-8 without control characters.
pub fn printable_prefix(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

/// Reads one client file; a missing file is `None`, anything refused is a finding.
fn read(dir: &OwnedFd, name: &str, path: &Path, findings: &mut Vec<String>) -> Option<FileRead> {
    match safe::read_at(dir, OsStr::new(name), path, safe::FILE_CAP) {
        Ok(r) => Some(r),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            findings.push(e.to_string());
            None
        }
    }
}

/// Whether the prefix holds a file the client uploaded: a regular file anywhere under it but
/// in the client's own metadata folder, or a client file there other than `scheduler.xml`
/// (written by a backup, even if unreadable). sepiola makes the prefix, `.sepiola_backup/`
/// and its backup folder (all empty) and writes `scheduler.xml` when a schedule is set,
/// before any backup (`prepareServerDirectories`, `uploadSchedulerXML`): no use. Stops at
/// the first file (a prefix may hold millions); a folder that cannot be read, or a walk
/// past [`WALK_CAP`] entries without a file, counts as used (never a false "never used").
fn holds_a_file(dir: &OwnedFd) -> bool {
    let mut budget = WALK_CAP;
    file_under(dir, true, &mut budget).unwrap_or(true)
}

const WALK_CAP: usize = 10_000;

/// Whether the metadata folder `name` holds a regular file other than `scheduler.xml`.
fn backup_file_in(dir: &OwnedFd, name: &std::ffi::CStr) -> Option<bool> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let meta = nix::fcntl::openat(dir, name, flags, nix::sys::stat::Mode::empty()).ok()?;
    let mut d = nix::dir::Dir::openat(&meta, ".", flags, nix::sys::stat::Mode::empty()).ok()?;
    for e in d.iter() {
        let e = e.ok()?;
        if e.file_type() == Some(nix::dir::Type::File)
            && e.file_name().to_bytes() != holdfast_stoney::SCHEDULER_FILE.as_bytes()
        {
            return Some(true);
        }
    }
    Some(false)
}

/// `Some(found)`, or `None` when the walk cannot tell (unreadable, or over budget).
fn file_under(dir: &OwnedFd, top: bool, budget: &mut usize) -> Option<bool> {
    use nix::dir::Type;
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(dir, ".", flags, nix::sys::stat::Mode::empty()).ok()?;
    let mut folders = Vec::new();
    for e in d.iter() {
        let e = e.ok()?;
        let name = e.file_name().to_owned();
        let n = name.to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        if top && n == holdfast_stoney::META_DIR.as_bytes() {
            if backup_file_in(dir, &name)? {
                return Some(true);
            }
            continue;
        }
        *budget = budget.checked_sub(1)?;
        match e.file_type() {
            Some(Type::File) => return Some(true),
            Some(Type::Directory) => folders.push(name),
            // Links, FIFOs and the like are no upload.
            Some(_) => {}
            None => return None,
        }
    }
    for name in folders {
        let sub =
            nix::fcntl::openat(dir, name.as_c_str(), flags, nix::sys::stat::Mode::empty()).ok()?;
        if file_under(&sub, false, budget)? {
            return Some(true);
        }
    }
    Some(false)
}

fn fixed(t: std::time::SystemTime) -> DateTime<FixedOffset> {
    DateTime::<Utc>::from(t).fixed_offset()
}

/// Reads one prefix folder (`incoming/<prefix>`), opened as `dir`. `.sepiola_backup` must be
/// a real folder and each file a regular file of sane size (see [`safe`]).
pub fn read_prefix_at(dir: &OwnedFd, prefix_dir: &Path) -> PrefixFiles {
    let prefix = prefix_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = PrefixFiles {
        prefix,
        uploaded: holds_a_file(dir),
        ..Default::default()
    };
    let meta_path = prefix_dir.join(holdfast_stoney::META_DIR);
    let meta = match safe::open_dir_at(dir, OsStr::new(holdfast_stoney::META_DIR), &meta_path) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return out,
        Err(e) => {
            out.findings.push(e.to_string());
            return out;
        }
    };
    let mut f = Vec::new();
    let sp = meta_path.join(holdfast_stoney::STARTED_FILE);
    if let Some(x) = read(&meta, holdfast_stoney::STARTED_FILE, &sp, &mut f) {
        match parse::backup_started_or(&x.text(), fixed(x.mtime)) {
            Ok(v) => out.started = Some(v),
            Err(e) => f.push(format!("{}: {e}", sp.display())),
        }
    }
    let ep = meta_path.join(holdfast_stoney::ENDED_FILE);
    if let Some(x) = read(&meta, holdfast_stoney::ENDED_FILE, &ep, &mut f) {
        match parse::backup_ended_or(&x.text(), fixed(x.mtime)) {
            Ok(v) => out.ended = Some(v),
            Err(e) => f.push(format!("{}: {e}", ep.display())),
        }
    }
    let cp = meta_path.join(holdfast_stoney::SCHEDULER_FILE);
    if let Some(x) = read(&meta, holdfast_stoney::SCHEDULER_FILE, &cp, &mut f) {
        match parse::scheduler(&x.text()) {
            Ok(v) => {
                out.scheduler = Some(v);
                out.scheduler_mtime = Some(DateTime::<Utc>::from(x.mtime));
            }
            Err(e) => f.push(format!("{}: {e}", cp.display())),
        }
    }
    out.findings = f;
    out
}

/// Reads one prefix folder by path (its last component is not followed if a symlink).
pub fn read_prefix(prefix_dir: &Path) -> PrefixFiles {
    let (Some(parent), Some(name)) = (prefix_dir.parent(), prefix_dir.file_name()) else {
        return PrefixFiles::default();
    };
    let opened = safe::open_root(parent).and_then(|p| safe::open_dir_at(&p, name, prefix_dir));
    match opened {
        Ok(fd) => read_prefix_at(&fd, prefix_dir),
        Err(e) => PrefixFiles {
            prefix: name.to_string_lossy().into_owned(),
            findings: vec![e.to_string()],
            ..Default::default()
        },
    }
}

/// Every prefix under `<home>/incoming/`, sorted by name. A missing `incoming` folder means
/// no computer ever uploaded: an empty list, not an error. A prefix that is a symlink, or
/// whose name cannot be stored, is a finding of that prefix; the others are still read.
pub fn read_account(home: &Path) -> (Vec<PrefixFiles>, Vec<String>) {
    let incoming = home.join("incoming");
    let fd = match safe::open_root(home)
        .and_then(|h| safe::open_dir_at(&h, OsStr::new("incoming"), &incoming))
    {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return (Vec::new(), Vec::new()),
        Err(e) => return (Vec::new(), vec![e.to_string()]),
    };
    let entries = match safe::entries(&fd, &incoming) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), vec![e.to_string()]),
    };
    let mut out = Vec::new();
    for (name, st) in entries {
        let path = incoming.join(&name);
        let Some(st) = st else { continue };
        let shown = name.to_string_lossy().into_owned();
        if safe::is_symlink(&st) {
            out.push(PrefixFiles {
                prefix: shown,
                findings: vec![safe::SafeError::Symlink(path).to_string()],
                ..Default::default()
            });
            continue;
        }
        if !safe::is_dir(&st) {
            continue;
        }
        let mut p = match safe::open_dir_at(&fd, &name, &path) {
            Ok(d) => read_prefix_at(&d, &path),
            Err(e) => PrefixFiles {
                prefix: shown.clone(),
                findings: vec![e.to_string()],
                ..Default::default()
            },
        };
        if name.to_str().is_none_or(|n| !printable_prefix(n)) {
            p.findings.push(format!(
                "{}: the prefix name is not printable UTF-8 text; its backups are checked but \
                 sstBackupLastSuccessfulBackup cannot hold it (rename the computer's prefix)",
                path.display()
            ));
        }
        out.push(p);
    }
    (out, Vec::new())
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
        assert!(p[0].uploaded && !p[1].uploaded, "pc2 is an empty folder");
        // An account that never uploaded anything.
        let (p, errs) = read_account(&t.path().join("nothing"));
        assert!(p.is_empty() && errs.is_empty());
    }

    #[test]
    fn planted_links_fifos_and_odd_names_are_findings_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let other = t.path().join("other/incoming/pc/.sepiola_backup");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("backupEnded.xml"), "<backup_ended><enddate>2026-11-20T02:00:00+01:00</enddate><id>1</id><success>1</success></backup_ended>").unwrap();
        let h = t.path().join("home");
        let inc = h.join("incoming");
        // a: .sepiola_backup is a link to another account's folder
        std::fs::create_dir_all(inc.join("a")).unwrap();
        std::os::unix::fs::symlink(&other, inc.join("a/.sepiola_backup")).unwrap();
        // b: backupEnded.xml -> /dev/zero, backupStarted.xml a FIFO
        std::fs::create_dir_all(inc.join("b/.sepiola_backup")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", inc.join("b/.sepiola_backup/backupEnded.xml"))
            .unwrap();
        nix::unistd::mkfifo(
            &inc.join("b/.sepiola_backup/backupStarted.xml"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        // c: the prefix itself is a link to the other account's prefix
        std::os::unix::fs::symlink(t.path().join("other/incoming/pc"), inc.join("c")).unwrap();
        // "d\ne": a name that cannot go into LDAP, but a good file
        std::fs::create_dir_all(inc.join("d\ne/.sepiola_backup")).unwrap();
        std::fs::write(inc.join("d\ne/.sepiola_backup/backupEnded.xml"), "<backup_ended><enddate>2026-11-20T02:00:00+01:00</enddate><id>1</id><success>1</success></backup_ended>").unwrap();
        let t0 = std::time::Instant::now();
        let (p, errs) = read_account(&h);
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
        assert!(errs.is_empty());
        let names: Vec<&str> = p.iter().map(|x| x.prefix.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d\ne"]);
        for x in &p[..3] {
            assert!(!x.ever_ran(), "{}: nothing read through a link", x.prefix);
        }
        assert!(p[0].findings[0].contains("symlink"), "{:?}", p[0].findings);
        assert_eq!(p[1].findings.len(), 2, "{:?}", p[1].findings);
        assert!(p[1].findings.iter().any(|f| f.contains("FIFO")));
        assert!(p[1].findings.iter().any(|f| f.contains("symlink")));
        assert!(p[2].findings[0].contains("symlink"));
        assert!(p[3].ended.is_some() && p[3].findings[0].contains("printable"));
    }
}
