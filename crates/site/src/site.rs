use crate::dbconf::{DbConf, DbConfError};
use crate::foconf::{FoConf, FoConfError};
use crate::repo::Repository;
use std::path::{Path, PathBuf};

/// A FOSSology installation as its configuration folder describes it.
#[derive(Debug, Clone)]
pub struct Site {
    /// The folder holding `fossology.conf` and `Db.conf`.
    pub conf_dir: PathBuf,
    pub fo: FoConf,
    pub db: DbConf,
    pub repo: Repository,
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("no FOSSology configuration found: looked for {0} (set site.conf_dir in holdfast.toml or FO_SYSCONFDIR)")]
    NotFound(String),
    #[error(transparent)]
    FoConf(#[from] FoConfError),
    #[error(transparent)]
    DbConf(#[from] DbConfError),
}

/// Where FOSSology keeps its configuration, in the order FOSSology itself looks.
pub fn default_conf_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("FO_SYSCONFDIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("/usr/local/etc/fossology"));
    dirs.push(PathBuf::from("/etc/fossology"));
    dirs
}

impl Site {
    /// Reads `fossology.conf` and `Db.conf` from `conf_dir`, or from FOSSology's default places.
    pub fn open(conf_dir: Option<&Path>) -> Result<Self, SiteError> {
        let candidates = match conf_dir {
            Some(d) => vec![d.to_path_buf()],
            None => default_conf_dirs(),
        };
        let dir = candidates
            .iter()
            .find(|d| d.join("fossology.conf").is_file())
            .ok_or_else(|| {
                SiteError::NotFound(
                    candidates
                        .iter()
                        .map(|d| d.join("fossology.conf").display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
        let fo = FoConf::load(&dir.join("fossology.conf"))?;
        let db = DbConf::load(&dir.join("Db.conf"))?;
        Ok(Site {
            conf_dir: dir.clone(),
            repo: Repository::from_conf(&fo),
            fo,
            db,
        })
    }

    /// Writes this site's configuration files into `conf_dir` (scratch sites, drills, restores).
    pub fn write_conf(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.conf_dir)?;
        std::fs::write(self.conf_dir.join("fossology.conf"), self.fo.render())?;
        // Born 0600: it holds the password, never readable by others for a moment.
        holdfast_core::fs::write_atomic(
            &self.conf_dir.join("Db.conf"),
            self.db.render().as_bytes(),
            0o600,
        )
    }

    /// A site description with one host directory `localhost` for every type.
    pub fn scratch(conf_dir: &Path, repo_root: &Path, db: DbConf) -> Self {
        let fo = FoConf {
            path: repo_root.to_path_buf(),
            depth: 3,
            address: "localhost".into(),
            port: 24693,
            hosts: vec![crate::foconf::HostRange::new("localhost", "*", "00", "ff")],
            // A scratch site belongs to whoever makes it: nothing to give away.
            project_user: crate::repo::Owner::current().user,
            project_group: crate::repo::Owner::current().group,
        };
        Site {
            conf_dir: conf_dir.to_path_buf(),
            repo: Repository::from_conf(&fo),
            fo,
            db,
        }
    }

    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        self.db.pg_config().connect(postgres::NoTls)
    }
}
