//! Stopping FOSSology's scheduler and proving that every agent is gone.
//!
//! `fo_scheduler --kill` and the init script return before the processes have exited, so a
//! stop is followed by polling: no scheduler or agent process may remain (read from `/proc`),
//! and no `jobqueue` row may still be running. [`Quiesced`] restarts the scheduler when it is
//! dropped, so every path out of a backup (success, error, signal) starts it again.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Command (argv, no shell) that asks the scheduler to stop once agents finish.
    pub stop_command: Vec<String>,
    /// Command that starts the scheduler again.
    pub start_command: Vec<String>,
    /// Process names (as in /proc/PID/comm) of the scheduler and its agents.
    pub process_names: Vec<String>,
    /// How long to wait for everything to stop before abandoning the backup.
    pub stop_timeout_secs: u64,
    /// Queue rows still marked running once every process is gone are crash leftovers:
    /// after this long they are recorded as unfinished instead of waited for.
    pub stale_row_grace_secs: u64,
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
            "spdx2",
            "spdx2tv",
            "dep5",
            "unifiedreport",
            "readmeoss",
            "decider",
            "deciderjob",
            "reuser",
            "clixml",
            "cyclonedx",
            "scancode",
        ];
        SchedulerConfig {
            stop_command: vec!["/etc/init.d/fossology".into(), "graceful-stop".into()],
            start_command: vec!["/etc/init.d/fossology".into(), "start".into()],
            process_names: agents.iter().map(|s| s.to_string()).collect(),
            stop_timeout_secs: 600,
            stale_row_grace_secs: 10,
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
    #[error("agents still running after {secs} s, backup abandoned: {what}")]
    Timeout { secs: u64, what: String },
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

/// Runs a command, retrying briefly on ETXTBSY: a script written a moment ago can still be
/// held open for writing by a child another thread forked before it exec'd.
pub fn output_retrying(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

pub fn start(cfg: &SchedulerConfig) -> Result<(), SchedulerError> {
    tracing::info!(command = %cfg.start_command.join(" "), "starting the scheduler");
    run("start", &cfg.start_command)
}

/// What the stop found: jobs queued or cut off, to be recorded in the snapshot manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuiesceReport {
    pub waited_secs: f64,
    /// Queue rows that were running when every process was already gone (crash leftovers).
    pub stale_running: Vec<crate::db::QueueRow>,
}

/// The scheduler is stopped while this lives; dropping it starts the scheduler again.
pub struct Quiesced {
    cfg: SchedulerConfig,
    restarted: bool,
    pub report: QuiesceReport,
}

impl Quiesced {
    /// Starts the scheduler now and reports the result (drop would only log it).
    pub fn restart(mut self) -> Result<(), SchedulerError> {
        self.restarted = true;
        start(&self.cfg)
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if !self.restarted {
            if let Err(e) = start(&self.cfg) {
                tracing::error!("could not restart the scheduler: {e}");
            }
        }
    }
}

/// Stops the scheduler and waits until no agent process and no running queue row remain.
/// On any failure after the stop command ran, the scheduler is started again before returning.
pub fn quiesce(
    cfg: &SchedulerConfig,
    mut db: Option<&mut postgres::Client>,
) -> Result<Quiesced, SchedulerError> {
    let began = Instant::now();
    tracing::info!(command = %cfg.stop_command.join(" "), "stopping the scheduler");
    // A stop command that failed leaves the scheduler as it was: starting it then could
    // make a second scheduler beside the first, so the guard exists only once it succeeded.
    run("stop", &cfg.stop_command)?;
    // From here on the guard restarts the scheduler whatever happens.
    let mut guard = Quiesced {
        cfg: cfg.clone(),
        restarted: false,
        report: QuiesceReport::default(),
    };
    let timeout = Duration::from_secs(cfg.stop_timeout_secs);
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
                guard.report = QuiesceReport {
                    waited_secs: began.elapsed().as_secs_f64(),
                    stale_running: rows,
                };
                return Ok(guard);
            }
        } else {
            procs_gone_at = None;
        }
        if began.elapsed() >= timeout {
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
            return Err(SchedulerError::Timeout {
                secs: cfg.stop_timeout_secs,
                what: what.join(", "),
            });
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
