//! `holdfast server ...`: the backup server side (accounts, snapshots, sizes, quota, cron).
//! `check` lives in `server_check.rs`. The work is in `holdfast_server`; this file parses
//! options, opens the directory `[server]` names and prints results.

use crate::config::Context;
use crate::exit;
use anyhow::Context as _;
use holdfast_server::directory::Directory;
use holdfast_server::{homes, jobs, size, snapshot};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Run the warning checks (quota, schedule, unsuccessful, upgrade, nobackup) and mail them.
    Check(super::server_check::Args),
    /// Backup accounts: create homes, show one, list this server's.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Rotate every account's incoming/ into .snapshots/<interval>.<n> (rsnapshot style).
    Snapshot(SnapshotArgs),
    /// Count each account's backup and snapshot bytes and write them to the directory
    /// (sstBackupSize, sstIncrementSize).
    Size(SizeArgs),
    /// Print `quota backup snapshot` in MiB for an account, like the jail's getQuota
    /// (quota rounded down, used sizes up).
    Quota(QuotaArgs),
    /// Cron entries for the server jobs (snapshots, sizes, checks).
    #[command(subcommand)]
    Schedule(ScheduleCmd),
}

#[derive(clap::Subcommand)]
pub enum AccountCmd {
    /// Create (or repair) an account's home: incoming/, .snapshots/, .ssh/authorized_keys,
    /// owners and modes. The account must exist in the directory.
    Add {
        /// Account uid (e.g. 4000001).
        uid: String,
        /// File with OpenSSH public keys to authorize (may be repeated).
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an account: directory attributes, home, prefixes, snapshots, last sizes.
    Show {
        uid: String,
        #[arg(long)]
        json: bool,
    },
    /// List the accounts this server handles (host = [server] host).
    List {
        /// All accounts in the directory, whatever their host.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// Interval to rotate: hourly, daily, weekly, monthly or yearly.
    #[arg(long, default_value = "daily", value_parser = ["hourly", "daily", "weekly", "monthly", "yearly"])]
    interval: String,
    /// Only this account.
    #[arg(long, value_name = "UID")]
    account: Option<String>,
    /// Show what would be created, expired and refreshed into the new snapshot; change
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave expired snapshots in <home>/.holdfast/trash (the next run empties it). The one
    /// refreshed into the new snapshot is not among them.
    #[arg(long)]
    keep_trash: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SizeArgs {
    /// Only this account.
    #[arg(long, value_name = "UID")]
    account: Option<String>,
    /// Measure and print only; do not write the directory.
    #[arg(long, visible_alias = "dry-run")]
    no_write: bool,
    /// Walk every snapshot again instead of using the scans kept for rotated snapshots.
    #[arg(long)]
    full: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct QuotaArgs {
    /// Account uid.
    #[arg(required_unless_present = "getquota_script")]
    uid: Option<String>,
    /// Print the `/bin/getQuota` script to install in the accounts' jail instead: it prints
    /// the line `holdfast server size` writes into each home (`.quota`), so a client over
    /// its ssh key sees the same numbers as this command.
    #[arg(long)]
    getquota_script: bool,
    /// Measure the home now instead of using the sizes stored in the directory.
    #[arg(long)]
    measure: bool,
}

#[derive(clap::Subcommand)]
pub enum ScheduleCmd {
    /// Install the server's jobs (as `holdfast schedule install --server --no-backup` does):
    /// one systemd timer each where systemd runs ([schedule] system), else the cron file
    /// (default /etc/cron.d/holdfast-server), as root. Another holdfast cron file holding
    /// them is removed, so no job runs twice.
    Install {
        /// Cron file to write (without systemd) instead of server.cron_file; with systemd, a
        /// holdfast cron file found there is removed so no job runs twice.
        #[arg(long)]
        cron_file: Option<PathBuf>,
        /// `systemd` or `cron` instead of [schedule] system.
        #[arg(long, value_parser = ["auto", "systemd", "cron"])]
        system: Option<String>,
        /// Print what would be written instead of writing it.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.server;
    match cmd {
        Cmd::Check(a) => super::server_check::run(a, ctx),
        Cmd::Account(c) => account(c, ctx),
        Cmd::Snapshot(a) => {
            let dir = open(ctx)?;
            if a.dry_run {
                return snapshot_plan(&a, ctx, &dir);
            }
            let r = job(jobs::snapshot_all(
                cfg,
                &dir,
                &a.interval,
                a.account.as_deref(),
                a.keep_trash,
            ))?;
            print_report(&r, a.json, |o| {
                let d = &o.detail;
                if let Some(s) = d.get("skipped").and_then(|v| v.as_str()) {
                    return format!("skipped: {s}");
                }
                let mut line = match d.get("created").and_then(|v| v.as_str()) {
                    Some(c) => format!(
                        "{c} from {}",
                        d.get("source").and_then(|v| v.as_str()).unwrap_or("?")
                    ),
                    None => "nothing new".into(),
                };
                if let Some(e) = d.get("expired").and_then(|v| v.as_array()) {
                    if !e.is_empty() {
                        let names: Vec<_> = e.iter().filter_map(|v| v.as_str()).collect();
                        line += &format!(", expired {}", names.join(" "));
                    }
                }
                if let Some(r) = d.get("repaired").and_then(|v| v.as_array()) {
                    if !r.is_empty() {
                        let names: Vec<_> = r.iter().filter_map(|v| v.as_str()).collect();
                        line += &format!(" (repaired: {})", names.join("; "));
                    }
                }
                line
            })
        }
        Cmd::Size(a) => {
            let dir = open(ctx)?;
            let r = job(jobs::size_all(
                cfg,
                &dir,
                a.account.as_deref(),
                !a.no_write,
                a.full,
            ))?;
            print_report(&r, a.json, |o| {
                let b = o.detail["backup"]["apparent"].as_u64().unwrap_or(0);
                let s = o.detail["snapshots"]["apparent"].as_u64().unwrap_or(0);
                format!("backup {b} bytes, snapshots only {s} bytes")
            })
        }
        Cmd::Quota(a) => {
            let Some(uid) = a.uid.as_deref().filter(|_| !a.getquota_script) else {
                print!("{}", size::GETQUOTA_SCRIPT);
                return Ok(exit::code(exit::OK));
            };
            let dir = open(ctx)?;
            let acc = dir
                .account(uid)?
                .with_context(|| format!("no backup account {uid} in {}", dir.source()))?;
            let (backup, snaps) = if a.measure {
                let home = homes::home_of(&acc, &cfg.homes_root)?;
                let s = size::measure(&home)?;
                (s.backup.apparent, s.snapshots.apparent)
            } else {
                (
                    acc.backup_size.unwrap_or(0),
                    acc.increment_size.unwrap_or(0),
                )
            };
            println!(
                "{}",
                size::quota_line(acc.quota.unwrap_or(0), backup, snaps)
            );
            Ok(exit::code(exit::OK))
        }
        Cmd::Schedule(ScheduleCmd::Install {
            cron_file,
            system,
            dry_run,
        }) => {
            let mut sc = ctx.config.schedule.clone();
            if let Some(v) = &system {
                sc.system = match v.as_str() {
                    "systemd" => holdfast_backup::schedule::System::Systemd,
                    "cron" => holdfast_backup::schedule::System::Cron,
                    _ => holdfast_backup::schedule::System::Auto,
                };
            }
            // One implementation with `schedule install --server`: the same lines (`-q`,
            // `--syslog`), and the server jobs kept in one place whichever command ran last.
            let systemd = sc.resolve() == holdfast_backup::schedule::System::Systemd;
            super::schedule::run(
                super::schedule::Cmd::Install {
                    server: true,
                    serve: false,
                    no_backup: true,
                    system: Some(if systemd { "systemd" } else { "cron" }.into()),
                    file: Some(cron_file.unwrap_or_else(|| cfg.cron_file.clone())),
                    dry_run,
                },
                ctx,
            )
        }
    }
}

/// A held job lock is exit code 4, like every other lock.
fn job(r: Result<jobs::JobReport, jobs::JobError>) -> anyhow::Result<jobs::JobReport> {
    match r {
        Err(jobs::JobError::Lock(e @ holdfast_core::lock::LockError::Held { .. })) => {
            Err(exit::CodedError {
                code: exit::LOCKED,
                message: e.to_string(),
            }
            .into())
        }
        r => Ok(r?),
    }
}

fn open(ctx: &Context) -> anyhow::Result<Directory> {
    let dir = Directory::open(&ctx.config.server)?;
    tracing::debug!("directory: {}", dir.source());
    Ok(dir)
}

fn print_report(
    r: &jobs::JobReport,
    json: bool,
    ok_line: impl Fn(&jobs::Outcome) -> String,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        if r.outcomes.is_empty() {
            println!("no accounts with host {} in the directory", r.host);
        }
        for o in &r.outcomes {
            match &o.error {
                Some(e) => println!("{}: ERROR {e}", o.uid),
                None => println!("{}: {}", o.uid, ok_line(o)),
            }
        }
        if r.purged > 0 {
            println!("emptied the trash: {} entries removed", r.purged);
        }
    }
    if r.interrupted {
        return Err(holdfast_site::interrupt::Interrupted.into());
    }
    let failed = r.errors();
    if failed > 0 {
        eprintln!(
            "holdfast: {} of {} accounts failed ({})",
            failed,
            r.outcomes.len(),
            r.job
        );
        return Ok(exit::code(exit::INCOMPLETE));
    }
    Ok(exit::code(exit::OK))
}

fn snapshot_plan(a: &SnapshotArgs, ctx: &Context, dir: &Directory) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.server;
    let accounts = match &a.account {
        Some(uid) => vec![dir
            .account(uid)?
            .with_context(|| format!("no backup account {uid} in {}", dir.source()))?],
        None => dir.accounts_for_host(&cfg.host_name())?,
    };
    let mut plans = vec![];
    for acc in &accounts {
        let res = homes::home_of(acc, &cfg.homes_root)
            .map_err(anyhow::Error::from)
            .and_then(|h| Ok(snapshot::plan(&h, &acc.intervals, &a.interval)?));
        match res {
            Ok(p) => {
                if !a.json {
                    let what = match (&p.skipped, &p.created) {
                        (Some(s), _) => format!("would skip: {s}"),
                        (None, Some(c)) => format!(
                            "would create {c} from {}{}{}",
                            p.source.as_deref().unwrap_or("?"),
                            if p.expired.is_empty() {
                                String::new()
                            } else {
                                format!(", expire {}", p.expired.join(" "))
                            },
                            match &p.recycled {
                                Some(r) => format!(" ({r} refreshed into it)"),
                                None => String::new(),
                            }
                        ),
                        _ => "nothing to do".into(),
                    };
                    println!("{}: {what}", acc.uid);
                }
                plans.push(serde_json::json!({"uid": acc.uid, "plan": p}));
            }
            Err(e) => {
                if !a.json {
                    println!("{}: ERROR {e:#}", acc.uid);
                }
                plans.push(serde_json::json!({"uid": acc.uid, "error": format!("{e:#}")}));
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    }
    Ok(exit::code(exit::OK))
}

fn account(c: AccountCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.server;
    let dir = open(ctx)?;
    match c {
        AccountCmd::Add { uid, keys, json } => {
            let acc = dir.account(&uid)?.with_context(|| {
                format!(
                    "no backup account {uid} in {}: add its entry to the directory first",
                    dir.source()
                )
            })?;
            let mut all = vec![];
            for f in &keys {
                all.extend(homes::read_keys(&uid, f)?);
            }
            let r = homes::ensure_home(&acc, &cfg.homes_root, &all)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}: home {}", uid, r.home.display());
                for p in &r.created {
                    println!("  created {}", p.display());
                }
                if r.keys_added > 0 {
                    println!("  authorized {} key(s)", r.keys_added);
                }
                for w in &r.warnings {
                    println!("  warning: {w}");
                }
            }
            Ok(exit::code(exit::OK))
        }
        AccountCmd::Show { uid, json } => {
            let acc = dir
                .account(&uid)?
                .with_context(|| format!("no backup account {uid} in {}", dir.source()))?;
            let home = homes::home_of(&acc, &cfg.homes_root)?;
            let exists = home.is_dir();
            let status = holdfast_server::status::Status::load(&cfg.state_dir);
            let st = status.accounts.get(&uid);
            if json {
                let v = serde_json::json!({
                    "account": acc,
                    "home": home,
                    "home_exists": exists,
                    "layout": homes::layout(&home),
                    "prefixes": homes::prefixes(&home),
                    "status": st,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(exit::code(exit::OK));
            }
            println!("uid:           {}", acc.uid);
            println!("dn:            {}", acc.dn);
            println!("host:          {}", acc.host.as_deref().unwrap_or("-"));
            println!(
                "home:          {}{}",
                home.display(),
                if exists { "" } else { " (missing)" }
            );
            println!(
                "quota:         {}",
                acc.quota.map(|q| q.to_string()).unwrap_or("-".into())
            );
            println!(
                "sizes:         backup {} snapshots {} (bytes, from the directory)",
                acc.backup_size.unwrap_or(0),
                acc.increment_size.unwrap_or(0)
            );
            let iv = acc.intervals;
            println!(
                "keep:          hourly {} daily {} weekly {} monthly {} yearly {}",
                iv.hourly, iv.daily, iv.weekly, iv.monthly, iv.yearly
            );
            println!("active:        {}", acc.active);
            println!("mail:          {}", acc.mail.join(", "));
            println!(
                "belongs to:    reseller {} customer {} person {} service {}",
                acc.reseller_uid.as_deref().unwrap_or("-"),
                acc.customer_uid.as_deref().unwrap_or("-"),
                acc.person_uid.as_deref().unwrap_or("-"),
                acc.service_uid.as_deref().unwrap_or("-")
            );
            for (p, t) in &acc.last_successful {
                println!("last success:  {p} {t}");
            }
            if exists {
                println!("layout:        {:?}", homes::layout(&home));
                println!("prefixes:      {}", homes::prefixes(&home).join(" "));
            }
            for p in &acc.problems {
                println!("problem:       {p}");
            }
            Ok(exit::code(exit::OK))
        }
        AccountCmd::List { all, json } => {
            let host = cfg.host_name();
            let accs = if all {
                dir.accounts()?
            } else {
                dir.accounts_for_host(&host)?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&accs)?);
                return Ok(exit::code(exit::OK));
            }
            if accs.is_empty() {
                println!("no accounts with host {host} in {}", dir.source());
            } else {
                println!(
                    "{:<12} {:>10} {:>10} {:>10}  home",
                    "uid", "quota", "backup", "snapshot"
                );
            }
            for a in &accs {
                let size = |v: Option<u64>| {
                    v.map(holdfast_core::human_bytes)
                        .unwrap_or_else(|| "-".into())
                };
                let home = homes::home_of(a, &cfg.homes_root)
                    .map(|h| {
                        let missing = if h.is_dir() { "" } else { " (missing)" };
                        format!("{}{missing}", h.display())
                    })
                    .unwrap_or_else(|e| format!("({e})"));
                println!(
                    "{:<12} {:>10} {:>10} {:>10}  {home}",
                    a.uid,
                    size(a.quota),
                    size(a.backup_size),
                    size(a.increment_size)
                );
            }
            Ok(exit::code(exit::OK))
        }
    }
}
