//! Shared set-up for the backup tests: a scratch site (real PostgreSQL cluster) filled with
//! uploads made from real gzip files, and a scheduler stand-in.
#![allow(dead_code)]

use holdfast_backup::BackupConfig;
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_site::scheduler::SchedulerConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fixture {
    pub standin: StandIn,
    pub scratch: ScratchSite,
    pub cfg: BackupConfig,
    pub sched: SchedulerConfig,
    pub dir: tempfile::TempDir,
    pub used: usize,
}

pub fn fixture(uploads: usize, behaviour: Behaviour, stop_timeout: u64) -> Fixture {
    fixture_in(uploads, behaviour, stop_timeout, "UTF8")
}

/// As [`fixture`], with the site database in `encoding`.
pub fn fixture_in(
    uploads: usize,
    behaviour: Behaviour,
    stop_timeout: u64,
    encoding: &str,
) -> Fixture {
    holdfast_testkit::require("rsync");
    let dir = tempfile::tempdir().unwrap();
    let scratch = ScratchSite::create(&dir.path().join("site"), encoding).unwrap();
    let standin = StandIn::create(
        &dir.path().join("standin"),
        &holdfast_testkit::tag(),
        behaviour,
    )
    .unwrap();
    standin.start().unwrap();
    let sched = standin.config(stop_timeout);
    let cfg = BackupConfig {
        target: dir.path().join("target").display().to_string(),
        lock_file: dir.path().join("backup.lock"),
        keep: 3,
        ..Default::default()
    };
    let mut f = Fixture {
        standin,
        scratch,
        cfg,
        sched,
        dir,
        used: 0,
    };
    f.add_uploads(uploads);
    f
}

impl Fixture {
    pub fn site(&self) -> &holdfast_site::Site {
        &self.scratch.site
    }

    /// Adds `n` more uploads from real .gz files not used yet.
    pub fn add_uploads(&mut self, n: usize) {
        let all = holdfast_sandbox::sample::find_gz(self.used + n + 20);
        let pick: Vec<PathBuf> = all.into_iter().skip(self.used).take(n).collect();
        assert_eq!(pick.len(), n, "not enough .gz files under /usr/share/doc");
        self.used += n;
        holdfast_sandbox::sample::populate(self.site(), &pick).unwrap();
    }

    /// [`add_uploads`](Self::add_uploads), returning the repository files they added.
    pub fn add_uploads_listing(&mut self, n: usize) -> Vec<String> {
        let before = tree(&self.site().repo.root).0;
        self.add_uploads(n);
        tree(&self.site().repo.root)
            .0
            .into_keys()
            .filter(|p| !before.contains_key(p))
            .collect()
    }

    pub fn target_dir(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Restores `snapshot` (the latest when `None`) into the scratch folder `drill/` and a
    /// scratch database, leaving the live site alone; returns that folder and the outcome.
    pub fn restore_scratch(
        &self,
        cfg: &BackupConfig,
        snapshot: Option<String>,
    ) -> (PathBuf, holdfast_backup::RestoreOutcome) {
        let into = self.dir.path().join("drill");
        let opts = holdfast_backup::RestoreOptions {
            snapshot,
            scratch: Some(into.clone()),
            ..Default::default()
        };
        let r = holdfast_backup::restore(self.site(), &self.sched, cfg, &Default::default(), &opts)
            .unwrap();
        (into, r)
    }
}

/// Row counts of the tables the sample fills.
pub fn row_counts(site: &holdfast_site::Site) -> BTreeMap<String, i64> {
    let mut c = site.connect().unwrap();
    [
        "pfile",
        "upload",
        "uploadtree_a",
        "job",
        "jobqueue",
        "users",
    ]
    .iter()
    .map(|t| {
        let n: i64 = c
            .query_one(format!("SELECT count(*) FROM {t}").as_str(), &[])
            .unwrap()
            .get(0);
        (t.to_string(), n)
    })
    .collect()
}

/// `pg_dump` of the site database without comments (they name versions and times).
pub fn pg_dump(db: &holdfast_site::dbconf::DbConf) -> String {
    let env = db.pg_env().unwrap();
    let mut cmd = Command::new("pg_dump");
    env.apply(&mut cmd);
    cmd.arg("--no-owner").arg(db.dbname());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every regular file under `root` (relative path, size) and the groups of names that share
/// an inode.
pub fn tree(root: &Path) -> (BTreeMap<String, u64>, BTreeSet<Vec<String>>) {
    let mut files = BTreeMap::new();
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let m = e.metadata().unwrap();
            files.insert(rel.clone(), m.len());
            by_inode.entry(m.ino()).or_default().push(rel);
        }
    }
    let groups = by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    (files, groups)
}

/// Removes the newest upload's rows as FOSSology's delete agent does (the files no row names
/// any more are the caller's to remove); returns its `upload_pk`.
pub fn delete_last_upload(site: &holdfast_site::Site) -> i32 {
    let up = last_upload(site);
    delete_upload(site, up);
    up
}

/// The newest upload's `upload_pk`.
pub fn last_upload(site: &holdfast_site::Site) -> i32 {
    let mut c = site.connect().unwrap();
    c.query_one("SELECT max(upload_pk) FROM upload", &[])
        .unwrap()
        .get(0)
}

/// Removes upload `up`'s rows as FOSSology's delete agent does (see [`delete_last_upload`]).
pub fn delete_upload(site: &holdfast_site::Site, up: i32) {
    let mut c = site.connect().unwrap();
    c.batch_execute(&format!(
        "DELETE FROM jobqueue WHERE jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = {up}); \
         DELETE FROM job WHERE job_upload_fk = {up}; \
         DELETE FROM uploadtree_a WHERE upload_fk = {up}; \
         DELETE FROM upload WHERE upload_pk = {up}; \
         DELETE FROM pfile p WHERE NOT EXISTS (SELECT 1 FROM uploadtree t WHERE t.pfile_fk = p.pfile_pk) \
           AND NOT EXISTS (SELECT 1 FROM upload u WHERE u.pfile_fk = p.pfile_pk);"
    ))
    .unwrap();
}

/// Points `cfg` at `remote` on the test's sshd, with its throwaway key and no host-key prompt.
pub fn over_ssh(cfg: &mut BackupConfig, sshd: &holdfast_testkit::sshd::Sshd, remote: &Path) {
    cfg.target = format!(
        "ssh://{}@127.0.0.1:{}{}",
        holdfast_testkit::sshd::Sshd::user(),
        sshd.port,
        remote.display()
    );
    cfg.ssh_identity = Some(sshd.client_key.clone());
    cfg.ssh_options = [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
}
