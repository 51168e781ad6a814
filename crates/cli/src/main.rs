//! `holdfast`: backup, restore and disaster recovery for FOSSology servers, and the backup
//! server that watches every account. This crate only parses the command line and calls the
//! domain crates; each subcommand lives in its own file under `commands/`.

mod commands;
mod config;
mod exit;
mod logging;
mod runlog;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "holdfast",
    version,
    about = "Backup, restore and disaster recovery for FOSSology servers",
    long_about = "holdfast backs up a FOSSology server (database and repository) to a backup \
server, restores it, rebuilds unpacked files from gold, and runs the backup server side that \
snapshots client accounts and warns customers and resellers.\n\n\
Start with `holdfast demo` to see a site backed up, destroyed and restored on local folders.",
    after_help = "Exit codes: 0 success, 1 error (also a backup whose snapshot lacks files the \
database names, or after which the scheduler did not start), 2 usage, 3 finished but \
incomplete (restore, verify, check-repo: files missing; backup: a copy failed or files left \
out; warnings sent with failures), 4 another run holds the lock, 130 interrupted.\n\n\
Environment: HOLDFAST_CONFIG (as --config), HOLDFAST_LOG (the terminal's log filter, over \
-v/-q: e.g. `holdfast=debug`), HOLDFAST_IO_THREADS (reads in flight for repository walks, \
proofs and the backup server's tree walks; by default 4 per core, 8 to 32)."
)]
pub struct Cli {
    /// holdfast configuration file (TOML).
    #[arg(long, global = true, env = "HOLDFAST_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// More detail: -v shows progress steps, -vv debug output, and error chains, -vvv each
    /// script run on a backup server with its time.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors: nothing on stdout or stderr when the command succeeds (for cron, which
    /// mails any output). The system log (--syslog) still gets every line.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also log to the system log, identifier `holdfast`: journald with native fields
    /// (PRIORITY, HOLDFAST_SITE, HOLDFAST_SNAPSHOT, ...) where it runs, else syslog (/dev/log).
    /// Every warning and error and one result line per run; -q does not silence it. On by
    /// itself when systemd connects stderr to the journal.
    #[arg(long, global = true)]
    syslog: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo: build a FOSSology-shaped site, back it up, destroy it, restore it.
    Demo(commands::demo::Args),
    /// Back up the site: stop the scheduler, dump the database, copy the repository.
    Backup(commands::backup::Args),
    /// Restore a snapshot (the latest by default) and verify the site is whole.
    Restore(commands::restore::Args),
    /// List the snapshots on the backup target.
    Snapshots(commands::snapshots::Args),
    /// Copy new snapshots to the [[backup.copy]] targets (off-site copies) now.
    Copy(commands::copy::Args),
    /// Check that every file the database references is in the repository.
    Verify(commands::verify::Args),
    /// Install or show the nightly backup's systemd timer (cron without systemd) and more.
    #[command(subcommand)]
    Schedule(commands::schedule::Cmd),
    /// A sample configuration with every key at its default.
    #[command(subcommand)]
    Config(commands::config_init::Cmd),
    /// Shell completions: `holdfast completions bash > /etc/bash_completion.d/holdfast`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff): `holdfast man | man -l -`.
    Man,
    /// Prometheus text for the last backup and verify runs (for node_exporter's textfile
    /// collector; `holdfast serve` has the same on /metrics).
    Metrics,
    /// FOSSology's scheduler: start it if a holdfast run left it stopped.
    #[command(subcommand)]
    Scheduler(commands::scheduler::Cmd),
    /// Import files as FOSSology uploads and unpack them.
    Upload(commands::upload::Args),
    /// Unpack an existing upload again from its gold file.
    Unpack(commands::unpack::Args),
    /// List uploads with files missing from the repository.
    CheckRepo(commands::check_repo::Args),
    /// Rebuild an upload's missing files from its gold file now.
    Recover(commands::recover::Args),
    /// Report or remove repository files that can be rebuilt from gold.
    #[command(subcommand)]
    Slim(commands::slim::Cmd),
    /// Web pages and JSON API: browse uploads, queue recoveries, metrics.
    Serve(commands::serve::Args),
    /// Backup server side: accounts, snapshots, sizes, warnings.
    #[command(subcommand)]
    Server(commands::server::Cmd),
    /// Per-reseller mail templates: sync from the self-care server.
    #[command(subcommand)]
    Templates(commands::templates::Cmd),
    /// Disaster-recovery drills against a scratch copy of a site.
    Drill(commands::drill::Args),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // "backup", "server check": the command path without its options.
    let mut name = Vec::new();
    let mut m = &matches;
    while let Some((sub, next)) = m.subcommand() {
        name.push(sub);
        m = next;
    }
    let name = name.join(" ");
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // The demo prints its own step lines; the library's progress logs would interleave them.
    let default = match cli.command {
        Command::Demo(_) => "warn",
        _ => "warn,holdfast=info",
    };
    logging::init(cli.verbose, cli.quiet, cli.syslog, default);
    if cli.quiet {
        exit::silence_stdout();
        holdfast_core::progress::set_bars(false);
    }
    holdfast_core::interrupt::install();
    let (verbose, quiet) = (cli.verbose, cli.quiet);
    let began = std::time::Instant::now();
    // Only a run that tries to make a snapshot or to check is recorded for monitoring: a dry
    // run must neither hide nor raise a failed backup.
    let recorded = match &cli.command {
        Command::Backup(a) => (!a.dry_run).then_some("backup"),
        Command::Verify(a) if a.proves_snapshots() => Some("verify-snapshots"),
        Command::Verify(_) => Some("verify"),
        _ => None,
    };
    // Helpers that make or need no configuration work whatever the file holds.
    let needs_config = !matches!(
        &cli.command,
        Command::Demo(_)
            | Command::Completions { .. }
            | Command::Man
            | Command::Config(commands::config_init::Cmd::Init { .. })
    );
    let ctx = match config::Context::load(&cli.config) {
        Ok(ctx) => ctx,
        Err(_) if !needs_config => config::Context::defaults(&cli.config),
        Err(e) => {
            // A nightly backup that cannot read its configuration is a failed backup to
            // monitoring, recorded where the defaults keep records.
            let defaults = config::Context::defaults(&cli.config);
            let (state_dir, site) = (
                defaults.config.site.state_dir(),
                commands::backup::site_name(&defaults),
            );
            return finish(&name, Err(e), verbose, quiet, began, |code, error| {
                if let Some(record) = recorded {
                    runlog::finish(&state_dir, record, &site, code, 0.0, error)
                }
            });
        }
    };
    // Every line of the run carries the command and the site (HOLDFAST_COMMAND and
    // HOLDFAST_SITE in the journal); `backup` records the snapshot it made.
    let span = tracing::info_span!(
        logging::RUN_SPAN,
        command = %name,
        site = %commands::backup::site_name(&ctx),
        snapshot = tracing::field::Empty,
    );
    let _entered = span.enter();
    let result = run(cli, &ctx);
    let (state_dir, site) = (
        ctx.config.site.state_dir(),
        commands::backup::site_name(&ctx),
    );
    let secs = began.elapsed().as_secs_f64();
    finish(&name, result, verbose, quiet, began, |code, error| {
        if let Some(record) = recorded {
            runlog::finish(&state_dir, record, &site, code, secs, error)
        }
    })
}

