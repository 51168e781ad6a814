//! plug-pull-job: the power fails while the unpack agent writes an upload; the machine comes
//! back with its disks, and the site is repaired in place, nothing restored.
//!
//! Each kill point: an upload arrives the way FOSSology's upload page leaves it (gold stored
//! and synced, `upload`/`job`/`jobqueue` rows, the `ununpack` row handed to an agent), the
//! agent (`holdfast unpack --upload N`, holdfast's unpacker doing ununpack's job) runs, and
//! at a random moment of its run it and the scheduler get SIGKILL. Then the power cut itself
//! ([`crate::power`]): files the agent wrote that had not reached the disk come back short
//! under their final names. The operator guide's commands are then followed (find the damage
//! with `check-repo --scan`, set it aside and rebuild with `recover --all --scan`, start the
//! scheduler, whose `--reset` hands the cut-off row back), the stand-in scheduler runs the
//! handed-back row with the same agent, and the drill proves the upload is whole, its tree is
//! the one a clean unpack makes, and no short file kept a good name.
//!
//! Then the repair itself is interrupted ([`interrupted_repair`]): `recover --all` and a
//! gold-only `restore` are killed when a random share of `files` is back, the power cut
//! shortens what they wrote last, and the resume the guides give (`recover --all --scan`,
//! `restore` again) must complete the repository without writing again a file that came
//! through (same inode before and after).

