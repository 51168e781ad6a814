//! A stand-in for FOSSology's scheduler where the real one cannot run (demo, drills, tests).
//!
//! It is driven the ways FOSSology's is (see [`holdfast_site::scheduler`]):
//! - the scheduler program (`fo_sched_<tag>`, in place of `fo_scheduler`) takes `--shutdown`
//!   (SIGTERM: it stops once its agents have finished, after `stop_delay_secs`), `--kill`
//!   (SIGQUIT: agents killed at once), `--daemon`, and otherwise runs in the foreground, as
//!   FOSSology's Docker entrypoint runs it; it has agent children, each visible in `/proc`
//!   under its own name;
//! - `init.d/fossology` is FOSSology's init script (`start` = `--daemon --reset`, `stop` =
//!   `--kill`, `graceful-stop` = `--shutdown`);
//! - `systemctl` answers `is-active`, `start` and `stop` for `fossology.service` by running
//!   that init script, as systemd's unit generated from it does.
//!
//! With `refuse_stop` it ignores both signals (a hung scheduler a backup must give up on).
//! Names carry a tag so that parallel tests never see each other's processes. `starts`,
//! `requests` and `args` in its folder record what it was asked and how it last ran.

use holdfast_site::scheduler::{Control, SchedulerConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Seconds between the graceful stop request and the last process exiting (the agents
    /// finishing their work).
    pub stop_delay_secs: u32,
    /// Ignore stop and kill requests altogether (the case a backup must give up on).
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

/// Writes an executable script without this process ever holding it open for writing: a
/// child another test thread forks meanwhile inherits such a descriptor until it execs, and
/// running the script then fails with ETXTBSY ("Text file busy"), even from inside another
/// script where no retry sees it. A `sh` child writes it; this process holds only a pipe.
fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    let wrote = child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes());
    let status = child.wait()?;
    wrote?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "writing {} failed ({status})",
            path.display()
        )));
    }
    Ok(())
}

