//! Listed files sent to a target folder on this machine without rsync.
//!
//! A night's new files are a few thousand small files scattered over hashed folders, cold on
//! the site's disk. rsync handles them one at a time through three processes on the 2 cores
//! the database dump also needs; here many are in flight at once and the kernel copies each
//! (`copy_file_range`). The result is what rsync `-rlpgoD -H --numeric-ids --size-only`
//! (with `--link-dest`, `--no-relative`, `--ignore-missing-args` when asked) makes of
//! regular files:
//! - a name already holding a file of the source's size is kept (its mode and owner set);
//! - a file an earlier copy (`link_dest`) holds with the same size, mode and owner is
//!   hard-linked from there, not copied;
//! - names that share an inode on the site share one on the target;
//! - mode and numeric owner are the source's, not the mtime (no `-t`); folders made on the
//!   way get the source folder's mode and owner;
//! - each file is written under a temporary name beside it and renamed into place, so a
//!   stop never leaves a short file under a listed name.
//!
//! Anything else listed (folders, symlinks, devices) is returned for rsync to send.

use crate::store::TransferStats;
use crate::StoreError;
use holdfast_core::progress::{Progress, Unit};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// How [`send`] copies (the rsync options it stands for).
#[derive(Debug, Clone, Default)]
pub struct How {
    /// Each file lands under its own name alone (`--no-relative`).
    pub flat: bool,
    /// Earlier copies of the tree (`--link-dest`).
    pub link_dest: Vec<PathBuf>,
    /// A listed file the source lacks is skipped (`--ignore-missing-args`); without it, an
    /// error.
    pub missing_ok: bool,
    /// Every file is copied, whatever is under its name (`--ignore-times`), and folders made
    /// on the way get this mode rather than their source folder's (a pool's own folders).
    pub replace_into: Option<u32>,
    /// Temporary names are made in this folder (on the destination's file system) rather
    /// than beside each file: one folder already read instead of each file's own, cold.
    pub stage: Option<PathBuf>,
}

/// Where [`send`] copies from and to.
pub struct Send<'a> {
    /// The folder the listed paths are relative to.
    pub src: &'a Path,
    /// The folder they go to.
    pub dest: &'a Path,
    pub how: &'a How,
    /// For the progress line.
    pub what: &'a str,
}

/// What [`send`] did, and what it left to rsync.
#[derive(Debug, Default)]
pub struct Sent {
    pub stats: TransferStats,
    /// Listed paths that are no regular file on the source.
    pub others: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Files in flight at once. A pool of its own: the night proves a sample of the kept files
/// on the shared disk-bound pool at the same time, and would hold up the send there.
const IN_FLIGHT: usize = 16;

fn own_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| holdfast_core::threads::named_pool(IN_FLIGHT, "holdfast-send"))
}

/// Sends `paths` (relative to `s.src`) as the module says.
pub fn send(s: &Send, paths: &[String]) -> Result<Sent, StoreError> {
    let pairs: Vec<(&str, &str)> = paths.iter().map(|p| (p.as_str(), s.to(p))).collect();
    send_pairs(s, &pairs)
}

