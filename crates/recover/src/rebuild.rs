//! Rebuilding `files` from gold after a gold-only restore, and for one upload on demand.
//!
//! Order matters: the uploads of jobs the backup cut off (the manifest's rows plus every
//! unfinished `jobqueue` row of the restored database) come first, because FOSSology's
//! scheduler can only run those jobs again once their files exist; they are handed back to
//! the scheduler the moment their uploads are rebuilt, the way its own `--reset` start does.
//! Then every other upload follows, in parallel.
//!
//! Resuming needs no bookkeeping that could disagree with the disk: an upload whose every
//! referenced file is present is skipped, so a run that was killed halfway simply continues
//! with the uploads still incomplete (the unpacker only writes files that are missing).
//! A state table would also be copied by the next backup and wrongly mark a later restore
//! as done.

use crate::explain::{explain, MissingFile, MissingReason};
use crate::{RecoverError, Result};
use holdfast_site::db::{self, QueueRow};
use holdfast_site::Site;
use holdfast_unpack::{unpack_upload, UnpackConfig, UnpackError, UnpackOptions, UnpackSummary};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// How `rebuild_after_restore` works.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Rebuild only what the cut-off jobs need now; leave the rest to recovery on demand.
    pub lazy: bool,
    /// Uploads unpacked at the same time (0 = one per CPU).
    pub jobs: usize,
}

/// What a rebuild did, and every file still missing with its reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RebuildReport {
    pub lazy: bool,
    /// Uploads in the database.
    pub uploads: usize,
    /// Uploads of cut-off jobs, rebuilt first.
    pub cut_off_uploads: Vec<i32>,
    /// Uploads reunpacked by this run, in the order they finished (cut-off ones first).
    pub rebuilt: Vec<i32>,
    /// Uploads that were already whole (a previous run or a full restore did them).
    pub already_whole: usize,
    /// Uploads left to recovery on demand (`lazy`).
    pub deferred: Vec<i32>,
    /// `jobqueue` rows handed back to the scheduler.
    pub requeued: Vec<i32>,
    /// Cut-off rows not handed back: their upload was not rebuilt (gold missing or
    /// corrupt, or its unpack failed).
    pub not_requeued: Vec<i32>,
    pub files_written: u64,
    pub files_bytes: u64,
    pub gold_bytes: u64,
    pub seconds: f64,
    /// References checked by the final verification.
    pub checked: usize,
    pub missing: Vec<MissingFile>,
}

impl RebuildReport {
    /// Files whose content is lost (gold missing, failed member, unexplained).
    pub fn lost(&self) -> Vec<&MissingFile> {
        self.missing.iter().filter(|m| m.reason.is_loss()).collect()
    }
    /// Artifacts that cannot be reproduced byte for byte (not data lost).
    pub fn not_reproducible(&self) -> Vec<&MissingFile> {
        self.missing
            .iter()
            .filter(|m| matches!(m.reason, MissingReason::NotReproducible { .. }))
            .collect()
    }
    /// Nothing lost and nothing deferred.
    pub fn is_whole(&self) -> bool {
        self.missing
            .iter()
            .all(|m| matches!(m.reason, MissingReason::NotReproducible { .. }))
    }
}

/// One upload rebuilt on demand.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UploadOutcome {
    pub upload_pk: i32,
    /// Missing before the reunpack.
    pub missing_before: usize,
    pub summary: Option<UnpackSummary>,
    /// Still missing afterwards, explained.
    pub missing: Vec<MissingFile>,
}

/// Agents that do not read unpacked files: their jobs do not make an upload urgent.
const NO_FILES_AGENTS: [&str; 2] = ["wget_agent", "delagent"];

/// After a gold-only restore: reunpack what is missing, requeue cut-off jobs, explain the rest.
/// Run it while FOSSology's scheduler is stopped: it resets unfinished `jobqueue` rows.
pub fn rebuild_after_restore(
    site: &Site,
    unpack: &UnpackConfig,
    cut_off: &[QueueRow],
    opts: &RebuildOptions,
) -> Result<RebuildReport> {
    rebuild(site, unpack, cut_off, opts, true)
}

