//! Parallel, descriptor-relative walks over client trees: hard-link copies (snapshots),
//! inode-once size sums, and removal (its primitives and [`remove_tree`] live in
//! `holdfast_core::tree`: the backup target deletes pruned days with it too).
//!
//! Clients control everything below `incoming/`, so every step works relative to an open
//! directory descriptor: directories are opened with `openat(O_NOFOLLOW|O_DIRECTORY)`, entries
//! are examined with `fstatat(AT_SYMLINK_NOFOLLOW)` and linked with `linkat(.., 0)`. A symlink
//! a client planted (even one swapped in for a directory while we walk) is therefore copied or
//! counted as the link itself and never followed. Subdirectories are processed in parallel
//! with rayon; the type from `readdir` (`d_type`) spares a `stat` per file when only linking
//! or removing.
//!
//! The walks wait on metadata reads and journal writes far more than on the CPU: on a cold
//! cache one walker per core leaves the disk idle between requests. They run in their own
//! pool ([`io_pool`]) with several walkers per core, so many directory and inode reads are in
//! flight at once.

use nix::dir::Type;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, Mode, SFlag};
use rayon::prelude::*;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The pool the tree walks run in (shared with the rest of holdfast).
pub use holdfast_core::threads::io_pool;
pub(crate) use holdfast_core::tree::{child, each_entry, each_entry_ino, err, open_dir_at};
pub use holdfast_core::tree::{open_dir, remove_tree, TreeError};

type Result<T> = std::result::Result<T, TreeError>;

fn stat_at(fd: impl AsFd, name: &CStr, path: &Path) -> Result<FileStat> {
    nix::sys::stat::fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| err(path, e))
}

pub(crate) fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// What [`link_tree`] made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub dirs: u64,
    pub links: u64,
}

/// Makes `dst` (which must not exist) a copy of the directory `src` in which every
/// non-directory (file, symlink, fifo, ...) is a hard link to the original and every
/// directory is new, with the original's mode, owner and times.
pub fn link_tree(src: &Path, dst: &Path) -> Result<LinkStats> {
    link_tree_with(src, dst, None)
}

/// Owner and mode to give every directory of a copy instead of the original's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// [`link_tree`], with the copy's directories given `dirs` (e.g. root's and read-only for
/// the account, so it cannot add, remove or rename anything in its snapshots).
pub fn link_tree_with(src: &Path, dst: &Path, dirs_owner: Option<DirOwner>) -> Result<LinkStats> {
    io_pool().install(|| link_tree_in_pool(src, dst, dirs_owner))
}

