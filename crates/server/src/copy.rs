//! Snapshot trees that share nothing with `incoming/`.
//!
//! A snapshot made with hard links to `incoming/` shares every inode with the files the
//! account can still write: `rsync --inplace`, or any program the account runs over its key,
//! then rewrites history. So [`copy_tree`] builds a new snapshot from `incoming/` this way:
//! a file whose size and modification time equal the same path in the newest earlier
//! snapshot (the reference, itself root's) becomes a hard link to that snapshot's file, as
//! rsync's quick check would judge it unchanged; every other file is copied: a reflink
//! (`FICLONE`) where the filesystem clones (btrfs, XFS), else `copy_file_range`. Hard links
//! therefore only ever join snapshots to snapshots. Every file, link and folder of the copy
//! belongs to root with the account's group (files 0640, or 0750 when executable; folders
//! 0750): the account can read and restore, never change. Symlinks are copied as links (never
//! followed); FIFOs, sockets and devices are left out (the stoney clients upload none). Names
//! that share an inode in `incoming/` (the Perl client's rsync `-H`) share one in the snapshot.
//!
//! Files are opened relative to their folder with `O_NOFOLLOW|O_NONBLOCK` and must still be
//! regular files after the open, so a client swapping a file for a link or a FIFO while the
//! copy runs gains nothing. Subfolders are copied in parallel.

use crate::tree::{
    begin_copy, child, each_entry, err, finish_dir, is_dir, open_dir, open_dir_at, DirOwner,
    TreeError,
};
use nix::dir::Type;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};
use rayon::prelude::*;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

type Result<T> = std::result::Result<T, TreeError>;

/// What [`copy_tree`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub dirs: u64,
    /// Files copied (changed or new since the reference).
    pub copied: u64,
    /// Bytes in the copied files.
    pub copied_bytes: u64,
    /// Of the copies, those made as reflinks.
    pub reflinked: u64,
    /// Files linked to the reference snapshot (unchanged).
    pub linked: u64,
    pub symlinks: u64,
    /// Further names of a file hard-linked inside `incoming/` (rsync `-H`, which the Perl
    /// client uses): linked to the first name's copy, so the snapshot keeps one inode too.
    pub hardlinked: u64,
    /// FIFOs, sockets and devices left out, and files that vanished mid-copy.
    pub skipped: u64,
    /// Refreshing an expired snapshot ([`crate::recycle`]): of the linked files, names it
    /// already held as that link (left as they were).
    pub kept: u64,
    /// Refreshing: its names `incoming/` no longer has, or has as something else (removed).
    pub removed: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub dirs: AtomicU64,
    copied: AtomicU64,
    copied_bytes: AtomicU64,
    reflinked: AtomicU64,
    pub linked: AtomicU64,
    symlinks: AtomicU64,
    pub hardlinked: AtomicU64,
    pub skipped: AtomicU64,
    pub kept: AtomicU64,
    pub removed: AtomicU64,
    /// (dev, ino) of a multiply-linked source file -> where its first name went.
    multi: std::sync::Mutex<std::collections::HashMap<(u64, u64), Claim>>,
}

/// Where the first name of a multiply-linked source file went in the snapshot. The path
/// holds that name's file or nothing yet (a refresh removes the old name before claiming),
/// so a later name may always link to it.
#[derive(Clone)]
pub(crate) struct Claim {
    pub path: std::path::PathBuf,
    /// The inode the path holds, once a refresh knows it.
    pub ino: Option<u64>,
}

impl Counters {
    pub fn stats(self) -> CopyStats {
        CopyStats {
            dirs: self.dirs.into_inner(),
            copied: self.copied.into_inner(),
            copied_bytes: self.copied_bytes.into_inner(),
            reflinked: self.reflinked.into_inner(),
            linked: self.linked.into_inner(),
            symlinks: self.symlinks.into_inner(),
            hardlinked: self.hardlinked.into_inner(),
            skipped: self.skipped.into_inner(),
            kept: self.kept.into_inner(),
            removed: self.removed.into_inner(),
        }
    }
}

/// Owner of everything in a snapshot: root (or whoever runs holdfast) and the account's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