impl StandIn {
    /// Writes the stand-in's scripts into `dir`. `tag` (at most 6 characters) makes its
    /// process names unique.
    pub fn create(dir: &Path, tag: &str, b: Behaviour) -> std::io::Result<StandIn> {
        std::fs::create_dir_all(dir.join("init.d"))?;
        let dir = dir.canonicalize()?;
        let scheduler_name = format!("fo_sched_{tag}");
        let agent_name = format!("nomos_{tag}");
        let d = dir.display();
        // An agent idles, or does the work in `work.sh` when there is one (see `set_work`);
        // a stop request ends it after its unit of work, as FOSSology's agents finish their job.
        let agent = format!(
            "#!/bin/bash\nstop=''\ntrap 'stop=1' TERM\nwhile [ -z \"$stop\" ]; do\n  [ -r {d}/work.sh ] && . {d}/work.sh\n  sleep 0.2 & wait $!\ndone\nexit 0\n"
        );
        write_exec(&dir.join(&agent_name), &agent)?;
        let (on_term, on_quit) = if b.refuse_stop {
            ("trap '' TERM".to_string(), "trap '' QUIT".to_string())
        } else {
            (
                // The agents finish their work, then it exits; a kill request (QUIT) still
                // ends it at once meanwhile, as FOSSology's does.
                format!(
                    "graceful() {{ sleep {delay} & wait $!; kill -TERM $kids 2>/dev/null; wait $kids; rm -f {d}/scheduler.pid; exit 0; }}\ntrap graceful TERM",
                    delay = b.stop_delay_secs
                ),
                format!("trap 'kill -KILL $kids 2>/dev/null; wait $kids; rm -f {d}/scheduler.pid; exit 0' QUIT"),
            )
        };
        let scheduler = format!(
            r#"#!/bin/bash
# Stand-in for fo_scheduler.
# fo_scheduler installs its signal handlers whatever it inherited; bash cannot trap a signal
# ignored when it started (a script's background job starts with INT and QUIT ignored).
[ -n "$STANDIN_DEFAULT_SIGNALS" ] || STANDIN_DEFAULT_SIGNALS=1 exec env --default-signal "$0" "$@"
case "$1" in
  --shutdown|-s) sig=TERM ;;
  --kill|-k) sig=QUIT ;;
esac
if [ -n "$sig" ]; then
  echo "$1" >> {d}/requests
  read -r p 2>/dev/null < {d}/scheduler.pid
  [ -n "$p" ] && kill -$sig "$p" 2>/dev/null && exit 0
  echo "no scheduler running" >&2
  exit 255
fi
if [ "$1" = --daemon ] || [ "$1" = -d ]; then
  shift
  rm -f {d}/scheduler.pid
  setsid -f "$0" "$@" </dev/null >/dev/null 2>&1
  for i in $(seq 1 300); do [ -s {d}/scheduler.pid ] && exit 0; sleep 0.1; done
  echo "scheduler did not start" >&2
  exit 1
fi
echo start >> {d}/starts
echo "$*" > {d}/args
kids=''
for i in $(seq 1 {n}); do {d}/{agent_name} & kids="$kids $!"; done
{on_term}
{on_quit}
# The pid file says "up": write it once every agent runs under its own name (a fork
# carries the scheduler's name until its exec).
for k in $kids; do
  while [ -e /proc/$k ] && [ "$(cat /proc/$k/comm 2>/dev/null)" != {agent_name} ]; do sleep 0.01; done
done
echo $$ > {d}/scheduler.pid
while true; do sleep 0.2 & wait $!; done
"#,
            n = b.agents
        );
        write_exec(&dir.join(&scheduler_name), &scheduler)?;
        // FOSSology's init script, with the stand-in as DAEMON.
        write_exec(
            &dir.join("init.d/fossology"),
            &format!(
                r#"#!/bin/sh
# Stand-in for /etc/init.d/fossology.
DAEMON={d}/{scheduler_name}
SCHEDULEROPT="--daemon --reset --verbose=1"
set -e
case "$1" in
  start) $DAEMON $SCHEDULEROPT ;;
  stop) $DAEMON --kill || echo -n "no " ;;
  graceful-stop) $DAEMON --shutdown ;;
  restart) $DAEMON --kill || true; sleep 1; $DAEMON $SCHEDULEROPT ;;
  *) echo "Usage: $0 {{start|stop|graceful-stop|restart}}" >&2; exit 1 ;;
esac
exit 0
"#
            ),
        )?;
        // systemctl for the unit systemd generates from that init script.
        write_exec(
            &dir.join("systemctl"),
            &format!(
                r#"#!/bin/sh
# Stand-in for systemctl: fossology.service generated from {d}/init.d/fossology.
verb=""; unit=""
for a in "$@"; do
  case "$a" in
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$a; else unit=$a; fi ;;
  esac
done
echo "$verb $unit" >> {d}/systemctl.log
[ "$unit" = fossology.service ] || [ "$unit" = fossology ] || {{ echo "Unit $unit not found." >&2; exit 5; }}
running() {{ read -r p 2>/dev/null < {d}/scheduler.pid && kill -0 "$p" 2>/dev/null; }}
case "$verb" in
  is-active) if running; then s=active; r=0; else s=inactive; r=3; fi
    case " $* " in *" --quiet "*|*" -q "*) ;; *) echo $s ;; esac
    exit $r ;;
  start) running && exit 0; exec {d}/init.d/fossology start ;;
  stop) running || exit 0; exec {d}/init.d/fossology stop ;;
  *) echo "unknown verb $verb" >&2; exit 1 ;;