use crate::power::{self, RepoFiles};
use crate::report::{KillPoint, Step};
use crate::scenarios::Drill;
use crate::site::DrillSite;
use crate::ununpack::Stop;
use crate::{archives, plug};
use anyhow::{anyhow, bail, Result};
use holdfast_site::db::{self, standin::Rerun, uploadtree::TreeTable};
use holdfast_site::foconf::HostRange;
use holdfast_site::pfile::PfileName;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn plug_pull_job(d: &mut Drill) -> Result<()> {
    let spec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let (site, _ups) = d.build("server", spec, 3)?;
    let kills = d.opts.kills.max(1) as usize;
    let root = d.root.to_path_buf();

    // How long one agent run takes here, on an archive like the ones it will be killed on.
    let calibration = d.step("time one unpack of a fresh upload", false, |_| {
        let a = archives::build_unique(&root.join("archives-cal"), 1, "cal")?;
        let up = arrive(&site, &a[0])?;
        let t = Instant::now();
        site.holdfast
            .ok(&["unpack", "--upload", &up.to_string(), "--json"])?;
        let secs = t.elapsed().as_secs_f64();
        close_rows(&site, up)?;
        Ok((secs, format!("upload {up} unpacked in {secs:.2} s")))
    })?;

    let mut points: Vec<(i32, PathBuf)> = Vec::new();
    let mut attempts = 0;
    while d.report.kill_points.len() < kills && attempts < kills * 2 {
        attempts += 1;
        let n = attempts;
        let archive =
            archives::build_unique(&root.join("archives-kill"), 1, &format!("k{n}-"))?.remove(0);
        let up = arrive(&site, &archive)?;
        let frac: f64 = d.rng.random_range(0.05..0.95);
        // Every second kill point is FOSSology's own way of writing (the stand-in ununpack):
        // in turn between its end marks (upload_mode marked, ununpack_ars not successful),
        // at a random share of its rows, with every row and no end mark, between the last
        // two end marks, then at random shares.
        let agent = if d.report.kill_points.len() % 2 == 1 {
            Killed::Standin(
                match d.report.kill_points.len() / 2 {
                    0 => Stop::ModeMarked,
                    2 => Stop::AllRows,
                    3 => Stop::ParentsSet,
                    _ => Stop::Rows(0),
                },
                frac,
            )
        } else {
            Killed::Holdfast(Duration::from_secs_f64(calibration * frac))
        };
        let Some(point) = kill_point(d, &site, up, n, agent)? else {
            continue;
        };
        d.report.kill_points.push(point);
        points.push((up, archive));
    }
    d.report.check(
        &format!("the agent was killed mid-write at {kills} random points"),
        d.report.kill_points.len() >= kills,
        format!(
            "{} kills in {attempts} attempts (the others finished first)",
            d.report.kill_points.len()
        ),
    );

    // The recovered uploads hold the tree a clean unpack of the same archive makes.
    let reference = d.step("upload the same archives again, cleanly", false, |_| {
        let files: Vec<PathBuf> = points.iter().map(|(_, a)| a.clone()).collect();
        let mut c = site.connect()?;
        let before = db::uploads::max_key(&mut c)?;
        let mut args: Vec<String> = vec!["upload".into(), "--json".into()];
        args.extend(files.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        site.holdfast.ok(&refs)?;
        let ups = db::uploads::keys_after(&mut c, before)?;
        let n = ups.len();
        Ok((ups, format!("{n} reference uploads")))
    })?;
    let mut c = site.connect()?;
    let mut differ = Vec::new();
    for ((up, _), r) in points.iter().zip(&reference) {
        if tree(&mut c, *up)? != tree(&mut c, *r)? {
            differ.push(*up);
        }
    }
    d.report.check(
        "every recovered upload has the tree a clean unpack of its archive makes",
        differ.is_empty() && reference.len() == points.len(),
        format!("uploads {differ:?} differ from their reference"),
    );
    let scan = holdfast_recover::damage::scan(&site.site().repo)?;
    d.report.check(
        "no file in the repository is shorter than its name says",
        scan.is_clean(),
        format!("{} damaged: {:?}", scan.damaged.len(), scan.damaged.first()),
    );
    d.report.data_lost.missing = crate::loss::missing_files(site.site(), &mut c)?;
    d.report.data_lost.unknown = crate::loss::unknown_files(site.site(), &mut c)?;
    d.report.check(
        "nothing is missing after the recoveries",
        d.report.data_lost.missing.is_empty(),
        format!("{} missing", d.report.data_lost.missing.len()),
    );
    // The repair is interrupted too: a recover --all, and a gold-only restore's rebuild.
    let resumes = d.opts.resume_kills;
    if resumes > 0 {
        interrupted_repair(
            d,
            &site,
            "recover --all",
            resumes,
            &["recover", "--all", "--json"],
            &["recover", "--all", "--scan", "--json"],
        )?;
        d.step("gold-only backup", false, |_| {
            site.holdfast.ok(&["backup", "--mode", "gold"])?;
            Ok(((), String::new()))
        })?;
        // A killed restore leaves its in-progress marker; running it again completes it.
        interrupted_repair(
            d,
            &site,
            "gold-only restore",
            resumes,
            &["restore", "--yes"],
            &["restore", "--yes", "--json"],
        )?;
    }
    d.report.check(
        "the scheduler runs again",
        site.standin.is_running(),
        "no scheduler process",
    );
    Ok(())
}

/// The upload arrives as FOSSology's upload page leaves it for the unpack agent: the gold
/// file stored (and synced: it arrived long before the unpack ran), the pfile, upload, job
/// and jobqueue rows, the `ununpack` row handed to an agent.
fn arrive(site: &DrillSite, archive: &Path) -> Result<i32> {
    let h = holdfast_unpack::hash::hash_file(archive)?;
    let gold = site
        .site()
        .repo
        .path("gold", &h.pfile_name())
        .ok_or_else(|| anyhow!("no [REPOSITORY] line covers gold"))?;
    site.site().repo.ensure_parent(&gold)?;
    std::fs::copy(archive, &gold)?;
    std::fs::File::open(&gold)?.sync_all()?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut c = site.connect()?;
    let ids = holdfast_unpack::db::create_upload(
        &mut c,
        &name,
        &h,
        None,
        &holdfast_unpack::db::Owner::default(),
    )?;
    Ok(ids.upload_pk)
}

/// What the stand-in scheduler does when an agent finishes a row: the upload's queue rows
/// (`ununpack` and `adj2nest`, which holdfast's unpacker does in one go) end successfully.
fn close_rows(site: &DrillSite, upload: i32) -> Result<u64> {
    let mut c = site.connect()?;
    Ok(db::jobs::complete_unpack_rows(&mut c, upload)?)
}

/// The rows of one upload's tree, by name, pfile and mode (keys differ between uploads).
fn tree(c: &mut postgres::Client, upload: i32) -> Result<Vec<(String, String, i32)>> {
    Ok(db::uploadtree::signature(c, &TreeTable::default(), upload)?)
}

/// Which agent a kill point kills, and when.
#[derive(Clone, Copy)]
enum Killed {
    /// holdfast's unpacker (`holdfast unpack --upload N`), after this long.
    Holdfast(Duration),
    /// The stand-in for FOSSology's ununpack ([`crate::ununpack`]), halted at this place
    /// (`Rows`: once the given share of the upload's rows is committed).
    Standin(Stop, f64),
}

/// Where the agent was when it died.
fn phase(c: &mut postgres::Client, upload: i32) -> Result<&'static str> {
    let rows = db::uploadtree::count(c, &TreeTable::default(), upload)?;
    Ok(if rows == 0 {
        "unpacking (no rows committed)"
    } else {
        "rows committed, queue rows not closed"
    })
}

