//! A stand-in for FOSSology's scheduler where the real one cannot run (demo, drills, tests).
//!
//! It behaves as the real processes do: a scheduler process with agent children, each visible
//! in `/proc` under its own name; a stop request (SIGTERM) is obeyed only after a delay while
//! the agents finish, or ignored altogether. Names carry a tag so that parallel tests never
//! see each other's processes.

use crate::scheduler::SchedulerConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Seconds between the stop request and the last process exiting.
    pub stop_delay_secs: u32,
    /// Ignore stop requests altogether (the case a backup must give up on).
    pub refuse_stop: bool,
    /// Agent processes to run under the scheduler.
    pub agents: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            stop_delay_secs: 1,
            refuse_stop: false,
            agents: 2,
        }
    }
}

pub struct StandIn {
    pub dir: PathBuf,
    pub scheduler_name: String,
    pub agent_name: String,
}

fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

impl StandIn {
    /// Writes the stand-in's scripts into `dir`. `tag` (at most 6 characters) makes its
    /// process names unique.
    pub fn create(dir: &Path, tag: &str, b: Behaviour) -> std::io::Result<StandIn> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let scheduler_name = format!("fo_sched_{tag}");
        let agent_name = format!("nomos_{tag}");
        let d = dir.display();
        let agent = "#!/bin/bash\ntrap 'exit 0' TERM\nwhile true; do sleep 0.2; done\n".to_string();
        write_exec(&dir.join(&agent_name), &agent)?;
        let on_term = if b.refuse_stop {
            "trap '' TERM".to_string()
        } else {
            format!(
                "trap 'sleep {delay}; kill -TERM $kids 2>/dev/null; wait; rm -f {d}/scheduler.pid; exit 0' TERM",
                delay = b.stop_delay_secs
            )
        };
        let scheduler = format!(
            "#!/bin/bash\nkids=''\nfor i in $(seq 1 {n}); do {d}/{agent_name} & kids=\"$kids $!\"; done\n{on_term}\n# The pid file says \"up\": write it once the agents exist.\necho $$ > {d}/scheduler.pid\nwhile true; do sleep 0.2 & wait $!; done\n",
            n = b.agents
        );
        write_exec(&dir.join(&scheduler_name), &scheduler)?;
        write_exec(
            &dir.join("start"),
            &format!(
                "#!/bin/bash\necho start >> {d}/starts\nsetsid {d}/{scheduler_name} </dev/null >/dev/null 2>&1 &\nfor i in $(seq 1 50); do [ -s {d}/scheduler.pid ] && exit 0; sleep 0.1; done\necho 'scheduler did not start' >&2; exit 1\n"
            ),
        )?;
        write_exec(
            &dir.join("stop"),
            &format!(
                "#!/bin/bash\necho stop >> {d}/stops\n[ -s {d}/scheduler.pid ] && kill -TERM \"$(cat {d}/scheduler.pid)\" 2>/dev/null\nexit 0\n"
            ),
        )?;
        Ok(StandIn {
            dir,
            scheduler_name,
            agent_name,
        })
    }

    /// Scheduler settings that drive this stand-in.
    pub fn config(&self, stop_timeout_secs: u64) -> SchedulerConfig {
        SchedulerConfig {
            stop_command: vec![self.dir.join("stop").display().to_string()],
            start_command: vec![self.dir.join("start").display().to_string()],
            process_names: vec![self.scheduler_name.clone(), self.agent_name.clone()],
            stop_timeout_secs,
            stale_row_grace_secs: 1,
        }
    }

    pub fn start(&self) -> std::io::Result<()> {
        let out = crate::scheduler::output_retrying(&mut std::process::Command::new(
            self.dir.join("start"),
        ))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other("stand-in scheduler did not start"))
        }
    }

    /// How many times the scheduler was started.
    pub fn starts(&self) -> usize {
        std::fs::read_to_string(self.dir.join("starts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    pub fn processes(&self) -> Vec<crate::scheduler::AgentProcess> {
        crate::scheduler::running_processes(&[self.scheduler_name.clone(), self.agent_name.clone()])
    }

    pub fn is_running(&self) -> bool {
        !self.processes().is_empty()
    }

    /// Kills every process of this stand-in at once (clean-up, plug-pull drills).
    pub fn kill_all(&self) {
        for p in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_file(self.dir.join("scheduler.pid"));
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.kill_all();
    }
}
