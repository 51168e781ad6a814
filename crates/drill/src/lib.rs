//! Disaster-recovery drills: repeatable programs with measured results.
//!
//! A drill builds a FOSSology-shaped site in a scratch folder ([`site::DrillSite`]: its own
//! PostgreSQL cluster, configuration and repository, uploads made from real archives by the
//! real unpacker, a scheduler stand-in with agent processes), backs it up with the real
//! `holdfast` binary to a backup target (a local folder, or a real sshd on loopback), breaks it
//! the way the [`Scenario`] says, and recovers it with the commands the operator guide for
//! that scenario gives (`docs/disaster-recovery/<scenario>.md`, run block by block by
//! [`guide`]). It reports pass or fail, each step's time, the recovery time and the data lost
//! ([`report::DrillReport`], as text or JSON). [`guard::ScratchGuard`] refuses any path or
//! database outside the scratch folder before the drill, and proves afterwards that the places
//! a production site lives were not touched.

pub mod archives;
mod busy;
pub mod guard;
pub mod guide;
mod job;
pub mod loss;
pub mod plug;
pub mod power;
pub mod report;
mod scenarios;
pub mod site;
pub mod ununpack;

use guard::ScratchGuard;
use report::DrillReport;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// The disasters the plan asks to rehearse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The backup is SIGKILLed (holdfast and rsync alike) at random points, several times.
    PlugPullBackup,
    /// The server dies while a FOSSology job runs.
    PlugPullJob,
    /// Site gone: database cluster, repository, holdfast configuration.
    TotalLoss,
    /// Site and primary backup target gone (the whole data center): restored from the
    /// off-site copy (`[[backup.copy]]`).
    SiteAndBackupLoss,
    /// Database dropped, repository intact.
    DatabaseLoss,
    /// One repository host folder (one disk) lost with an agent's running job.
    AgentStorageLoss,
    /// Backups of every kind (stop, pre-copy, online) while agents write and delete: each
    /// snapshot must restore whole.
    BusyBackup,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::PlugPullBackup,
        Scenario::PlugPullJob,
        Scenario::TotalLoss,
        Scenario::SiteAndBackupLoss,
        Scenario::DatabaseLoss,
        Scenario::AgentStorageLoss,
        Scenario::BusyBackup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PlugPullBackup => "plug-pull-backup",
            Scenario::PlugPullJob => "plug-pull-job",
            Scenario::TotalLoss => "total-loss",
            Scenario::SiteAndBackupLoss => "site-and-backup-loss",
            Scenario::DatabaseLoss => "database-loss",
            Scenario::AgentStorageLoss => "agent-storage-loss",
            Scenario::BusyBackup => "busy-backup",
        }
    }

    /// The operator guide page whose commands the drill's recovery runs.
    pub fn guide_page(self) -> String {
        match self {
            // One guide for a lost site, with or without its backup server.
            Scenario::SiteAndBackupLoss => "disaster-recovery/total-loss.md".into(),
            s => format!("disaster-recovery/{}.md", s.name()),
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scenario {
    type Err = DrillError;
    fn from_str(s: &str) -> Result<Self, DrillError> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| DrillError::UnknownScenario(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("unknown drill scenario {0:?} (one of: plug-pull-backup, plug-pull-job, total-loss, site-and-backup-loss, database-loss, agent-storage-loss, busy-backup)")]
    UnknownScenario(String),
    #[error("scratch folder {path}: {why}")]
    Scratch { path: String, why: String },
    #[error(transparent)]
    Guard(#[from] guard::GuardError),
    #[error("drill {scenario} could not run: {message}")]
    Setup { scenario: String, message: String },
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Folder the drill works in; it creates `drill-<scenario>-<pid>-<n>` inside and touches
    /// nothing else.
    pub scratch: PathBuf,
    /// The `holdfast` binary under test (the running one, for `holdfast drill`).
    pub holdfast: PathBuf,
    /// Back up over ssh to this server instead of to a local folder.
    pub ssh: Option<site::SshServer>,
    /// site-and-backup-loss: the off-site copy is on this (second) ssh server instead of a
    /// local folder.
    pub offsite_ssh: Option<site::SshServer>,
    /// Seed for the random choices (kill points); random when `None`.
    pub seed: Option<u64>,
    /// plug-pull-backup: how many times the backup is killed.
    pub kills: u32,
    /// Keep the scratch folder afterwards (to inspect it).
    pub keep: bool,
    /// More places the guard proves untouched (e.g. a production site's configuration).
    pub watch: Vec<PathBuf>,
    /// Live repositories the guard watches leniently: files may appear (FOSSology keeps
    /// working), none may vanish or change.
    pub watch_repositories: Vec<PathBuf>,
    /// Start from a copy of a real site instead of a site built from sample archives: the
    /// newest snapshot of the backup target in this holdfast.toml is restored into the
    /// scratch site (read only: the real site and its backups are never written).
    pub copy_of: Option<PathBuf>,
    /// Backup mode of the drill's backups (`full` or `gold`); plug-pull-job always uses gold,
    /// which is what its recovery is about. Default `full`.
    pub mode: Option<String>,
    /// plug-pull-job: how many times the repair itself (a `recover --all`, a gold-only
    /// restore's rebuild) is killed and resumed, each.
    pub resume_kills: usize,
    /// Uploads the sample site starts with (at least 3; each an archive made by real tools).
    pub uploads: usize,
}

impl DrillOptions {
    pub fn new(scratch: PathBuf, holdfast: PathBuf) -> Self {
        DrillOptions {
            scratch,
            holdfast,
            ssh: None,
            offsite_ssh: None,
            seed: None,
            kills: 3,
            keep: false,
            watch: Vec::new(),
            watch_repositories: Vec::new(),
            copy_of: None,
            mode: None,
            resume_kills: 3,
            uploads: 3,
        }
    }
}

/// Runs one drill to the end and reports. An `Err` means the drill could not be set up (no
/// PostgreSQL, bad scratch folder); a recovery that failed is a report with `passed = false`.
pub fn run(scenario: Scenario, opts: &DrillOptions) -> Result<DrillReport, DrillError> {
    let scratch_err = |why: String| DrillError::Scratch {
        path: opts.scratch.display().to_string(),
        why,
    };
    std::fs::create_dir_all(&opts.scratch).map_err(|e| scratch_err(e.to_string()))?;
    let base = opts
        .scratch
        .canonicalize()
        .map_err(|e| scratch_err(e.to_string()))?;
    let root = (0..1000)
        .map(|n| {
            base.join(format!(
                "drill-{}-{}-{n}",
                scenario.name(),
                std::process::id()
            ))
        })
        .find(|p| !p.exists())
        .ok_or_else(|| scratch_err("no free drill folder name".into()))?;
    std::fs::create_dir_all(&root).map_err(|e| scratch_err(e.to_string()))?;
    let guard = ScratchGuard::with_repositories(&root, &opts.watch, &opts.watch_repositories);
    let seed = opts.seed.unwrap_or_else(rand::random);
    let mut report = DrillReport::new(scenario.name(), &root.display().to_string(), seed);
    tracing::info!(scratch = %root.display(), seed, "drill {scenario} starts");
    let started = Instant::now();
    let outcome = scenarios::run(scenario, opts, &root, &guard, &mut report, seed);
    if let Err(e) = &outcome {
        report.check("the drill ran to its end", false, format!("{e:#}"));
    }
    match guard.verify_untouched() {
        Ok(()) => report.check(
            "nothing outside the scratch folder and scratch database was touched",
            true,
            "",
        ),
        Err(e) => report.check(
            "nothing outside the scratch folder and scratch database was touched",
            false,
            e.to_string(),
        ),
    };
    report.finish();
    tracing::info!(
        "drill {scenario} {} in {:.1} s",
        if report.passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if !opts.keep {
        if let Err(e) = std::fs::remove_dir_all(&root) {
            tracing::warn!(
                "could not remove the scratch folder {}: {e}",
                root.display()
            );
        }
    }
    Ok(report)
}