esac
"#
            ),
        )?;
        // Old names kept for holdfast.toml files that list commands.
        write_exec(
            &dir.join("start"),
            &format!("#!/bin/sh\nexec {d}/init.d/fossology start\n"),
        )?;
        write_exec(
            &dir.join("stop"),
            &format!(
                "#!/bin/sh\necho stop >> {d}/stops\n{d}/{scheduler_name} --shutdown\nexit 0\n"
            ),
        )?;
        Ok(StandIn {
            dir,
            scheduler_name,
            agent_name,
        })
    }

    /// Scheduler settings that drive this stand-in through commands (`control = commands`).
    pub fn config(&self, stop_timeout_secs: u64) -> SchedulerConfig {
        SchedulerConfig {
            control: None,
            stop_command: vec![self.dir.join("stop").display().to_string()],
            start_command: vec![self.dir.join("start").display().to_string()],
            kill_command: vec![
                self.dir.join(&self.scheduler_name).display().to_string(),
                "--kill".into(),
            ],
            process_names: vec![self.scheduler_name.clone(), self.agent_name.clone()],
            stop_timeout_secs,
            kill_timeout_secs: 2,
            stale_row_grace_secs: 1,
            state_dir: self.dir.clone(),
            ..Default::default()
        }
    }

    /// Scheduler settings that drive this stand-in the way FOSSology's is driven under
    /// `control` (its init script, its systemctl, or the program itself).
    pub fn config_for(&self, control: Control, stop_timeout_secs: u64) -> SchedulerConfig {
        SchedulerConfig {
            control: Some(control),
            init_script: self.dir.join("init.d/fossology").display().to_string(),
            systemctl: self.dir.join("systemctl").display().to_string(),
            process_names: vec![self.scheduler_name.clone(), self.agent_name.clone()],
            stop_timeout_secs,
            kill_timeout_secs: 2,
            stale_row_grace_secs: 1,
            state_dir: self.dir.clone(),
            ..Default::default()
        }
    }

    /// Starts the scheduler as its init script does (`--daemon --reset`).
    pub fn start(&self) -> std::io::Result<()> {
        let out = holdfast_site::scheduler::output_retrying(
            std::process::Command::new(self.dir.join("init.d/fossology")).arg("start"),
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "stand-in scheduler did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Starts the scheduler program in the foreground, in its own process group, as
    /// FOSSology's Docker entrypoint does (`fo_scheduler --log … --reset`), and returns once
    /// it is up.
    pub fn start_direct(&self, args: &[&str]) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        let _ = std::fs::remove_file(self.dir.join("scheduler.pid"));
        // The script was written a moment ago: a child another test thread forked meanwhile
        // may still hold it open for writing (ETXTBSY) until it execs.
        let mut cmd = std::process::Command::new(self.dir.join(&self.scheduler_name));
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        holdfast_core::child::spawn_retrying(&mut cmd)?;
        // As long as holdfast waits for a start (30 s): a loaded machine is slow, not broken.
        for _ in 0..300 {
            if self.dir.join("scheduler.pid").is_file() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(std::io::Error::other("stand-in scheduler did not start"))
    }

    /// Makes the agents busy: each sources `script` (bash) once per unit of work, from now
    /// on, until the scheduler stops them (see [`crate::busy`]).
    pub fn set_work(&self, script: &str) -> std::io::Result<()> {
        let tmp = self.dir.join("work.sh.tmp");
        std::fs::write(&tmp, script)?;
        std::fs::rename(tmp, self.dir.join("work.sh"))
    }

    /// Makes the agents idle again.
    pub fn clear_work(&self) {
        let _ = std::fs::remove_file(self.dir.join("work.sh"));
    }

    /// How many times the scheduler was started.
    pub fn starts(&self) -> usize {
        self.lines("starts").len()
    }

    /// The stop and kill requests it received (`--shutdown`, `--kill`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.lines("requests")
    }

    /// The arguments it last ran with.
    pub fn args(&self) -> String {
        std::fs::read_to_string(self.dir.join("args"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// What its `systemctl` was asked (`VERB UNIT` lines).
    pub fn systemctl_calls(&self) -> Vec<String> {
        self.lines("systemctl.log")
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    pub fn processes(&self) -> Vec<holdfast_site::scheduler::AgentProcess> {
        holdfast_site::scheduler::running_processes(&[
            self.scheduler_name.clone(),
            self.agent_name.clone(),
        ])
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
