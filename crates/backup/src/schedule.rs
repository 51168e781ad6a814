//! When holdfast runs by itself: systemd timers where systemd runs, cron files elsewhere.
//!
//! FOSSology runs under systemd on every current distribution, so `holdfast schedule install`
//! writes units there: a `.service` that runs one job and a `.timer` with `Persistent=true`
//! (a run missed while the machine was off happens at the next boot) and, for the client
//! backup, `RandomizedDelaySec=` (many clients of one backup server do not all push at
//! 02:30:00). Every way a backup run ends, a kill included, is followed by the service's
//! `ExecStopPost=`, which starts FOSSology's scheduler again if the run left it stopped.
//! A cron file is written only where there is no systemd; it carries the same jobs.
//!
//! A [`Job`] is one scheduled command with a 5-field cron time; both renderings come from it,
//! so the two systems cannot drift apart.

use crate::BackupError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which system runs the jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// systemd when it is the running init (`/run/systemd/system` exists), else cron.
    #[default]
    Auto,
    Systemd,
    Cron,
}

/// `[schedule]` in holdfast.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `auto`, `systemd` or `cron`.
    pub system: System,
    /// Where unit files go.
    pub unit_dir: PathBuf,
    /// Up to this many seconds of random delay before a client backup starts
    /// (`RandomizedDelaySec=`; spreads the clients of one backup server).
    pub random_delay_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            system: System::Auto,
            unit_dir: PathBuf::from("/etc/systemd/system"),
            random_delay_secs: 600,
        }
    }
}

impl ScheduleConfig {
    /// The system to use: `auto` resolved against the running machine.
    pub fn resolve(&self) -> System {
        match self.system {
            System::Auto if systemd_running() => System::Systemd,
            System::Auto => System::Cron,
            s => s,
        }
    }
}

/// sd_booted(3): systemd is PID 1 when this folder exists.
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// A cron daemon that reads `/etc/cron.d` is installed.
pub fn cron_present() -> bool {
    [
        "/usr/sbin/cron",
        "/usr/sbin/crond",
        "/usr/bin/crond",
        "/sbin/crond",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

/// One scheduled holdfast command.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unit name without suffix, e.g. `holdfast-backup`.
    pub unit: String,
    pub description: String,
    /// holdfast's arguments after `--config FILE`, e.g. `["backup"]`.
    pub args: Vec<String>,
    /// 5-field cron time (numbers and `*` only), e.g. `30 2 * * *`.
    pub cron: String,
    /// Random delay for the timer, in seconds (0: none, for jobs whose order matters).
    pub random_delay_secs: u64,
    /// Start FOSSology's scheduler after the run if it was left stopped.
    pub ensure_scheduler: bool,
}

/// The client backup job at `backup.schedule`.
pub fn backup_job(cfg: &crate::BackupConfig, sched: &ScheduleConfig) -> Result<Job, BackupError> {
    let (h, m) = cfg.schedule_time()?;
    Ok(Job {
        unit: "holdfast-backup".into(),
        description: "holdfast backup of this FOSSology site".into(),
        args: vec!["backup".into()],
        cron: format!("{m} {h} * * *"),
        random_delay_secs: sched.random_delay_secs,
        ensure_scheduler: true,
    })
}

/// The weekly content verification of the snapshots at `backup.verify_schedule` (none when
/// it is empty). It only reads the target, so FOSSology's scheduler is left alone.
pub fn verify_job(cfg: &crate::BackupConfig) -> Result<Option<Job>, BackupError> {
    Ok(cfg.verify_time()?.map(|(dow, h, m)| Job {
        unit: "holdfast-verify".into(),
        description: "holdfast verification of this site's snapshots (content against names)"
            .into(),
        args: cfg.verify_args(),
        cron: format!("{m} {h} * * {dow}"),
        random_delay_secs: 0,
        ensure_scheduler: false,
    }))
}

/// A 5-field cron time as a systemd calendar event. Only numbers and `*` are accepted: that
/// is all holdfast's own jobs use, and it keeps the translation exact.
pub fn on_calendar(cron: &str) -> Result<String, BackupError> {
    let bad = |why: &str| BackupError::Config(format!("cron time {cron:?}: {why}"));
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, mon, dow] = f[..] else {
        return Err(bad("needs 5 fields (minute hour day month weekday)"));
    };
    let num = |s: &str, max: u32| -> Result<Option<u32>, BackupError> {
        if s == "*" {
            return Ok(None);
        }
        match s.parse::<u32>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(bad(&format!("{s:?} is not a number up to {max} or *"))),
        }
    };
    let two = |n: Option<u32>| n.map_or("*".to_string(), |n| format!("{n:02}"));
    let (min, hour, dom, mon, dow) = (
        num(min, 59)?,
        num(hour, 23)?,
        num(dom, 31)?,
        num(mon, 12)?,
        num(dow, 7)?,
    );
    let day = match dow {
        None => String::new(),
        Some(d) => format!(
            "{} ",
            ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d as usize]
        ),
    };
    Ok(format!(
        "{day}*-{}-{} {}:{}:00",
        two(mon),
        two(dom),
        two(hour),
        two(min)
    ))
}

