//! `holdfast server check`: the stoney notification run (quota, schedule, unsuccessful,
//! upgrade, nobackup) over every backup account of this server.

use crate::config::Context;
use crate::exit;
use anyhow::Context as _;
use holdfast_notify::directory::LdapDirectory;
use holdfast_notify::run::{check, parse_time, CheckError, Options};
use holdfast_notify::Task;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Accounts come from [server] (LDAP, or an LDIF file); mail, state, \
templates and thresholds from [notify]. A warning goes out at most once per \
[notify] period_hours; when the problem clears, one \"resolved\" message follows. \
Exit code 3 when messages wait in the outbox (SMTP down or refusing the login), the SMTP \
server refused a message for good (it is set aside in the outbox's rejected/ folder), a \
template is broken, or an account could not be handled."
)]
pub struct Args {
    /// Only this task; repeat for several (quota, schedule, unsuccessful, upgrade, nobackup).
    #[arg(long = "task", value_name = "TASK")]
    tasks: Vec<Task>,
    /// Judge and render everything and print the messages, but send, remember and write
    /// nothing (no mail, no state, no LDAP change).
    #[arg(long)]
    dry_run: bool,
    /// Print the full report as JSON (messages included).
    #[arg(long)]
    json: bool,
    /// Judge as if it were this time (RFC 3339), e.g. to replay a day.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config.notify;
    let mut opts = Options {
        dry_run: args.dry_run,
        ..Default::default()
    };
    if !args.tasks.is_empty() {
        opts.tasks = args.tasks.clone();
        opts.tasks.sort();
        opts.tasks.dedup();
    }
    if let Some(n) = &args.now {
        opts.now = parse_time(n).map_err(anyhow::Error::msg)?;
    }
    let dir = LdapDirectory::new(&ctx.config.server).context("cannot open the directory")?;
    let r = match check(&dir, cfg, &opts) {
        Err(e @ CheckError::Busy(_)) => {
            return Err(exit::CodedError {
                code: exit::LOCKED,
                message: e.to_string(),
            }
            .into())
        }
        r => r?,
    };
    if r.interrupted {
        return Err(holdfast_site::interrupt::Interrupted.into());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        if args.dry_run {
            for m in &r.mails {
                println!(
                    "From: {}\nTo: {}\nSubject: {}\n\n{}\n----",
                    m.from,
                    m.to.join(", "),
                    m.subject,
                    m.body
                );
            }
        }
        let repeated = r.events.iter().filter(|e| !e.sent).count();
        println!(
            "{} accounts, {} computers: {} warning(s){}, {} resolved, {} still open and already told",
            r.accounts,
            r.prefixes,
            r.warnings(),
            if args.dry_run { " (dry run)" } else { "" },
            r.resolved(),
            repeated
        );
        if !args.dry_run {
            let via = if cfg.smtp.is_some() {
                "sent over SMTP"
            } else {
                "left in the outbox (no [notify.smtp])"
            };
            println!(
                "{} message(s) written to {}; {} {via}, {} waiting, {} rejected (set aside in {})",
                r.mails.len(),
                cfg.outbox.display(),
                r.flush.sent,
                r.flush.waiting,
                r.flush.rejected,
                cfg.outbox.join("rejected").display()
            );
        }
        if r.last_successful_updates > 0 {
            println!(
                "sstBackupLastSuccessfulBackup: {} value(s) {}",
                r.last_successful_updates,
                if args.dry_run {
                    "would be written"
                } else {
                    "written"
                }
            );
        }
        for f in &r.findings {
            println!("finding: {f}");
        }
        for n in &r.nobody {
            println!("nobody: {n}");
        }
        for b in &r.broken_templates {
            println!("broken: {b}");
        }
        for e in &r.errors {
            println!("error: {e}");
        }
        for x in &r.flush.refused {
            println!("refused: {x} (the other recipients got the message)");
        }
        if let Some(e) = &r.flush.error {
            println!("mail: {e}");
        }
    }
    Ok(exit::code(if r.incomplete() {
        exit::INCOMPLETE
    } else {
        exit::OK
    }))
}
