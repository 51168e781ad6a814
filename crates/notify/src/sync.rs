//! Template distribution, the plan's `distributeTemplates.sh`.
//!
//! `holdfast templates push` is the seed's way: run on the self-care (primary master) node
//! at 04:00 from cron, piped to `logger -t distributeTemplates`, it copies the resellers'
//! template folders to every server that sends notifications:
//! `rsync -vrt --delete -e "ssh -i KEY [-p PORT] ..." --files-from LIST SRC/ USER@HOST:DEST/`
//! (LIST names one `<theme>/templates/services/backup/` folder per reseller). `holdfast
//! templates sync` is the same copy pulled from the notification server's side. Both check
//! that every template renders with sample values, so a broken one is reported the day it
//! arrives, not when a warning needs it. `--install-cron` writes the daily 04:00 entry.
//!
//! Unlike the seed's `-vrlt`, holdfast never passes `-l`: rsync then skips symlinks (and
//! deletes what stands under their names on the receiving side) instead of recreating them,
//! so a link to a root-only file on one server never becomes a template on another. The
//! reader refuses links as well ([`crate::templates`]).

use crate::templates::{check_folder, Broken, THEME_SUBDIR};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `[notify.sync]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// The self-care server, `host` or `user@host`; unset: `source_dir` is a local folder.
    pub remote: Option<String>,
    /// SSH private key for the self-care server.
    pub identity_file: Option<PathBuf>,
    /// SSH port of the other server (default: ssh's, 22).
    pub port: Option<u16>,
    /// Extra `ssh` options (e.g. `["-o", "ConnectTimeout=10"]`).
    pub ssh_options: Vec<String>,
    /// `templates push`: the notification servers, `host` or `user@host`.
    pub push_to: Vec<String>,
    /// `templates push`: the theme root on those servers (default: `source_dir`, the same
    /// path as here, like the seed's script).
    pub remote_dir: Option<PathBuf>,
    /// Theme root on the self-care server.
    pub source_dir: PathBuf,
    /// The files-from list: one `<theme>/templates/services/backup/` line per reseller.
    pub files_from: PathBuf,
    /// Local theme root (default: `[notify] themes_dir`).
    pub dest_dir: Option<PathBuf>,
    /// Where `--install-cron` writes the entry.
    pub cron_file: PathBuf,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            remote: None,
            identity_file: None,
            port: None,
            ssh_options: Vec::new(),
            push_to: Vec::new(),
            remote_dir: None,
            source_dir: "/var/www/selfcare/htdocs/themes".into(),
            files_from: "/etc/holdfast/distribute_backup_templates.txt".into(),
            dest_dir: None,
            cron_file: "/etc/cron.d/holdfast-templates".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no destination: set [notify] themes_dir (or [notify.sync] dest_dir)")]
    NoDest,
    #[error("nowhere to push: set [notify.sync] push_to = [\"user@backup-server\", ...]")]
    NoTargets,
    #[error("files-from list {path}: {source} (create it: one <theme>/{THEME_SUBDIR}/ line per reseller)")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("files-from list {path} line {line}: {why}")]
    BadLine {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("cannot run rsync: {0} (install rsync)")]
    Spawn(std::io::Error),
    #[error("rsync from {from} failed with {status}: {stderr}")]
    Rsync {
        from: String,
        status: String,
        stderr: String,
    },
    #[error("cannot write cron file {path}: {source}")]
    Cron {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// The reseller folders named in the list.
    pub folders: Vec<String>,
    /// rsync's `-v` output (the files it transferred or deleted).
    pub rsync_output: String,
    pub templates_checked: usize,
    pub broken: Vec<String>,
}

/// Reads the files-from list, refusing lines that would copy outside a template folder.
pub fn read_list(path: &Path) -> Result<Vec<String>, SyncError> {
    let text = std::fs::read_to_string(path).map_err(|source| SyncError::List {
        path: path.into(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = |why: &str| SyncError::BadLine {
            path: path.into(),
            line: i + 1,
            why: format!("{l:?} {why}"),
        };
        if l.starts_with('/') || l.split('/').any(|c| c == "..") {
            return Err(bad("must be relative, without `..`"));
        }
        if !l.trim_end_matches('/').ends_with(THEME_SUBDIR) {
            return Err(bad(&format!("must end in {THEME_SUBDIR}/")));
        }
        out.push(l.to_string());
    }
    Ok(out)
}

/// The rsync command both directions use: recursive, times, delete, never `-l`; with
/// `dry_run`, `-n --itemize-changes`: what would be copied and deleted, nothing changed.
fn rsync(cfg: &SyncConfig, remote: bool, from: &str, to: &str, dry_run: bool) -> Command {
    let mut cmd = Command::new("rsync");
    cmd.args(["-vrt", "--delete"]);
    if dry_run {
        cmd.args(["--dry-run", "--itemize-changes"]);
    }
    if remote {
        let mut ssh = vec!["ssh".to_string(), "-o".into(), "BatchMode=yes".into()];
        if let Some(k) = &cfg.identity_file {
            ssh.push("-i".into());
            ssh.push(k.display().to_string());
        }
        if let Some(p) = cfg.port {
            ssh.push("-p".into());
            ssh.push(p.to_string());
        }
        ssh.extend(cfg.ssh_options.iter().cloned());
        cmd.arg("-e").arg(ssh.join(" "));
    }
    cmd.arg("--files-from")
        .arg(&cfg.files_from)
        .arg(from)
        .arg(to);
    cmd
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display().to_string().trim_end_matches('/'))
}

fn run_rsync(mut cmd: Command, from: &str) -> Result<String, SyncError> {
    let out = cmd.output().map_err(SyncError::Spawn)?;
    if !out.status.success() {
        return Err(SyncError::Rsync {
            from: from.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Renders every template of the listed folders under `root`.
fn check_all(root: &Path, folders: &[String], report: &mut SyncReport) {
    for f in folders {
        let dir = root.join(f);
        report.templates_checked += std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
                    .count()
            })
            .unwrap_or(0);
        report
            .broken
            .extend(check_folder(&dir).iter().map(Broken::to_string));
    }
}

/// Pulls the template folders from the self-care server and checks the result (with
/// `dry_run`: lists what the pull would copy and delete, and checks nothing).
pub fn sync(
    cfg: &SyncConfig,
    themes_dir: Option<&Path>,
    dry_run: bool,
) -> Result<SyncReport, SyncError> {
    let dest = cfg
        .dest_dir
        .as_deref()
        .or(themes_dir)
        .ok_or(SyncError::NoDest)?;
    let folders = read_list(&cfg.files_from)?;
    if !dry_run {
        std::fs::create_dir_all(dest).map_err(|source| SyncError::List {
            path: dest.into(),
            source,
        })?;
    }
    let src = slash(&cfg.source_dir);
    let from = match &cfg.remote {
        Some(r) => format!("{r}:{src}"),
        None => src,
    };
    let out = run_rsync(
        rsync(cfg, cfg.remote.is_some(), &from, &slash(dest), dry_run),
        &from,
    )?;
    let mut report = SyncReport {
        rsync_output: out,
        ..Default::default()
    };
    if !dry_run {
        check_all(dest, &folders, &mut report);
    }
    report.folders = folders;
    Ok(report)
}

/// What `templates push` did for one server.
#[derive(Debug, Default, Serialize)]
pub struct PushTarget {
    pub target: String,
    pub rsync_output: String,
    /// Why this server did not get the templates (the others still do).
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    /// The check of the local templates, done before they go out.
    pub local: SyncReport,
    pub targets: Vec<PushTarget>,
}

impl PushReport {
    pub fn failed(&self) -> usize {
        self.targets.iter().filter(|t| t.error.is_some()).count()
    }
}

/// Pushes the template folders from this (self-care) server to every `push_to` server.
/// One unreachable server is reported and the others still get the templates. With
/// `dry_run`, each server's list of what would be copied and deleted.
pub fn push(cfg: &SyncConfig, dry_run: bool) -> Result<PushReport, SyncError> {
    if cfg.push_to.is_empty() {
        return Err(SyncError::NoTargets);
    }
    let folders = read_list(&cfg.files_from)?;
    let mut report = PushReport::default();
    check_all(&cfg.source_dir, &folders, &mut report.local);
    report.local.folders = folders;
    let src = slash(&cfg.source_dir);
    let dest = slash(cfg.remote_dir.as_deref().unwrap_or(&cfg.source_dir));
    for t in &cfg.push_to {
        let to = format!("{t}:{dest}");
        let mut r = PushTarget {
            target: t.clone(),
            ..Default::default()
        };
        match run_rsync(rsync(cfg, true, &src, &to, dry_run), &src) {
            Ok(out) => r.rsync_output = out,
            Err(e) => r.error = Some(e.to_string()),
        }
        report.targets.push(r);
    }
    Ok(report)
}

/// The cron entry: daily at 04:00, output to syslog like the plan's. `push` on the
/// self-care node (tag `distributeTemplates`, as the seed's cron line), `sync` on a
/// notification server.
pub fn cron_entry(holdfast: &Path, config: &Path, push: bool) -> String {
    let (verb, tag) = if push {
        ("push", "distributeTemplates")
    } else {
        ("sync", "holdfast-templates")
    };
    // The output goes to syslog under the tag; a failure also reaches cron, which mails it
    // (through a pipe to logger the exit code would be logger's). No `%`: cron reads it as
    // a newline.
    format!(
        "# Distribute selfcare templates (holdfast templates {verb})\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         00 04 * * * root out=$({} --config {} templates {verb} 2>&1); rc=$?; \
         echo \"$out\" | logger -t {tag}; [ $rc -eq 0 ] || echo \"holdfast templates {verb} \
         failed (exit $rc); its output is in syslog under {tag}\"\n",
        holdfast_core::shell::quote(&holdfast.display().to_string()),
        holdfast_core::shell::quote(&config.display().to_string())
    )
}

pub fn install_cron(path: &Path, entry: &str) -> Result<(), SyncError> {
    let err = |source| SyncError::Cron {
        path: path.into(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, entry).map_err(err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("list.txt");
        std::fs::write(&p, "# resellers\nselfcare.r1.org/templates/services/backup/\n\nr2/templates/services/backup\n").unwrap();
        assert_eq!(read_list(&p).unwrap().len(), 2);
        std::fs::write(&p, "../etc/templates/services/backup/\n").unwrap();
        assert!(read_list(&p).unwrap_err().to_string().contains("line 1"));
        std::fs::write(&p, "selfcare.r1.org/\n").unwrap();
        assert!(matches!(read_list(&p), Err(SyncError::BadLine { .. })));
    }
}