/// Opens the source of a copy and makes its new top folder `dst` (private until the copy
/// finishes it): the source, its status and the new folder.
pub(crate) fn begin_copy(src: &Path, dst: &Path) -> Result<(OwnedFd, FileStat, OwnedFd)> {
    let sfd = open_dir(src)?;
    let parent = dst.parent().unwrap_or(Path::new("."));
    let name =
        CString::new(dst.file_name().unwrap_or_default().as_bytes()).map_err(|_| TreeError {
            path: dst.into(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
    let pfd = open_dir(parent)?;
    let st = nix::sys::stat::fstat(&sfd).map_err(|e| err(src, e))?;
    nix::sys::stat::mkdirat(&pfd, name.as_c_str(), Mode::from_bits_truncate(0o700))
        .map_err(|e| err(dst, e))?;
    let dfd = open_dir_at(&pfd, &name, dst)?;
    Ok((sfd, st, dfd))
}

fn link_tree_in_pool(src: &Path, dst: &Path, dirs_owner: Option<DirOwner>) -> Result<LinkStats> {
    let (sfd, st, dfd) = begin_copy(src, dst)?;
    let dirs = AtomicU64::new(1);
    let links = AtomicU64::new(0);
    link_dir(&sfd, &dfd, src, &dirs, &links, dirs_owner)?;
    finish_dir(&dfd, &st, dst, dirs_owner)?;
    Ok(LinkStats {
        dirs: dirs.into_inner(),
        links: links.into_inner(),
    })
}

fn link_dir(
    sfd: &OwnedFd,
    dfd: &OwnedFd,
    path: &Path,
    dirs: &AtomicU64,
    links: &AtomicU64,
    owner: Option<DirOwner>,
) -> Result<()> {
    let mut subdirs = Vec::new();
    let mut made = 0;
    each_entry(sfd, path, |name, t| {
        let t = match t {
            Some(t) => t,
            None => {
                let st = stat_at(sfd, name, &child(path, name))?;
                if is_dir(&st) {
                    Type::Directory
                } else {
                    Type::File
                }
            }
        };
        if t == Type::Directory {
            subdirs.push(name.to_owned());
        } else {
            // flags 0: a symlink is linked as itself, never followed
            nix::unistd::linkat(sfd, name, dfd, name, AtFlags::empty())
                .map_err(|e| err(&child(path, name), e))?;
            made += 1;
        }
        Ok(())
    })?;
    links.fetch_add(made, Ordering::Relaxed);
    subdirs.par_iter().try_for_each(|name| -> Result<()> {
        let p = child(path, name);
        let csub = open_dir_at(sfd, name, &p)?;
        let st = nix::sys::stat::fstat(&csub).map_err(|e| err(&p, e))?;
        nix::sys::stat::mkdirat(dfd, name.as_c_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| err(&p, e))?;
        let dsub = open_dir_at(dfd, name, &p)?;
        dirs.fetch_add(1, Ordering::Relaxed);
        link_dir(&csub, &dsub, &p, dirs, links, owner)?;
        finish_dir(&dsub, &st, &p, owner)
    })
}

/// Gives a new directory the original's owner, mode and times (after its children exist,
/// so the times stay).
pub(crate) fn finish_dir(
    fd: &OwnedFd,
    st: &FileStat,
    path: &Path,
    owner: Option<DirOwner>,
) -> Result<()> {
    use nix::unistd::{Gid, Uid};
    let (uid, gid, mode) = match owner {
        Some(o) => (o.uid, o.gid, o.mode),
        None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
    };
    let me = nix::unistd::geteuid();
    if me.is_root() || me.as_raw() == uid {
        nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| err(path, e))?;
    }
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| err(path, e))?;
    let at = nix::sys::time::TimeSpec::new(st.st_atime, st.st_atime_nsec);
    let mt = nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    nix::sys::stat::futimens(fd, &at, &mt).map_err(|e| err(path, e))
}

/// A cheap hash for (dev, ino) keys (a murmur3 finaliser; keys are not attacker-chosen
/// in a way that matters, and SipHash dominated the walk's time on millions of inodes).
#[derive(Default, Clone, Copy)]
pub struct InoHasher(u64);

impl std::hash::Hasher for InoHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
}

type InoBuild = std::hash::BuildHasherDefault<InoHasher>;

const SHARDS: usize = 256;

/// Inodes already counted, shared by parallel walkers (sharded to keep locks short).
pub struct InodeSet {
    shards: Vec<Mutex<HashSet<(u64, u64), InoBuild>>>,
}

impl Default for InodeSet {
    fn default() -> Self {
        InodeSet {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashSet::default()))
                .collect(),
        }
    }
}

