//! rsnapshot-style rotation of an account's `incoming/` into `.snapshots/<interval>.<n>`,
//! with snapshots the account can read but never change.
//!
//! The lowest interval the account keeps (first of hourly, daily, weekly, monthly, yearly with
//! a non-zero `sstBackupInterval*`) is made from `incoming/` by [`crate::copy::copy_tree`]:
//! changed files are copied (reflinked where the filesystem clones), unchanged ones are hard
//! links to the newest earlier snapshot, so no snapshot shares an inode with `incoming/` and
//! everything in a snapshot is root's (group the account's, no write bit). A higher interval
//! takes over the oldest snapshot of the interval below it (`daily.6` becomes `weekly.0`),
//! exactly like rsnapshot, so cron runs the higher intervals shortly before the lower ones.
//! An interval with 0 (or no attribute) is left untouched: a missing attribute never deletes
//! snapshots. The stamp of a snapshot is the server's clock when it was taken (its folder's
//! modification time), whatever the client's clock says.
//!
//! `.snapshots/` is root's, group the account's, mode 1770: the Perl client's default mode
//! (`rsync --backup --backup-dir ~/.snapshots/YYYYMMDD/<prefix>`) can make its dated folders
//! there, while the sticky bit keeps the account from renaming or removing the server's
//! snapshots (and sepiola still finds them in `.snapshots/*/<prefix>` to restore). A folder
//! the account made under a server snapshot's name is moved aside (`planted.<name>.<time>`)
//! before rotation, never used. The server's own work happens in `<home>/.holdfast/` (root's,
//! 0700), out of the account's reach: the lock, trees under construction and the trash.
//!
//! Crash safety, with every step a rename on one filesystem:
//! 1. the new tree is built as `.holdfast/incomplete.<interval>`, then renamed to
//!    `.holdfast/ready.<interval>`;
//! 2. `<interval>.<n>` are shifted up, starting at the top of the run that begins at 0;
//! 3. `ready.<interval>` becomes `.snapshots/<interval>.0`;
//! 4. numbers >= keep are renamed into `.holdfast/trash/`.
//!
//! A run that stops anywhere leaves complete snapshots (possibly with one number missing);
//! the next run throws away `incomplete.*`, finishes any `ready.*` first (the shift of
//! step 2 only moves the contiguous run from 0, so a half-done shift is completed, not
//! repeated) and then does its own work.
//!
//! When a rotation from `incoming/` expires a snapshot, the oldest of those becomes the new
//! one: it is moved to `.holdfast/incomplete.<interval>` first and refreshed there
//! ([`crate::recycle`]), so a day costs what changed instead of a link and an unlink per
//! name; a run that stops meanwhile loses that snapshot a little early (it was expiring).
//!
//! Expiry is a rename into the trash: constant time, whatever the snapshot holds. Removing
//! the trash ([`purge_trash`]) still has to unlink every name, but it runs after all accounts
//! are rotated, in parallel, and an interrupted purge simply continues next time.

use crate::copy::{copy_tree, ours, CopyStats, Owner};
use crate::recycle::refresh_tree;
use crate::tree::{remove_tree, TreeError};
use holdfast_stoney::account::{Intervals, INTERVALS};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("unknown interval {0:?}: use hourly, daily, weekly, monthly or yearly")]
    Interval(String),
    #[error("{path} is missing")]
    Missing { path: PathBuf },
    #[error("{path} is a symlink or not a directory; refusing to touch it")]
    NotADir { path: PathBuf },
    #[error("{path} is locked by another snapshot run")]
    Locked { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copying {from} failed: {source}")]
    Tree { from: PathBuf, source: TreeError },
}

type Result<T> = std::result::Result<T, SnapError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapError + '_ {
    move |source| SnapError::Io {
        path: path.into(),
        source,
    }
}

/// What one rotation did for one account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotateReport {
    pub interval: String,
    /// The new `<interval>.0`, if one was placed.
    pub created: Option<String>,
    /// Where it came from: `incoming` or the lower snapshot.
    pub source: Option<String>,
    /// What the copy from `incoming/` did (files copied, linked to the previous snapshot).
    pub copy: Option<CopyStats>,
    /// Snapshots expired: moved to the trash, or the one recycled.
    pub expired: Vec<String>,
    /// The expired snapshot refreshed into the new one instead of being deleted (named as
    /// in `expired`).
    pub recycled: Option<String>,
    /// Leftovers of an interrupted run that were cleaned up or finished.
    pub repaired: Vec<String>,
    /// Why nothing was done, when nothing was.
    pub skipped: Option<String>,
}

