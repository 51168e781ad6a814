//! A whole FOSSology-shaped site in one folder: its own PostgreSQL cluster, configuration
//! folder and repository. The demo, the drills and the tests build on it.

use crate::cluster::Cluster;
use anyhow::Result;
use holdfast_site::Site;
use std::path::{Path, PathBuf};

pub struct ScratchSite {
    pub root: PathBuf,
    pub site: Site,
    /// Dropped last: the cluster stops when the scratch site goes away.
    pub cluster: Cluster,
}

impl ScratchSite {
    /// Creates `root/pg` (cluster), `root/etc/fossology` (fossology.conf, Db.conf) and
    /// `root/repository`, with a `fossology` database owned by `fossy` in `encoding`.
    pub fn create(root: &Path, encoding: &str) -> Result<ScratchSite> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let cluster = Cluster::start(&root.join("pg"))?;
        let db = cluster.create_site_db("fossology", "fossy", "fossy", encoding)?;
        let repo = root.join("repository");
        std::fs::create_dir_all(repo.join("localhost"))?;
        let site = Site::scratch(&root.join("etc/fossology"), &repo, db);
        site.write_conf()?;
        Ok(ScratchSite {
            root,
            site,
            cluster,
        })
    }

    pub fn conf_dir(&self) -> &Path {
        &self.site.conf_dir
    }
}
