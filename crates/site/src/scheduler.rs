//! Stopping FOSSology's scheduler, proving that every agent is gone, and leaving the
//! scheduler as it was found.
//!
//! How FOSSology ships its scheduler, read from its source, and what holdfast does for each
//! [`Control`]:
//! - `fo_scheduler --shutdown` (and `/etc/init.d/fossology graceful-stop`, which runs it)
//!   sends SIGTERM to every process whose `argv[0]` contains `fo_scheduler`: the scheduler
//!   stops taking jobs from the queue and exits once its running agents have finished.
//!   `fo_scheduler --kill` (the init script's `stop`) sends SIGQUIT: agents are killed at once.
//!   Both return before anything has exited, so a stop is followed by polling `/proc`.
//! - `init`: the init script's `graceful-stop`, its `stop` as the kill path, `start`.
//! - `systemd`: `fossology.service` is generated from that init script and has no graceful
//!   verb, so the graceful stop is the init script's `graceful-stop`, the kill path
//!   `systemctl stop`, and the start `systemctl start`; "running" is `systemctl is-active`.
//! - `direct` (FOSSology in Docker: the entrypoint runs `fo_scheduler --reset …` itself, no
//!   service manager): the running scheduler's own binary is asked to `--shutdown` (then
//!   `--kill`), and it is started again with the command line it was running with, in its
//!   own process group.
//! - `commands`: the commands in `holdfast.toml`.
//!
//! The graceful stop gets `stop_timeout_secs`; only then is the kill path used, and if even
//! that leaves processes after `kill_timeout_secs` the backup is abandoned. A scheduler that
//! was not running when holdfast came is not started afterwards, unless holdfast itself had
//! stopped it in a run that died (a note in `state_dir`, `/run/holdfast`, says so and how it
//! ran). [`Quiesced`] restarts a
//! scheduler holdfast stopped when it is dropped, so every path out of a backup (success,
//! error, signal) starts it again.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How FOSSology's scheduler is run on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// `/etc/init.d/fossology` (source and Debian installs without systemd).
    Init,
    /// `fossology.service` under systemd.
    Systemd,
    /// `fo_scheduler` started directly (FOSSology's Docker image).
    Direct,
    /// `stop_command`, `start_command` and `kill_command` from `holdfast.toml`.
    Commands,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// `init`, `systemd`, `direct` or `commands`; unset: `commands` when `stop_command` is
    /// set, else `init`.
    pub control: Option<Control>,
    /// FOSSology's init script (`init`, and the graceful stop under `systemd`).
    pub init_script: String,
    /// The systemd unit (`systemd`).
    pub service: String,
    /// The `systemctl` program (`systemd`).
    pub systemctl: String,
    /// Command (argv, no shell) that asks the scheduler to stop once agents finish (`commands`).
    pub stop_command: Vec<String>,
    /// Command that starts the scheduler again (`commands`).
    pub start_command: Vec<String>,
    /// Command that stops the scheduler and kills its agents now, used only after
    /// `stop_timeout_secs` (`commands`; unset: SIGQUIT to the scheduler, as `fo_scheduler --kill`).
    pub kill_command: Vec<String>,
    /// Process names (as in /proc/PID/comm) of the scheduler and its agents; the first one is
    /// the scheduler.
    pub process_names: Vec<String>,
    /// How long the graceful stop may take before the kill path is used.
    pub stop_timeout_secs: u64,
    /// How long the kill path may take before the backup is abandoned.
    pub kill_timeout_secs: u64,
    /// Queue rows still marked running once every process is gone are crash leftovers:
    /// after this long they are recorded as unfinished instead of waited for.
    pub stale_row_grace_secs: u64,
    /// Where holdfast notes that it stopped the scheduler, so that the next run starts a
    /// scheduler a run that died left stopped (and only such a one).
    pub state_dir: std::path::PathBuf,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let agents = [
            "fo_scheduler",
            "ununpack",
            "adj2nest",
            "nomos",
            "monk",
            "monkbulk",
            "ojo",
            "copyright",
            "ecc",
            "keyword",
            "ipra",
            "pkgagent",
            "mimetype",
            "wget_agent",
            "delagent",
            "maintagent",
            "reportgen",
            // The spdx2 and dep5 jobs run the `spdx` and `dep5.sh` commands (their .conf).
            "spdx",
            "spdx2",
            "spdx2tv",
            "dep5",
            "dep5.sh",
            "unifiedreport",
            "readmeoss",
            "decider",
            "deciderjob",
            "reuser",
            "clixml",
            "cyclonedx",
            "scancode",
            "buckets",
            "compatibility",
            "decisionexporter",
            "decisionimporter",
            "kotoba",
            "ninka",
            "regexscan",
            "reportImport",
            "reso",
            "scanoss",
            "softwareHeritage",
            "spasht",
        ];
        SchedulerConfig {
            control: None,
            init_script: "/etc/init.d/fossology".into(),
            service: "fossology.service".into(),
            systemctl: "systemctl".into(),
            stop_command: Vec::new(),
            start_command: Vec::new(),
            kill_command: Vec::new(),
            process_names: agents.iter().map(|s| s.to_string()).collect(),
            stop_timeout_secs: 600,
            kill_timeout_secs: 30,
            stale_row_grace_secs: 10,
            state_dir: holdfast_core::lock::RUN_DIR.into(),
        }
    }
}

