//! `holdfast drill SCENARIO`: a disaster-recovery drill against a scratch copy of a site.
use crate::config::Context;
use crate::exit;
use holdfast_drill::{DrillOptions, Scenario};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    long_about = "Runs a disaster-recovery drill: builds a FOSSology-shaped site in a scratch \
folder (its own PostgreSQL cluster, repository and scheduler stand-in, uploads made from real \
archives), backs it up with this holdfast, breaks it as the scenario says, recovers it by \
running the commands of docs/disaster-recovery/SCENARIO.md, and reports pass/fail, the \
recovery time and the data lost.\n\n\
Scenarios:\n  \
plug-pull-backup    the backup is SIGKILLed at random points, several times\n  \
plug-pull-job       the power fails while the unpack agent writes an upload (at\n                      --kills random points; repaired in place, nothing restored)\n  \
total-loss          database cluster, repository and holdfast.toml gone\n  \
site-and-backup-loss  the site AND the backup target gone; restored from the\n                      off-site copy ([[backup.copy]])\n  \
database-loss       database dropped, repository intact\n  \
agent-storage-loss  one [REPOSITORY] host folder (disk) lost with a running job\n  \
busy-backup         every backup mode while agents add and delete uploads; each\n                      snapshot restored into a rehearsal folder and proved whole\n\n\
A drill touches nothing outside its scratch folder and scratch database, and checks that \
it did not. Exit code 0 when the drill passed, 3 when it ran and failed, 1 when it could \
not run."
)]
pub struct Args {
    /// The scenario to rehearse (or `all`).
    #[arg(value_parser = scenario_names())]
    scenario: String,
    /// Folder the drill works in (a `drill-*` folder is made inside it and removed afterwards).
    #[arg(long, default_value = "/var/tmp/holdfast-drill")]
    scratch: PathBuf,
    /// Print the report as JSON (with `all`: an array of reports).
    #[arg(long)]
    json: bool,
    /// Keep the scratch folder to look at afterwards.
    #[arg(long)]
    keep: bool,
    /// Seed for the random kill points, to repeat a drill exactly.
    #[arg(long)]
    seed: Option<u64>,
    /// How many times the work is killed: backups for plug-pull-backup (default 3), the
    /// unpack agent for plug-pull-job (default 10).
    #[arg(long)]
    kills: Option<u32>,
    /// plug-pull-job: how many times the repair is killed and resumed, for `recover --all`
    /// and for a gold-only restore each.
    #[arg(long, default_value_t = 3)]
    repair_kills: usize,
    /// Uploads the sample site starts with (at least 3), for longer, more telling drills.
    #[arg(long, default_value_t = 3)]
    uploads: usize,
    /// Backup mode of the drill's backups: full, or gold (files rebuilt from gold on restore).
    #[arg(long, value_parser = ["full", "gold"])]
    mode: Option<String>,
    /// Start from a copy of the configured site instead of a site built from sample archives:
    /// the newest snapshot of backup.target is restored into the scratch folder (the site and
    /// its backups are only read).
    #[arg(long)]
    copy_of_site: bool,
    /// Drill the configured production site itself. Refused: a drill destroys what it drills;
    /// rehearse on a scratch copy of it instead (--copy-of-site).
    #[arg(long)]
    production: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    if args.production {
        anyhow::bail!(
            "drill --production refused: a drill destroys the site it runs on; drill a scratch copy of it instead with --copy-of-site"
        );
    }
    let scenarios: Vec<Scenario> = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        vec![args.scenario.parse()?]
    };
    let bin = std::env::current_exe()?;
    let mut opts = DrillOptions::new(args.scratch.clone(), bin);
    opts.seed = args.seed;
    opts.keep = args.keep;
    opts.mode = args.mode.clone();
    opts.uploads = args.uploads;
    opts.resume_kills = args.repair_kills;
    // The configured site's folders and a local backup target are watched too: a drill must
    // leave them alone.
    if let Ok(site) = ctx.site() {
        opts.watch.push(site.conf_dir.clone());
        opts.watch_repositories.extend(site.repo.host_dirs());
    }
    if ctx.config.backup.target.starts_with('/') {
        opts.watch.push(PathBuf::from(&ctx.config.backup.target));
    }
    if args.copy_of_site {
        if !ctx.from_file {
            anyhow::bail!(
                "--copy-of-site needs the site's holdfast.toml, and {} does not exist (pass --config)",
                ctx.path.display()
            );
        }
        opts.copy_of = Some(ctx.path.clone());
    }
    let mut reports = Vec::new();
    for s in scenarios {
        opts.kills = args.kills.unwrap_or(match s {
            Scenario::PlugPullJob => 10,
            _ => 3,
        });
        reports.push(holdfast_drill::run(s, &opts)?);
    }
    if args.json {
        if reports.len() == 1 {
            println!("{}", reports[0].to_json());
        } else {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
    } else {
        for r in &reports {
            print!("{}", r.to_text());
        }
    }
    Ok(if reports.iter().all(|r| r.passed) {
        exit::code(exit::OK)
    } else {
        exit::code(exit::INCOMPLETE)
    })
}

/// Every scenario the drill crate has, and `all`: the CLI cannot offer fewer than it runs.
fn scenario_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        Scenario::ALL
            .iter()
            .map(|s| s.name())
            .chain(["all"])
            .collect::<Vec<_>>(),
    )
}