/// Sends each `(source, destination)` pair, both relative (to `s.src`, `s.dest`).
pub fn send_pairs(s: &Send, pairs: &[(&str, &str)]) -> Result<Sent, StoreError> {
    let pool = own_pool();
    let began = std::time::Instant::now();
    let looked: Vec<std::io::Result<Metadata>> = pool.install(|| {
        pairs
            .par_iter()
            .map(|(p, _)| std::fs::symlink_metadata(s.src.join(p)))
            .collect()
    });
    let mut sent = Sent::default();
    // Names sharing an inode are one unit: copied once, linked for the rest.
    let mut shared: BTreeMap<(u64, u64), Vec<Name>> = BTreeMap::new();
    for (&(from, to), m) in pairs.iter().zip(looked) {
        match m {
            Ok(m) if m.is_file() => {
                shared
                    .entry((m.dev(), m.ino()))
                    .or_default()
                    .push(Name { from, to, m })
            }
            Ok(_) => sent.others.push(from.to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound && s.how.missing_ok => {}
            Err(e) => return Err(io(&s.src.join(from))(e)),
        }
    }
    let units: Vec<Vec<Name>> = shared.into_values().collect();
    std::fs::create_dir_all(s.dest).map_err(io(s.dest))?;
    if let Some(stage) = &s.how.stage {
        std::fs::create_dir_all(stage).map_err(io(stage))?;
    }
    let total = units.iter().map(|u| u[0].m.len()).sum();
    let progress = Progress::new(s.what, total, Unit::Bytes);
    let stats = Mutex::new(TransferStats::default());
    let late = Mutex::new(Vec::new());
    pool.install(|| {
        units.par_iter().try_for_each(|u| {
            holdfast_core::interrupt::check().map_err(|_| StoreError::Interrupted)?;
            match send_unit(s, u) {
                Ok(c) => stats.lock().expect("not poisoned").add(&c),
                // Turned into something else since it was looked at: rsync's business.
                Err(Miss::NotRegular) => late
                    .lock()
                    .expect("not poisoned")
                    .extend(u.iter().map(|n| n.from.to_string())),
                Err(Miss::Gone) => {}
                Err(Miss::Failed(e)) => return Err(e),
            }
            progress.inc(u[0].m.len());
            Ok(())
        })
    })?;
    progress.finish();
    sent.stats = stats.into_inner().expect("not poisoned");
    sent.others.extend(late.into_inner().expect("not poisoned"));
    tracing::debug!(
        secs = began.elapsed().as_secs_f64(),
        files = sent.stats.transferred_files,
        left_to_rsync = sent.others.len(),
        "files sent without rsync"
    );
    Ok(sent)
}

/// One listed name: its source and destination (relative) and the source as looked at.
struct Name<'a> {
    from: &'a str,
    to: &'a str,
    m: Metadata,
}

/// Why a file was not sent.
enum Miss {
    /// The source vanished after it was looked at (rsync accepts that too).
    Gone,
    /// It is no regular file any more.
    NotRegular,
    Failed(StoreError),
}

impl From<StoreError> for Miss {
    fn from(e: StoreError) -> Self {
        Miss::Failed(e)
    }
}

impl Send<'_> {
    /// Makes the folders above `rel` (a source path sent under its own name) under `dest`
    /// now, as [`send`] would make them: a night calls it while it still looks its new files
    /// up on the site, so the folders are there when the send starts.
    pub fn make_folders_for(&self, rel: &str) -> Result<(), StoreError> {
        self.make_parents(rel, self.to(rel))
    }

    /// Where [`send`] puts `rel` under `dest`: under its own path, or its name alone.
    fn to<'p>(&self, rel: &'p str) -> &'p str {
        if self.how.flat {
            rel.rsplit('/').next().unwrap_or(rel)
        } else {
            rel
        }
    }

    /// Makes the folders above `to` (sent from `from`) under `dest` that are missing: each
    /// with its source folder's mode and owner when the tree is the source's, else with the
    /// pool's mode.
    fn make_parents(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let Some(dir) = Path::new(to).parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        if let Some(mode) = self.how.replace_into {
            let to = self.dest.join(dir);
            return holdfast_core::fs::create_dir_all_mode(&to, mode).map_err(io(&to));
        }
        if from != to {
            return Ok(());
        }
        self.make_dir(dir)
    }

    fn make_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let to = self.dest.join(dir);
        match std::fs::create_dir(&to) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                    self.make_dir(up)?;
                }
                match std::fs::create_dir(&to) {
                    Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(io(&to)(e)),
                    _ => {}
                }
            }
            Err(e) => return Err(io(&to)(e)),
        }
        let from = std::fs::symlink_metadata(self.src.join(dir)).map_err(io(&to))?;
        own(&to, &from).map_err(io(&to))
    }

    /// An earlier copy of `n` to link instead of copying: same size, mode and owner.
    fn earlier(&self, n: &Name) -> Option<PathBuf> {
        self.how.link_dest.iter().map(|d| d.join(n.to)).find(|p| {
            std::fs::symlink_metadata(p)
                .is_ok_and(|e| e.is_file() && e.len() == n.m.len() && same_owner_and_mode(&e, &n.m))
        })
    }
}

fn same_owner_and_mode(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode() && a.uid() == b.uid() && a.gid() == b.gid()
}

