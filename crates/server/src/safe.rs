//! Reading files that someone else controls: a client's home (`incoming/<prefix>/
//! .sepiola_backup/*.xml`) or a template folder synced from the self-care server.
//!
//! holdfast runs as root, the writer of those trees does not. So nothing there is followed:
//! every directory below a trusted root is opened relative to its parent with
//! `O_NOFOLLOW|O_DIRECTORY`, every file with `O_NOFOLLOW|O_NONBLOCK` (a FIFO cannot block the
//! open, a symlink to `/dev/zero` or to another account's home is refused by the kernel),
//! then `fstat` must show a regular file, and at most `cap` bytes are read. Each refusal is a
//! [`SafeError`] naming the path, for the caller to report as a finding and go on.

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The most a client's XML file or a template may hold (the real ones are below 2 KiB).
pub const FILE_CAP: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    #[error("{0} is missing")]
    NotFound(PathBuf),
    #[error("{0} is a symlink; not followed (only real files and folders are read)")]
    Symlink(PathBuf),
    #[error("{path} is a {kind}, not a regular file; not read")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{0} is not a folder; not read")]
    NotDir(PathBuf),
    #[error("{path} holds {size} bytes, more than the {cap} bytes such a file may have; not read")]
    TooBig { path: PathBuf, size: u64, cap: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SafeError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeError::NotFound(_))
    }
}

type Result<T> = std::result::Result<T, SafeError>;

fn kind(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => "regular file",
        SFlag::S_IFDIR => "folder",
        SFlag::S_IFLNK => "symlink",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        _ => "special file",
    }
}

fn from_errno(path: &Path, e: nix::errno::Errno, want_dir: bool) -> SafeError {
    use nix::errno::Errno;
    match e {
        Errno::ENOENT => SafeError::NotFound(path.into()),
        Errno::ELOOP => SafeError::Symlink(path.into()),
        Errno::ENOTDIR if want_dir => SafeError::NotDir(path.into()),
        e => SafeError::Io {
            path: path.into(),
            source: std::io::Error::from_raw_os_error(e as i32),
        },
    }
}

const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

const FILE: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

/// Opens a trusted path (from the configuration or the directory) as a folder. Its last
/// component must not be a symlink either.
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, DIR, Mode::empty()).map_err(|e| {
        let link = e == nix::errno::Errno::ENOTDIR
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if link {
            SafeError::Symlink(path.into())
        } else {
            from_errno(path, e, true)
        }
    })
}

/// Opens the folder `name` inside `parent` without following a symlink. `path` names it in
/// messages.
pub fn open_dir_at(parent: impl AsFd, name: &OsStr, path: &Path) -> Result<OwnedFd> {
    let parent = parent.as_fd();
    nix::fcntl::openat(parent, name, DIR, Mode::empty()).map_err(|e| {
        // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR: tell the two apart
        let link = e == nix::errno::Errno::ENOTDIR
            && nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| is_symlink(&st));
        if link {
            SafeError::Symlink(path.into())
        } else {
            from_errno(path, e, true)
        }
    })
}

/// Opens `root/rel` where `root` is trusted and no component of `rel` may be a symlink.
pub fn open_beneath(root: &Path, rel: &Path) -> Result<OwnedFd> {
    let mut fd = open_root(root)?;
    let mut path = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(SafeError::Io {
                path: root.join(rel),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "only plain names are allowed below a trusted folder",
                ),
            });
        };
        path.push(name);
        fd = open_dir_at(&fd, name, &path)?;
    }
    Ok(fd)
}

/// A file read by [`read_at`].
#[derive(Debug, Clone)]
pub struct FileRead {
    pub bytes: Vec<u8>,
    pub mtime: SystemTime,
}