/// The full command line of a job (argv, no shell).
fn argv(exe: &Path, config: &Path, args: &[String]) -> Vec<String> {
    let mut v = vec![
        exe.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "--syslog".into(),
    ];
    v.extend(args.iter().cloned());
    v
}

/// systemd's command-line quoting: words with spaces or quotes in double quotes.
fn exec_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'\\;$%".contains(c)) {
                format!(
                    "\"{}\"",
                    a.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('$', "$$")
                        .replace('%', "%%")
                )
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A unit file to write: its name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub text: String,
}

const HEADER: &str =
    "# Written by `holdfast schedule install`; change holdfast.toml and run it again.\n";

/// The `.service` and `.timer` of a job.
pub fn job_units(job: &Job, exe: &Path, config: &Path) -> Result<[UnitFile; 2], BackupError> {
    let cal = on_calendar(&job.cron)?;
    let mut service = format!(
        "{HEADER}[Unit]\nDescription={}\nAfter=network-online.target postgresql.service\n\
         Wants=network-online.target\n\n[Service]\nType=oneshot\nExecStart={}\n",
        job.description,
        exec_line(&argv(exe, config, &job.args))
    );
    if job.ensure_scheduler {
        service.push_str(&format!(
            "# After every way out, a kill included: start FOSSology's scheduler if the run\n\
             # left it stopped.\nExecStopPost={}\n",
            exec_line(&argv(exe, config, &["scheduler".into(), "ensure".into()]))
        ));
    }
    service.push_str(
        "# SIGTERM to holdfast alone first, so it stops its children in order and cleans up.\n\
         KillMode=mixed\nTimeoutStopSec=300\nNice=10\nIOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\nPrivateTmp=yes\nNoNewPrivileges=yes\n",
    );
    let mut timer = format!(
        "{HEADER}[Unit]\nDescription=Timer for {}\n\n[Timer]\nOnCalendar={cal}\nPersistent=true\n",
        job.description
    );
    if job.random_delay_secs > 0 {
        timer.push_str(&format!("RandomizedDelaySec={}\n", job.random_delay_secs));
    }
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    Ok([
        UnitFile {
            name: format!("{}.service", job.unit),
            text: service,
        },
        UnitFile {
            name: format!("{}.timer", job.unit),
            text: timer,
        },
    ])
}

/// `holdfast-serve.service`: the web pages, API and metrics, restarted if they fail.
pub fn serve_unit(exe: &Path, config: &Path, extra: &[String]) -> UnitFile {
    let mut args = vec!["serve".to_string()];
    args.extend(extra.iter().cloned());
    UnitFile {
        name: "holdfast-serve.service".into(),
        text: format!(
            "{HEADER}[Unit]\nDescription=holdfast web pages, API and metrics\n\
             After=network-online.target postgresql.service\nWants=network-online.target\n\n\
             [Service]\nType=simple\nExecStart={}\nRestart=on-failure\nRestartSec=5\n\
             PrivateTmp=yes\nNoNewPrivileges=yes\nProtectHome=read-only\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            exec_line(&argv(exe, config, &args))
        ),
    }
}

