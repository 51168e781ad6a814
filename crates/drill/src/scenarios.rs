//! The scenarios (busy-backup lives in `busy`). Each one builds its site, takes the backups it needs, breaks the site,
//! then recovers by running the commands of its guide page, and checks the result against
//! what it knew before the disaster. Checks go into the report; only a drill that cannot be
//! set up at all returns an error.

use crate::guard::ScratchGuard;
use crate::report::{DrillReport, Step};
use crate::site::{DrillSite, SiteSpec};
use crate::{archives, guide, loss, plug, DrillOptions, Scenario};
use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use holdfast_site::db;
use holdfast_site::foconf::HostRange;
use holdfast_store::{SshOptions, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) struct Drill<'a> {
    pub(crate) opts: &'a DrillOptions,
    pub(crate) root: &'a Path,
    pub(crate) guard: &'a ScratchGuard,
    pub(crate) report: &'a mut DrillReport,
    pub(crate) rng: StdRng,
    pub(crate) scenario: Scenario,
}

pub(crate) fn run(
    scenario: Scenario,
    opts: &DrillOptions,
    root: &Path,
    guard: &ScratchGuard,
    report: &mut DrillReport,
    seed: u64,
) -> Result<()> {
    let mut d = Drill {
        opts,
        root,
        guard,
        report,
        rng: StdRng::seed_from_u64(seed),
        scenario,
    };
    match scenario {
        Scenario::PlugPullBackup => plug_pull_backup(&mut d),
        Scenario::PlugPullJob => crate::job::plug_pull_job(&mut d),
        Scenario::TotalLoss => total_loss(&mut d),
        Scenario::SiteAndBackupLoss => site_and_backup_loss(&mut d),
        Scenario::DatabaseLoss => database_loss(&mut d),
        Scenario::AgentStorageLoss => agent_storage_loss(&mut d),
        Scenario::BusyBackup => crate::busy::busy_backup(&mut d),
    }
}

fn record_step<T>(
    report: &mut DrillReport,
    name: &str,
    recovery: bool,
    secs: f64,
    r: &Result<(T, String)>,
) {
    let detail = match r {
        Ok((_, d)) => d.clone(),
        Err(e) => format!("failed: {e:#}"),
    };
    if r.is_err() {
        report.check(&format!("step \"{name}\" completed"), false, detail.clone());
    }
    report.steps.push(Step {
        name: name.to_string(),
        secs,
        recovery,
        detail,
    });
}