impl InodeSet {
    /// The locked shard (dev, ino) belongs to.
    fn shard(
        &self,
        dev: u64,
        ino: u64,
    ) -> std::sync::MutexGuard<'_, HashSet<(u64, u64), InoBuild>> {
        self.shards[(ino ^ dev.rotate_left(17)) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// True when (dev, ino) was not in the set yet.
    pub fn insert(&self, dev: u64, ino: u64) -> bool {
        self.shard(dev, ino).insert((dev, ino))
    }

    /// True when (dev, ino) is in the set.
    pub fn contains(&self, dev: u64, ino: u64) -> bool {
        self.shard(dev, ino).contains(&(dev, ino))
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes under a tree, each inode once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Sum of `st_size` (what `du -sb`, i.e. `--apparent-size --block-size=1`, prints).
    pub apparent: u64,
    /// Sum of `st_blocks * 512` (what `du -s -B1` prints: disk space, as quotas count it).
    pub allocated: u64,
    /// Inodes counted.
    pub inodes: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.apparent += o.apparent;
        self.allocated += o.allocated;
        self.inodes += o.inodes;
    }
}

#[derive(Default)]
struct AtomicUsage {
    apparent: AtomicU64,
    allocated: AtomicU64,
    inodes: AtomicU64,
}

impl Usage {
    fn add_stat(&mut self, st: &FileStat) {
        self.apparent += st.st_size.max(0) as u64;
        self.allocated += st.st_blocks.max(0) as u64 * 512;
        self.inodes += 1;
    }
}

impl AtomicUsage {
    fn add_usage(&self, u: Usage) {
        self.apparent.fetch_add(u.apparent, Ordering::Relaxed);
        self.allocated.fetch_add(u.allocated, Ordering::Relaxed);
        self.inodes.fetch_add(u.inodes, Ordering::Relaxed);
    }
    fn add(&self, st: &FileStat) {
        self.apparent
            .fetch_add(st.st_size.max(0) as u64, Ordering::Relaxed);
        self.allocated
            .fetch_add(st.st_blocks.max(0) as u64 * 512, Ordering::Relaxed);
        self.inodes.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> Usage {
        Usage {
            apparent: self.apparent.load(Ordering::Relaxed),
            allocated: self.allocated.load(Ordering::Relaxed),
            inodes: self.inodes.load(Ordering::Relaxed),
        }
    }
}

/// Sums the tree at `root` (the root directory included, like `du`), counting an inode
/// only if `seen` did not hold it yet. Inodes with one link cannot be met twice and skip
/// the set. `skip` picks entries directly under `root` to leave out (e.g. `.trash`).
pub fn usage(root: &Path, seen: &InodeSet, skip: &(dyn Fn(&[u8]) -> bool + Sync)) -> Result<Usage> {
    io_pool().install(|| usage_in_pool(root, seen, skip))
}

fn usage_in_pool(
    root: &Path,
    seen: &InodeSet,
    skip: &(dyn Fn(&[u8]) -> bool + Sync),
) -> Result<Usage> {
    let fd = open_dir(root)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| err(root, e))?;
    let acc = AtomicUsage::default();
    acc.add(&st);
    let on = Dev {
        dev: st.st_dev,
        listed_ino_is_real: listed_ino_is_real(&fd),
    };
    usage_dir(&fd, root, on, seen, &acc, skip)?;
    Ok(acc.get())
}

/// The device a folder is on, and whether its filesystem lists the real inode number of
/// each entry (`d_ino == st_ino`).
#[derive(Clone, Copy)]
struct Dev {
    dev: u64,
    listed_ino_is_real: bool,
}

/// Filesystems whose listings give each entry's real inode number. Elsewhere (FUSE, some
/// overlay set-ups) a listed number may name another file, so every entry is looked at.
fn listed_ino_is_real(fd: &OwnedFd) -> bool {
    use nix::sys::statfs::{
        fstatfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
    };
    fstatfs(fd).is_ok_and(|s| {
        [
            EXT4_SUPER_MAGIC,
            XFS_SUPER_MAGIC,
            BTRFS_SUPER_MAGIC,
            TMPFS_MAGIC,
        ]
        .contains(&s.filesystem_type())
    })
}

fn usage_dir(
    fd: &OwnedFd,
    path: &Path,
    on: Dev,
    seen: &InodeSet,
    acc: &AtomicUsage,
    skip: &(dyn Fn(&[u8]) -> bool + Sync),
) -> Result<()> {
    let mut subdirs = Vec::new();
    let mut local = Usage::default();
    each_entry_ino(fd, path, |name, t, ino| {
        if skip(name.to_bytes()) {
            return Ok(());
        }
        if t == Some(Type::Directory) {
            subdirs.push(name.to_owned());
            return Ok(());
        }
        // Another name of a file already counted (a snapshot's unchanged file): nothing to
        // add, and no need to read its inode. Only files are in `seen`, and a file is on
        // its folder's device, so the listed number is enough.
        if on.listed_ino_is_real && seen.contains(on.dev, ino) {
            return Ok(());
        }
        let st = match nix::sys::stat::fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // vanished while we walk (a client is uploading): nothing to count
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(err(&child(path, name), e)),
        };
        if is_dir(&st) {
            subdirs.push(name.to_owned());
        } else if st.st_nlink <= 1 || seen.insert(st.st_dev, st.st_ino) {
            local.add_stat(&st);
        }
        Ok(())
    })?;
    acc.add_usage(local);
    subdirs.par_iter().try_for_each(|name| -> Result<()> {
        let p = child(path, name);
        let sub = match open_dir_at(fd, name, &p) {
            Ok(f) => f,
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // replaced by a symlink or file since readdir: count it as what it is now
            Err(e) if matches!(e.source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let st = stat_at(fd, name, &p)?;
                if st.st_nlink <= 1 || seen.insert(st.st_dev, st.st_ino) {
                    acc.add(&st);
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let st = nix::sys::stat::fstat(&sub).map_err(|e| err(&p, e))?;
        acc.add(&st);
        // a folder on another filesystem (a mount, a btrfs subvolume) brings its own rules
        let on = if st.st_dev == on.dev {
            on
        } else {
            Dev {
                dev: st.st_dev,
                listed_ino_is_real: listed_ino_is_real(&sub),
            }
        };
        usage_dir(&sub, &p, on, seen, acc, &|_| false)
    })
}

/// A tree summarised for the size cache: its directories (which only ever count for this
/// tree) as a sum, and every other inode as a list to be deduplicated against the rest of
/// the account at measuring time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    pub own: Usage,
    /// (dev, ino, apparent, allocated) of every non-directory.
    pub shared: Vec<(u64, u64, u64, u64)>,
    /// Something in the tree belongs to someone else than us (a snapshot made by an older
    /// holdfast holds the account's own files): its sizes can change, so it is not cached.
    pub foreign: bool,
}

/// Scans the tree at `root` (root included) into a [`Scan`], in parallel.
pub fn scan(root: &Path) -> Result<Scan> {
    io_pool().install(|| scan_in_pool(root))
}

fn scan_in_pool(root: &Path) -> Result<Scan> {
    let fd = open_dir(root)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| err(root, e))?;
    let own = AtomicUsage::default();
    own.add(&st);
    let shared = Mutex::new(Vec::new());
    let foreign = std::sync::atomic::AtomicBool::new(false);
    scan_dir(&fd, root, &own, &shared, &foreign)?;
    Ok(Scan {
        own: own.get(),
        shared: shared.into_inner().unwrap_or_else(|e| e.into_inner()),
        foreign: foreign.into_inner(),
    })
}

type Shared = Mutex<Vec<(u64, u64, u64, u64)>>;

fn scan_dir(
    fd: &OwnedFd,
    path: &Path,
    own: &AtomicUsage,
    shared: &Shared,
    foreign: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let mut subdirs = Vec::new();
    let mut mine = Vec::new();
    each_entry(fd, path, |name, t| {
        if t == Some(Type::Directory) {
            subdirs.push(name.to_owned());
            return Ok(());
        }
        let st = nix::sys::stat::fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| err(&child(path, name), e))?;
        if st.st_uid != me {
            foreign.store(true, Ordering::Relaxed);
        }
        if is_dir(&st) {
            subdirs.push(name.to_owned());
        } else {
            // every file is listed: a later snapshot may link to one that has a single
            // link today (unchanged files are hard links between snapshots)
            mine.push((
                st.st_dev,
                st.st_ino,
                st.st_size.max(0) as u64,
                st.st_blocks.max(0) as u64 * 512,
            ));
        }
        Ok(())
    })?;
    if !mine.is_empty() {
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(mine);
    }
    subdirs.par_iter().try_for_each(|name| -> Result<()> {
        let p = child(path, name);
        let sub = open_dir_at(fd, name, &p)?;
        let st = nix::sys::stat::fstat(&sub).map_err(|e| err(&p, e))?;
        own.add(&st);
        scan_dir(&sub, &p, own, shared, foreign)
    })
}

