//! `holdfast schedule install|show`: systemd timers (or, without systemd, cron files) for the
//! nightly backup, the backup server's jobs and `holdfast serve`.

use crate::config::Context;
use crate::exit;
use anyhow::Context as _;
use holdfast_backup::schedule::{self as sched, Job, System, UnitFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Install the jobs: systemd units where systemd runs ([schedule] system), else a cron file.
    #[command(
        long_about = "Installs the jobs. With systemd (the default where it is the running init, \
see [schedule] system): holdfast-backup.service + .timer (Persistent=true, a random delay of up \
to [schedule] random_delay_secs, and ExecStopPost= that starts FOSSology's scheduler if the run \
left it stopped), enabled; a holdfast cron file written earlier is removed so nothing runs twice. \
Without systemd: the cron file backup.cron_file.\n\n\
--server adds the backup server's jobs (snapshots, size, check; one timer each), --serve \
the holdfast-serve.service. --no-backup leaves the client backup out (a backup server)."
    )]
    Install {
        /// Also install the backup server's jobs.
        #[arg(long)]
        server: bool,
        /// Also install holdfast-serve.service (systemd only).
        #[arg(long)]
        serve: bool,
        /// Leave the client backup out.
        #[arg(long)]
        no_backup: bool,
        /// `systemd` or `cron` instead of [schedule] system.
        #[arg(long, value_parser = ["auto", "systemd", "cron"])]
        system: Option<String>,
        /// Cron file to write instead of backup.cron_file.
        #[arg(long, visible_alias = "cron-file")]
        file: Option<PathBuf>,
        /// Print what would be written without writing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Say which scheduling is active (systemd timer or cron file) and print it.
    Show {
        /// Cron file to read instead of backup.cron_file.
        #[arg(long, visible_alias = "cron-file")]
        file: Option<PathBuf>,
    },
}

struct Plan {
    system: System,
    jobs: Vec<Job>,
    serve: bool,
}

fn exe() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/holdfast"))
}

fn config_path(ctx: &Context) -> PathBuf {
    std::path::absolute(&ctx.path).unwrap_or_else(|_| ctx.path.clone())
}

/// The backup server's jobs (`holdfast server ...`), one timer each, no random delay: their
/// order matters.
pub fn server_jobs() -> Vec<Job> {
    holdfast_server::jobs::JOBS
        .iter()
        .map(|(cron, unit, args)| Job {
            unit: format!("holdfast-server-{unit}"),
            description: format!("holdfast backup server: {args}"),
            args: std::iter::once("server".to_string())
                .chain(args.split_whitespace().map(String::from))
                .collect(),
            cron: cron.to_string(),
            random_delay_secs: 0,
            ensure_scheduler: false,
        })
        .collect()
}