/// One kill point; `None` when the agent finished before the pull (no kill to recover from).
fn kill_point(
    d: &mut Drill,
    site: &DrillSite,
    up: i32,
    n: usize,
    agent: Killed,
) -> Result<Option<KillPoint>> {
    let repo = site.site().repo.clone();
    let standin = match agent {
        Killed::Standin(..) => Some(crate::ununpack::prepare(
            site,
            up,
            &d.root.join("standin-ununpack"),
        )?),
        Killed::Holdfast(_) => None,
    };
    let before = RepoFiles::read(&repo);
    let stop = match (agent, &standin) {
        (Killed::Standin(Stop::Rows(_), frac), Some(a)) => Some(Stop::Rows(
            ((a.rows as f64 * frac) as usize).clamp(1, a.rows - 1),
        )),
        (Killed::Standin(stop, _), _) => Some(stop),
        _ => None,
    };
    let mut cmd = match (&standin, stop) {
        (Some(a), Some(stop)) => a.command(stop),
        _ => site
            .holdfast
            .command(&["unpack", "--upload", &up.to_string(), "--json"]),
    };
    let log = d.root.join(format!("standin-ununpack/upload-{up}.log"));
    cmd.stdout(std::process::Stdio::null())
        .stderr(match &standin {
            Some(_) => std::fs::File::create(&log)?.into(),
            None => std::process::Stdio::null(),
        });
    let t = Instant::now();
    let (pull, planned) = match (agent, &standin, stop) {
        (Killed::Standin(..), Some(a), Some(stop)) => {
            (pull_at_halt(&mut cmd, a)?, where_halted(stop, a.rows))
        }
        (Killed::Holdfast(after), _, _) => (
            plug::run_and_pull(&mut cmd, after)?,
            format!("{:.2} s", after.as_secs_f64()),
        ),
        _ => unreachable!("prepared above"),
    };
    let who = if standin.is_some() {
        "ununpack stand-in"
    } else {
        "holdfast"
    };
    if let Some(a) = &standin {
        // ununpack's temporary folder would stay behind; it is no part of what is checked.
        a.clean();
        // It halts at its place and waits for the pull: ending on its own, or never getting
        // there, is a fault of the stand-in, not a kill point.
        if pull.finished.is_some() || !a.halted() {
            bail!(
                "the stand-in ununpack did not halt at {planned} ({}): {}",
                pull.finished
                    .map_or("it hung".to_string(), |st| format!("it ended, {st}")),
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            );
        }
    }
    if pull.finished.is_some() {
        close_rows(site, up)?;
        d.report.steps.push(Step {
            name: format!("kill attempt {n}"),
            secs: t.elapsed().as_secs_f64(),
            recovery: false,
            detail: format!("upload {up}: the agent ({who}) finished before the pull at {planned}"),
        });
        return Ok(None);
    }
    // The power goes: the scheduler dies with the agent, unsynced data is lost.
    site.standin.kill_all();
    let after_kill = RepoFiles::read(&repo);
    let cut = power::lose_unsynced(&before, &after_kill, &mut d.rng)?;
    let mut c = site.connect()?;
    let phase = match &standin {
        Some(a) => format!(
            "{} of {} rows, {}",
            crate::ununpack::rows(&mut c, up)?,
            a.rows,
            match stop {
                Some(Stop::AllRows) => "no end mark",
                Some(Stop::ModeMarked) => "upload_mode marked",
                Some(Stop::ParentsSet) => "realparent set",
                _ => "next file linked",
            }
        ),
        None => phase(&mut c, up)?.to_string(),
    };
    let mut point = KillPoint {
        point: d.report.kill_points.len() + 1,
        upload: up,
        agent: who.to_string(),
        after_secs: pull.after_secs,
        phase: phase.clone(),
        files_written: cut.written.len(),
        truncated: cut.truncated.len(),
        recovery_secs: 0.0,
        files_recovered: 0,
        passed: false,
    };
    let label = format!("kill point {}", point.point);
    d.report.steps.push(Step {
        name: format!("{label}: pull the plug on the unpack"),
        secs: t.elapsed().as_secs_f64(),
        recovery: false,
        detail: format!(
            "upload {up}: {who} got SIGKILL after {:.2} s ({phase}), {} files written, {} cut short by the power cut",
            pull.after_secs,
            cut.written.len(),
            cut.truncated.len()
        ),
    });
    let checks_before = d.report.checks.len();

    // What check-repo says before anything is repaired.
    let recovery = Instant::now();
    let out = site
        .holdfast
        .run(&["check-repo", "--scan", "--files", "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow!("check-repo --json printed no JSON ({e}): {:?}", out))?;
    let listed = doc["uploads"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["upload_pk"] == up));
    d.report.check(
        &format!("{label}: check-repo names the cut-off upload {up}"),
        out.status.code() == Some(3)
            && listed.is_some_and(|u| {
                !u["unpack_unfinished"].is_null() || u["missing_files"].as_u64() > Some(0)
            }),
        format!("exit {:?}, upload listed: {listed:?}", out.status.code()),
    );
    let named: BTreeSet<PathBuf> = doc["scan"]["damaged"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["path"].as_str().map(PathBuf::from))
        .chain(
            doc["uploads"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|u| u["missing"].as_array().into_iter().flatten())
                .filter_map(|m| {
                    let kind = m["kind"].as_str()?;
                    repo.path(kind, m["name"].as_str()?)
                }),
        )
        .collect();
    let unnamed: Vec<&PathBuf> = cut
        .truncated
        .iter()
        .filter(|p| !named.contains(*p))
        .collect();
    d.report.check(
        &format!("{label}: check-repo names every file the power cut left short"),
        unnamed.is_empty(),
        format!("not named: {unnamed:?}"),
    );
    // Files of the upload's rows (when they were committed) that are absent are named too.
    let absent: Vec<PathBuf> = holdfast_site::db::references(&mut c, Some(up))?
        .into_iter()
        .filter(|r| PfileName::parse(&r.name).is_some_and(|n| !repo.has(&r.kind, &n)))
        .filter_map(|r| repo.path(&r.kind, &r.name))
        .filter(|p| !named.contains(p))
        .collect();
    d.report.check(
        &format!("{label}: check-repo names every file of the upload that is missing"),
        absent.is_empty(),
        format!("not named: {absent:?}"),
    );

    // The guide's repair, then the scheduler runs the row its --reset handed back.
    d.follow_guide(site, &[])?;
    let rerun = d.step(
        &format!("{label}: the scheduler runs the cut-off unpack again"),
        true,
        |_| {
            let mut c = site.connect()?;
            let queued = db::jobs::queued_unpacks(&mut c, up)?;
            if queued == 0 {
                bail!("the scheduler's start did not hand the ununpack row of upload {up} back");
            }
            db::jobs::start_unpack_rows(&mut c, up)?;
            // As FOSSology's ununpack reruns (not as holdfast's unpacker, which replaces a
            // dead run's rows): a tree the guide left half stays half, and the drill fails.
            let n = up.to_string();
            let rerun = db::standin::rerun_would(&mut c, up)?;
            let args: &[&str] = match rerun {
                Rerun::Done => &[],
                Rerun::FilesOnly => &["unpack", "--upload", &n, "--repo-only", "--json"],
                Rerun::Whole => &["unpack", "--upload", &n, "--json"],
            };
            let written = if args.is_empty() {
                0
            } else {
                let out = site.holdfast.ok(args)?;
                let s: holdfast_unpack::UnpackSummary = serde_json::from_str(out.trim())?;
                s.written
            };
            if rerun == Rerun::FilesOnly {
                db::standin::rerun_end_marks(&mut c, up)?;
            }
            close_rows(site, up)?;
            Ok((written, format!("{rerun:?}: {written} files written")))
        },
    );
    let after_out = site.holdfast.run(&["check-repo", "--scan", "--json"])?;
    point.recovery_secs = recovery.elapsed().as_secs_f64();
    d.report.check(
        &format!("{label}: check-repo --scan finds nothing after the repair"),
        after_out.status.success(),
        String::from_utf8_lossy(&after_out.stdout)
            .chars()
            .take(600)
            .collect::<String>(),
    );
    // Files recovered: the upload's files that were absent or short at the kill.
    let at_kill: BTreeMap<&Path, u64> = cut.state_at_kill();
    let refs = holdfast_site::db::references(&mut c, Some(up))?;
    let mut recovered = BTreeSet::new();
    for r in &refs {
        if let Some(p) = repo.path(&r.kind, &r.name) {
            let back = PfileName::parse(&r.name).is_some_and(|n| repo.has(&r.kind, &n));
            if back && at_kill.get(p.as_path()) != Some(&r.size) {
                recovered.insert(p);
            }
        }
    }
    point.files_recovered = recovered.len();
    let whole = holdfast_site::db::verify(&mut c, &repo, Some(up))?;
    d.report.check(
        &format!("{label}: upload {up} is whole again, in place"),
        rerun.is_ok() && whole.is_whole() && whole.checked > 1,
        format!(
            "rerun {:?}, {} of {} files missing",
            rerun.as_ref().err().map(|e| e.to_string()),
            whole.missing.len(),
            whole.checked
        ),
    );
    point.passed = d.report.checks[checks_before..].iter().all(|c| c.ok);
    Ok(Some(point))
}

/// Where the stand-in is told to halt, in words.
fn where_halted(stop: Stop, rows: usize) -> String {
    match stop {
        Stop::Rows(n) => format!("row {n} of {rows}, the next file linked"),
        Stop::AllRows => format!("all {rows} rows committed, before the end marks"),
        Stop::ModeMarked => "upload_mode marked, before realparent and ununpack_ars".into(),
        Stop::ParentsSet => "realparent set, before ununpack_ars".into(),
    }
}

/// Runs `cmd` (the stand-in ununpack) and pulls the plug once it has halted where it was
/// told to.
fn pull_at_halt(
    cmd: &mut std::process::Command,
    agent: &crate::ununpack::Agent,
) -> Result<plug::Pull> {
    let t = Instant::now();
    let mut child = plug::spawn_group(cmd)?;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(plug::Pull {
                after_secs: t.elapsed().as_secs_f64(),
                finished: Some(st),
                killed: Vec::new(),
            });
        }
        if agent.halted() || t.elapsed() > Duration::from_secs(300) {
            let killed = plug::pull(&mut child);
            return Ok(plug::Pull {
                after_secs: t.elapsed().as_secs_f64(),
                finished: None,
                killed,
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The repair itself is interrupted: `first` (a `recover --all` or a gold-only `restore`)
/// rebuilds `files` after `breakage` removed it, and the power fails when a random share of
/// the files is back. `resume` (what the guide says to run after such a stop) must finish
/// the work without redoing what survived, and leave no short file under a good name.
pub(crate) fn interrupted_repair(
    d: &mut Drill,
    site: &DrillSite,
    what: &str,
    points: usize,
    first: &[&str],
    resume: &[&str],
) -> Result<()> {
    let repo = site.site().repo.clone();
    let expected: BTreeSet<String> = {
        let mut c = site.connect()?;
        holdfast_site::db::references(&mut c, None)?
            .into_iter()
            .filter(|r| r.kind == "files")
            .map(|r| r.name)
            .collect()
    };
    let mut killed = 0;
    for n in 1..=points * 2 {
        if killed == points {
            break;
        }
        let label = format!("{what}, kill {}", killed + 1);
        // The damage the repair is for: every host's `files` gone (gold stays).
        for h in repo.host_dirs() {
            let _ = std::fs::remove_dir_all(h.join("files"));
        }
        let before = RepoFiles::read(&repo);
        let at: usize = d
            .rng
            .random_range(expected.len() / 10..expected.len() * 9 / 10)
            .max(1);
        let mut cmd = site.holdfast.command(first);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let t = Instant::now();
        let mut child = plug::spawn_group(&mut cmd)?;
        let finished = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            let back = RepoFiles::read(&repo)
                .0
                .keys()
                .filter(|p| p.components().any(|c| c.as_os_str() == "files"))
                .count();
            if back >= at || t.elapsed() > Duration::from_secs(600) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(st) = finished {
            d.report.steps.push(Step {
                name: format!("{what}: attempt {n}"),
                secs: t.elapsed().as_secs_f64(),
                recovery: false,
                detail: format!("finished ({st}) before {at} files were back; not a kill"),
            });
            continue;
        }
        plug::pull(&mut child);
        site.standin.kill_all();
        let killed_at = t.elapsed().as_secs_f64();
        let at_kill = RepoFiles::read(&repo);
        let cut = power::lose_unsynced(&before, &at_kill, &mut d.rng)?;
        // The files that came through whole, with their inodes: a resume that continues
        // leaves them alone; one that starts over writes them again.
        let intact: BTreeMap<PathBuf, u64> = cut
            .at_kill
            .iter()
            .filter(|(p, size)| {
                p.components().any(|c| c.as_os_str() == "files")
                    && p.file_name()
                        .and_then(|f| PfileName::parse(&f.to_string_lossy()))
                        .is_some_and(|n| n.size == **size)
            })
            .filter_map(|(p, _)| Some((p.clone(), at_kill.0.get(p)?.0)))
            .collect();
        killed += 1;
        let resumed = d.step(&format!("{label}: resume"), true, |_| {
            let out = site.holdfast.ok(resume)?;
            // `recover --all --json` prints the rebuild report, `restore --json` holds it.
            let doc: serde_json::Value = serde_json::from_str(&out)?;
            let r: holdfast_recover::RebuildReport =
                serde_json::from_value(doc.get("rebuild").cloned().unwrap_or(doc)).map_err(
                    |e| anyhow!("`holdfast {}` printed no rebuild report: {e}", resume.join(" ")),
                )?;
            Ok((
                r.files_written,
                format!(
                    "killed after {killed_at:.2} s with {} of {} files back ({} cut short); the resume wrote {}",
                    intact.len() + cut.truncated.len(),
                    expected.len(),
                    cut.truncated.len(),
                    r.files_written
                ),
            ))
        });
        let mut c = site.connect()?;
        let v = holdfast_site::db::verify(&mut c, &repo, None)?;
        let scan = holdfast_recover::damage::scan(&repo)?;
        let now = RepoFiles::read(&repo);
        let rewritten = intact
            .iter()
            .filter(|(p, ino)| now.0.get(*p).map(|x| x.0) != Some(**ino))
            .count();
        d.report.check(
            &format!("{label}: the resumed repair made the repository whole, nothing short left"),
            resumed.is_ok() && v.is_whole() && scan.is_clean(),
            format!(
                "resume {:?}; {} missing, {} damaged",
                resumed.as_ref().err().map(|e| e.to_string()),
                v.missing.len(),
                scan.damaged.len()
            ),
        );
        if let Ok(written) = resumed {
            d.report.check(
                &format!("{label}: the resume only wrote what was not back yet"),
                rewritten == 0 && !intact.is_empty() && (written as usize) < expected.len(),
                format!(
                    "{written} written of {}; {rewritten} of the {} files intact at the kill were written again",
                    expected.len(),
                    intact.len()
                ),
            );
        }
    }
    d.report.check(
        &format!("{what} was killed at {points} random points"),
        killed == points,
        format!("{killed} kills"),
    );
    if !site.standin.is_running() {
        site.standin.start()?;
    }
    Ok(())
}