impl Drill<'_> {
    /// Runs `f` as a timed step; the step is recorded even when it fails, and a failed step
    /// is a failed check: a drill whose step failed does not pass, whatever its caller does
    /// with the error.
    pub(crate) fn step<T>(
        &mut self,
        name: &str,
        recovery: bool,
        f: impl FnOnce(&mut Self) -> Result<(T, String)>,
    ) -> Result<T> {
        let t = Instant::now();
        let r = f(self);
        record_step(self.report, name, recovery, t.elapsed().as_secs_f64(), &r);
        r.map(|(v, _)| v)
    }

    /// The site to build: `hosts` for a sample site; a copy of a real site keeps its own
    /// `[REPOSITORY]` lines.
    pub(crate) fn spec(&self, mode: &str, hosts: Vec<HostRange>) -> SiteSpec {
        let mode = match (&self.opts.mode, self.scenario) {
            (_, Scenario::PlugPullJob) => mode,
            (Some(m), _) => m.as_str(),
            (None, _) => mode,
        };
        let hosts = match &self.opts.copy_of {
            Some(cfg) => match crate::site::hosts_of(cfg) {
                Ok(h) if !h.is_empty() => h,
                _ => hosts,
            },
            None => hosts,
        };
        SiteSpec {
            hosts,
            mode: mode.to_string(),
            // Unique process names (not from the seed: two drills may run at once).
            tag: format!("{:05x}", rand::random::<u32>() % 0xfffff),
            reset_on_start: true,
        }
    }

    /// Creates the site on "machine" `machine`, admits it through the guard and fills it with
    /// `n` uploads made from real archives.
    pub(crate) fn build(
        &mut self,
        machine: &str,
        spec: SiteSpec,
        n: usize,
    ) -> Result<(DrillSite, Vec<i32>)> {
        let (opts, root) = (self.opts, self.root);
        let wanted = opts.uploads.max(n);
        self.step("build the site from real archives", false, |d| {
            let site = DrillSite::create(root, machine, &opts.holdfast, opts.ssh.clone(), spec)?;
            d.guard.admit_site(site.site(), site.scratch.cluster.port)?;
            d.guard
                .admit_path("holdfast configuration", &site.holdfast.config)?;
            d.guard.admit_path("backup target", &site.target_dir)?;
            let ups = match &opts.copy_of {
                Some(cfg) => {
                    let ups = site.restore_copy_of(cfg)?;
                    if ups.len() < n {
                        bail!(
                            "the copy of the site has {} upload(s); this drill needs at least {n}",
                            ups.len()
                        );
                    }
                    ups
                }
                None => {
                    // Uploads past the first `n` have their own content each, so a bigger
                    // site (--uploads) is a bigger repository, not the same files again.
                    let mut a = archives::build(&root.join("archives"), n, "a")?;
                    a.extend(archives::build_unique(
                        &root.join("archives-more"),
                        wanted - n,
                        "m",
                    )?);
                    site.upload(&a)?
                }
            };
            let refs = db::references(&mut site.connect()?, None)?;
            let size = crate::report::SiteSize::of(&refs, ups.len());
            let detail = format!(
                "{} uploads, {} repository references, {:.1} MB gold, {:.1} MB files",
                ups.len(),
                refs.len(),
                size.gold_bytes as f64 / 1e6,
                size.files_bytes as f64 / 1e6
            );
            if d.report.site.is_none() {
                d.report.site = Some(size);
            }
            Ok(((site, ups), detail))
        })
    }

    fn more_uploads(&mut self, site: &DrillSite, n: usize, salt: &str) -> Result<Vec<i32>> {
        let root = self.root;
        self.step("add uploads after the backup", false, |_| {
            let arch = archives::build(&root.join(format!("archives-{salt}")), n, salt)?;
            let ups = site.upload(&arch)?;
            Ok((ups.clone(), format!("uploads {ups:?}")))
        })
    }

    fn backup(&mut self, site: &DrillSite, name: &str) -> Result<f64> {
        self.step(name, false, |_| {
            let t = Instant::now();
            site.holdfast.ok(&["backup"])?;
            let snap = latest(site)?;
            Ok((
                t.elapsed().as_secs_f64(),
                format!(
                    "snapshot {} ({} files)",
                    snap.name, snap.manifest.repository.files
                ),
            ))
        })
    }

    /// Runs the scenario's guide page against `site` as the recovery.
    pub(crate) fn follow_guide(
        &mut self,
        site: &DrillSite,
        extra_env: &[(&str, String)],
    ) -> Result<String> {
        let page = self.scenario.guide_page();
        let text = guide::page(&page).ok_or_else(|| anyhow!("no guide page {page}"))?;
        let mut env: BTreeMap<String, String> = site.guide_env();
        for (k, v) in extra_env {
            env.insert(k.to_string(), v.clone());
        }
        let work = self.root.join("work");
        std::fs::create_dir_all(&work)?;
        let bin_dir = site
            .holdfast
            .bin
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let link_dir = self.root.join("bin");
        // The guides say `holdfast`: put the binary under test first on PATH by that name.
        std::fs::create_dir_all(&link_dir)?;
        let link = link_dir.join("holdfast");
        if !link.exists() {
            std::os::unix::fs::symlink(&site.holdfast.bin, &link)?;
        }
        let run = self.step(&format!("follow the guide {page}"), true, |_| {
            let r = guide::run_page(&page, text, &work, &env, &[link_dir.clone(), bin_dir])?;
            let detail = format!("{} command blocks", r.blocks);
            Ok((r, detail))
        })?;
        std::fs::write(
            work.join(format!("{}.log", self.scenario.name())),
            &run.output,
        )?;
        self.report.check(
            &format!("every command of {page} succeeded"),
            run.ok,
            format!(
                "stopped at {}: {}",
                run.failed_at.as_deref().unwrap_or("?"),
                tail(&run.output, 12)
            ),
        );
        if !run.ok {
            bail!("the guide {page} failed at {:?}", run.failed_at);
        }
        Ok(run.output)
    }

    /// Data lost: age of the restored snapshot at `loss_at`, missing and unknown files.
    pub(crate) fn measure_loss(
        &mut self,
        site: &DrillSite,
        loss_at: chrono::DateTime<Utc>,
        snapshot: Option<&str>,
    ) -> Result<()> {
        self.measure_loss_from(site, &target_of(site)?, loss_at, snapshot)
    }

    /// [`Drill::measure_loss`] with the snapshot taken from `target` (an off-site copy).
    pub(crate) fn measure_loss_from(
        &mut self,
        site: &DrillSite,
        target: &Target,
        loss_at: chrono::DateTime<Utc>,
        snapshot: Option<&str>,
    ) -> Result<()> {
        if let Some((name, age)) = loss::restored_age(target, snapshot, loss_at) {
            self.report.data_lost.snapshot = Some(name);
            self.report.data_lost.restored_state_age_secs = Some(age);
        }
        let mut c = site.connect()?;
        self.report.data_lost.missing = loss::missing_files(site.site(), &mut c)?;
        self.report.data_lost.unknown = loss::unknown_files(site.site(), &mut c)?;
        Ok(())
    }
}