/// Gives `path` the mode and owner of `m` (owner first: chown clears set-group-id). Only
/// root may give a file away: otherwise it stays this user's, as with rsync.
fn own(path: &Path, m: &Metadata) -> std::io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(m.uid()), Some(m.gid())) {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {}
        r => r?,
    }
    std::fs::set_permissions(
        path,
        std::os::unix::fs::PermissionsExt::from_mode(m.mode() & 0o7777),
    )
}

/// A name in `stage`, or beside `to`, for a file on its way there.
fn temp_name(stage: Option<&Path>, to: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let temp = format!(
        ".{name}.holdfast-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    match stage {
        Some(dir) => dir.join(temp),
        None => to.with_file_name(temp),
    }
}

/// Puts `make(temp)`'s result at `to` by a rename; the temporary name goes on failure.
fn via_temp(
    stage: Option<&Path>,
    to: &Path,
    make: impl FnOnce(&Path) -> Result<(), Miss>,
) -> Result<(), Miss> {
    let temp = temp_name(stage, to);
    let _ = std::fs::remove_file(&temp);
    let r = make(&temp).and_then(|()| std::fs::rename(&temp, to).map_err(|e| io(to)(e).into()));
    if r.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    r
}

/// Copies `from` (looked at as `m`) to `to`, through a temporary name in `stage` or beside it.
fn copy_file(from: &Path, m: &Metadata, to: &Path, stage: Option<&Path>) -> Result<(), Miss> {
    // Without waiting (a FIFO put in its place meanwhile would wait for a writer) and
    // without following a symlink put there.
    let mut r =
        match holdfast_core::fs::open_noatime_with(from, libc::O_NONBLOCK | libc::O_NOFOLLOW) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Miss::Gone),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Miss::NotRegular),
            Err(e) => return Err(io(from)(e).into()),
        };
    let now = r.metadata().map_err(io(from))?;
    if !now.is_file() || now.ino() != m.ino() || now.dev() != m.dev() {
        return Err(Miss::NotRegular);
    }
    via_temp(stage, to, |temp| {
        let mut w = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)
            .map_err(io(temp))?;
        std::io::copy(&mut r, &mut w).map_err(io(to))?;
        own(temp, m).map_err(io(to))?;
        Ok(())
    })
}

