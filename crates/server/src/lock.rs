//! One lock per server job (`flock` on a file in the state folder), so a cron run that
//! starts while the previous one still works waits for nothing and changes nothing: it
//! stops with [`LockError::Busy`] (exit code 4 in the CLI).

use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another `{job}` run holds {path}; wait for it to finish")]
    Busy { job: String, path: PathBuf },
    #[error("cannot take the lock {path}: {source} (check the state folder and its permissions)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while a job runs; released on drop (or when the process dies).
pub struct JobLock {
    _lock: Flock<std::fs::File>,
    pub path: PathBuf,
}

/// Takes `<dir>/<job>.lock` without waiting.
pub fn take(dir: &Path, job: &str) -> Result<JobLock, LockError> {
    let path = dir.join(format!("{job}.lock"));
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(JobLock { _lock: l, path }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy {
            job: job.into(),
            path,
        }),
        Err((_, e)) => Err(io(std::io::Error::from_raw_os_error(e as i32))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_run_is_refused_until_the_first_ends() {
        let t = tempfile::tempdir().unwrap();
        let a = super::take(t.path(), "size").unwrap();
        assert!(matches!(
            super::take(t.path(), "size"),
            Err(super::LockError::Busy { .. })
        ));
        assert!(super::take(t.path(), "snapshot-daily").is_ok());
        drop(a);
        assert!(super::take(t.path(), "size").is_ok());
    }
}
