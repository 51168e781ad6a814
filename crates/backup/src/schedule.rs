//! The cron entry for the nightly backup (`/etc/cron.d/holdfast`).

use crate::config::BackupConfig;
use crate::BackupError;
use std::path::Path;

/// The cron file's text: a daily `holdfast backup` at the configured time, as root.
pub fn cron_entry(cfg: &BackupConfig, exe: &Path, config: &Path) -> Result<String, BackupError> {
    let (h, m) = cfg.schedule_time()?;
    Ok(format!(
        "# Written by `holdfast schedule install`; change backup.schedule in {} and run it again.\n\
         SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         {m} {h} * * * root {} --config {} --syslog -q backup\n",
        config.display(),
        exe.display(),
        config.display()
    ))
}

/// Writes the cron file (atomically, mode 0644 as cron requires).
pub fn install(path: &Path, text: &str) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("holdfast-tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_uses_the_configured_time() {
        let cfg = BackupConfig {
            schedule: "03:05".into(),
            ..Default::default()
        };
        let e = cron_entry(
            &cfg,
            Path::new("/usr/bin/holdfast"),
            Path::new("/etc/h.toml"),
        )
        .unwrap();
        assert!(
            e.contains("\n5 3 * * * root /usr/bin/holdfast --config /etc/h.toml"),
            "{e}"
        );
        let bad = BackupConfig {
            schedule: "25:00".into(),
            ..Default::default()
        };
        assert!(cron_entry(&bad, Path::new("/x"), Path::new("/y")).is_err());
    }
}
