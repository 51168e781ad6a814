//! One budget per upload: every member, nested container and child process of an upload
//! draws on the same counters, so no arrangement of members (a thousand small bombs, one
//! stream named by many zip entries, a bomb inside a bomb, a `.dsc` whose tarball is a bomb)
//! can make the upload as a whole exceed what its gold file justifies.
//!
//! What is counted:
//! - **kept bytes**: bytes of members that will be stored (a member skipped for its ratio
//!   gives its bytes back);
//! - **work**: every byte decompressed, kept or thrown away, capped at twice the kept-bytes
//!   budget so a stream of skipped bombs still ends;
//! - **members**, **wall time** and **temporary disk** (files waiting to be processed and
//!   what child processes write);
//! - a stop signal (SIGINT/SIGTERM via [`holdfast_core::interrupt`]).
//!
//! The first limit reached becomes the upload's [`Stop`]: every reader loop polls
//! [`Budget::check`] and winds down, recording which members were left out.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why an upload stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("the upload expands beyond its budget of {0} bytes (decompression bomb? raise [unpack] max_ratio or max_expanded_bytes to allow it)")]
    Bytes(u64),
    #[error("the upload expands beyond {0} bytes counting skipped members (decompression bombs; raise [unpack] max_ratio or max_expanded_bytes to allow it)")]
    Work(u64),
    #[error("more than {0} members in this upload (raise [unpack] max_members)")]
    Members(u64),
    #[error("temporary files of this upload reached {0} bytes (raise [unpack] max_temp_bytes)")]
    Temp(u64),
    #[error("unpacking took longer than {0} s (raise [unpack] max_seconds)")]
    Time(u64),
    #[error("interrupted by a signal")]
    Interrupted,
}

/// The shared counters and limits of one upload.
#[derive(Debug)]
pub struct Budget {
    bytes: u64,
    members: u64,
    temp: u64,
    seconds: u64,
    deadline: Option<Instant>,
    kept: AtomicU64,
    work: AtomicU64,
    counted: AtomicU64,
    in_temp: AtomicU64,
    stop: OnceLock<Stop>,
}

impl Budget {
    /// `bytes` kept at most, `members` at most, `temp` bytes of temporary disk at most
    /// (0: same as `bytes`), `seconds` of wall time (0: no limit).
    pub fn new(bytes: u64, members: u64, temp: u64, seconds: u64) -> Self {
        Budget {
            bytes,
            members,
            temp: if temp == 0 { bytes } else { temp.min(bytes) },
            seconds,
            deadline: (seconds > 0).then(|| Instant::now() + Duration::from_secs(seconds)),
            kept: AtomicU64::new(0),
            work: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            in_temp: AtomicU64::new(0),
            stop: OnceLock::new(),
        }
    }

    /// Lowers the kept-bytes (and temp) limit, e.g. to a ratio of the gold file's size.
    pub fn cap_bytes(&mut self, bytes: u64) {
        self.bytes = self.bytes.min(bytes);
        self.temp = self.temp.min(bytes);
    }

    pub fn bytes_limit(&self) -> u64 {
        self.bytes
    }

    fn halt(&self, s: Stop) -> Stop {
        let _ = self.stop.set(s);
        self.stop.get().cloned().unwrap_or(Stop::Interrupted)
    }