/// Reunpacks every incomplete upload (those of unfinished jobs first); hands cut-off jobs
/// back to the scheduler only when `requeue` (never on a live site whose scheduler runs them).
pub fn rebuild(
    site: &Site,
    unpack: &UnpackConfig,
    cut_off: &[QueueRow],
    opts: &RebuildOptions,
    requeue: bool,
) -> Result<RebuildReport> {
    let start = Instant::now();
    let mut c = site.connect()?;
    let mut report = RebuildReport {
        lazy: opts.lazy,
        ..Default::default()
    };

    // Cut-off rows: the manifest's, plus whatever the restored queue still has unfinished.
    let mut rows: Vec<QueueRow> = cut_off.to_vec();
    for r in db::unfinished_jobs(&mut c)? {
        if !rows.iter().any(|x| x.jq_pk == r.jq_pk) {
            rows.push(r);
        }
    }
    let urgent: BTreeSet<i32> = rows
        .iter()
        .filter(|r| !NO_FILES_AGENTS.contains(&r.jq_type.as_str()))
        .filter_map(|r| {
            r.upload_fk
                .or_else(|| r.jq_args.as_deref()?.trim().parse().ok())
        })
        .collect();

    let uploads = db::uploads::gold_sizes(&mut c)?;
    report.uploads = uploads.len();
    report.cut_off_uploads = urgent
        .iter()
        .copied()
        .filter(|u| uploads.iter().any(|(p, _)| p == u))
        .collect();
    let first: Vec<(i32, i64)> = uploads
        .iter()
        .copied()
        .filter(|(u, _)| urgent.contains(u))
        .collect();
    let rest: Vec<(i32, i64)> = uploads
        .iter()
        .copied()
        .filter(|(u, _)| !urgent.contains(u))
        .collect();
    tracing::info!(
        uploads = uploads.len(),
        cut_off = first.len(),
        lazy = opts.lazy,
        "rebuilding files from gold"
    );

    // One pass over the repository tells which uploads need work at all: a resumed run
    // skips the finished ones without a query each.
    let mut pre: HashMap<i32, Pre> = uploads.iter().map(|(u, _)| (*u, Pre::Whole)).collect();
    for r in db::verify(&mut c, &site.repo, None)?.missing {
        let e = pre.entry(r.upload_fk).or_insert(Pre::Whole);
        if r.kind == "gold" {
            if *e == Pre::Whole {
                *e = Pre::OnlyGold;
            }
        } else {
            *e = Pre::Needs;
        }
    }

    // Each job holds two connections (its unpack's and its upload's lock): a big host's
    // CPU count must not exhaust PostgreSQL's max_connections (100 by default).
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get().min(16))
    } else {
        opts.jobs
    };
    // Progress and ETA count the uploads that need work, by their gold bytes.
    let scope: Vec<&(i32, i64)> = if opts.lazy {
        first.iter().collect()
    } else {
        uploads.iter().collect()
    };
    let needs: Vec<&&(i32, i64)> = scope
        .iter()
        .filter(|(u, _)| pre.get(u) == Some(&Pre::Needs))
        .collect();
    let progress = Progress::new(needs.len(), needs.iter().map(|(_, g)| *g as u64).sum());

    let mut failures: Vec<(i32, Vec<String>)> = Vec::new();
    let mut gold_gone: BTreeSet<i32> = BTreeSet::new();
    let phase1 = run_parallel(site, unpack, &first, &pre, jobs, &progress)?;
    // Only these cut-off uploads have their files back; the others (failed, gold gone, not
    // reached before a stop signal, or unpacked with errors that left files out, e.g. a full
    // disk) must not have their jobs run on missing files. Files that can never be made
    // again (see `explain::never_reproducible`) do not hold a job back.
    let mut ready: BTreeSet<i32> = BTreeSet::new();
    for (u, _, step) in &phase1 {
        let whole = match step {
            Step::Whole => true,
            Step::Unpacked(s) if s.errors.is_empty() => true,
            Step::Unpacked(_) => {
                let never = crate::explain::never_reproducible(&mut c, *u)?;
                db::verify(&mut c, &site.repo, Some(*u))?
                    .missing
                    .iter()
                    .all(|r| never.contains_key(&r.pfile_pk))
            }
            _ => false,
        };
        if whole {
            ready.insert(*u);
        }
    }
    absorb(
        &mut report,
        &mut failures,
        &mut gold_gone,
        phase1.into_iter(),
    );
    // A stop signal during phase 1 leaves the queue as it was.
    holdfast_site::interrupt::check()?;

    // Hand the cut-off jobs back as soon as their uploads are whole again.
    let (to_requeue, skip): (Vec<&QueueRow>, Vec<&QueueRow>) = rows.iter().partition(|r| {
        r.upload_fk.is_none_or(|u| {
            ready.contains(&u)
                || !first.iter().any(|(f, _)| *f == u)
                || NO_FILES_AGENTS.contains(&r.jq_type.as_str())
        })
    });
    if requeue {
        report.requeued = requeue_jobs(&mut c, &to_requeue)?;
        report.not_requeued = skip.iter().map(|r| r.jq_pk).collect();
        // Left started, the scheduler's `--reset` start would queue them anyway.
        if !skip.is_empty() {
            let failed = db::jobs::fail_cut_off(
                &mut c,
                &report.not_requeued,
                "holdfast: its upload could not be rebuilt from gold after the restore; \
                 run holdfast check-repo, recover the upload, then schedule the job again",
            )?;
            tracing::warn!(rows = ?failed, "cut-off jobs whose upload was not rebuilt ended as failed");
        }
    }

    if opts.lazy {
        report.deferred = rest.iter().map(|(u, _)| *u).collect();
    } else {
        let phase2 = run_parallel(site, unpack, &rest, &pre, jobs, &progress)?;
        absorb(
            &mut report,
            &mut failures,
            &mut gold_gone,
            phase2.into_iter(),
        );
    }
    holdfast_site::interrupt::check()?;

    // The same verification as a full restore, with a reason for every missing file.
    let verify = db::verify(&mut c, &site.repo, None)?;
    report.checked = verify.checked;
    let mut by_upload: std::collections::BTreeMap<i32, Vec<db::Reference>> = Default::default();
    for r in verify.missing {
        by_upload.entry(r.upload_fk).or_default().push(r);
    }
    for (u, refs) in by_upload {
        let gold = refs
            .iter()
            .find(|r| r.kind == "gold" && gold_gone.contains(&u))
            .map(|r| r.name.clone());
        let errors = failures
            .iter()
            .find(|(x, _)| *x == u)
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        let deferred = report.deferred.contains(&u);
        report
            .missing
            .extend(explain(&mut c, &refs, gold.as_deref(), &errors, deferred)?);
    }
    report.seconds = start.elapsed().as_secs_f64();
    tracing::info!(
        rebuilt = report.rebuilt.len(),
        already_whole = report.already_whole,
        requeued = report.requeued.len(),
        missing = report.missing.len(),
        lost = report.lost().len(),
        seconds = report.seconds,
        "rebuild finished"
    );
    Ok(report)
}

