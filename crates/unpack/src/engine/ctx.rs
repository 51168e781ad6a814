//! The shared state of one upload's unpack: its limits, counters and records.

use crate::budget::Budget;
use crate::tree::Node;
use crate::{UnpackConfig, UnpackOptions};
use holdfast_site::repo::Repository;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Output below this size never counts as a bomb, whatever the ratio.
const RATIO_FLOOR: u64 = 16 << 20;

/// Shared state of one upload's unpack.
pub struct Ctx {
    pub repo: Repository,
    pub cfg: UnpackConfig,
    pub opts: UnpackOptions,
    pub tmp: PathBuf,
    pub label: String,
    pub(super) counter: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub written: AtomicU64,
    pub(super) inflight: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    /// Repository files this unpack created (see [`Ctx::drop_unnamed`]).
    pub(super) created: Mutex<Vec<(String, PathBuf)>>,
    /// What ununpack does the same way (see [`Ctx::note`]).
    pub notes: Mutex<Vec<String>>,
    pub progress: ProgressBar,
    /// The upload's shared limits (see [`Ctx::set_gold_size`]).
    pub budget: Budget,
    /// `<name>.dir` of the top file under the fixed meta folder (see `place_member`).
    pub top_dir: std::sync::OnceLock<PathBuf>,
    /// In a repository-only rebuild, the files the upload's rows hold only as plain files
    /// (see `holdfast_site::db::uploadtree::plain_file_names`).
    pub plain: Option<std::collections::HashSet<String>>,
    /// Members taken as plain files from [`Ctx::plain`], without looking at their content.
    pub plain_by_rows: AtomicU64,
}

impl Ctx {
    pub fn new(
        repo: Repository,
        cfg: UnpackConfig,
        opts: UnpackOptions,
        tmp: PathBuf,
        label: String,
        progress: ProgressBar,
    ) -> Self {
        let budget = Budget::new(
            cfg.max_expanded_bytes,
            cfg.max_members,
            cfg.max_temp_bytes,
            cfg.max_seconds,
        );
        Ctx {
            repo,
            cfg,
            opts,
            tmp,
            label,
            counter: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            written: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
            progress,
            budget,
            top_dir: std::sync::OnceLock::new(),
            plain: None,
            plain_by_rows: AtomicU64::new(0),
        }
    }

    /// Caps the whole upload at `max_ratio` times its gold size too (at least 16 MiB), so
    /// nested bombs (42.zip) stop early even though each level alone looks harmless.
    pub fn set_gold_size(&mut self, size: u64) {
        let by_ratio = self.cfg.max_ratio.saturating_mul(size).max(RATIO_FLOOR);
        self.budget.cap_bytes(by_ratio);
    }

    pub(crate) fn temp_path(&self) -> PathBuf {
        self.tmp
            .join(format!("{}", self.counter.fetch_add(1, Relaxed)))
    }

    pub fn record(&self, trail: &str, member: Option<&str>, why: impl std::fmt::Display) {
        let msg = match member {
            Some(m) => format!("{}: {trail}: member {m}: {why}", self.label),
            None => format!("{}: {trail}: {why}", self.label),
        };
        tracing::warn!("{msg}");
        self.errors.lock().unwrap().push(msg);
    }

    /// Records what FOSSology's ununpack does the same way (a command that fails for it
    /// too, a file it skips): said, but not an error of this unpack.
    pub fn note(&self, trail: &str, member: Option<&str>, why: impl std::fmt::Display) {
        let msg = match member {
            Some(m) => format!("{}: {trail}: member {m}: {why}", self.label),
            None => format!("{}: {trail}: {why}", self.label),
        };
        tracing::info!("{msg}");
        self.notes.lock().unwrap().push(msg);
    }

    /// The most bytes a member of a container of `container_size` bytes may expand to.
    pub(super) fn member_limit(&self, container_size: u64) -> u64 {
        let ratio = self
            .cfg
            .max_ratio
            .saturating_mul(container_size)
            .max(RATIO_FLOOR);
        ratio.min(self.budget.bytes_limit())
    }

    /// Takes out the repository files this unpack created that no row of `root` names
    /// (members a later one of the same name replaced; everything, after an interrupted
    /// unpack, with `root` `None`), so nothing sits in `files` without a row. Only for a new
    /// upload: an unpack of an existing upload refills files its old rows name.
    pub fn drop_unnamed(&self, root: Option<&Node>) -> usize {
        let mut named = Vec::new();
        if let Some(r) = root {
            r.pfiles(&mut named);
        }
        let named: std::collections::HashSet<String> =
            named.iter().map(|h| h.pfile_name()).collect();
        self.drop_created_unless(&named)
    }

    /// Takes out the repository files this unpack created whose name is not in `named`.
    pub fn drop_created_unless(&self, named: &std::collections::HashSet<String>) -> usize {
        let mut n = 0;
        for (name, path) in self.created.lock().unwrap().drain(..) {
            if !named.contains(&name) && std::fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Removes a temporary file of ours and gives its bytes back to the temp budget.
    pub(super) fn drop_temp(&self, p: &Path) {
        if let Ok(m) = std::fs::metadata(p) {
            self.budget.temp_sub(m.len());
        }
        let _ = std::fs::remove_file(p);
    }
}