    /// The reason the upload stopped, if it did.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stop.get()
    }

    /// Fails once any limit is reached or a stop signal arrived. Cheap: poll it per chunk.
    pub fn check(&self) -> Result<(), Stop> {
        if let Some(s) = self.stop.get() {
            return Err(s.clone());
        }
        if holdfast_core::interrupt::requested() {
            return Err(self.halt(Stop::Interrupted));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.halt(Stop::Time(self.seconds)));
        }
        Ok(())
    }

    /// Charges `n` freshly decompressed bytes.
    pub fn charge(&self, n: u64) -> Result<(), Stop> {
        let kept = self.kept.fetch_add(n, Relaxed) + n;
        let work = self.work.fetch_add(n, Relaxed) + n;
        if kept > self.bytes {
            return Err(self.halt(Stop::Bytes(self.bytes)));
        }
        if work > self.bytes.saturating_mul(2) {
            return Err(self.halt(Stop::Work(self.bytes.saturating_mul(2))));
        }
        self.check()
    }

    /// Gives back the kept bytes of a member that was thrown away (its work stays counted).
    pub fn refund(&self, n: u64) {
        let _ = self
            .kept
            .fetch_update(Relaxed, Relaxed, |k| Some(k.saturating_sub(n)));
    }

    /// Bytes that may still be kept.
    pub fn bytes_left(&self) -> u64 {
        self.bytes.saturating_sub(self.kept.load(Relaxed))
    }

    /// Counts one member.
    pub fn count_member(&self) -> Result<(), Stop> {
        self.count_members(1)
    }

    /// Counts `n` members at once (the rows a hard link to a container copies).
    pub fn count_members(&self, n: u64) -> Result<(), Stop> {
        if self.counted.fetch_add(n, Relaxed).saturating_add(n) > self.members {
            return Err(self.halt(Stop::Members(self.members)));
        }
        self.check()
    }

    /// `n` more bytes sit in the temporary folder.
    pub fn temp_add(&self, n: u64) -> Result<(), Stop> {
        if self.in_temp.fetch_add(n, Relaxed) + n > self.temp {
            return Err(self.halt(Stop::Temp(self.temp)));
        }
        Ok(())
    }

    /// `n` bytes left the temporary folder (stored in the repository or removed).
    pub fn temp_sub(&self, n: u64) {
        let _ = self
            .in_temp
            .fetch_update(Relaxed, Relaxed, |k| Some(k.saturating_sub(n)));
    }

    pub fn temp_used(&self) -> u64 {
        self.in_temp.load(Relaxed)
    }

    /// Temporary bytes that may still be used.
    pub fn temp_left(&self) -> u64 {
        self.temp.saturating_sub(self.in_temp.load(Relaxed))
    }

    /// Seconds left before the deadline (`None`: no deadline).
    pub fn seconds_left(&self) -> Option<u64> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs())
    }
}