pub(crate) fn file_mode(st: &FileStat) -> Mode {
    Mode::from_bits_truncate(if st.st_mode & 0o111 != 0 {
        0o750
    } else {
        0o640
    })
}

/// Makes `dst` (which must not exist) a copy of the folder `src`, linking unchanged files to
/// `reference` (an earlier snapshot of the same tree) where given.
pub fn copy_tree(
    src: &Path,
    reference: Option<&Path>,
    dst: &Path,
    owner: Owner,
) -> Result<CopyStats> {
    crate::tree::io_pool().install(|| copy_tree_in_pool(src, reference, dst, owner))
}

fn copy_tree_in_pool(
    src: &Path,
    reference: Option<&Path>,
    dst: &Path,
    owner: Owner,
) -> Result<CopyStats> {
    let (sfd, st, dfd) = begin_copy(src, dst)?;
    let rfd = reference.and_then(|r| open_dir(r).ok());
    let c = Counters::default();
    c.dirs.fetch_add(1, Ordering::Relaxed);
    copy_dir(&sfd, rfd.as_ref(), &dfd, src, dst, &c, owner)?;
    finish_dir(&dfd, &st, dst, Some(dir_owner(owner)))?;
    Ok(c.stats())
}

pub(crate) fn dir_owner(o: Owner) -> DirOwner {
    DirOwner {
        uid: o.uid,
        gid: o.gid,
        mode: 0o750,
    }
}

pub(crate) fn copy_dir(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    path: &Path,
    dpath: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    let subdirs = each_source_entry(sfd, path, |name, p, st| {
        make_entry(sfd, rfd, dfd, name, st, p, dpath, c, owner)
    })?;
    subdirs.par_iter().try_for_each(|name| -> Result<()> {
        let p = child(path, name);
        let Some((csub, rsub, st)) = open_source_dir(sfd, rfd, name, &p, c)? else {
            return Ok(());
        };
        let dp = child(dpath, name);
        let dsub = copy_new_dir(dfd, name, &csub, rsub.as_ref(), &p, &dp, c, owner)?;
        finish_dir(&dsub, &st, &p, Some(dir_owner(owner)))
    })
}

/// Calls `f` with the path and status of each entry of the source folder that is not a
/// folder (entries gone since readdir are skipped); returns the names of the subfolders.
pub(crate) fn each_source_entry(
    sfd: &OwnedFd,
    path: &Path,
    mut f: impl FnMut(&CStr, &Path, &FileStat) -> Result<()>,
) -> Result<Vec<CString>> {
    let mut subdirs = Vec::new();
    each_entry(sfd, path, |name, t| {
        if t == Some(Type::Directory) {
            subdirs.push(name.to_owned());
            return Ok(());
        }
        let p = child(path, name);
        let st = match nix::sys::stat::fstatat(sfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(err(&p, e)),
        };
        if kind(&st) == SFlag::S_IFDIR {
            subdirs.push(name.to_owned());
            return Ok(());
        }
        f(name, &p, &st)
    })?;
    Ok(subdirs)
}

/// Makes the new folder `name` in `dfd` and copies the source folder `csub` into it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_new_dir(
    dfd: &OwnedFd,
    name: &CStr,
    csub: &OwnedFd,
    rsub: Option<&OwnedFd>,
    p: &Path,
    dp: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<OwnedFd> {
    nix::sys::stat::mkdirat(dfd, name, Mode::from_bits_truncate(0o700)).map_err(|e| err(p, e))?;
    let dsub = open_dir_at(dfd, name, p)?;
    c.dirs.fetch_add(1, Ordering::Relaxed);
    copy_dir(csub, rsub, &dsub, p, dp, c, owner)?;
    Ok(dsub)
}

/// Opens a source subfolder, the reference's folder of that name (if any) and the source's
/// status; None when the source folder is gone, or was swapped for a link or a file since
/// readdir: it is left out of this snapshot.
pub(crate) fn open_source_dir(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    name: &CStr,
    p: &Path,
    c: &Counters,
) -> Result<Option<(OwnedFd, Option<OwnedFd>, FileStat)>> {
    let csub = match open_dir_at(sfd, name, p) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.source.raw_os_error(),
                Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
            ) =>
        {
            c.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let rsub = rfd.and_then(|r| open_dir_at(r, name, p).ok());
    let st = nix::sys::stat::fstat(&csub).map_err(|e| err(p, e))?;
    Ok(Some((csub, rsub, st)))
}