fn check_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SnapError::NotADir { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SnapError::Missing { path: path.into() })
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Numbers n of existing `<interval>.<n>` folders, ascending.
fn numbers(snaps: &Path, interval: &str) -> Result<Vec<u32>> {
    let mut v = vec![];
    for e in std::fs::read_dir(snaps).map_err(io(snaps))? {
        let e = e.map_err(io(snaps))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((i, n)) = name.split_once('.') {
            if i == interval && is_ours(&e.path()) {
                if let Ok(n) = n.parse::<u32>() {
                    v.push(n);
                }
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(io(from))
}

/// True for a folder that belongs to us (not one the account made).
fn is_ours(p: &Path) -> bool {
    nix::sys::stat::lstat(p).is_ok_and(|st| ours(&st))
}

/// The server's own area in a home: root's, 0700, out of the account's reach.
pub fn work_dir(home: &Path) -> PathBuf {
    home.join(".holdfast")
}

fn ensure_work(home: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let w = work_dir(home);
    match std::fs::symlink_metadata(&w) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(SnapError::NotADir { path: w }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&w).map_err(io(&w))?;
        }
        Err(e) => return Err(io(&w)(e)),
    }
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o700)).map_err(io(&w))?;
    Ok(w)
}

/// Moves `.snapshots/<name>` into the trash under a unique name.
fn to_trash(snaps: &Path, work: &Path, name: &str) -> Result<()> {
    let trash = work.join("trash");
    if !trash.exists() {
        std::fs::create_dir(&trash).map_err(io(&trash))?;
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    rename(
        &snaps.join(name),
        &trash.join(format!("{name}.{stamp}.{}", std::process::id())),
    )
}

/// Each `<interval>.<n>` and the number it will have once the run of numbers from 0 is
/// shifted up for a new `.0`.
fn after_shift(snaps: &Path, interval: &str) -> Result<Vec<(u32, u32)>> {
    let have = numbers(snaps, interval)?;
    let mut run = 0;
    while have.binary_search(&run).is_ok() {
        run += 1;
    }
    Ok(have
        .into_iter()
        .map(|n| (n, if n < run { n + 1 } else { n }))
        .collect())
}

/// The snapshot a new `<interval>.0` can be refreshed from: the oldest this rotation will
/// expire, never the reference the new one links to. Its name now, and the name the shift
/// would have given it (the one expiries are reported by).
fn recyclable(
    snaps: &Path,
    interval: &str,
    keep: u32,
    reference: Option<&Path>,
) -> Result<Option<(String, String)>> {
    Ok(after_shift(snaps, interval)?
        .into_iter()
        .rev()
        .find(|(_, after)| *after >= keep)
        .map(|(n, after)| (format!("{interval}.{n}"), format!("{interval}.{after}")))
        .filter(|(now, _)| reference != Some(snaps.join(now).as_path())))
}

/// Steps 2-4: shift, place `ready.<interval>` as `<interval>.0`, expire beyond `keep`.
fn place(
    snaps: &Path,
    work: &Path,
    interval: &str,
    keep: u32,
    report: &mut RotateReport,
) -> Result<()> {
    let ready = work.join(format!("ready.{interval}"));
    let have = numbers(snaps, interval)?;
    // the run of consecutive numbers starting at 0, shifted top-down
    let mut run = 0;
    while have.binary_search(&run).is_ok() {
        run += 1;
    }
    for n in (0..run).rev() {
        rename(
            &snaps.join(format!("{interval}.{n}")),
            &snaps.join(format!("{interval}.{}", n + 1)),
        )?;
    }
    let zero = snaps.join(format!("{interval}.0"));
    rename(&ready, &zero)?;
    report.created = Some(format!("{interval}.0"));
    for n in numbers(snaps, interval)? {
        if n >= keep {
            let name = format!("{interval}.{n}");
            to_trash(snaps, work, &name)?;
            report.expired.push(name);
        }
    }
    Ok(())
}

/// Moves folders the account made under a server snapshot's name (`daily.3`) aside, so
/// rotation never renames, links from or counts on them as ours.
fn move_planted(snaps: &Path, report: &mut RotateReport) -> Result<()> {
    for e in std::fs::read_dir(snaps).map_err(io(snaps))? {
        let e = e.map_err(io(snaps))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::homes::is_rotating(&name) && !is_ours(&e.path()) {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
            let to = format!("planted.{name}.{stamp}");
            rename(&e.path(), &snaps.join(&to))?;
            report.repaired.push(format!(
                "{name} was not made by the server: moved aside as {to}"
            ));
        }
    }
    Ok(())
}

/// The newest server snapshot (by the time it was taken): unchanged files link to it.
fn newest_snapshot(snaps: &Path) -> Option<PathBuf> {
    std::fs::read_dir(snaps)
        .ok()?
        .flatten()
        .filter(|e| crate::homes::is_rotating(&e.file_name().to_string_lossy()))
        .filter(|e| is_ours(&e.path()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// Rotates one account's snapshots for `interval`. `home` holds `incoming/` and `.snapshots/`.
pub fn rotate(home: &Path, intervals: &Intervals, interval: &str) -> Result<RotateReport> {
    let keep = intervals
        .keep(interval)
        .ok_or_else(|| SnapError::Interval(interval.into()))?;
    let mut report = RotateReport {
        interval: interval.into(),
        ..RotateReport::default()
    };
    check_dir(home)?;
    let snaps = home.join(".snapshots");
    let incoming = home.join("incoming");
    check_dir(&snaps)?;
    check_dir(&incoming)?;
    let work = ensure_work(home)?;
    let lock_path = work.join("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    // waits for another interval's run on the same home (cron starts several at 02:00 on
    // the first of a month); a stop signal ends the wait
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|_| SnapError::Locked {
        path: snaps.clone(),
    })?;

    // repair what an interrupted run left
    for e in std::fs::read_dir(&work).map_err(io(&work))? {
        let e = e.map_err(io(&work))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("incomplete.") {
            remove_tree(&e.path()).map_err(|source| SnapError::Tree {
                from: e.path(),
                source,
            })?;
            report.repaired.push(format!("discarded {name}"));
        }
    }
    move_planted(&snaps, &mut report)?;
    for i in INTERVALS {
        if work.join(format!("ready.{i}")).exists() {
            let k = intervals.keep(i).unwrap_or(0).max(1);
            let mut r = RotateReport::default();
            place(&snaps, &work, i, k, &mut r)?;
            report.repaired.push(format!("finished placing {i}.0"));
            report.expired.extend(r.expired);
        }
    }

    if keep == 0 {
        report.skipped = Some(untouched(interval));
        return Ok(report);
    }
    let ready = work.join(format!("ready.{interval}"));
    match fed_by(intervals, interval) {
        None => {
            let tmp = work.join(format!("incomplete.{interval}"));
            // root's (whoever runs this), group the account's (the group of incoming/)
            let owner = {
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::metadata(&incoming).map_err(io(&incoming))?;
                Owner {
                    uid: nix::unistd::geteuid().as_raw(),
                    gid: m.gid(),
                }
            };
            let reference = newest_snapshot(&snaps);
            // the snapshot this run expires becomes the new one: only what changed since
            // it was taken is unlinked and made again (see crate::recycle)
            let recycled = recyclable(&snaps, interval, keep, reference.as_deref())?;
            let made = match &recycled {
                Some((old, _)) => {
                    rename(&snaps.join(old), &tmp)?;
                    refresh_tree(&incoming, reference.as_deref(), &tmp, owner)
                }
                None => copy_tree(&incoming, reference.as_deref(), &tmp, owner),
            };
            let stats = made.map_err(|source| SnapError::Tree {
                from: incoming.clone(),
                source,
            })?;
            if let Some((_, expired)) = recycled {
                report.expired.push(expired.clone());
                report.recycled = Some(expired);
            }
            // the snapshot's own time is when the server took it (rsnapshot touches it too);
            // the size cache also tells a refreshed snapshot from the one it was by this time
            std::fs::File::open(&tmp)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .map_err(io(&tmp))?;
            rename(&tmp, &ready)?;
            report.copy = Some(stats);
            report.source = Some("incoming".into());
        }
        Some(lower) => {
            let oldest = oldest_of(intervals, lower);
            if !is_ours(&snaps.join(&oldest)) {
                report.skipped = Some(format!("no {oldest} yet to become {interval}.0"));
                return Ok(report);
            }
            rename(&snaps.join(&oldest), &ready)?;
            report.source = Some(oldest);
        }
    }
    place(&snaps, &work, interval, keep, &mut report)?;
    Ok(report)
}

/// What [`rotate`] would do now, without changing anything (for `--dry-run`).
pub fn plan(home: &Path, intervals: &Intervals, interval: &str) -> Result<RotateReport> {
    let keep = intervals
        .keep(interval)
        .ok_or_else(|| SnapError::Interval(interval.into()))?;
    let mut report = RotateReport {
        interval: interval.into(),
        ..RotateReport::default()
    };
    let snaps = home.join(".snapshots");
    check_dir(home)?;
    check_dir(&snaps)?;
    check_dir(&home.join("incoming"))?;
    if keep == 0 {
        report.skipped = Some(untouched(interval));
        return Ok(report);
    }
    match fed_by(intervals, interval) {
        None => {
            report.source = Some("incoming".into());
            let reference = newest_snapshot(&snaps);
            report.recycled =
                recyclable(&snaps, interval, keep, reference.as_deref())?.map(|(now, _)| now);
        }
        Some(lower) => {
            let oldest = oldest_of(intervals, lower);
            if !is_ours(&snaps.join(&oldest)) {
                report.skipped = Some(format!("no {oldest} yet to become {interval}.0"));
                return Ok(report);
            }
            report.source = Some(oldest);
        }
    }
    report.created = Some(format!("{interval}.0"));
    for (n, after) in after_shift(&snaps, interval)? {
        if after >= keep {
            report.expired.push(format!("{interval}.{n}"));
        }
    }
    Ok(report)
}

/// Why an interval that keeps nothing is left alone.
fn untouched(interval: &str) -> String {
    format!(
        "sstBackupInterval{} is 0 or unset: {interval} snapshots untouched",
        capitalize(interval)
    )
}

/// The next shorter interval that keeps snapshots: its oldest becomes `interval`'s newest.
/// None: `interval` is the shortest kept, made from `incoming/`.
fn fed_by(intervals: &Intervals, interval: &str) -> Option<&'static str> {
    let pos = INTERVALS.iter().position(|i| *i == interval).unwrap_or(0);
    INTERVALS[..pos]
        .iter()
        .rev()
        .find(|i| intervals.keep(i).unwrap_or(0) > 0)
        .copied()
}

/// The oldest snapshot `lower` keeps (`daily.6` with seven dailies).
fn oldest_of(intervals: &Intervals, lower: &str) -> String {
    format!("{lower}.{}", intervals.keep(lower).unwrap_or(1).max(1) - 1)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Deletes everything in the trash of a home (in parallel). Returns entries removed.
pub fn purge_trash(home: &Path) -> std::result::Result<u64, TreeError> {
    // an older holdfast kept its trash in .snapshots/.trash: emptied too, if it made it
    let legacy = home.join(".snapshots/.trash");
    let mut n = 0;
    if nix::sys::stat::lstat(&legacy).is_ok_and(|st| ours(&st)) {
        n += remove_tree(&legacy)?;
    }
    let trash = work_dir(home).join("trash");
    if std::fs::symlink_metadata(&trash)
        .map(|m| !m.is_dir())
        .unwrap_or(true)
    {
        return Ok(n);
    }
    for e in std::fs::read_dir(&trash).map_err(|source| TreeError {
        path: trash.clone(),
        source,
    })? {
        let e = e.map_err(|source| TreeError {
            path: trash.clone(),
            source,
        })?;
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            n += remove_tree(&p)?;
        } else {
            std::fs::remove_file(&p).map_err(|source| TreeError { path: p, source })?;
            n += 1;
        }
    }
    let _ = std::fs::remove_dir(&trash);
    Ok(n)
}

/// The time the newest snapshot of a home was taken (its folder's mtime), if any.
pub fn last_snapshot(home: &Path) -> Option<std::time::SystemTime> {
    // the server's own snapshots, and the client's dated folders; a time in the future (a
    // client can set its folders' times) is not believed
    let now = std::time::SystemTime::now();
    std::fs::read_dir(home.join(".snapshots"))
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (crate::homes::is_rotating(&n) && is_ours(&e.path())) || crate::homes::is_dated(&n)
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .filter(|t| *t <= now)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn home(t: &Path) -> PathBuf {
        let h = t.join("home");
        std::fs::create_dir_all(h.join("incoming/pc")).unwrap();
        std::fs::create_dir_all(h.join(".snapshots")).unwrap();
        h
    }

    fn names(h: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(h.join(".snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn daily_and_weekly_rotate_like_rsnapshot() {
        let t = tempfile::tempdir().unwrap();
        let h = home(t.path());
        let iv = Intervals {
            daily: 3,
            weekly: 2,
            ..Intervals::default()
        };
        for day in 0..8 {
            std::fs::write(h.join(format!("incoming/pc/day{day}")), format!("{day}")).unwrap();
            if day % 3 == 0 && day > 0 {
                rotate(&h, &iv, "weekly").unwrap();
            }
            let r = rotate(&h, &iv, "daily").unwrap();
            assert_eq!(r.created.as_deref(), Some("daily.0"));
            purge_trash(&h).unwrap();
        }
        assert_eq!(
            names(&h),
            ["daily.0", "daily.1", "daily.2", "weekly.0", "weekly.1"]
        );
        // daily.0 holds day 7; daily.2 holds day 5 but not day 6
        assert!(h.join(".snapshots/daily.0/pc/day7").exists());
        assert!(h.join(".snapshots/daily.2/pc/day5").exists());
        assert!(!h.join(".snapshots/daily.2/pc/day6").exists());
        // weekly.0 was daily.2 on day 6: holds days up to 3
        assert!(h.join(".snapshots/weekly.0/pc/day3").exists());
        assert!(!h.join(".snapshots/weekly.0/pc/day4").exists());
        // snapshots share inodes with each other, never with incoming/
        let ino = |p: &str| std::fs::metadata(h.join(p)).unwrap().ino();
        assert_ne!(ino("incoming/pc/day0"), ino(".snapshots/weekly.1/pc/day0"));
        assert_eq!(
            ino(".snapshots/daily.0/pc/day0"),
            ino(".snapshots/weekly.1/pc/day0")
        );
        assert!(!h.join(".holdfast/trash").exists());
    }

    #[test]
    fn interrupted_rotation_is_repaired() {
        let t = tempfile::tempdir().unwrap();
        let h = home(t.path());
        let iv = Intervals {
            daily: 4,
            ..Intervals::default()
        };
        for _ in 0..4 {
            rotate(&h, &iv, "daily").unwrap();
        }
        // a crash during the shift: daily.3 was moved to daily.4, daily.2 not yet; the new
        // tree was ready; and another build had died half-way
        let s = h.join(".snapshots");
        let w = h.join(".holdfast");
        std::fs::rename(s.join("daily.3"), s.join("daily.4")).unwrap();
        std::fs::create_dir(w.join("ready.daily")).unwrap();
        std::fs::write(w.join("ready.daily/marker"), "new").unwrap();
        std::fs::create_dir_all(w.join("incomplete.daily/pc")).unwrap();
        let r = rotate(&h, &iv, "daily").unwrap();
        assert_eq!(r.repaired.len(), 2, "{r:?}");
        assert_eq!(names(&h), ["daily.0", "daily.1", "daily.2", "daily.3"]);
        // the ready tree became daily.1 once today's run placed its own daily.0
        assert!(s.join("daily.1/marker").exists());
        assert!(!w.join("incomplete.daily").exists());
    }

    #[test]
    fn dated_folders_stay_planted_names_move_aside_zero_intervals_untouched() {
        let t = tempfile::tempdir().unwrap();
        let h = home(t.path());
        std::fs::create_dir(h.join(".snapshots/20261120")).unwrap();
        // the account made a daily.0 of its own (to be linked from, or to block rotation)
        std::fs::create_dir(h.join(".snapshots/daily.0")).unwrap();
        std::fs::write(h.join(".snapshots/daily.0/fake"), "x").unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::lchown(h.join(".snapshots/daily.0"), Some(65534), Some(65534))
                .unwrap();
        }
        let iv = Intervals {
            daily: 7,
            ..Intervals::default()
        };
        let r = rotate(&h, &iv, "daily").unwrap();
        assert_eq!(r.created.as_deref(), Some("daily.0"));
        let mut n = names(&h);
        if nix::unistd::geteuid().is_root() {
            assert!(r.repaired[0].contains("moved aside"), "{r:?}");
            assert!(n.pop().unwrap().starts_with("planted.daily.0."));
            assert!(!h.join(".snapshots/daily.0/fake").exists());
        }
        assert_eq!(n, ["20261120", "daily.0"]);
        let h2 = home(&t.path().join("b"));
        std::fs::create_dir(h2.join(".snapshots/weekly.0")).unwrap();
        let r = rotate(&h2, &iv, "weekly").unwrap();
        assert!(r.skipped.unwrap().contains("0 or unset"));
        assert_eq!(names(&h2), ["weekly.0"]);
        assert!(rotate(&h2, &iv, "often").is_err());
    }

    #[test]
    fn the_expiring_daily_becomes_the_new_one_and_holds_exactly_incoming() {
        let t = tempfile::tempdir().unwrap();
        let h = home(t.path());
        let iv = Intervals {
            daily: 2,
            ..Intervals::default()
        };
        let inc = h.join("incoming/pc");
        let s = h.join(".snapshots");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let files = |p: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = walkdir::WalkDir::new(p)
                .sort_by_file_name()
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e.path().strip_prefix(p).unwrap().display().to_string();
                    (rel, std::fs::read(e.path()).unwrap())
                })
                .collect();
            v.sort();
            v
        };
        std::fs::write(inc.join("kept"), "never changes").unwrap();
        // a second name, as rsync -H uploads it: both stay one inode, and stay as they are
        std::fs::hard_link(inc.join("kept"), inc.join("kept.twin")).unwrap();
        for day in 0..5 {
            std::fs::write(inc.join("today"), format!("day {day}")).unwrap();
            std::fs::write(inc.join(format!("new{day}")), "new").unwrap();
            if day > 0 {
                std::fs::remove_file(inc.join(format!("new{}", day - 1))).unwrap();
            }
            let previous = s.join("daily.0");
            let previous_today = previous.exists().then(|| ino(&previous.join("pc/today")));
            let r = rotate(&h, &iv, "daily").unwrap();
            if day < 2 {
                assert_eq!(r.recycled, None, "day {day}: nothing expires yet");
            } else {
                // daily.1, which the shift would have made daily.2
                assert_eq!(r.recycled.as_deref(), Some("daily.2"), "day {day}");
                assert_eq!(r.expired, ["daily.2"]);
                assert!(
                    !h.join(".holdfast/trash").exists(),
                    "nothing left to delete"
                );
                // both names of the unchanged file (the other names changed or are new)
                assert_eq!(r.copy.unwrap().kept, 2, "{r:?}");
            }
            assert_eq!(names(&h).len(), (day + 1).min(2));
            assert_eq!(
                files(&s.join("daily.0")),
                files(&h.join("incoming")),
                "day {day}"
            );
            assert_eq!(
                ino(&s.join("daily.0/pc/kept.twin")),
                ino(&s.join("daily.0/pc/kept"))
            );
            assert_eq!(
                ino(&s.join("daily.0/pc/kept")),
                ino(&s.join(if day == 0 {
                    "daily.0/pc/kept"
                } else {
                    "daily.1/pc/kept"
                }))
            );
            if let Some(before) = previous_today {
                assert_eq!(
                    ino(&s.join("daily.1/pc/today")),
                    before,
                    "the day before is untouched"
                );
                assert_eq!(
                    std::fs::read(s.join("daily.1/pc/today")).unwrap(),
                    format!("day {}", day - 1).as_bytes()
                );
            }
        }
        // down to one daily: the oldest of the two expiring becomes the new one
        let one = Intervals {
            daily: 1,
            ..Intervals::default()
        };
        let r = rotate(&h, &one, "daily").unwrap();
        // (daily.1 and daily.0, named by the shift daily.2 and daily.1)
        assert_eq!(
            (r.recycled.as_deref(), r.expired.len()),
            (Some("daily.2"), 2)
        );
        assert_eq!(files(&s.join("daily.0")), files(&h.join("incoming")));
        // then the only one expiring is the one the new one links to: a fresh copy
        let r = rotate(&h, &one, "daily").unwrap();
        assert_eq!((r.recycled, r.expired), (None, vec!["daily.1".to_string()]));
        assert_eq!(files(&s.join("daily.0")), files(&h.join("incoming")));
        purge_trash(&h).unwrap();
        assert_eq!(names(&h), ["daily.0"]);
    }
}