fn absorb(
    report: &mut RebuildReport,
    failures: &mut Vec<(i32, Vec<String>)>,
    gold_gone: &mut BTreeSet<i32>,
    results: impl Iterator<Item = (i32, u64, Step)>,
) {
    for (u, gold, step) in results {
        match step {
            Step::Whole => report.already_whole += 1,
            Step::Unpacked(s) => {
                report.files_written += s.written;
                report.files_bytes += s.bytes;
                report.gold_bytes += gold;
                if !s.errors.is_empty() {
                    failures.push((u, s.errors.clone()));
                }
                report.rebuilt.push(u);
            }
            Step::GoldMissing => {
                gold_gone.insert(u);
            }
            Step::Failed(e) => failures.push((u, vec![e])),
        }
    }
}

enum Step {
    Whole,
    Unpacked(UnpackSummary),
    GoldMissing,
    Failed(String),
}

/// Progress with an ETA from the gold bytes done so far.
struct Progress {
    start: Instant,
    state: Mutex<(usize, u64)>,
    total: usize,
    total_gold: u64,
}

impl Progress {
    fn new(total: usize, total_gold: u64) -> Self {
        Progress {
            start: Instant::now(),
            state: Mutex::new((0, 0)),
            total,
            total_gold,
        }
    }
    fn step(&self, upload: i32, gold: u64, what: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        s.1 += gold;
        let secs = self.start.elapsed().as_secs_f64();
        let eta = if s.1 > 0 && self.total_gold > s.1 {
            let left = (self.total_gold - s.1) as f64 * secs / s.1 as f64;
            format!("{}s", left.round() as u64)
        } else {
            "-".into()
        };
        let line = format!(
            "rebuild {}/{} uploads, {:.1}/{:.1} MB gold, ETA {eta}: upload {upload} {what}",
            s.0,
            self.total,
            s.1 as f64 / 1e6,
            self.total_gold as f64 / 1e6
        );
        tracing::info!(upload, "{line}");
    }
}