/// Makes the snapshot's entry for `name`, a non-folder of the source with status `st`: a
/// link to the reference's unchanged file, a copy, a symlink, or nothing (FIFOs and the like).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_entry(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    p: &Path,
    dpath: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    match kind(st) {
        SFlag::S_IFREG => {
            if st.st_nlink > 1 && link_again(c, st, &child(dpath, name)) {
                return Ok(());
            }
            make_file(sfd, rfd, dfd, name, st, p, c, owner)?;
        }
        SFlag::S_IFLNK => {
            let target = match nix::fcntl::readlinkat(sfd, name) {
                Ok(t) => t,
                Err(nix::errno::Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(err(p, e)),
            };
            nix::unistd::symlinkat(target.as_os_str(), dfd, name).map_err(|e| err(p, e))?;
            chown_at(dfd, name, owner, p)?;
            c.symlinks.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            c.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// For a source file with several names: the first name seen claims it (and is copied or
/// linked as usual); a later name becomes a hard link to the first one's copy. The paths are
/// inside the tree under construction, which only we can write. False when this name must be
/// made by itself (it is the first, or the first is not there yet).
pub(crate) fn link_again(c: &Counters, st: &FileStat, dest: &Path) -> bool {
    let mine = Claim {
        path: dest.to_path_buf(),
        ino: None,
    };
    match claim(c, st, mine) {
        Some(first) => link_to_first(c, &first.path, dest),
        None => false,
    }
}

/// Makes `mine` the claim on the source file `st` when no name of it has been met yet
/// (None), else says where its first name went.
pub(crate) fn claim(c: &Counters, st: &FileStat, mine: Claim) -> Option<Claim> {
    let mut m = c.multi.lock().unwrap_or_else(|e| e.into_inner());
    match m.get(&(st.st_dev, st.st_ino)) {
        Some(first) => Some(first.clone()),
        None => {
            m.insert((st.st_dev, st.st_ino), mine);
            None
        }
    }
}

/// Where the first name of the source file `st` went, if one has been met.
pub(crate) fn first_name(c: &Counters, st: &FileStat) -> Option<Claim> {
    let m = c.multi.lock().unwrap_or_else(|e| e.into_inner());
    m.get(&(st.st_dev, st.st_ino)).cloned()
}

/// Records the inode the first name's path of `st` holds (None: it holds nothing).
pub(crate) fn settle(c: &Counters, st: &FileStat, ino: Option<u64>) {
    let mut m = c.multi.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = m.get_mut(&(st.st_dev, st.st_ino)) {
        first.ino = ino;
    }
}

/// Makes `dest` a further name of the first name's file; false when that is not there.
pub(crate) fn link_to_first(c: &Counters, first: &Path, dest: &Path) -> bool {
    if std::fs::hard_link(first, dest).is_ok() {
        c.hardlinked.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// Makes the snapshot's file for the regular source file `name`: the link to the
/// reference's unchanged file, else a copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_file(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    p: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    if link_unchanged(rfd, dfd, name, st, owner, p)? {
        c.linked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    } else {
        copy_file(sfd, dfd, name, p, c, owner)
    }
}

/// Links `name` from the reference snapshot when that holds a file of ours with the same
/// size and modification time (rsync's own test for "unchanged").
fn link_unchanged(
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    owner: Owner,
    path: &Path,
) -> Result<bool> {
    match (rfd, rfd.and_then(|r| unchanged(r, name, st, owner))) {
        (Some(rfd), Some(_)) => link_reference(rfd, dfd, name, path),
        _ => Ok(false),
    }
}

/// The reference's file for `name` when it is ours and has the size, modification time and
/// mode the source file `st` would get: rsync's quick check judges it unchanged.
pub(crate) fn unchanged(
    rfd: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    owner: Owner,
) -> Option<FileStat> {
    let r = nix::sys::stat::fstatat(rfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    (kind(&r) == SFlag::S_IFREG
        && r.st_uid == owner.uid
        && r.st_size == st.st_size
        && r.st_mtime == st.st_mtime
        && r.st_mtime_nsec == st.st_mtime_nsec
        && r.st_mode & 0o777 == file_mode(st).bits())
    .then_some(r)
}

/// Hard-links the reference's `name` into `dfd`; false when the inode has too many links
/// (a copy is made instead).
pub(crate) fn link_reference(
    rfd: &OwnedFd,
    dfd: &OwnedFd,
    name: &CStr,
    path: &Path,
) -> Result<bool> {
    match nix::unistd::linkat(rfd, name, dfd, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EMLINK) => Ok(false),
        Err(e) => Err(err(path, e)),
    }
}

pub(crate) fn chown_at(dfd: &OwnedFd, name: &CStr, o: Owner, path: &Path) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    nix::unistd::fchownat(
        dfd,
        name,
        Some(Uid::from_raw(o.uid)),
        Some(Gid::from_raw(o.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(path, e))
}

const READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

const WRITE: OFlag = OFlag::O_WRONLY
    .union(OFlag::O_CREAT)
    .union(OFlag::O_EXCL)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

pub(crate) fn copy_file(
    sfd: &OwnedFd,
    dfd: &OwnedFd,
    name: &CStr,
    path: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    let input = match nix::fcntl::openat(sfd, name, READ, Mode::empty()) {
        Ok(f) => f,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP) => {
            c.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(e) => return Err(err(path, e)),
    };
    let st = nix::sys::stat::fstat(&input).map_err(|e| err(path, e))?;
    if kind(&st) != SFlag::S_IFREG {
        c.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let out = nix::fcntl::openat(dfd, name, WRITE, Mode::from_bits_truncate(0o600))
        .map_err(|e| err(path, e))?;
    // SAFETY: FICLONE takes the source descriptor as its argument and touches no memory.
    let cloned = unsafe { libc::ioctl(out.as_raw_fd(), libc::FICLONE, input.as_raw_fd()) } == 0;
    let mut out = std::fs::File::from(out);
    if cloned {
        c.reflinked.fetch_add(1, Ordering::Relaxed);
    } else {
        let mut input = std::fs::File::from(input.try_clone().map_err(|source| TreeError {
            path: path.into(),
            source,
        })?);
        let size = st.st_size.max(0) as u64;
        // The clients upload with rsync --sparse: a file with holes keeps them, or a thin
        // disk image (or a hostile `truncate -s 10T`) is written out whole as root.
        let holes = (st.st_blocks.max(0) as u64) * 512 < size;
        let copied = if holes {
            copy_data_extents(&input, &out, size)
        } else {
            std::io::copy(&mut input, &mut out).map(drop)
        };
        copied.map_err(|source| TreeError {
            path: path.into(),
            source,
        })?;
    }
    let fd = out.as_fd();
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(|e| err(path, e))?;
    }
    nix::sys::stat::fchmod(fd, file_mode(&st)).map_err(|e| err(path, e))?;
    let at = nix::sys::time::TimeSpec::new(st.st_atime, st.st_atime_nsec);
    let mt = nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    nix::sys::stat::futimens(fd, &at, &mt).map_err(|e| err(path, e))?;
    c.copied.fetch_add(1, Ordering::Relaxed);
    c.copied_bytes
        .fetch_add(st.st_size.max(0) as u64, Ordering::Relaxed);
    Ok(())
}

/// Copies the data of a sparse file extent by extent (`SEEK_DATA`/`SEEK_HOLE`), leaving its
/// holes holes, and gives `out` the length `size`.
fn copy_data_extents(input: &std::fs::File, out: &std::fs::File, size: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let fd = input.as_raw_fd();
    let mut pos: i64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    while (pos as u64) < size {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole is left
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let end = (hole as u64).min(size);
        let mut at = data as u64;
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            let n = input.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break; // the file shrank while it was copied
            }
            out.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        pos = hole;
    }
    out.set_len(size)
}

/// True when a snapshot folder's entry belongs to us (and so cannot have been planted or
/// changed by the account).
pub fn ours(st: &FileStat) -> bool {
    is_dir(st) && st.st_uid == nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A snapshot of a sparse file (rsync --sparse, a thin disk image) takes the space its
    /// data takes, not its length, and reads back the same.
    #[test]
    fn a_sparse_file_stays_sparse_in_a_snapshot() {
        use std::os::unix::fs::FileExt;
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("incoming");
        std::fs::create_dir_all(src.join("pc")).unwrap();
        let f = std::fs::File::create(src.join("pc/vm.img")).unwrap();
        f.set_len(1 << 30).unwrap();
        f.write_all_at(b"boot sector", 0).unwrap();
        f.write_all_at(&[9u8; 100_000], 300 << 20).unwrap();
        drop(f);
        let me = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        copy_tree(&src, None, &t.path().join("s1"), me).unwrap();
        let copy = t.path().join("s1/pc/vm.img");
        let m = std::fs::metadata(&copy).unwrap();
        assert_eq!(m.len(), 1 << 30);
        assert!(
            m.blocks() * 512 < 8 << 20,
            "{} bytes allocated",
            m.blocks() * 512
        );
        let c = std::fs::File::open(&copy).unwrap();
        let mut b = vec![0u8; 11];
        c.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, b"boot sector");
        let mut b = vec![1u8; 100_002];
        c.read_exact_at(&mut b, (300 << 20) - 1).unwrap();
        assert_eq!(b[0], 0);
        assert!(b[1..100_001].iter().all(|x| *x == 9));
        assert_eq!(b[100_001], 0);
    }

    #[test]
    fn copies_share_no_inode_with_the_source_and_unchanged_files_link_to_the_reference() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("incoming");
        std::fs::create_dir_all(src.join("pc/sub")).unwrap();
        std::fs::write(src.join("pc/a"), vec![1u8; 5000]).unwrap();
        std::fs::write(src.join("pc/sub/b"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("pc/etc")).unwrap();
        nix::unistd::mkfifo(&src.join("pc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        // rsync -H: two names, one inode, in two folders
        std::fs::write(src.join("pc/twin"), vec![7u8; 3000]).unwrap();
        std::fs::hard_link(src.join("pc/twin"), src.join("pc/sub/twin2")).unwrap();
        let me = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let s1 = copy_tree(&src, None, &t.path().join("s1"), me).unwrap();
        assert_eq!(
            (s1.copied, s1.hardlinked, s1.linked, s1.symlinks, s1.skipped),
            (3, 1, 0, 1, 1)
        );
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_ne!(ino(&src.join("pc/a")), ino(&t.path().join("s1/pc/a")));
        assert_eq!(
            std::fs::read(t.path().join("s1/pc/sub/b")).unwrap(),
            b"hello"
        );
        assert!(std::fs::symlink_metadata(t.path().join("s1/pc/etc"))
            .unwrap()
            .file_type()
            .is_symlink());
        let m = std::fs::metadata(t.path().join("s1/pc/a")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o640);
        assert_eq!(
            m.mtime(),
            std::fs::metadata(src.join("pc/a")).unwrap().mtime()
        );
        // change b in place (as rsync --inplace would): only b is copied again
        std::fs::write(src.join("pc/sub/b"), b"HELLO, longer").unwrap();
        let s2 = copy_tree(&src, Some(&t.path().join("s1")), &t.path().join("s2"), me).unwrap();
        assert_eq!((s2.copied, s2.linked, s2.hardlinked), (1, 2, 1));
        for s in ["s1", "s2"] {
            let t1 = std::fs::metadata(t.path().join(s).join("pc/twin")).unwrap();
            let t2 = std::fs::metadata(t.path().join(s).join("pc/sub/twin2")).unwrap();
            assert_eq!(t1.ino(), t2.ino(), "{s}: the hard link is kept");
        }
        assert_eq!(
            ino(&t.path().join("s1/pc/a")),
            ino(&t.path().join("s2/pc/a"))
        );
        assert_eq!(
            std::fs::read(t.path().join("s1/pc/sub/b")).unwrap(),
            b"hello"
        );
        assert_eq!(
            std::fs::read(t.path().join("s2/pc/sub/b")).unwrap(),
            b"HELLO, longer"
        );
    }
}
