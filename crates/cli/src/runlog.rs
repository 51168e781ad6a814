//! The last run of `backup`, of `verify` (the site) and of `verify --all`/`--snapshot` (the
//! snapshots' proof), kept in `[site] state_dir` (`last-backup.json`, `last-verify.json`,
//! `last-verify-snapshots.json`) so that monitoring can alert on each: `holdfast metrics` and
//! `holdfast serve`'s `/metrics` turn the files into Prometheus gauges. A failed run keeps
//! the time of the last success, which is what "no good backup for 26 hours" is about.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    pub command: String,
    pub site: String,
    /// Backup mode (`full`, `gold`); empty for verify.
    pub kind: String,
    /// `success`, `failure`, `incomplete`, `locked`, `interrupted`.
    pub result: String,
    pub exit_code: u8,
    /// Unix seconds.
    pub finished_at: i64,
    pub secs: f64,
    pub error: Option<String>,
    pub last_success_at: Option<i64>,
    pub last_success_secs: Option<f64>,
    pub snapshot: Option<String>,
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    /// How long FOSSology's scheduler was stopped by the run.
    pub scheduler_down_secs: Option<f64>,
    /// Files verify found missing.
    pub missing: Option<u64>,
    /// Stored files a snapshot proof found damaged, and dumps that failed their check.
    pub damaged: Option<u64>,
}

static FACTS: Mutex<Option<RunRecord>> = Mutex::new(None);

/// Lets a command add what it knows (snapshot, bytes, mode) to its run record.
pub fn note(f: impl FnOnce(&mut RunRecord)) {
    if let Ok(mut g) = FACTS.lock() {
        f(g.get_or_insert_with(RunRecord::default));
    }
}

pub fn path(state_dir: &Path, command: &str) -> PathBuf {
    state_dir.join(format!("last-{command}.json"))
}

fn read(p: &Path) -> Option<RunRecord> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// The last recorded run of `command` (`backup`, `verify`).
pub fn last(state_dir: &Path, command: &str) -> Option<RunRecord> {
    read(&path(state_dir, command))
}

/// Runs kept in `runs.jsonl` (one record a line, newest last).
const HISTORY: usize = 200;

fn history_path(state_dir: &Path) -> PathBuf {
    state_dir.join("runs.jsonl")
}

/// The newest `n` runs of backup and verify, newest first.
pub fn history(state_dir: &Path, n: usize) -> Vec<RunRecord> {
    let text = std::fs::read_to_string(history_path(state_dir)).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .take(n)
        .collect()
}

/// Appends `r` to the history, keeping the newest [`HISTORY`] lines.
fn append_history(state_dir: &Path, r: &RunRecord) -> std::io::Result<()> {
    let p = history_path(state_dir);
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().collect();
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    lines.push(&line);
    let keep = &lines[lines.len().saturating_sub(HISTORY)..];
    holdfast_core::fs::write_atomic(&p, (keep.join("\n") + "\n").as_bytes(), 0o644)
}

/// Writes the record of the run that just ended, as `command`, one of [`RECORDED`] (`main`
/// decides which runs are recorded: not dry runs, nor other commands).
pub fn finish(
    state_dir: &Path,
    command: &str,
    site: &str,
    code: u8,
    secs: f64,
    error: Option<&str>,
) {
    debug_assert!(RECORDED.contains(&command), "{command} is not recorded");
    let p = path(state_dir, command);
    let before = read(&p).unwrap_or_default();
    let mut r = FACTS
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    r.command = command.into();
    r.site = site.into();
    r.result = crate::logging::outcome(code).into();
    r.exit_code = code;
    r.finished_at = now;
    r.secs = secs;
    r.error = error.map(String::from);
    if code == 0 {
        r.last_success_at = Some(now);
        r.last_success_secs = Some(secs);
    } else {
        r.last_success_at = before.last_success_at;
        r.last_success_secs = before.last_success_secs;
        if r.kind.is_empty() {
            r.kind = before.kind;
        }
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let json = serde_json::to_vec_pretty(&r).map_err(std::io::Error::other)?;
        holdfast_core::fs::write_atomic(&p, &json, 0o644)?;
        append_history(state_dir, &r)
    };
    if let Err(e) = write() {
        tracing::warn!(
            "cannot record the run in {} ({e}): monitoring will not see it",
            p.display()
        );
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The runs recorded: the names of their files and metrics (`-` becomes `_`).
pub const RECORDED: [&str; 3] = ["backup", "verify", "verify-snapshots"];

/// Prometheus text for the recorded runs in `state_dir`.
pub fn metrics(state_dir: &Path) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for file in RECORDED {
        let Some(r) = read(&path(state_dir, file)) else {
            continue;
        };
        let command = file.replace('-', "_");
        let labels = format!("site=\"{}\",kind=\"{}\"", esc(&r.site), esc(&r.kind));
        let mut g = |name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                let _ = writeln!(
                    o,
                    "# HELP holdfast_{command}_{name} {help}\n# TYPE holdfast_{command}_{name} gauge\n\
                     holdfast_{command}_{name}{{{labels}}} {v}"
                );
            }
        };
        g(
            "last_result",
            "1 when the last run succeeded, 0 when it did not (see the journal for the error).",
            Some(if r.exit_code == 0 { 1.0 } else { 0.0 }),
        );
        g(
            "last_exit_code",
            "Exit code of the last run.",
            Some(r.exit_code as f64),
        );
        g(
            "last_run_timestamp_seconds",
            "When the last run ended.",
            Some(r.finished_at as f64),
        );
        g(
            "last_success_timestamp_seconds",
            "When the last successful run ended.",
            r.last_success_at.map(|t| t as f64),
        );
        g(
            "last_duration_seconds",
            "How long the last run took.",
            Some(r.secs),
        );
        g(
            "last_bytes",
            "Bytes of the last snapshot (repository and dump).",
            r.bytes.map(|b| b as f64),
        );
        g(
            "last_files",
            "Repository files in the last snapshot.",
            r.files.map(|b| b as f64),
        );
        g(
            "last_scheduler_down_seconds",
            "How long the last backup kept FOSSology's scheduler stopped (the run from its stop to its start).",
            r.scheduler_down_secs,
        );
        g(
            "last_missing_files",
            "Files the last verify found missing.",
            r.missing.map(|b| b as f64),
        );
        g(
            "last_damaged_files",
            "Stored files (and dumps) the last proof of the snapshots found damaged.",
            r.damaged.map(|b| b as f64),
        );
    }
    o
}
