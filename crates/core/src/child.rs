//! Child processes that die with holdfast.
//!
//! A `kill -9` of holdfast must not leave an rsync copying into a snapshot folder (where it
//! would overlap the next backup) or a psql loading a database. Each child gets
//! `PR_SET_PDEATHSIG = SIGKILL` (the kernel kills it when its parent thread dies) and its own
//! process group, so a Ctrl-C on the terminal reaches holdfast alone (which then stops its
//! children in order) and [`kill_group`] takes the child's own children along.
//!
//! The death signal is tied to the *thread* that spawned the child: spawn from a thread that
//! outlives the child (the caller's, not a short-lived helper). The kernel clears it when the
//! child's uid changes or it execs a set-uid program: a child that must run as another user
//! gets `Command::uid`/`gid` (applied before this `pre_exec`, so the signal survives), never
//! `runuser`/`su`/`sudo` (their own child would not die with holdfast).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s process die with holdfast and lead its own process group.
pub fn tie_to_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Sends `sig` to the process group led by `pid` (a child set up by [`tie_to_parent`]).
pub fn kill_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Runs `start` (a spawn or a run of a program), retrying for up to a second on ETXTBSY: a
/// script written a moment ago can still be open for writing in a child another thread
/// forked (until that child execs).
pub fn retry_text_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Spawns `cmd`, retrying on ETXTBSY ([`retry_text_busy`]).
pub fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    retry_text_busy(|| cmd.spawn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_leads_its_group() {
        let mut c = Command::new("sleep");
        c.arg("5");
        let mut child = tie_to_parent(&mut c).spawn().unwrap();
        let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(child.id() as i32)))
            .unwrap()
            .as_raw();
        assert_eq!(pgid as u32, child.id());
        kill_group(child.id(), nix::sys::signal::Signal::SIGKILL);
        let st = child.wait().unwrap();
        assert!(!st.success());
    }
}