fn run_parallel(
    site: &Site,
    cfg: &UnpackConfig,
    uploads: &[(i32, i64)],
    pre: &HashMap<i32, Pre>,
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<(i32, u64, Step)>> {
    let queue = Mutex::new(uploads.iter().copied().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let first_error: Mutex<Option<RecoverError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(uploads.len().max(1)) {
            s.spawn(|| loop {
                if holdfast_site::interrupt::requested() || first_error.lock().unwrap().is_some() {
                    return;
                }
                let Some((u, gold)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let step = match pre.get(&u).copied().unwrap_or(Pre::Needs) {
                    Pre::Whole => Ok(Step::Whole),
                    // Only the gold itself is gone; unpacking cannot bring it back.
                    Pre::OnlyGold => Ok(Step::GoldMissing),
                    Pre::Needs => rebuild_one(site, cfg, u),
                };
                match step {
                    Ok(step) => {
                        let what = match &step {
                            Step::Whole => "already whole".to_string(),
                            Step::Unpacked(s) => {
                                format!("{} files written, {} errors", s.written, s.errors.len())
                            }
                            Step::GoldMissing => "gold missing: cannot rebuild".into(),
                            Step::Failed(e) => format!("failed: {e}"),
                        };
                        if pre.get(&u) == Some(&Pre::Needs) {
                            progress.step(u, gold as u64, &what);
                        }
                        results.lock().unwrap().push((u, gold as u64, step));
                    }
                    Err(e) => {
                        first_error.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap())
}

/// What the first verification said about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pre {
    Whole,
    OnlyGold,
    Needs,
}

/// Runs `f` holding `upload`'s unpack lock ([`db::uploads::lock_for_unpack`]); the lock's
/// connection closes after it. Every unpack holdfast runs on an existing upload goes
/// through here (`unpack` too), so one upload is never unpacked twice at once.
pub fn one_at_a_time<T>(site: &Site, upload: i32, f: impl FnOnce() -> T) -> Result<T> {
    let mut lock = site.connect()?;
    if !db::uploads::lock_for_unpack(&mut lock, upload)? {
        holdfast_site::interrupt::check()?;
    }
    Ok(f())
}

fn rebuild_one(site: &Site, cfg: &UnpackConfig, upload: i32) -> Result<Step> {
    let opts = UnpackOptions {
        repo_only: true,
        ..Default::default()
    };
    match one_at_a_time(site, upload, || unpack_upload(site, upload, cfg, &opts))? {
        Ok(s) => Ok(Step::Unpacked(s)),
        Err(UnpackError::GoldMissing { .. }) => Ok(Step::GoldMissing),
        Err(UnpackError::NoUpload(u)) => Err(RecoverError::NoUpload(u)),
        Err(UnpackError::Db(e)) => Err(e.into()),
        Err(e) => Ok(Step::Failed(e.to_string())),
    }
}

/// Resets cut-off rows as FOSSology's scheduler `--reset` does, and clears the unpack
/// agent's success flag of their uploads as its reunpack page does, so the scheduler runs
/// them again. Returns the rows reset.
pub fn requeue_jobs(c: &mut postgres::Client, rows: &[&QueueRow]) -> Result<Vec<i32>> {
    let pks: Vec<i32> = rows.iter().map(|r| r.jq_pk).collect();
    if pks.is_empty() {
        return Ok(pks);
    }
    let unpack_uploads: Vec<i32> = rows
        .iter()
        .filter(|r| r.jq_type == "ununpack")
        .filter_map(|r| r.upload_fk)
        .collect();
    let reset = db::jobs::requeue(c, &pks, &unpack_uploads)?;
    let mut reset = reset;
    reset.sort_unstable();
    tracing::info!(rows = ?reset, "cut-off jobs handed back to the scheduler");
    Ok(reset)
}

/// Reunpacks one upload now (repository only) and explains whatever is still missing.
pub fn recover_upload(site: &Site, cfg: &UnpackConfig, upload: i32) -> Result<UploadOutcome> {
    let mut c = site.connect()?;
    let before = crate::explain::to_recover(&mut c, &site.repo, upload)?;
    if !db::upload_exists(&mut c, upload)? {
        return Err(RecoverError::NoUpload(upload));
    }
    let mut out = UploadOutcome {
        upload_pk: upload,
        missing_before: before.len(),
        ..Default::default()
    };
    if before.is_empty() {
        return Ok(out);
    }
    if let Some(g) = before.iter().find(|r| r.kind == "gold") {
        if before.iter().all(|r| r.kind == "gold") {
            return Err(RecoverError::GoldMissing {
                upload,
                path: site
                    .repo
                    .path("gold", &g.name)
                    .map_or(g.name.clone(), |p| p.display().to_string()),
            });
        }
    }
    let opts = UnpackOptions {
        repo_only: true,
        ..Default::default()
    };
    let summary = one_at_a_time(site, upload, || unpack_upload(site, upload, cfg, &opts))?
        .map_err(|e| match e {
            UnpackError::NoUpload(u) => RecoverError::NoUpload(u),
            UnpackError::GoldMissing { upload, path } => RecoverError::GoldMissing { upload, path },
            e => RecoverError::Unpack {
                upload,
                message: e.to_string(),
            },
        })?;
    // Counted as `before` was: a slimmed container asked back and not made is not back.
    let after = crate::explain::to_recover(&mut c, &site.repo, upload)?;
    out.missing = explain(&mut c, &after, None, &summary.errors, false)?;
    out.summary = Some(summary);
    Ok(out)
}