fn units(plan: &Plan, exe: &Path, config: &Path) -> anyhow::Result<Vec<UnitFile>> {
    let mut out = Vec::new();
    for j in &plan.jobs {
        out.extend(sched::job_units(j, exe, config)?);
    }
    if plan.serve {
        out.push(sched::serve_unit(exe, config, &[]));
    }
    Ok(out)
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.backup;
    let sc = &ctx.config.schedule;
    let exe = exe();
    let config = config_path(ctx);
    match cmd {
        Cmd::Install {
            server,
            serve,
            no_backup,
            system,
            file,
            dry_run,
        } => {
            let mut s = sc.clone();
            if let Some(v) = system {
                s.system = match v.as_str() {
                    "systemd" => System::Systemd,
                    "cron" => System::Cron,
                    _ => System::Auto,
                };
            }
            let mut jobs = Vec::new();
            if !no_backup {
                jobs.push(sched::backup_job(cfg, sc)?);
                jobs.extend(sched::verify_job(cfg)?);
            }
            if server {
                jobs.extend(server_jobs());
            }
            let plan = Plan {
                system: s.resolve(),
                jobs,
                serve,
            };
            let cron_file = file.unwrap_or_else(|| cfg.cron_file.clone());
            match plan.system {
                System::Cron => {
                    if plan.serve {
                        anyhow::bail!(
                            "holdfast serve runs as a systemd service; without systemd start \
                             `holdfast serve` from your init system (or pass --system systemd to \
                             write the unit anyway)"
                        );
                    }
                    let text = sched::cron_text(&plan.jobs, &exe, &config);
                    let stale = if server {
                        other_server_crons(
                            Some(&cron_file),
                            &[&cfg.cron_file, &ctx.config.server.cron_file],
                        )?
                    } else {
                        Vec::new()
                    };
                    if dry_run {
                        println!("would write {}:\n{text}", cron_file.display());
                        for p in &stale {
                            println!("would remove {} (its server jobs move here)", p.display());
                        }
                    } else {
                        sched::write_file(&cron_file, &text)?;
                        println!("wrote {} (cron)", cron_file.display());
                        remove_replaced(&stale, "its server jobs moved to the new cron file")?;
                        if !sched::cron_present() {
                            tracing::warn!(
                                "no cron daemon found (/usr/sbin/cron): install cron, or use \
                                 systemd ([schedule] system = \"systemd\")"
                            );
                        }
                    }
                }
                _ => {
                    let files = units(&plan, &exe, &config)?;
                    if dry_run {
                        for u in &files {
                            println!(
                                "would write {}:\n{}",
                                s.unit_dir.join(&u.name).display(),
                                u.text
                            );
                        }
                        return Ok(exit::code(exit::OK));
                    }
                    for p in sched::install_units(&s.unit_dir, &files)? {
                        println!("wrote {}", p.display());
                    }
                    if server {
                        // The backup's own cron file goes below when the backup is installed.
                        let mut candidates = vec![
                            cron_file.as_path(),
                            ctx.config.server.cron_file.as_path(),
                            cfg.cron_file.as_path(),
                        ];
                        if !no_backup {
                            candidates.retain(|p| *p != cfg.cron_file.as_path());
                        }
                        let stale = other_server_crons(None, &candidates)?;
                        remove_replaced(&stale, "systemd timers replace its server jobs")?;
                    }
                    // One scheduler only: a cron file holdfast wrote would run the backup twice.
                    if !no_backup && sched::is_holdfast_cron(&cron_file) {
                        std::fs::remove_file(&cron_file).with_context(|| {
                            format!("cannot remove the old cron file {}", cron_file.display())
                        })?;
                        println!(
                            "removed {} (systemd timers replace it)",
                            cron_file.display()
                        );
                    }
                    activate(&s.unit_dir, &files)?;
                }
            }
        }
        Cmd::Show { file } => {
            let cron_file = file.unwrap_or_else(|| cfg.cron_file.clone());
            show(ctx, &cron_file, &exe, &config)?;
        }
    }
    Ok(exit::code(exit::OK))
}

/// Whether `path` is a cron file holdfast wrote (either command) that holds the server jobs,
/// and whether it holds other jobs too.
fn server_cron(path: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(path).ok()?;
    // The second header: the file `server schedule install` wrote before it became this.
    let ours =
        sched::is_holdfast_cron_text(&text) || text.starts_with("# holdfast backup server jobs;");
    let jobs: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('=') && !l.trim().is_empty())
        .collect();
    let server = |l: &&str| l.contains(" server ");
    (ours && jobs.iter().any(server)).then(|| !jobs.iter().all(server))
}

/// The server jobs live in one place: the holdfast cron files other than `keep` that hold
/// them (the two commands' defaults), to remove once the new place is written. A file that
/// holds other jobs too is not removed: the install is refused, naming it.
fn other_server_crons(keep: Option<&Path>, candidates: &[&Path]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for &p in candidates {
        let p = p.to_path_buf();
        if keep == Some(p.as_path()) || out.contains(&p) {
            continue;
        }
        match server_cron(&p) {
            Some(false) => out.push(p),
            Some(true) => anyhow::bail!(
                "{} already holds the backup server's jobs beside others: the jobs would run \
                 twice; install them there (`holdfast schedule install --server`) or take \
                 them out of it first",
                p.display()
            ),
            None => {}
        }
    }
    Ok(out)
}