/// The cron file with the same jobs (for machines without systemd). A line per job, as
/// root; `-q` so cron mails only failures. The backup line is followed by `scheduler ensure`,
/// which runs however the backup ended.
pub fn cron_text(jobs: &[Job], exe: &Path, config: &Path) -> String {
    let mut s = format!(
        "# Written by `holdfast schedule install`; change holdfast.toml ({}) and run it again.\n\
         SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        config.display()
    );
    let sh = |a: &[String]| {
        let mut v = argv(exe, config, a);
        v.insert(4, "-q".into());
        v.iter()
            .map(|w| holdfast_core::shell::quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for j in jobs {
        s.push_str(&format!("{} root {}", j.cron, sh(&j.args)));
        if j.ensure_scheduler {
            s.push_str(&format!("; {}", sh(&["scheduler".into(), "ensure".into()])));
        }
        s.push('\n');
    }
    s
}

/// Writes a file atomically with mode 0644 (cron and systemd want it readable, not writable
/// by others).
pub fn write_file(path: &Path, text: &str) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("holdfast-tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes unit files into `dir` and enables them the way `systemctl enable` does (a link in
/// `timers.target.wants/` or `multi-user.target.wants/`), which works without a running
/// systemd too (a chroot, an image being built). Returns the paths written.
pub fn install_units(dir: &Path, units: &[UnitFile]) -> Result<Vec<PathBuf>, BackupError> {
    let mut written = Vec::new();
    for u in units {
        let path = dir.join(&u.name);
        write_file(&path, &u.text)?;
        written.push(path);
        let wanted_by = u
            .text
            .lines()
            .find_map(|l| l.strip_prefix("WantedBy="))
            .map(str::trim);
        if let Some(target) = wanted_by {
            let wants = dir.join(format!("{target}.wants"));
            let io = |source| BackupError::Io {
                path: wants.display().to_string(),
                source,
            };
            std::fs::create_dir_all(&wants).map_err(io)?;
            let link = wants.join(&u.name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../{}", u.name), &link).map_err(io)?;
        }
    }
    Ok(written)
}

/// Whether a unit is enabled in `dir` (its `.wants` link exists).
pub fn unit_enabled(dir: &Path, unit: &str, target: &str) -> bool {
    dir.join(format!("{target}.wants"))
        .join(unit)
        .symlink_metadata()
        .is_ok()
}

/// True when `path` is a cron file holdfast wrote (safe to remove when moving to systemd).
pub fn is_holdfast_cron(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| is_holdfast_cron_text(&t))
}

/// True when `text` is a cron file [`cron_text`] wrote.
pub fn is_holdfast_cron_text(text: &str) -> bool {
    text.starts_with("# Written by `holdfast schedule install`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupConfig;

    #[test]
    fn the_weekly_verify_job() {
        let cfg = crate::BackupConfig {
            verify_schedule: "Sun 04:30".into(),
            verify_sample_percent: 20.0,
            ..Default::default()
        };
        let j = verify_job(&cfg).unwrap().unwrap();
        assert_eq!(j.cron, "30 4 * * 0");
        assert_eq!(on_calendar(&j.cron).unwrap(), "Sun *-*-* 04:30:00");
        assert_eq!(j.args, ["verify", "--all", "--sample=20%"]);
        let off = crate::BackupConfig {
            verify_schedule: String::new(),
            ..Default::default()
        };
        assert!(verify_job(&off).unwrap().is_none());
    }

    #[test]
    fn cron_times_become_calendar_events() {
        assert_eq!(on_calendar("30 2 * * *").unwrap(), "*-*-* 02:30:00");
        assert_eq!(on_calendar("20 5 * * 1").unwrap(), "Mon *-*-* 05:20:00");
        assert_eq!(on_calendar("0 5 1 1 *").unwrap(), "*-01-01 05:00:00");
        assert_eq!(on_calendar("0 * * * *").unwrap(), "*-*-* *:00:00");
        assert!(on_calendar("*/5 * * * *").is_err());
        assert!(on_calendar("30 25 * * *").is_err());
        assert!(on_calendar("30 2 * *").is_err());
    }

    #[test]
    fn backup_units_and_cron_use_the_configured_time() {
        let cfg = BackupConfig {
            schedule: "03:05".into(),
            ..Default::default()
        };
        let job = backup_job(&cfg, &ScheduleConfig::default()).unwrap();
        let [svc, timer] = job_units(
            &job,
            Path::new("/usr/bin/holdfast"),
            Path::new("/etc/h.toml"),
        )
        .unwrap();
        assert!(svc
            .text
            .contains("ExecStart=/usr/bin/holdfast --config /etc/h.toml --syslog backup\n"));
        assert!(svc.text.contains(
            "ExecStopPost=/usr/bin/holdfast --config /etc/h.toml --syslog scheduler ensure\n"
        ));
        assert!(timer.text.contains("OnCalendar=*-*-* 03:05:00\n"));
        assert!(timer.text.contains("Persistent=true\n"));
        assert!(timer.text.contains("RandomizedDelaySec=600\n"));
        let cron = cron_text(
            &[job],
            Path::new("/usr/bin/holdfast"),
            Path::new("/etc/my conf.toml"),
        );
        assert!(
            cron.contains("\n5 3 * * * root /usr/bin/holdfast --config '/etc/my conf.toml' --syslog -q backup; /usr/bin/holdfast --config '/etc/my conf.toml' --syslog -q scheduler ensure\n"),
            "{cron}"
        );
        let bad = BackupConfig {
            schedule: "25:00".into(),
            ..Default::default()
        };
        assert!(backup_job(&bad, &ScheduleConfig::default()).is_err());
    }

    #[test]
    fn exec_lines_quote_what_systemd_would_split_or_expand() {
        let l = exec_line(&["/a b/holdfast".into(), "100%".into(), "$x".into()]);
        assert_eq!(l, "\"/a b/holdfast\" \"100%%\" \"$$x\"");
    }
}
