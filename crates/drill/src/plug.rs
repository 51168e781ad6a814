//! Pulling the plug: a command runs in its own process group and, at a chosen moment, it and
//! every descendant (holdfast, `pg_dumpall`, `rsync`, `ssh`) get SIGKILL at once, with no chance
//! to clean up, the way a power cut ends them.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// What happened to a command run under [`run_and_pull`].
#[derive(Debug, Clone)]
pub struct Pull {
    /// The command finished before the plug was pulled.
    pub finished: Option<ExitStatus>,
    /// Processes killed (name and pid), descendants included.
    pub killed: Vec<(i32, String)>,
    pub after_secs: f64,
}

/// Every live descendant of `pid`, read from `/proc`.
pub fn descendants(pid: i32) -> Vec<(i32, String)> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map(|x| x.1).unwrap_or("").to_string();
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            let ppid: i32 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            if state != "Z" {
                parent_of.push((p, ppid, comm));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, pp, comm) in &parent_of {
            if *pp == p && !out.iter().any(|(x, _)| x == c) {
                out.push((*c, comm.clone()));
                frontier.push(*c);
            }
        }
    }
    out
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Starts `cmd` in a new process group.
pub fn spawn_group(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(0).spawn()
}

/// Kills `child`'s whole tree: its group and any descendant that left the group.
pub fn pull(child: &mut Child) -> Vec<(i32, String)> {
    let pid = child.id() as i32;
    let mut killed = vec![(pid, "(command)".to_string())];
    let kids = descendants(pid);
    // The group first (one signal, no race with new children), then stragglers by pid.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    sigkill(pid);
    for (k, _) in &kids {
        sigkill(*k);
    }
    killed.extend(kids);
    let _ = child.wait();
    killed
}

/// Runs `cmd` and pulls the plug after `after`, unless it finished first.
pub fn run_and_pull(cmd: &mut Command, after: Duration) -> std::io::Result<Pull> {
    let start = Instant::now();
    let mut child = spawn_group(cmd)?;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Pull {
                finished: Some(st),
                killed: Vec::new(),
                after_secs: start.elapsed().as_secs_f64(),
            });
        }
        if start.elapsed() >= after {
            let killed = pull(&mut child);
            return Ok(Pull {
                finished: None,
                killed,
                after_secs: start.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` and pulls the plug the moment a descendant named `name` (e.g. `rsync`) runs
/// and `ready` says so (e.g. it is halfway through a file), or after `timeout`.
pub fn run_and_pull_on(
    cmd: &mut Command,
    name: &str,
    ready: &dyn Fn() -> bool,
    timeout: Duration,
) -> std::io::Result<Pull> {
    let start = Instant::now();
    let mut child = spawn_group(cmd)?;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Pull {
                finished: Some(st),
                killed: Vec::new(),
                after_secs: start.elapsed().as_secs_f64(),
            });
        }
        let seen = descendants(child.id() as i32)
            .iter()
            .any(|(_, n)| n == name);
        if (seen && ready()) || start.elapsed() >= timeout {
            let killed = pull(&mut child);
            return Ok(Pull {
                finished: None,
                killed,
                after_secs: start.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_the_whole_tree_even_a_child_that_left_the_group() {
        let t = tempfile::tempdir().unwrap();
        let marker = t.path().join("survivor");
        // A child in its own session (setsid) would survive a group kill alone.
        let script = format!(
            "setsid bash -c 'sleep 1.5; touch {m}' & sleep 30",
            m = marker.display()
        );
        let p = run_and_pull(
            Command::new("bash").args(["-c", &script]),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(p.finished.is_none());
        assert!(p.killed.len() >= 3, "{:?}", p.killed);
        std::thread::sleep(Duration::from_millis(2000));
        assert!(!marker.exists(), "a descendant survived the plug pull");
        let p = run_and_pull(Command::new("true").arg("x"), Duration::from_secs(5)).unwrap();
        assert!(p.finished.unwrap().success());
        // Pulled when the named child shows up, not before.
        let p = run_and_pull_on(
            Command::new("bash").args(["-c", "sleep 0.3; exec -a xyzzy sleep 30 & wait"]),
            "sleep",
            &|| true,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(p.finished.is_none());
        assert!(p.after_secs < 5.0, "{}", p.after_secs);
        assert!(p.killed.iter().any(|(_, n)| n == "sleep"), "{:?}", p.killed);
    }
}