impl SchedulerConfig {
    /// The control in effect (see [`SchedulerConfig::control`]).
    pub fn control(&self) -> Control {
        self.control.unwrap_or(if self.stop_command.is_empty() {
            Control::Init
        } else {
            Control::Commands
        })
    }

    /// The scheduler's process name (the first of `process_names`).
    pub fn scheduler_name(&self) -> &str {
        self.process_names
            .first()
            .map(String::as_str)
            .unwrap_or("fo_scheduler")
    }

    fn init(&self, verb: &str) -> Vec<String> {
        vec![self.init_script.clone(), verb.into()]
    }

    fn systemctl(&self, verb: &str) -> Vec<String> {
        vec![self.systemctl.clone(), verb.into(), self.service.clone()]
    }

    /// The note that holdfast stopped this scheduler (named after what identifies it, so
    /// sites and stand-ins sharing the folder never read each other's).
    fn stopped_note(&self) -> std::path::PathBuf {
        let who = format!(
            "{:?}\n{}\n{}\n{}\n{}",
            self.control(),
            self.init_script,
            self.service,
            self.stop_command.join(" "),
            self.scheduler_name()
        );
        // FNV-1a: stable across builds, unlike std's hasher.
        let h = who.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        self.state_dir
            .join(format!("scheduler-stopped-{h:016x}.json"))
    }

    /// The graceful stop, as a command line (for `--dry-run` and messages).
    pub fn stop_hint(&self) -> String {
        match self.control() {
            Control::Init | Control::Systemd => self.init("graceful-stop").join(" "),
            Control::Direct => "fo_scheduler --shutdown (the running scheduler's binary)".into(),
            Control::Commands => self.stop_command.join(" "),
        }
    }