/// Runs a child process (`dpkg-source`, `bsdtar`) held to the upload's budget: no file it
/// writes may grow past the bytes left (`RLIMIT_FSIZE`), its CPU time is capped at the time
/// left (`RLIMIT_CPU`), and a watchdog kills its whole process group within 50 ms of the
/// budget stopping (signal, deadline) or of `watch` (the folder it writes to) outgrowing the
/// bytes left. `member_cap`: what the one member it writes may expand to (a converter's
/// output), as a member read in process is held to its ratio. `io` talks to the child
/// (reads its output); its result is returned with the child's exit status, or the
/// watchdog's reason when it had to kill.
pub(crate) fn run_limited<R>(
    budget: &Budget,
    cmd: &mut std::process::Command,
    watch: Option<&std::path::Path>,
    member_cap: Option<u64>,
    io: impl FnOnce(&mut std::process::Child) -> R,
) -> Result<(R, std::process::ExitStatus), String> {
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::AtomicBool;
    budget.check().map_err(|s| s.to_string())?;
    // As in process: a member over its own cap is skipped, while a child that outgrows what
    // the upload has left has spent the upload's budget, and the upload stops with the same
    // reason whichever runs first.
    let upload = if budget.bytes_left() <= budget.temp_left() {
        (budget.bytes_left(), Stop::Bytes(budget.bytes))
    } else {
        (budget.temp_left(), Stop::Temp(budget.temp))
    };
    let (allowed, spent) = match member_cap {
        Some(cap) if cap < upload.0 => (cap, None),
        _ => (upload.0, Some(upload.1)),
    };

    let cpu = budget.seconds_left().map(|s| s.max(1));
    let limit = |res, cur: u64, max: u64| {
        let r = libc::rlimit {
            rlim_cur: cur as libc::rlim_t,
            rlim_max: max as libc::rlim_t,
        };
        // SAFETY: setrlimit is async-signal-safe and only touches the child.
        if unsafe { libc::setrlimit(res, &r) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only calls setrlimit.
    unsafe {
        cmd.pre_exec(move || {
            limit(libc::RLIMIT_FSIZE, allowed, allowed)?;
            if let Some(c) = cpu {
                // SIGXCPU at the soft limit (reported as the time spent); SIGKILL a second
                // later for a child that ignores it.
                limit(libc::RLIMIT_CPU, c, c + 1)?;
            }
            Ok(())
        });
    }
    let prog = cmd.get_program().to_string_lossy().to_string();
    // Why the child was stopped for writing too much (`wrote`: a file, or its folder).
    let too_much = |wrote: &str| match &spent {
        Some(s) => {
            let stop = budget.halt(s.clone());
            format!("{prog} {wrote} the {allowed} bytes this upload has left: {stop}")
        }
        None => format!(
            "{prog} {wrote} the {allowed} bytes one member may expand to (decompression bomb? \
             raise [unpack] max_ratio to allow it): skipped"
        ),
    };
    // Its own process group (killed whole below), and it dies with holdfast.
    let mut child = holdfast_core::child::tie_to_parent(cmd)
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let pid = child.id();
    let kill = || holdfast_core::child::kill_group(pid, nix::sys::signal::Signal::SIGKILL);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watchdog = s.spawn(|| {
            let mut last_walk = Instant::now();
            while !done.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let why = if let Err(stop) = budget.check() {
                    Some(stop.to_string())
                } else if let Some(dir) = watch.filter(|_| last_walk.elapsed().as_millis() >= 50) {
                    last_walk = Instant::now();
                    let used = dir_size(dir);
                    (used > allowed).then(|| too_much("wrote more than"))
                } else {
                    None
                };
                if let Some(why) = why {
                    kill();
                    return Some(why);
                }
            }
            None
        });
        let out = io(&mut child);
        let status = child.wait();
        // Whatever the child left running in its group goes too.
        kill();
        done.store(true, Relaxed);
        let killed = watchdog.join().unwrap_or(None);
        let status = status.map_err(|e| format!("{prog}: {e}"))?;
        if let Some(why) = killed {
            return Err(why);
        }
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(libc::SIGXFSZ) => Err(too_much("tried to write a file larger than")),
            Some(libc::SIGXCPU) => {
                let stop = budget.halt(Stop::Time(budget.seconds));
                Err(format!(
                    "{prog} used the CPU time this upload has left: {stop}"
                ))
            }
            _ => Ok((out, status)),
        }
    })
}

/// Apparent size of the files under `dir` (links not followed).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_work_members_temp() {
        let b = Budget::new(100, 3, 0, 0);
        b.charge(60).unwrap();
        b.refund(60);
        b.charge(60).unwrap();
        b.refund(60);
        b.charge(60).unwrap();
        // 180 of work so far; the next 60 pass the kept limit but not the work limit.
        assert_eq!(b.charge(30), Err(Stop::Work(200)));
        // Once stopped, everything reports the same reason.
        assert_eq!(b.check(), Err(Stop::Work(200)));
        assert_eq!(b.count_member(), Err(Stop::Work(200)));

        let b = Budget::new(100, 2, 50, 0);
        assert_eq!(b.charge(101), Err(Stop::Bytes(100)));
        let b = Budget::new(100, 2, 50, 0);
        b.count_member().unwrap();
        b.count_member().unwrap();
        assert_eq!(b.count_member(), Err(Stop::Members(2)));
        let b = Budget::new(100, 2, 50, 0);
        b.temp_add(40).unwrap();
        b.temp_sub(40);
        b.temp_add(50).unwrap();
        assert_eq!(b.temp_add(1), Err(Stop::Temp(50)));
    }
}
