//! Writing files so that a crash leaves either the old or the new content, and knowing that
//! the disk has them: every `fsync`/`syncfs` error is returned, never dropped (a lost EIO
//! would let a manifest vouch for data that never reached the disk).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode for files that may hold secrets or site data (dumps, manifests, mails, lists).
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode for folders holding such files.
pub const PRIVATE_DIR: u32 = 0o700;

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `data` to `path` atomically with permissions `mode`: a temporary file in the same
/// folder (created 0600, so the content is never readable by others on the way), fsync,
/// chmod, rename over `path`, fsync of the folder. The folder must exist.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(dir, e))?;
    tmp.write_all(data).map_err(|e| with_path(tmp.path(), e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| with_path(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| with_path(path, e.error))?;
    sync_dir(dir)
}

/// fsync of a folder, so a rename or new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| with_path(dir, e))
}

/// `syncfs` of the file system holding `path`: everything written there reaches the disk,
/// or the error (EIO, ENOSPC on a thin volume) is returned.
pub fn syncfs(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path).map_err(|e| with_path(path, e))?;
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(with_path(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Creates `dir` and its missing parents; folders this call creates get `mode` (not the
/// umask's choice). An existing `dir` is left as it is.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| with_path(dir, e))
}

/// Sets `path`'s permission bits to `mode`.
/// Reads a file holding a secret, refusing one its group or others may read (the error
/// names the mode and the `chmod` that fixes it).
pub fn read_secret(path: &Path) -> std::io::Result<String> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "mode {mode:03o} lets others read the secret; run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path)
}

pub fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(path, e))
}

/// Opens `path` for reading without updating its access time where the kernel allows it
/// (the file's owner or root): reading a backup to prove or restore it should not write to
/// it (on btrfs an atime update copies the snapshot's shared metadata). Falls back to a plain
/// open.
pub fn open_noatime(path: &Path) -> std::io::Result<std::fs::File> {
    open_noatime_with(path, 0)
}

thread_local! {
    static PIECES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads `r` to its end through this thread's 1 MiB buffer, handing `each` every piece read;
/// read errors go through `read_err`. One buffer per thread, not one per file: zeroing a
/// fresh 1 MiB for each file cost more CPU than hashing a repository's typical few-KiB file.
/// `each` must not call it again (the buffer is in use: that would panic).
pub fn read_pieces<E>(
    r: &mut impl std::io::Read,
    read_err: impl FnOnce(std::io::Error) -> E,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    PIECES.with_borrow_mut(|buf| {
        buf.resize(1 << 20, 0);
        loop {
            match r.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => each(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
    })
}

/// [`open_noatime`] with more open flags (`O_NONBLOCK`, `O_NOFOLLOW`), kept by the fallback.
pub fn open_noatime_with(path: &Path, flags: i32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        std::fs::File::options()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    open(libc::O_NOATIME | flags).or_else(|_| open(flags))
}

/// Asks the kernel to start reading `file` into the page cache and returns at once: a reader
/// that comes later (rsync sending the night's new files) finds it there, and many files'
/// reads are queued together instead of one after the other. Only a hint: errors are ignored.
pub fn prefetch(file: &std::fs::File) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let _ = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_others_may_read_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "x\n").unwrap();
        for (mode, ok) in [
            (0o644, false),
            (0o640, false),
            (0o604, false),
            (0o600, true),
            (0o400, true),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match read_secret(&p) {
                Ok(t) => assert!(ok && t == "x\n", "{mode:o}"),
                Err(e) => assert!(!ok && e.to_string().contains("chmod 600"), "{mode:o}: {e}"),
            }
        }
    }
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_atomically_with_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_are_returned() {
        let d = tempfile::tempdir().unwrap();
        let e = write_atomic(&d.path().join("no/such/dir/x"), b"x", 0o600).unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
        assert!(syncfs(&d.path().join("missing")).is_err());
        assert!(sync_dir(d.path()).is_ok());
        syncfs(d.path()).unwrap();
    }

    #[test]
    fn private_folders() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_dir_all_mode(&p, PRIVATE_DIR).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(d.path().join("a")).unwrap().mode() & 0o777,
            0o700
        );
    }

    /// Hands out its data 3 bytes at a time, after one `Interrupted`, then fails if told to.
    struct Stutter {
        data: Vec<u8>,
        at: usize,
        interrupted: bool,
        fail_at_end: bool,
    }

    impl std::io::Read for Stutter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.data.len() - self.at);
            if n == 0 && self.fail_at_end {
                return Err(std::io::Error::other("disk gone"));
            }
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn read_pieces_hands_over_everything_and_maps_read_errors() {
        let data: Vec<u8> = (0..100u8).collect();
        let stutter = |fail_at_end| Stutter {
            data: data.clone(),
            at: 0,
            interrupted: false,
            fail_at_end,
        };
        let mut got = Vec::new();
        read_pieces(
            &mut stutter(false),
            |e| e.to_string(),
            |p| {
                got.extend_from_slice(p);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            got, data,
            "the interrupted read was retried, every piece kept"
        );
        let err = read_pieces(&mut stutter(true), |e| format!("reading: {e}"), |_| Ok(()));
        assert_eq!(err, Err("reading: disk gone".to_string()));
        // An error of `each` ends the read at once.
        let mut calls = 0;
        let err = read_pieces(
            &mut stutter(false),
            |e| e.to_string(),
            |_| {
                calls += 1;
                Err("write failed".to_string())
            },
        );
        assert_eq!((err, calls), (Err("write failed".to_string()), 1));
    }
}