impl FileRead {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads the regular file `name` in the folder `dir` (at most `cap` bytes), never following a
/// symlink and never blocking on a FIFO. Devices are refused before they are opened.
pub fn read_at(dir: impl AsFd, name: &OsStr, path: &Path, cap: u64) -> Result<FileRead> {
    let dir = dir.as_fd();
    // Refuse anything that is not a regular file before opening it (opening a device can
    // have effects); the fstat after the open catches a swap in between.
    let before = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| from_errno(path, e, false))?;
    check_regular(&before, path, cap)?;
    let fd = nix::fcntl::openat(dir, name, FILE, Mode::empty())
        .map_err(|e| from_errno(path, e, false))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| from_errno(path, e, false))?;
    check_regular(&st, path, cap)?;
    let mut bytes = Vec::with_capacity(st.st_size.clamp(0, cap as i64) as usize);
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SafeError::Io {
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(SafeError::TooBig {
            path: path.into(),
            size: bytes.len() as u64,
            cap,
        });
    }
    let mtime = SystemTime::UNIX_EPOCH
        + Duration::new(
            st.st_mtime.max(0) as u64,
            st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        );
    Ok(FileRead { bytes, mtime })
}

fn check_regular(st: &FileStat, path: &Path, cap: u64) -> Result<()> {
    let k = kind(st);
    if k == "symlink" {
        return Err(SafeError::Symlink(path.into()));
    }
    if k != "regular file" {
        return Err(SafeError::NotRegular {
            path: path.into(),
            kind: k,
        });
    }
    if st.st_size.max(0) as u64 > cap {
        return Err(SafeError::TooBig {
            path: path.into(),
            size: st.st_size as u64,
            cap,
        });
    }
    Ok(())
}

/// Reads `root/rel` (see [`open_beneath`] and [`read_at`]).
pub fn read_beneath(root: &Path, rel: &Path, cap: u64) -> Result<FileRead> {
    let (dir, name) = match (rel.parent(), rel.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => {
            return Err(SafeError::NotRegular {
                path: root.join(rel),
                kind: "folder",
            })
        }
    };
    let fd = open_beneath(root, dir)?;
    read_at(&fd, name, &root.join(rel), cap)
}

/// The entries of an open folder (without `.` and `..`), each with what `lstat` says it is.
pub fn entries(dir: &OwnedFd, path: &Path) -> Result<Vec<(std::ffi::OsString, Option<FileStat>)>> {
    use std::os::unix::ffi::OsStrExt;
    let dup = dir.try_clone().map_err(|source| SafeError::Io {
        path: path.into(),
        source,
    })?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| from_errno(path, e, true))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| from_errno(path, e, true))?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        let name = OsStr::from_bytes(n).to_os_string();
        let st = nix::sys::stat::fstatat(dir, e.file_name(), AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        out.push((name, st));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// True when `lstat` says folder.
pub fn is_dir(st: &FileStat) -> bool {
    kind(st) == "folder"
}

/// True when `lstat` says symlink.
pub fn is_symlink(st: &FileStat) -> bool {
    kind(st) == "symlink"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_fifos_devices_and_big_files_are_refused_fast() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("ok.xml"), b"<x/>").unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("zero.xml")).unwrap();
        std::os::unix::fs::symlink(d.join("ok.xml"), d.join("link.xml")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo.xml"), Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::write(d.join("big.xml"), vec![b'x'; 2000]).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("sublink")).unwrap();
        let fd = open_root(d).unwrap();
        let r = |n: &str| read_at(&fd, OsStr::new(n), &d.join(n), 1000);
        let t0 = std::time::Instant::now();
        assert_eq!(r("ok.xml").unwrap().bytes, b"<x/>");
        assert!(matches!(r("zero.xml"), Err(SafeError::Symlink(_))));
        assert!(matches!(r("link.xml"), Err(SafeError::Symlink(_))));
        assert!(matches!(
            r("fifo.xml"),
            Err(SafeError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(matches!(r("big.xml"), Err(SafeError::TooBig { .. })));
        assert!(matches!(r("sub"), Err(SafeError::NotRegular { .. })));
        assert!(r("missing.xml").unwrap_err().is_not_found());
        // /dev/zero itself is a device: refused before it is opened
        let dev = open_root(Path::new("/dev")).unwrap();
        assert!(matches!(
            read_at(&dev, OsStr::new("zero"), Path::new("/dev/zero"), 1000),
            Err(SafeError::NotRegular { .. })
        ));
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(matches!(
            open_beneath(d, Path::new("sublink")),
            Err(SafeError::Symlink(_))
        ));
        assert!(open_beneath(d, Path::new("sub")).is_ok());
        assert!(read_beneath(d, Path::new("sublink/x"), 10).is_err());
    }
}