/// The exit code, the one-line error on stderr, and the result line in the system log.
fn finish(
    name: &str,
    result: anyhow::Result<ExitCode>,
    verbose: u8,
    quiet: bool,
    began: std::time::Instant,
    record: impl FnOnce(u8, Option<&str>),
) -> ExitCode {
    let secs = began.elapsed().as_secs_f64();
    match result {
        Ok(code) => {
            let n = exit::number(code);
            logging::result(name, n, secs, None);
            // -q hides the report on stdout; cron mails only what reaches stderr.
            if n != 0 && quiet {
                eprintln!(
                    "holdfast {name}: {} (exit code {n}); run it without -q for the report",
                    logging::outcome(n)
                );
            }
            record(n, None);
            code
        }
        Err(e) => {
            let (code, line) = exit::report(&e, verbose);
            logging::result(name, code, secs, Some(&line));
            record(code, Some(&line));
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli, ctx: &config::Context) -> anyhow::Result<ExitCode> {
    use Command::*;
    // A scheduler an interrupted run left stopped is started first by the commands that work
    // on the site. `backup` and `restore` do it in their own stop/start, `scheduler ensure`
    // is that very job; helpers (`man`, `completions`, `config`, `metrics`) touch nothing;
    // `unpack` and `recover` repair what a stop or a power cut left, which the scheduler's
    // `--reset` start would run on first.
    if matches!(
        cli.command,
        Snapshots(_) | Copy(_) | Verify(_) | CheckRepo(_) | Slim(_) | Serve(_) | Upload(_)
    ) {
        commands::backup::resume_scheduler(ctx);
    }
    match cli.command {
        Demo(a) => commands::demo::run(a, ctx),
        Backup(a) => commands::backup::run(a, ctx),
        Restore(a) => commands::restore::run(a, ctx),
        Snapshots(a) => commands::snapshots::run(a, ctx),
        Copy(a) => commands::copy::run(a, ctx),
        Verify(a) => commands::verify::run(a, ctx),
        Schedule(c) => commands::schedule::run(c, ctx),
        Scheduler(c) => commands::scheduler::run(c, ctx),
        Config(c) => commands::config_init::run(c, ctx),
        Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "holdfast", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout(), &buf)?;
            Ok(exit::code(exit::OK))
        }
        Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(exit::code(exit::OK))
        }
        Metrics => {
            print!("{}", runlog::metrics(&ctx.config.site.state_dir()));
            Ok(exit::code(exit::OK))
        }
        Upload(a) => commands::upload::run(a, ctx),
        Unpack(a) => commands::unpack::run(a, ctx),
        CheckRepo(a) => commands::check_repo::run(a, ctx),
        Recover(a) => commands::recover::run(a, ctx),
        Slim(c) => commands::slim::run(c, ctx),
        Serve(a) => commands::serve::run(a, ctx),
        Server(c) => commands::server::run(c, ctx),
        Templates(c) => commands::templates::run(c, ctx),
        Drill(a) => commands::drill::run(a, ctx),
    }
}
