//! holdfast.toml: one section per domain; FOSSology facts come from FOSSology's own files.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/holdfast/holdfast.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteSection {
    /// Folder with fossology.conf and Db.conf; default: FO_SYSCONFDIR, then
    /// /usr/local/etc/fossology, then /etc/fossology.
    pub conf_dir: Option<PathBuf>,
    /// Name of this site in manifests and monitoring files (default: the host name).
    pub name: Option<String>,
    /// Where the last backup and verify runs are recorded for monitoring
    /// (default /var/lib/holdfast).
    pub state_dir: Option<PathBuf>,
}

impl SiteSection {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/holdfast"))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The FOSSology site: where its configuration is, its name, where runs are recorded.
    pub site: SiteSection,
    /// How FOSSology's scheduler is stopped for a backup and started again.
    pub scheduler: holdfast_site::scheduler::SchedulerConfig,
    /// Backups of the site: target, layout, retention, database dump.
    pub backup: holdfast_backup::BackupConfig,
    /// What `holdfast schedule install` writes (systemd timers, else cron).
    pub schedule: holdfast_backup::schedule::ScheduleConfig,
    /// Unpacking uploads again from their gold files (recover, reunpack): limits.
    pub unpack: holdfast_unpack::UnpackConfig,
    /// The stoney backup server: accounts, homes, snapshots, sizes.
    pub server: holdfast_server::ServerConfig,
    /// Warnings to backup customers and resellers (the server's check job).
    pub notify: holdfast_notify::NotifyConfig,
    /// `holdfast serve`: the web pages, the JSON API and /metrics.
    pub web: holdfast_web::WebConfig,
}

/// What every subcommand gets: the parsed configuration and where it came from.
pub struct Context {
    pub config: Config,
    pub path: PathBuf,
    /// False when no file existed at the default path and the embedded defaults are used.
    pub from_file: bool,
}

impl Context {
    pub fn load(path: &Path) -> anyhow::Result<Context> {
        let explicit = path != Path::new(DEFAULT_PATH);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let config: Config = toml::from_str(&text).with_context(|| {
                    format!("{} is not valid holdfast configuration", path.display())
                })?;
                Ok(Context {
                    config,
                    path: path.into(),
                    from_file: true,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Context {
                config: Config::default(),
                path: path.into(),
                from_file: false,
            }),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot read configuration {} (create it, or pass --config)",
                    path.display()
                )
            }),
        }
    }

    /// The embedded defaults, for commands that need no configuration file.
    pub fn defaults(path: &Path) -> Context {
        Context {
            config: Config::default(),
            path: path.into(),
            from_file: false,
        }
    }

    /// The FOSSology site this configuration points at.
    pub fn site(&self) -> anyhow::Result<holdfast_site::Site> {
        Ok(holdfast_site::Site::open(
            self.config.site.conf_dir.as_deref(),
        )?)
    }
}