/// Sends one file under each of its names (one unless they share an inode); returns its
/// numbers as rsync's `--stats` would count them.
fn send_unit(s: &Send, names: &[Name]) -> Result<TransferStats, Miss> {
    let first = &names[0];
    let stage = s.how.stage.as_deref();
    let len = first.m.len();
    let mut c = TransferStats {
        files: names.len() as u64,
        bytes: len * names.len() as u64,
        ..Default::default()
    };
    let dests: Vec<PathBuf> = names.iter().map(|n| s.dest.join(n.to)).collect();
    let there: Vec<Option<Metadata>> = dests
        .iter()
        .map(|d| std::fs::symlink_metadata(d).ok())
        .collect();
    // `--size-only`: a name holding a file of the source's size is up to date.
    let kept = there.iter().position(|t| {
        s.how.replace_into.is_none() && t.as_ref().is_some_and(|t| t.is_file() && t.len() == len)
    });
    let lead = match kept {
        Some(k) => {
            let t = there[k].as_ref().expect("looked at");
            if !same_owner_and_mode(t, &first.m) {
                own(&dests[k], &first.m).map_err(io(&dests[k]))?;
            }
            k
        }
        None => {
            s.make_parents(first.from, first.to)?;
            match s.earlier(first) {
                Some(e) => via_temp(stage, &dests[0], |temp| {
                    std::fs::hard_link(&e, temp).map_err(|x| io(&dests[0])(x).into())
                })?,
                None => {
                    copy_file(&s.src.join(first.from), &first.m, &dests[0], stage)?;
                    c.transferred_files += 1;
                    c.transferred_bytes += len;
                    c.sent += len;
                    c.literal += len;
                }
            }
            0
        }
    };
    if names.len() == 1 {
        return Ok(c);
    }
    let lead_meta = std::fs::symlink_metadata(&dests[lead]).map_err(io(&dests[lead]))?;
    for (k, n) in names.iter().enumerate() {
        let linked = there[k]
            .as_ref()
            .is_some_and(|t| t.ino() == lead_meta.ino() && t.dev() == lead_meta.dev());
        if k == lead || linked {
            continue;
        }
        s.make_parents(n.from, n.to)?;
        via_temp(stage, &dests[k], |temp| {
            std::fs::hard_link(&dests[lead], temp).map_err(|x| io(&dests[k])(x).into())
        })?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    fn send_all(s: &Send, paths: &[&str]) -> Result<Sent, StoreError> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        send(s, &paths)
    }

    #[test]
    fn folders_made_ahead_are_the_sends_own_and_a_flat_send_makes_none() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("s"), t.path().join("d"));
        write(&src, "h/files/aa/bb/cc/x", b"data", 0o644);
        for (dir, mode) in [("h/files/aa", 0o751), ("h/files/aa/bb/cc", 0o2750)] {
            std::fs::set_permissions(src.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::create_dir_all(dest.join("h/files")).unwrap();
        let how = How::default();
        let s = Send {
            src: &src,
            dest: &dest,
            how: &how,
            what: "test",
        };
        s.make_folders_for("h/files/aa/bb/cc/x").unwrap();
        let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("h/files/aa"), 0o751);
        assert_eq!(mode("h/files/aa/bb/cc"), 0o2750);
        assert!(!dest.join("h/files/aa/bb/cc/x").exists(), "folders only");
        // Made again (the send's own call): nothing changes, and the file then lands there.
        s.make_folders_for("h/files/aa/bb/cc/x").unwrap();
        let sent = send_all(&s, &["h/files/aa/bb/cc/x"]).unwrap();
        assert_eq!(sent.stats.transferred_files, 1);
        assert_eq!(
            std::fs::read(dest.join("h/files/aa/bb/cc/x")).unwrap(),
            b"data"
        );

        let flat_dest = t.path().join("flat");
        std::fs::create_dir_all(&flat_dest).unwrap();
        let flat = How {
            flat: true,
            ..Default::default()
        };
        let s = Send {
            src: &src,
            dest: &flat_dest,
            how: &flat,
            what: "test",
        };
        s.make_folders_for("h/files/aa/bb/cc/x").unwrap();
        assert_eq!(std::fs::read_dir(&flat_dest).unwrap().count(), 0);
    }

    #[test]
    fn sends_as_rsync_would_twins_linked_sizes_kept_others_left() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest, before) = (t.path().join("s"), t.path().join("d"), t.path().join("b"));
        write(&src, "h/gold/aa/bb/cc/x", b"gold data", 0o640);
        std::fs::create_dir_all(src.join("h/files/aa/bb/cc")).unwrap();
        std::fs::hard_link(
            src.join("h/gold/aa/bb/cc/x"),
            src.join("h/files/aa/bb/cc/x"),
        )
        .unwrap();
        std::fs::set_permissions(
            src.join("h/gold/aa"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        write(&src, "h/gold/kk/bb/dd/kept", b"new content", 0o644);
        write(&dest, "h/gold/kk/bb/dd/kept", b"old content", 0o600);
        write(&src, "h/gold/kk/bb/ee/stale", b"longer than before", 0o644);
        write(&dest, "h/gold/kk/bb/ee/stale", b"short", 0o644);
        write(&src, "h/gold/ff/earlier", b"linked from before", 0o644);
        write(&before, "h/gold/ff/earlier", b"linked from before", 0o644);
        std::os::unix::fs::symlink("x", src.join("h/gold/aa/bb/cc/link")).unwrap();
        let how = How {
            link_dest: vec![before.clone()],
            missing_ok: true,
            ..Default::default()
        };
        let s = Send {
            src: &src,
            dest: &dest,
            how: &how,
            what: "test",
        };
        let sent = send_all(
            &s,
            &[
                "h/gold/aa/bb/cc/x",
                "h/files/aa/bb/cc/x",
                "h/gold/kk/bb/dd/kept",
                "h/gold/kk/bb/ee/stale",
                "h/gold/ff/earlier",
                "h/gold/aa/bb/cc/link",
                "h/gold/gone",
            ],
        )
        .unwrap();
        assert_eq!(sent.others, vec!["h/gold/aa/bb/cc/link".to_string()]);
        // Twins: one copy, one inode.
        let (g, f) = (
            dest.join("h/gold/aa/bb/cc/x"),
            dest.join("h/files/aa/bb/cc/x"),
        );
        assert_eq!(std::fs::read(&g).unwrap(), b"gold data");
        assert_eq!(ino(&g), ino(&f));
        assert_eq!(std::fs::metadata(&g).unwrap().mode() & 0o7777, 0o640);
        // The folders made on the way have their source's mode.
        assert_eq!(
            std::fs::metadata(dest.join("h/gold/aa")).unwrap().mode() & 0o7777,
            0o750
        );
        // Same size: kept (`--size-only`), its mode set.
        let kept = dest.join("h/gold/kk/bb/dd/kept");
        assert_eq!(std::fs::read(&kept).unwrap(), b"old content");
        assert_eq!(std::fs::metadata(&kept).unwrap().mode() & 0o7777, 0o644);
        // Another size: replaced.
        assert_eq!(
            std::fs::read(dest.join("h/gold/kk/bb/ee/stale")).unwrap(),
            b"longer than before"
        );
        // In the earlier copy with its size, mode and owner: linked, not copied.
        assert_eq!(
            ino(&dest.join("h/gold/ff/earlier")),
            ino(&before.join("h/gold/ff/earlier"))
        );
        assert!(!dest.join("h/gold/gone").exists());
        assert_eq!(sent.stats.files, 5);
        assert_eq!(sent.stats.transferred_files, 2);
        assert_eq!(
            sent.stats.transferred_bytes,
            (b"gold data".len() + b"longer than before".len()) as u64
        );
        // No temporary name left behind.
        let stray = walkdir::WalkDir::new(&dest)
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".holdfast-"));
        assert!(!stray);
        // A second send changes nothing.
        let again = send_all(&s, &["h/gold/aa/bb/cc/x", "h/files/aa/bb/cc/x"]).unwrap();
        assert_eq!(again.stats.transferred_files, 0);
        assert_eq!(ino(&g), ino(&f));
    }

    #[test]
    fn flat_sends_under_the_name_alone_and_a_missing_file_is_an_error_unless_allowed() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("s"), t.path().join("d/.incoming"));
        write(&src, "h/gold/aa/bb/cc/x", b"data", 0o644);
        let mut how = How {
            flat: true,
            ..Default::default()
        };
        let run = |how: &How, p: &str| {
            let s = Send {
                src: &src,
                dest: &dest,
                how,
                what: "test",
            };
            send_all(&s, &[p])
        };
        run(&how, "h/gold/aa/bb/cc/x").unwrap();
        assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"data");
        let e = run(&how, "h/gold/aa/bb/cc/missing").unwrap_err();
        assert!(e.to_string().contains("h/gold/aa/bb/cc/missing"), "{e}");
        how.missing_ok = true;
        run(&how, "h/gold/aa/bb/cc/missing").unwrap();
    }

    #[test]
    fn into_a_pool_every_file_is_written_again_under_its_object_name() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("s"), t.path().join("pool"));
        write(&src, "h/gold/aa/bb/cc/x", b"good copy", 0o644);
        // A damaged object of the same size: a pool send replaces it (no `--size-only`).
        write(&dest, "aa/bb/x", b"bad  copy", 0o644);
        let how = How {
            replace_into: Some(0o700),
            stage: Some(dest.join(".incoming")),
            ..Default::default()
        };
        let s = Send {
            src: &src,
            dest: &dest,
            how: &how,
            what: "test",
        };
        let sent = send_pairs(
            &s,
            &[
                ("h/gold/aa/bb/cc/x", "aa/bb/x"),
                ("h/gold/aa/bb/cc/x", "cc/dd/y"),
            ],
        )
        .unwrap();
        assert_eq!(sent.stats.transferred_files, 1, "one inode, one copy");
        assert_eq!(std::fs::read(dest.join("aa/bb/x")).unwrap(), b"good copy");
        assert_eq!(ino(&dest.join("aa/bb/x")), ino(&dest.join("cc/dd/y")));
        assert_eq!(
            std::fs::metadata(dest.join("cc/dd")).unwrap().mode() & 0o7777,
            0o700
        );
        assert_eq!(
            std::fs::read_dir(dest.join(".incoming")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_fifo_is_left_to_rsync_and_never_opened() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("s"), t.path().join("d"));
        std::fs::create_dir_all(&src).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let s = Send {
            src: &src,
            dest: &dest,
            how: &How::default(),
            what: "test",
        };
        let sent = send_all(&s, &["fifo"]).unwrap();
        assert_eq!(sent.others, vec!["fifo".to_string()]);
        assert!(!dest.join("fifo").exists());
    }
}
