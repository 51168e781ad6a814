//! `holdfast templates sync`: what the plan's `distributeTemplates.sh` does, run from the
//! server that sends the mails. It pulls the resellers' template folders from the self-care
//! server with
//! `rsync -vrlt --delete -e "ssh -i KEY" --files-from LIST USER@HOST:SRC/ DEST/`
//! (LIST names one `<theme>/templates/services/backup/` folder per reseller), then renders
//! every synced template with sample values so a broken one is reported the day it arrives,
//! not when a warning needs it. `--install-cron` writes the daily 04:00 entry.

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
    /// Extra `ssh` options (e.g. `["-p", "2222"]`).
    pub ssh_options: Vec<String>,
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
            ssh_options: Vec::new(),
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

/// Runs the sync and checks the result.
pub fn sync(cfg: &SyncConfig, themes_dir: Option<&Path>) -> Result<SyncReport, SyncError> {
    let dest = cfg
        .dest_dir
        .as_deref()
        .or(themes_dir)
        .ok_or(SyncError::NoDest)?;
    let folders = read_list(&cfg.files_from)?;
    std::fs::create_dir_all(dest).map_err(|source| SyncError::List {
        path: dest.into(),
        source,
    })?;
    let src = cfg.source_dir.display().to_string();
    let from = match &cfg.remote {
        Some(r) => format!("{r}:{}/", src.trim_end_matches('/')),
        None => format!("{}/", src.trim_end_matches('/')),
    };
    let mut cmd = Command::new("rsync");
    cmd.args(["-vrlt", "--delete"]);
    if cfg.remote.is_some() {
        let mut ssh = vec!["ssh".to_string(), "-o".into(), "BatchMode=yes".into()];
        if let Some(k) = &cfg.identity_file {
            ssh.push("-i".into());
            ssh.push(k.display().to_string());
        }
        ssh.extend(cfg.ssh_options.iter().cloned());
        cmd.arg("-e").arg(ssh.join(" "));
    }
    cmd.arg("--files-from")
        .arg(&cfg.files_from)
        .arg(&from)
        .arg(format!(
            "{}/",
            dest.display().to_string().trim_end_matches('/')
        ));
    let out = cmd.output().map_err(SyncError::Spawn)?;
    if !out.status.success() {
        return Err(SyncError::Rsync {
            from,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut report = SyncReport {
        rsync_output: String::from_utf8_lossy(&out.stdout).into_owned(),
        ..Default::default()
    };
    for f in &folders {
        let dir = dest.join(f);
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
    report.folders = folders;
    Ok(report)
}

/// The cron entry: daily at 04:00, output to syslog like the plan's.
pub fn cron_entry(holdfast: &Path, config: &Path) -> String {
    format!(
        "# Distribute selfcare templates (holdfast templates sync)\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         00 04 * * * root {} --config {} templates sync 2>&1 | logger -t holdfast-templates\n",
        holdfast.display(),
        config.display()
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