/// The last `n` lines of a command's output, without terminal colour codes.
fn tail(s: &str, n: usize) -> String {
    let mut plain = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let lines: Vec<&str> = plain.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

pub(crate) fn target_of(site: &DrillSite) -> Result<Target> {
    let ssh = match &site.ssh {
        Some(s) => SshOptions {
            identity: Some(s.identity.clone()),
            options: s.options.clone(),
        },
        None => SshOptions::default(),
    };
    Ok(Target::parse(&site.target, ssh)?)
}

pub(crate) fn latest(site: &DrillSite) -> Result<holdfast_store::Snapshot> {
    Ok(holdfast_store::layout::find(&target_of(site)?, None)?)
}

/// Row counts of the tables a restore must bring back.
fn counts(c: &mut postgres::Client) -> Result<BTreeMap<String, i64>> {
    Ok(
        db::row_counts(c, &["upload", "pfile", "uploadtree_a", "job", "jobqueue"])?
            .into_iter()
            .collect(),
    )
}

/// Queues an agent's job on `upload` and marks it running, as the scheduler does when it hands
/// the row to an agent process.
fn start_job(c: &mut postgres::Client, upload: i32, agent: &str) -> Result<i32> {
    Ok(db::jobs::start_agent(c, upload, agent)?)
}

/// (started, ended) of a queue row.
fn job_state(c: &mut postgres::Client, jq: i32) -> Result<(bool, bool)> {
    db::jobs::row_state(c, jq)?.ok_or_else(|| anyhow!("jobqueue row {jq} is gone"))
}

/// Every regular file under `dir` with its inode.
fn inodes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), m.ino());
            }
        }
    }
    out
}

/// Whether each upload's gold and its copy in `files` share one inode (hard links kept).
fn gold_linked(site: &DrillSite, c: &mut postgres::Client) -> Result<bool> {
    let refs = db::references(c, None)?;
    let mut any = false;
    for r in refs.iter().filter(|r| r.kind == "gold") {
        let g = site.site().repo.path("gold", &r.name);
        let f = site.site().repo.path("files", &r.name);
        if let (Some(g), Some(f)) = (g, f) {
            let (Ok(gm), Ok(fm)) = (std::fs::metadata(g), std::fs::metadata(f)) else {
                return Ok(false);
            };
            if gm.ino() != fm.ino() {
                return Ok(false);
            }
            any = true;
        }
    }
    Ok(any)
}