/// Adds a scanned tree to `total`, counting its shared inodes only if `seen` lacks them.
pub fn add_scan(total: &mut Usage, scan: &Scan, seen: &InodeSet) {
    *total += scan.own;
    for &(dev, ino, a, b) in &scan.shared {
        if seen.insert(dev, ino) {
            total.apparent += a;
            total.allocated += b;
            total.inodes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn sample(root: &Path) {
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/f1"), vec![1u8; 5000]).unwrap();
        std::fs::write(root.join("a/b/f2"), b"hello").unwrap();
        std::fs::hard_link(root.join("a/f1"), root.join("a/b/f1-again")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
    }

    #[test]
    fn link_tree_shares_inodes_and_keeps_symlinks_as_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        sample(&src);
        let dst = t.path().join("dst");
        let s = link_tree(&src, &dst).unwrap();
        assert_eq!(s, LinkStats { dirs: 3, links: 4 });
        let a = std::fs::metadata(src.join("a/f1")).unwrap();
        let b = std::fs::metadata(dst.join("a/f1")).unwrap();
        assert_eq!(a.ino(), b.ino());
        let l = std::fs::symlink_metadata(dst.join("a/etc")).unwrap();
        assert!(l.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(dst.join("a/etc")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(
            std::fs::metadata(src.join("a")).unwrap().mtime(),
            std::fs::metadata(dst.join("a")).unwrap().mtime()
        );
        // a symlink as the source root is refused, not followed
        assert!(link_tree(&src.join("a/etc"), &t.path().join("x")).is_err());
    }

    /// `du -sb` of several trees in one run: each inode once, in the order given.
    fn du_sb(paths: &[&Path]) -> Vec<u64> {
        let out = std::process::Command::new("du")
            .arg("-sb")
            .args(paths)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn names_of_counted_files_are_skipped_by_listed_inode_and_sums_equal_du() {
        let t = tempfile::tempdir().unwrap();
        let incoming = t.path().join("incoming");
        let snaps = t.path().join(".snapshots");
        std::fs::create_dir(&snaps).unwrap();
        sample(&incoming);
        std::fs::hard_link(incoming.join("a/f1"), incoming.join("f1-again")).unwrap();
        std::fs::write(incoming.join("gone"), vec![7u8; 3000]).unwrap();
        link_tree(&incoming, &snaps.join("daily.1")).unwrap();
        // changed (a new inode), deleted, added: as a client's next upload leaves them
        std::fs::write(incoming.join("new"), vec![2u8; 1234]).unwrap();
        std::fs::rename(incoming.join("new"), incoming.join("a/b/f2")).unwrap();
        std::fs::remove_file(incoming.join("gone")).unwrap();
        std::fs::write(incoming.join("added"), vec![3u8; 777]).unwrap();
        link_tree(&incoming, &snaps.join("daily.0")).unwrap();
        let fd = open_dir(t.path()).unwrap();
        let fast = listed_ino_is_real(&fd);
        let seen = InodeSet::default();
        let backup = usage(&incoming, &seen, &|_| false).unwrap();
        let older = usage(&snaps, &seen, &|_| false).unwrap();
        assert_eq!(
            vec![backup.apparent, older.apparent],
            du_sb(&[&incoming, &snaps]),
            "listed inode numbers trusted here: {fast}"
        );
        // what only the snapshots hold: their folders, the old f2 and `gone`
        let dirs = |r: &Path| {
            ["", "a", "a/b"]
                .iter()
                .map(|d| std::fs::metadata(r.join(d)).unwrap().size())
                .sum::<u64>()
        };
        let folders = std::fs::metadata(&snaps).unwrap().size()
            + dirs(&snaps.join("daily.0"))
            + dirs(&snaps.join("daily.1"));
        assert_eq!(older.apparent, folders + 5 + 3000);
    }

    #[test]
    fn usage_counts_each_inode_once_and_remove_tree_removes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        sample(&src);
        link_tree(&src, &t.path().join("snap")).unwrap();
        let seen = InodeSet::default();
        let u = usage(&src, &seen, &|_| false).unwrap();
        // 3 dirs + f1 once + f2 + symlink
        assert_eq!(u.inodes, 6);
        let dir = std::fs::metadata(&src).unwrap().size();
        let dirs = dir
            + std::fs::metadata(src.join("a")).unwrap().size()
            + std::fs::metadata(src.join("a/b")).unwrap().size();
        assert_eq!(u.apparent, dirs + 5000 + 5 + 4);
        let again = usage(&t.path().join("snap"), &seen, &|_| false).unwrap();
        assert_eq!(again.inodes, 3, "only the new directories");
        let n = remove_tree(&t.path().join("snap")).unwrap();
        assert_eq!(n, 7);
        assert!(!t.path().join("snap").exists());
        assert!(src.join("a/f1").exists());
    }
}