fn remove_replaced(files: &[PathBuf], why: &str) -> anyhow::Result<()> {
    for p in files {
        std::fs::remove_file(p).with_context(|| format!("cannot remove {}", p.display()))?;
        println!("removed {} ({why})", p.display());
    }
    Ok(())
}

/// With systemd running (and the default unit folder): reload and start the timers and
/// the service now, as `systemctl enable --now` would.
fn activate(dir: &Path, files: &[UnitFile]) -> anyhow::Result<()> {
    if !sched::systemd_running() || dir != Path::new("/etc/systemd/system") {
        println!("enabled (links in {}); systemd picks them up at its next start or `systemctl daemon-reload`", dir.display());
        return Ok(());
    }
    let systemctl = |args: &[&str]| -> anyhow::Result<()> {
        let st = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .context("cannot run systemctl")?;
        anyhow::ensure!(st.success(), "systemctl {} failed: {st}", args.join(" "));
        Ok(())
    };
    systemctl(&["daemon-reload"])?;
    for u in files {
        if u.name.ends_with(".timer") || u.name == "holdfast-serve.service" {
            systemctl(&["restart", &u.name])?;
            println!("started {}", u.name);
        }
    }
    Ok(())
}

fn show(ctx: &Context, cron_file: &Path, exe: &Path, config: &Path) -> anyhow::Result<()> {
    let sc = &ctx.config.schedule;
    let dir = &sc.unit_dir;
    let timer = "holdfast-backup.timer";
    let timer_on = sched::unit_enabled(dir, timer, "timers.target");
    let cron_on = cron_file.exists();
    let systemd = sched::systemd_running();
    println!(
        "system: {} (schedule.system = {:?})",
        if systemd {
            "systemd is running"
        } else if sched::cron_present() {
            "no systemd; cron is installed"
        } else {
            "no systemd and no cron daemon found"
        },
        sc.system
    );
    let active = match (timer_on, cron_on) {
        (true, true) => "BOTH a systemd timer and a cron file: the backup would run twice; run `holdfast schedule install` again to keep one".to_string(),
        (true, false) if systemd => format!("systemd timer {timer} (enabled in {})", dir.display()),
        (true, false) => format!("systemd timer {timer} is enabled in {}, but systemd is not running here", dir.display()),
        (false, true) if sched::cron_present() => format!("cron file {}", cron_file.display()),
        (false, true) => format!("cron file {}, but no cron daemon is installed to run it", cron_file.display()),
        (false, false) => "nothing: no backup is scheduled; `holdfast schedule install` installs one".to_string(),
    };
    println!("active: {active}");
    if timer_on {
        for name in [timer, "holdfast-backup.service"] {
            let p = dir.join(name);
            println!(
                "\n# {}\n{}",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            );
        }
        if systemd {
            let _ = std::process::Command::new("systemctl")
                .args(["list-timers", "--no-pager", "holdfast-*"])
                .status();
        }
    }
    if cron_on {
        println!("\n# {}", cron_file.display());
        print!("{}", std::fs::read_to_string(cron_file)?);
    }
    let server = ctx.config.server.cron_file.as_path();
    if server != cron_file && server.exists() {
        println!("\n# {} (backup server jobs)", server.display());
        print!("{}", std::fs::read_to_string(server)?);
    }
    if !timer_on && !cron_on {
        let job = sched::backup_job(&ctx.config.backup, sc)?;
        match sc.resolve() {
            System::Cron => print!("{}", sched::cron_text(&[job], exe, config)),
            _ => {
                for u in sched::job_units(&job, exe, config)? {
                    println!("# {}\n{}", u.name, u.text);
                }
            }
        }
    }
    Ok(())
}