// ---------------------------------------------------------------------------------------

/// The backup is killed at random points; the last good snapshot survives and restores, the
/// next backup succeeds.
fn plug_pull_backup(d: &mut Drill) -> Result<()> {
    let spec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let (site, first) = d.build("server", spec, 3)?;
    let t_backup = d.backup(&site, "first backup (the last good snapshot)")?;
    let good = latest(&site)?;
    let good_started = good.manifest.started;
    let before = counts(&mut site.connect()?)?;
    let mut later = d.more_uploads(&site, 2, "b")?;

    // Pull the plug on the next backups at random moments of their run.
    let kills = d.opts.kills.max(1);
    let mut killed_runs = 0;
    let mut rsync_killed = false;
    for i in 0..kills {
        // Within the first 80% of a backup's time: later runs copy less and finish sooner.
        let frac: f64 = d.rng.random_range(0.05..0.8);
        let after = Duration::from_secs_f64((t_backup * frac).max(0.05));
        let target = target_of(&site)?;
        // The last pull waits for the repository copy, so rsync dies mid-transfer at least once.
        let during_copy = i + 1 == kills;
        if during_copy {
            // An earlier pull may have let its backup finish: a night with no new file runs
            // no rsync to catch. One more upload gives this one something to copy.
            later.extend(d.more_uploads(&site, 1, "c")?);
        }
        let name = if during_copy {
            format!(
                "plug pull {} during the repository copy (rsync --bwlimit=100)",
                i + 1
            )
        } else {
            format!("plug pull {} during a backup", i + 1)
        };
        let mid_copy = std::cell::Cell::new(false);
        let p = d.step(&name, false, |_| {
            let mut cmd = if during_copy {
                // A small upload's copy can end between two looks at the process table on a
                // busy machine; a throttled link, as an operator sets one, keeps it running.
                let mut h = site.holdfast.clone();
                h.config = site.root.join("etc/holdfast/throttled.toml");
                std::fs::write(
                    &h.config,
                    format!("{}rsync_args = [\"--bwlimit=100\"]\n", site.config_text()),
                )?;
                h.command(&["backup"])
            } else {
                site.holdfast.command(&["backup"])
            };
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let p = if during_copy {
                let limit = Duration::from_secs_f64(t_backup * 3.0 + 30.0);
                // Halfway through a file: rsync's temporary `.<name>.XXXXXX` in the
                // snapshot being made (FOSSology's names never start with a dot).
                let partial = site
                    .target_dir
                    .join(holdfast_store::layout::PARTIAL)
                    .join(holdfast_store::manifest::REPO_DIR);
                let ready = || {
                    let r = mid_file(&partial);
                    mid_copy.set(mid_copy.get() || r);
                    r
                };
                plug::run_and_pull_on(&mut cmd, "rsync", &ready, limit)?
            } else {
                plug::run_and_pull(&mut cmd, after)?
            };
            let detail = match p.finished {
                Some(st) => format!("the backup finished ({st}) before the pull"),
                None => format!(
                    "SIGKILL after {:.2} s to {}",
                    p.after_secs,
                    p.killed
                        .iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            Ok((p, detail))
        })?;
        if p.finished.is_none() {
            killed_runs += 1;
        }
        if mid_copy.get() && p.killed.iter().any(|(_, n)| n == "rsync") {
            rsync_killed = true;
        }
        // Power comes back: the scheduler starts at boot (holdfast never got to restart it).
        if !site.standin.is_running() {
            site.standin.start()?;
        }
        // Nothing half-made is visible, and the last good snapshot is still there.
        let snaps = holdfast_store::layout::snapshots(&target)?;
        let still_good = snaps.iter().any(|s| s.manifest.started == good_started);
        d.report.check(
            &format!(
                "after plug pull {}: the last good snapshot is intact",
                i + 1
            ),
            still_good,
            format!(
                "snapshots now: {:?}",
                snaps.iter().map(|s| &s.name).collect::<Vec<_>>()
            ),
        );
    }
    d.report.check(
        "at least one backup was killed mid-way",
        killed_runs > 0,
        "every backup finished before its kill point",
    );
    d.report.check(
        "rsync was killed mid-copy at least once",
        rsync_killed,
        "no pull caught an rsync",
    );

    // Recovery: the guide's steps (look, back up again, verify).
    let loss_at = Utc::now();
    d.follow_guide(&site, &[])?;
    let newest = latest(&site)?;
    d.report.check(
        "the next backup succeeded and made a newer snapshot",
        newest.manifest.started > good_started,
        format!(
            "newest snapshot {} from {}",
            newest.name, newest.manifest.started
        ),
    );
    let all = holdfast_store::layout::snapshots(&target_of(&site)?)?;
    let good_name = all
        .iter()
        .find(|s| s.manifest.started == good_started)
        .map(|s| s.name.clone());

    // The last good snapshot restores cleanly: the site as it was then, whole.
    if let Some(name) = &good_name {
        let name = name.clone();
        let restored = d.step("restore the last good snapshot", false, |_| {
            site.holdfast.ok(&["restore", "--yes", &name])?;
            Ok(((), format!("snapshot {name}")))
        });
        if restored.is_ok() {
            let mut c = site.connect()?;
            let now = counts(&mut c)?;
            d.report.check(
                "the last good snapshot restores the database as it was",
                now == before,
                format!("before {before:?}, restored {now:?}"),
            );
            check_whole(
                d,
                "the last good snapshot's repository is whole",
                site.site(),
                &mut c,
            )?;
            let ups: BTreeSet<i32> = db::uploads::keys(&mut c)?.into_iter().collect();
            d.report.check(
                "it holds the first uploads and not the later ones",
                first.iter().all(|u| ups.contains(u)) && later.iter().all(|u| !ups.contains(u)),
                format!("uploads {ups:?}"),
            );
        }
    } else {
        d.report.check(
            "the last good snapshot is still listed",
            false,
            "it is gone",
        );
    }
    // And the newest one brings every upload back.
    let newest_name = newest.name.clone();
    d.step("restore the newest snapshot", false, |_| {
        site.holdfast.ok(&["restore", "--yes", &newest_name])?;
        Ok(((), format!("snapshot {newest_name}")))
    })?;
    let mut c = site.connect()?;
    let n = db::uploads::count(&mut c)?;
    d.report.check(
        "the newest snapshot holds every upload",
        n as usize == first.len() + later.len(),
        format!("{n} uploads"),
    );
    d.measure_loss(&site, loss_at, Some(&newest.name))?;
    d.report.check(
        "nothing is missing after the restore",
        d.report.data_lost.missing.is_empty(),
        format!("{} missing", d.report.data_lost.missing.len()),
    );
    Ok(())
}

/// The whole site is gone; a new machine is rebuilt from the backup server alone by following
/// the guide.
/// The step that installs the replacement machine of a total-loss drill: an empty FOSSology
/// (its scheduler stopped) and holdfast without a holdfast.toml.
fn install_new_machine(d: &mut Drill, tag: &str, found: &str) -> Result<DrillSite> {
    let spec = SiteSpec {
        tag: format!("{tag}n"),
        ..d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")])
    };
    let (opts, root) = (d.opts, d.root);
    d.step("install a new machine (empty FOSSology)", false, |dd| {
        let new = DrillSite::create(root, "new-server", &opts.holdfast, opts.ssh.clone(), spec)?;
        dd.guard.admit_site(new.site(), new.scratch.cluster.port)?;
        new.standin.kill_all();
        std::fs::remove_file(&new.holdfast.config)?;
        Ok((new, found.to_string()))
    })
}

fn total_loss(d: &mut Drill) -> Result<()> {
    let spec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let tag = spec.tag.clone();
    let (site, _ups) = d.build("server", spec, 3)?;
    d.backup(&site, "nightly backup to the backup server")?;
    let before = counts(&mut site.connect()?)?;
    let loss_at = d.step("lose the whole site", false, |_| {
        let root = site.root.clone();
        drop(site);
        // Cluster, repository, FOSSology and holdfast configuration: all of the machine.
        std::fs::remove_dir_all(&root)?;
        Ok((Utc::now(), format!("{} removed", root.display())))
    })?;
    // The new machine: PostgreSQL and FOSSology freshly installed (an empty database), holdfast
    // installed, no holdfast.toml yet.
    let new = install_new_machine(
        d,
        &tag,
        "empty database, empty repository, no holdfast.toml",
    )?;
    d.follow_guide(&new, &[])?;
    let mut c = new.connect()?;
    let after = counts(&mut c)?;
    d.report.check(
        "the database is back as it was",
        after == before,
        format!("before {before:?}, after {after:?}"),
    );
    check_whole(
        d,
        "every file the database names is in the repository",
        new.site(),
        &mut c,
    )?;
    d.report.check(
        "gold and files still share inodes",
        gold_linked(&new, &mut c)?,
        "a gold file and its files copy are separate copies",
    );
    d.report.check(
        "the scheduler runs again",
        new.standin.is_running(),
        "no scheduler process",
    );
    d.measure_loss(&new, loss_at, None)?;
    Ok(())
}

/// The whole data center is gone: the site AND its backup target. A new machine (with a new,
/// empty backup target) is rebuilt from the off-site copy alone, by the same guide as a
/// total loss with `OFFSITE_COPY` set.
fn site_and_backup_loss(d: &mut Drill) -> Result<()> {
    let spec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let tag = spec.tag.clone();
    let (site, _ups) = d.build("server", spec, 3)?;
    // The off-site copy: a folder on a second ssh server (or a local disk).
    let offsite_dir = d.root.join("offsite-server");
    std::fs::create_dir_all(&offsite_dir)?;
    d.guard.admit_path("off-site copy", &offsite_dir)?;
    let offsite_ssh = d.opts.offsite_ssh.clone();
    let offsite = match &offsite_ssh {
        Some(s) => format!(
            "ssh://{}@127.0.0.1:{}{}",
            s.user,
            s.port,
            offsite_dir.display()
        ),
        None => offsite_dir.display().to_string(),
    };
    let copy_section = |s: &Option<crate::site::SshServer>| {
        let q = crate::site::toml_str;
        let mut t = format!(
            "\n[[backup.copy]]\nname = \"offsite\"\ntarget = {}\nkeep = 3\n",
            q(&offsite)
        );
        if let Some(s) = s {
            t.push_str(&format!(
                "ssh_identity = {}\nssh_options = [{}]\n",
                q(&s.identity.display().to_string()),
                s.options
                    .iter()
                    .map(|o| q(o))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        t
    };
    let mut text = std::fs::read_to_string(&site.holdfast.config)?;
    text.push_str(&copy_section(&offsite_ssh));
    std::fs::write(&site.holdfast.config, text)?;
    d.backup(&site, "nightly backup, copied off-site")?;
    let copy_target = Target::parse(
        &offsite,
        SshOptions {
            identity: offsite_ssh.as_ref().map(|s| s.identity.clone()),
            options: offsite_ssh
                .as_ref()
                .map(|s| s.options.clone())
                .unwrap_or_default(),
        },
    )?;
    let on_copy = holdfast_store::layout::snapshots(&copy_target)?;
    let primary = latest(&site)?;
    d.report.check(
        "the backup's snapshot is on the off-site copy",
        on_copy
            .iter()
            .any(|s| s.manifest.started == primary.manifest.started),
        format!(
            "copy holds {:?}",
            on_copy.iter().map(|s| &s.name).collect::<Vec<_>>()
        ),
    );
    let before = counts(&mut site.connect()?)?;
    let loss_at = d.step("lose the site and the backup server", false, |_| {
        let (root, target_dir) = (site.root.clone(), site.target_dir.clone());
        drop(site);
        std::fs::remove_dir_all(&root)?;
        std::fs::remove_dir_all(&target_dir)?;
        Ok((
            Utc::now(),
            format!("{} and {} removed", root.display(), target_dir.display()),
        ))
    })?;
    // A new machine with a new, empty backup target; the off-site copy is all there is.
    let new = install_new_machine(
        d,
        &tag,
        "empty database, empty repository, empty backup target, no holdfast.toml",
    )?;
    let mut env = vec![("OFFSITE_COPY", offsite.clone())];
    if let Some(s) = &offsite_ssh {
        env.push(("OFFSITE_SSH_KEY", s.identity.display().to_string()));
        env.push((
            "OFFSITE_SSH_OPTIONS",
            s.options
                .iter()
                .map(|o| crate::site::toml_str(o))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    d.follow_guide(&new, &env)?;
    let mut c = new.connect()?;
    let after = counts(&mut c)?;
    d.report.check(
        "the database is back as it was",
        after == before,
        format!("before {before:?}, after {after:?}"),
    );
    check_whole(
        d,
        "every file the database names is in the repository",
        new.site(),
        &mut c,
    )?;
    d.report.check(
        "the scheduler runs again",
        new.standin.is_running(),
        "no scheduler process",
    );
    d.measure_loss_from(&new, &copy_target, loss_at, None)?;
    Ok(())
}

/// The database is dropped, the repository survives; the database comes back from the latest
/// snapshot and the drill reports exactly what the restored database does not know and what
/// it names that is gone.
fn database_loss(d: &mut Drill) -> Result<()> {
    let spec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let (site, ups) = d.build("server", spec, 3)?;
    d.backup(&site, "nightly backup")?;
    let newer = d.more_uploads(&site, 1, "n")?;
    let mut c = site.connect()?;
    // What the restored database cannot know: the newer upload's files that no older upload has.
    let old_refs: BTreeSet<(String, String)> = db::references(&mut c, None)?
        .into_iter()
        .filter(|r| !newer.contains(&r.upload_fk))
        .map(|r| (r.kind, r.name))
        .collect();
    let expect_unknown: BTreeSet<String> = db::references(&mut c, None)?
        .into_iter()
        .filter(|r| newer.contains(&r.upload_fk))
        .filter(|r| !old_refs.contains(&(r.kind.clone(), r.name.clone())))
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    // And one older file the disk lost since the backup.
    let victim = db::references(&mut c, Some(ups[1]))?
        .into_iter()
        .find(|r| r.kind == "files" && !old_refs.iter().any(|(k, n)| k == "gold" && *n == r.name))
        .ok_or_else(|| anyhow!("upload {} has no files", ups[1]))?;
    drop(c);
    let loss_at = d.step("drop the database", false, |_| {
        std::fs::remove_file(site.site().repo.path("files", &victim.name).unwrap())?;
        site.standin.kill_all();
        let mut su = site.scratch.cluster.superuser_client()?;
        su.batch_execute("DROP DATABASE fossology WITH (FORCE)")?;
        Ok((
            Utc::now(),
            format!("one file of upload {} lost too", ups[1]),
        ))
    })?;
    let output = d.follow_guide(&site, &[])?;
    d.measure_loss(&site, loss_at, None)?;
    let unknown: BTreeSet<String> = d.report.data_lost.unknown.iter().cloned().collect();
    d.report.check(
        "the files newer than the backup are reported as unknown to the database",
        unknown == expect_unknown && !unknown.is_empty(),
        format!(
            "expected {} unknown, reported {}; not reported: {:?}; not expected: {:?}",
            expect_unknown.len(),
            unknown.len(),
            expect_unknown.difference(&unknown).collect::<Vec<_>>(),
            unknown.difference(&expect_unknown).collect::<Vec<_>>()
        ),
    );
    d.report.check(
        "the guide's verify named the file the disk lost",
        output.contains(&victim.name),
        format!("{} not in the guide's output", victim.name),
    );
    d.report.check(
        "after the guide's recovery from gold nothing is missing",
        d.report.data_lost.missing.is_empty(),
        format!("{} missing", d.report.data_lost.missing.len()),
    );
    let mut c = site.connect()?;
    let n = db::uploads::count(&mut c)?;
    d.report.check(
        "the database holds the uploads of the backup",
        n as usize == ups.len(),
        format!("{n} uploads"),
    );
    Ok(())
}

/// One repository disk (one `[REPOSITORY]` host range) is lost with an agent's running job;
/// only that part is restored, the other disk is left alone, the job is ready to run again.
fn agent_storage_loss(d: &mut Drill) -> Result<()> {
    let hosts = vec![
        HostRange::new("localhost", "*", "00", "7f"),
        HostRange::new("disk2", "*", "80", "ff"),
    ];
    let spec = d.spec("full", hosts);
    let (site, ups) = d.build("server", spec, 3)?;
    d.backup(&site, "nightly backup")?;
    // The last host folder is the disk that dies; the others must come through untouched.
    let mut dirs = site.site().repo.host_dirs();
    let lost = dirs
        .pop()
        .ok_or_else(|| anyhow!("the site has no [REPOSITORY] host"))?;
    let lost_host = lost
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let kept_before: Vec<_> = dirs.iter().map(|d| inodes(d)).collect();
    let jq = {
        let mut c = site.connect()?;
        start_job(&mut c, ups[0], "nomos")?
    };
    let loss_at = d.step("lose one disk with a running agent", false, |_| {
        let n = inodes(&lost).len();
        site.standin.kill_all();
        std::fs::remove_dir_all(&lost)?;
        Ok((Utc::now(), format!("{n} files on {lost_host} lost")))
    })?;
    d.follow_guide(&site, &[("LOST_HOST", lost_host.clone())])?;
    let mut c = site.connect()?;
    check_whole(
        d,
        "every file the database names is back",
        site.site(),
        &mut c,
    )?;
    d.report.check(
        "the surviving disk was left alone (same files, same inodes)",
        dirs.iter().map(|d| inodes(d)).collect::<Vec<_>>() == kept_before,
        "files on a surviving disk were rewritten or changed",
    );
    let st = job_state(&mut c, jq)?;
    d.report.check(
        "the agent's job is ready to run again",
        st == (false, false),
        format!("started {}, ended {}", st.0, st.1),
    );
    d.measure_loss(&site, loss_at, None)?;
    Ok(())
}

/// Checks that every file the database names is in the repository; meta files that cannot
/// be made again byte for byte after a restore to other paths are set apart (not data lost).
fn check_whole(
    d: &mut Drill,
    what: &str,
    site: &holdfast_site::Site,
    c: &mut postgres::Client,
) -> Result<()> {
    let (v, apart) = loss::verify(site, c)?;
    let detail = match apart {
        0 => format!("{} of {} missing", v.missing.len(), v.checked),
        n => format!(
            "{} of {} missing; {n} meta file(s) that cannot be made again byte for byte set apart (not data lost)",
            v.missing.len(),
            v.checked
        ),
    };
    d.report.check(what, v.is_whole() && v.checked > 0, detail);
    Ok(())
}

/// Whether rsync is halfway through a file under `dir`: one of its temporary files.
fn mid_file(dir: &std::path::Path) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_type().is_file()
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') && n.len() > 8)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_fails_the_drill_even_when_its_caller_goes_on() {
        let mut r = DrillReport::new("plug-pull-backup", "/tmp/x", 1);
        r.check("something else held", true, "");
        record_step::<()>(
            &mut r,
            "restore the last good snapshot",
            true,
            1.0,
            &Err(anyhow!("the dump's checksum differs")),
        );
        record_step(
            &mut r,
            "restore the newest",
            true,
            1.0,
            &Ok(((), String::new())),
        );
        r.finish();
        assert!(!r.passed);
        let failed = r.failed_checks();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].what.contains("restore the last good snapshot"));
        assert!(failed[0].detail.contains("checksum differs"));
        assert_eq!(r.steps.len(), 2);
    }
}