    /// How to start the scheduler by hand (for messages).
    pub fn start_hint(&self) -> String {
        match self.control() {
            Control::Init => self.init("start").join(" "),
            Control::Systemd => self.systemctl("start").join(" "),
            Control::Direct => "the fo_scheduler command line it ran with".into(),
            Control::Commands => self.start_command.join(" "),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("scheduler command is empty (set scheduler.{0}_command in holdfast.toml)")]
    EmptyCommand(&'static str),
    #[error("cannot run scheduler {what} command `{cmd}`: {source}")]
    Spawn {
        what: &'static str,
        cmd: String,
        source: std::io::Error,
    },
    #[error("scheduler {what} command `{cmd}` failed: {status}: {stderr}")]
    Failed {
        what: &'static str,
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("agents still running {secs} s after the stop (graceful, then the kill path), backup abandoned: {what}")]
    Timeout { secs: u64, what: String },
    #[error("the scheduler did not start: `{cmd}` succeeded, but no {name} process runs {secs} s later (start it by hand and check its log; under systemd: systemctl restart fossology)")]
    NotStarted {
        cmd: String,
        name: String,
        secs: u64,
    },
    #[error("the scheduler holdfast stopped is still finishing its agents {secs} s after the stop: not started beside it (a second one dies on its port); `holdfast scheduler ensure` starts it once it is gone")]
    StillDraining { secs: u64 },
    #[error("cannot read the job queue: {0}")]
    Db(#[from] postgres::Error),
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
}

/// A process of the scheduler family found in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProcess {
    pub pid: i32,
    pub name: String,
}

/// Scheduler and agent processes alive now, by name.
pub fn running_processes(names: &[String]) -> Vec<AgentProcess> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim_end();
        // Zombies are gone for our purpose: they hold no files.
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if state
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        if names.iter().any(|n| truncate_comm(n) == comm) {
            out.push(AgentProcess {
                pid,
                name: comm.to_string(),
            });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The kernel keeps 15 bytes of a process name.
fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn run(what: &'static str, argv: &[String]) -> Result<(), SchedulerError> {
    let (prog, args) = argv
        .split_first()
        .ok_or(SchedulerError::EmptyCommand(what))?;
    let cmd = argv.join(" ");
    let out = output_retrying(
        Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null()),
    )
    .map_err(|source| SchedulerError::Spawn {
        what,
        cmd: cmd.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(SchedulerError::Failed {
            what,
            cmd,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Runs a command, retrying briefly on ETXTBSY ([`holdfast_core::child::retry_text_busy`]).
pub fn output_retrying(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    holdfast_core::child::retry_text_busy(|| cmd.output())
}

/// The scheduler as holdfast found it before stopping anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Found {
    pub running: bool,
    /// Its process id and command line (the first scheduler process found).
    pub pid: Option<i32>,
    pub argv: Vec<String>,
    /// Its binary (`/proc/PID/exe`), for `--shutdown` and `--kill` under `direct`.
    pub exe: Option<String>,
}

/// Scheduler processes: the comm is the scheduler's name, or `argv[0]` contains it (the test
/// `fo_scheduler --shutdown` itself applies).
fn scheduler_processes(name: &str) -> Vec<(i32, Vec<String>)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_it = comm.trim_end() == truncate_comm(name)
            || argv.first().is_some_and(|a0| a0.contains(name));
        // A shutdown or kill request is not the scheduler.
        let request = argv
            .iter()
            .any(|a| matches!(a.as_str(), "--shutdown" | "-s" | "--kill" | "-k"));
        if is_it && !request && !is_zombie(&e.path()) {
            out.push((pid, argv));
        }
    }
    out.sort_by_key(|p| p.0);
    out
}

fn is_zombie(proc_dir: &Path) -> bool {
    let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    state
        .rsplit(')')
        .next()
        .is_some_and(|r| r.trim_start().starts_with('Z'))
}

/// Whether the scheduler runs now, and how.
pub fn found(cfg: &SchedulerConfig) -> Found {
    let procs = scheduler_processes(cfg.scheduler_name());
    let mut f = Found {
        running: !procs.is_empty(),
        ..Default::default()
    };
    if let Some((pid, argv)) = procs.into_iter().next() {
        f.exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.display().to_string());
        f.pid = Some(pid);
        f.argv = argv;
    }
    if cfg.control() == Control::Systemd && !f.running {
        f.running = Command::new(&cfg.systemctl)
            .args(["is-active", "--quiet", &cfg.service])
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    }
    f
}

/// Notes that holdfast is stopping the scheduler found running (with how it ran).
fn note_stopped(cfg: &SchedulerConfig, f: &Found) {
    let path = cfg.stopped_note();
    let write = || -> Result<(), String> {
        holdfast_core::lock::ensure_private_dir(&cfg.state_dir).map_err(|e| e.to_string())?;
        let json = serde_json::to_vec(f).map_err(|e| e.to_string())?;
        holdfast_core::fs::write_atomic(&path, &json, holdfast_core::fs::PRIVATE_FILE)
            .map_err(|e| e.to_string())
    };
    if let Err(e) = write() {
        tracing::warn!(
            "cannot note in {} that holdfast stopped the scheduler ({e}): if this run dies, \
             start the scheduler by hand",
            path.display()
        );
    }
}

/// How a scheduler that an earlier run stopped (and did not start again) was running.
fn stopped_earlier(cfg: &SchedulerConfig) -> Option<Found> {
    let text = std::fs::read(cfg.stopped_note()).ok()?;
    serde_json::from_slice(&text).ok()
}

/// How long a scheduler left stopped must stay absent before [`resume_stopped`] starts it.
const SETTLE: Duration = Duration::from_secs(1);

/// Starts a scheduler that an earlier holdfast run stopped and died before starting again
/// (its note is there and it is not running); `Ok(None)` when there is nothing to do. Every
/// holdfast command calls this (through `holdfast_backup::resume_scheduler`), so the
/// scheduler runs again at the next command, not at the next backup.
pub fn resume_stopped(cfg: &SchedulerConfig) -> Result<Option<String>, SchedulerError> {
    let Some(earlier) = stopped_earlier(cfg) else {
        return Ok(None);
    };
    // The dead run may have sent the stop a moment ago: let its processes finish exiting.
    // It may also have died while starting the scheduler again, which leaves one starting up
    // and not yet under its own name (between fork and exec): the scheduler must stay absent
    // for a moment, or a second one would be started beside it.
    let until = Instant::now() + Duration::from_secs(cfg.stop_timeout_secs.min(10));
    let mut absent_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(pid) = scheduler_pid(cfg) {
            absent_since = None;
            if now >= until {
                if earlier.pid == Some(pid) {
                    // The one holdfast stopped, still finishing its agents: the note stays.
                    return Ok(Some(
                        "the scheduler a holdfast run stopped is still finishing its agents: \
                         `holdfast scheduler ensure` starts it once it is gone"
                            .into(),
                    ));
                }
                forget_stopped(cfg);
                return Ok(None); // another scheduler runs: started since
            }
        } else if now.duration_since(*absent_since.get_or_insert(now)) >= SETTLE {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::warn!("the scheduler was left stopped by a holdfast run that died: starting it");
    start_verified(cfg, &earlier)?;
    forget_stopped(cfg);
    Ok(Some(
        "started the scheduler a holdfast run had left stopped".into(),
    ))
}

/// Whether the scheduler running now is the one a holdfast run stopped, still finishing its
/// agents (the run's note names its pid): it is on its way out, not running.
pub fn draining(cfg: &SchedulerConfig) -> bool {
    let Some(earlier) = stopped_earlier(cfg) else {
        return false;
    };
    earlier.pid.is_some() && scheduler_pid(cfg) == earlier.pid
}

/// Waits for a draining scheduler ([`draining`]) to be gone, then starts it as it ran and
/// proves it runs.
pub fn start_after_drain(cfg: &SchedulerConfig) -> Result<(), SchedulerError> {
    let Some(earlier) = stopped_earlier(cfg) else {
        return Ok(());
    };
    start_verified(cfg, &earlier)?;
    forget_stopped(cfg);
    Ok(())
}

fn forget_stopped(cfg: &SchedulerConfig) {
    let _ = std::fs::remove_file(cfg.stopped_note());
}

/// The program to ask for `--shutdown`/`--kill` under `direct`: the running scheduler's own
/// binary, or the script an interpreter runs (the first of its arguments that is named
/// like the scheduler).
fn direct_binary(cfg: &SchedulerConfig, f: &Found) -> Result<String, SchedulerError> {
    let name = cfg.scheduler_name();
    f.exe
        .clone()
        .filter(|e| e.contains(name))
        .or_else(|| f.argv.iter().find(|a| a.contains(name)).cloned())
        .or_else(|| f.argv.first().cloned())
        .ok_or(SchedulerError::EmptyCommand("stop"))
}

/// The command line to start the scheduler with under `direct`: the one it ran with, from
/// the program on (a script's interpreter left out, so it runs under its own name), the
/// program by its absolute path.
fn direct_command(cfg: &SchedulerConfig, f: &Found) -> Vec<String> {
    let name = cfg.scheduler_name();
    let from = f.argv.iter().position(|a| a.contains(name)).unwrap_or(0);
    let mut argv = f.argv.get(from..).unwrap_or_default().to_vec();
    if let (Some(first), Some(exe)) = (argv.first_mut(), f.exe.as_ref()) {
        if exe.contains(name) {
            *first = exe.clone();
        }
    }
    argv
}

/// Asks the scheduler to stop once its agents have finished.
fn graceful_stop(cfg: &SchedulerConfig, f: &Found) -> Result<(), SchedulerError> {
    let argv = match cfg.control() {
        Control::Init | Control::Systemd => cfg.init("graceful-stop"),
        Control::Direct => vec![direct_binary(cfg, f)?, "--shutdown".into()],
        Control::Commands => cfg.stop_command.clone(),
    };
    tracing::info!(command = %argv.join(" "), "stopping the scheduler once its agents finish");
    run("stop", &argv)
}

/// The kill path: the scheduler stops and kills its agents now.
fn kill(cfg: &SchedulerConfig, f: &Found) -> Result<(), SchedulerError> {
    let argv = match cfg.control() {
        Control::Init => cfg.init("stop"),
        Control::Systemd => cfg.systemctl("stop"),
        Control::Direct => vec![direct_binary(cfg, f)?, "--kill".into()],
        Control::Commands if !cfg.kill_command.is_empty() => cfg.kill_command.clone(),
        Control::Commands => {
            // As `fo_scheduler --kill`: SIGQUIT to every scheduler process.
            for (pid, _) in scheduler_processes(cfg.scheduler_name()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGQUIT,
                );
            }
            return Ok(());
        }
    };
    tracing::warn!(command = %argv.join(" "), "killing the scheduler and its agents");
    run("kill", &argv)
}

/// The command that starts the scheduler the way `f` found it running (`direct`: the same
/// command line).
fn start_argv(cfg: &SchedulerConfig, f: &Found) -> Vec<String> {
    match cfg.control() {
        Control::Init => cfg.init("start"),
        Control::Systemd => cfg.systemctl("start"),
        Control::Commands => cfg.start_command.clone(),
        Control::Direct => direct_command(cfg, f),
    }
}

/// Starts the scheduler the way `f` found it running (`direct`: detached, as it ran).
fn start_as(cfg: &SchedulerConfig, f: &Found) -> Result<(), SchedulerError> {
    let argv = start_argv(cfg, f);
    if cfg.control() == Control::Direct {
        return spawn_detached(&argv);
    }
    tracing::info!(command = %argv.join(" "), "starting the scheduler");
    run("start", &argv)
}

/// Starts the scheduler as configured (`direct`: impossible without a command line found).
pub fn start(cfg: &SchedulerConfig) -> Result<(), SchedulerError> {
    start_as(cfg, &found(cfg))
}

/// How long a started scheduler has to show up, and how long it must then stay: the real
/// `fo_scheduler --daemon` returns 0 before it binds its port, and dies if that fails.
const START_WAIT: Duration = Duration::from_secs(30);
const START_SETTLE: Duration = Duration::from_secs(1);

/// The pid of a scheduler process running now (processes only: systemd's `is-active` says
/// "active" for a unit whose scheduler is gone).
fn scheduler_pid(cfg: &SchedulerConfig) -> Option<i32> {
    scheduler_processes(cfg.scheduler_name())
        .first()
        .map(|(pid, _)| *pid)
}

/// Waits up to `within` until no scheduler process runs.
fn wait_gone(cfg: &SchedulerConfig, within: Duration) -> bool {
    let until = Instant::now() + within;
    while scheduler_pid(cfg).is_some() {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// When a scheduler process showed up, if one does within [`START_WAIT`] and then stays
/// [`START_SETTLE`].
fn came_up(cfg: &SchedulerConfig) -> Option<Instant> {
    let until = Instant::now() + START_WAIT;
    let mut up_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if scheduler_pid(cfg).is_some() {
            let since = *up_since.get_or_insert(now);
            if now.duration_since(since) >= START_SETTLE {
                return Some(since);
            }
        } else {
            up_since = None;
            if now >= until {
                return None;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the scheduler the way `f` found it and proves it runs. A command's exit status
/// proves nothing: the scheduler holdfast stopped may still be finishing its agents (a
/// second one started beside it dies on its port), and systemd keeps the unit it generates
/// from FOSSology's init script "active (exited)" after `fo_scheduler --shutdown`, so its
/// `start` (Debian redirects the init script's `start` to it) starts nothing: then the unit
/// is restarted, which runs its stop and its start.
fn start_verified(cfg: &SchedulerConfig, f: &Found) -> Result<Instant, SchedulerError> {
    if scheduler_pid(cfg).is_some() {
        tracing::info!("waiting for the scheduler to finish its agents before starting it again");
    }
    if !wait_gone(cfg, Duration::from_secs(cfg.stop_timeout_secs)) {
        return Err(SchedulerError::StillDraining {
            secs: cfg.stop_timeout_secs,
        });
    }
    start_as(cfg, f)?;
    if let Some(at) = came_up(cfg) {
        return Ok(at);
    }
    let systemd = cfg.control() == Control::Systemd
        || (cfg.control() == Control::Init && Path::new("/run/systemd/system").is_dir());
    let mut argv = start_argv(cfg, f);
    if systemd {
        argv = cfg.systemctl("restart");
        tracing::warn!(command = %argv.join(" "), "the scheduler did not start: restarting its systemd unit");
        run("start", &argv)?;
        if let Some(at) = came_up(cfg) {
            return Ok(at);
        }
    }
    Err(SchedulerError::NotStarted {
        cmd: argv.join(" "),
        name: cfg.scheduler_name().to_string(),
        secs: (START_WAIT + START_SETTLE).as_secs(),
    })
}

/// Runs a scheduler command line in its own process group, detached from holdfast (its
/// output, `--log /dev/stdout` included, goes nowhere: holdfast's own ends with it).
fn spawn_detached(argv: &[String]) -> Result<(), SchedulerError> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = argv
        .split_first()
        .ok_or(SchedulerError::EmptyCommand("start"))?;
    let cmd_text = argv.join(" ");
    let out = std::process::Stdio::null;
    tracing::info!(command = %cmd_text, "starting the scheduler as it ran before");
    let mut child = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out())
        .stderr(out())
        .process_group(0)
        .spawn()
        .map_err(|source| SchedulerError::Spawn {
            what: "start",
            cmd: cmd_text.clone(),
            source,
        })?;
    // A daemonizing start returns at once; a foreground one must still be running.
    std::thread::sleep(Duration::from_millis(500));
    match child.try_wait() {
        Ok(Some(status)) if !status.success() => Err(SchedulerError::Failed {
            what: "start",
            cmd: cmd_text,
            status,
            stderr: String::new(),
        }),
        _ => Ok(()),
    }
}

/// What the stop found: jobs queued or cut off, to be recorded in the snapshot manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuiesceReport {
    pub waited_secs: f64,
    /// Queue rows that were running when every process was already gone (crash leftovers,
    /// or agents the kill path ended).
    pub stale_running: Vec<crate::db::QueueRow>,
    /// Whether the scheduler was running when holdfast came (it is started again only then).
    #[serde(default)]
    pub was_running: bool,
    /// Whether the graceful stop timed out and the kill path was used.
    #[serde(default)]
    pub killed: bool,
}

/// The scheduler is stopped while this lives; dropping it starts the scheduler again if it
/// was running before.
pub struct Quiesced {
    cfg: SchedulerConfig,
    found: Found,
    restarted: bool,
    pub report: QuiesceReport,
}

impl Quiesced {
    /// Starts the scheduler now if it was running before, and reports the result (drop would
    /// only log it). A scheduler the operator had stopped stays stopped.
    pub fn restart(self) -> Result<(), SchedulerError> {
        self.restart_seen().map(drop)
    }

    /// As [`Quiesced::restart`], and says when the scheduler was seen running again (None:
    /// it was not running before), for the downtime.
    pub fn restart_seen(mut self) -> Result<Option<Instant>, SchedulerError> {
        self.restarted = true;
        if !self.found.running {
            tracing::info!("the scheduler was not running before: leaving it stopped");
            return Ok(None);
        }
        let at = start_verified(&self.cfg, &self.found)?;
        forget_stopped(&self.cfg);
        Ok(Some(at))
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if !self.restarted && self.found.running {
            match start_verified(&self.cfg, &self.found) {
                Ok(_) => forget_stopped(&self.cfg),
                Err(e) => tracing::error!("could not restart the scheduler: {e}"),
            }
        }
    }
}

enum Waited {
    Quiet(Vec<crate::db::QueueRow>),
    Busy(Vec<AgentProcess>, Vec<crate::db::QueueRow>),
}

/// Polls until no scheduler or agent process and no running queue row remain, or `until`.
fn wait_quiet(
    cfg: &SchedulerConfig,
    db: &mut Option<&mut postgres::Client>,
    until: Instant,
) -> Result<Waited, SchedulerError> {
    let grace = Duration::from_secs(cfg.stale_row_grace_secs);
    let mut procs_gone_at: Option<Instant> = None;
    let mut last_log = Instant::now();
    loop {
        crate::interrupt::check()?;
        let procs = running_processes(&cfg.process_names);
        let rows = match db.as_deref_mut() {
            Some(c) => crate::db::running_jobs(c)?,
            None => Vec::new(),
        };
        if procs.is_empty() {
            let since = *procs_gone_at.get_or_insert_with(Instant::now);
            if rows.is_empty() || since.elapsed() >= grace {
                if !rows.is_empty() {
                    tracing::warn!(
                        count = rows.len(),
                        "queue rows marked running but no agent process exists: recording them as cut off"
                    );
                }
                return Ok(Waited::Quiet(rows));
            }
        } else {
            procs_gone_at = None;
        }
        if Instant::now() >= until {
            return Ok(Waited::Busy(procs, rows));
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                processes = procs.len(),
                running_rows = rows.len(),
                "waiting for agents to stop"
            );
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the scheduler gracefully and waits until no agent process and no running queue row
/// remain; after `stop_timeout_secs` the kill path, after `kill_timeout_secs` more an error.
/// On any failure after the stop, a scheduler that was running is started again.
pub fn quiesce(
    cfg: &SchedulerConfig,
    mut db: Option<&mut postgres::Client>,
) -> Result<Quiesced, SchedulerError> {
    let began = Instant::now();
    let mut found = found(cfg);
    if found.running {
        note_stopped(cfg, &found);
    } else if let Some(earlier) = stopped_earlier(cfg) {
        // Not the operator's doing: a run that died left it stopped.
        tracing::warn!(
            "the scheduler is not running because an earlier holdfast run stopped it and died: \
             it will be started again"
        );
        found = Found {
            running: true,
            ..earlier
        };
        let mut guard = Quiesced {
            cfg: cfg.clone(),
            found,
            restarted: false,
            report: QuiesceReport {
                was_running: true,
                ..Default::default()
            },
        };
        return match wait_quiet(
            cfg,
            &mut db,
            began + Duration::from_secs(cfg.stop_timeout_secs),
        )? {
            Waited::Quiet(rows) => {
                guard.report.stale_running = rows;
                guard.report.waited_secs = began.elapsed().as_secs_f64();
                Ok(guard)
            }
            Waited::Busy(procs, rows) => Err(busy(cfg, &procs, &rows)),
        };
    }
    // From here on the guard restarts a running scheduler whatever happens.
    let mut guard = Quiesced {
        cfg: cfg.clone(),
        found: found.clone(),
        restarted: false,
        report: QuiesceReport {
            was_running: found.running,
            ..Default::default()
        },
    };
    if found.running {
        if let Err(e) = graceful_stop(cfg, &found) {
            // It may have exited on its own meanwhile. If not, the failed stop left it as it
            // was: starting it again could make a second scheduler beside the first.
            if self::found(cfg).running {
                guard.found.running = false;
                forget_stopped(cfg);
                return Err(e);
            }
            tracing::warn!("{e}");
        }
    } else {
        tracing::info!("the scheduler is not running; waiting for any agent left over");
    }
    let mut waited = wait_quiet(
        cfg,
        &mut db,
        began + Duration::from_secs(cfg.stop_timeout_secs),
    )?;
    if matches!(waited, Waited::Busy(..)) {
        tracing::warn!(
            secs = cfg.stop_timeout_secs,
            "agents still running after the graceful stop's timeout"
        );
        guard.report.killed = true;
        if let Err(e) = kill(cfg, &found) {
            tracing::warn!("{e}");
        }
        waited = wait_quiet(
            cfg,
            &mut db,
            Instant::now() + Duration::from_secs(cfg.kill_timeout_secs),
        )?;
    }
    match waited {
        Waited::Quiet(rows) => {
            guard.report.waited_secs = began.elapsed().as_secs_f64();
            guard.report.stale_running = rows;
            Ok(guard)
        }
        Waited::Busy(procs, rows) => Err(busy(cfg, &procs, &rows)),
    }
}

/// The error for what still runs after every stop.
fn busy(
    cfg: &SchedulerConfig,
    procs: &[AgentProcess],
    rows: &[crate::db::QueueRow],
) -> SchedulerError {
    let mut what: Vec<String> = procs
        .iter()
        .map(|p| format!("{} (pid {})", p.name, p.pid))
        .collect();
    what.extend(rows.iter().map(|r| {
        format!(
            "job {} {} on upload {}",
            r.jq_pk,
            r.jq_type,
            r.upload_fk.unwrap_or(0)
        )
    }));
    SchedulerError::Timeout {
        secs: cfg.stop_timeout_secs + cfg.kill_timeout_secs,
        what: what.join(", "),
    }
}
