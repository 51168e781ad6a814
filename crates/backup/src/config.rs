//! `[backup]` in holdfast.toml.

use crate::superuser::SuperuserConfig;
use holdfast_store::{DayTrees, Layout, LayoutKind, SshOptions, Store, Target};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a backup copies from the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Database, gold, files, logs and license: a restore is whole at once.
    #[default]
    Full,
    /// Database, gold, license and logs: `files` is rebuilt from gold after a restore.
    Gold,
}

impl Mode {
    /// Repository types copied in this mode.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Mode::Full => &["gold", "files", "logs", "license"],
            Mode::Gold => &["gold", "license", "logs"],
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Gold => "gold",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As the plan says (`pg_dumpall | gzip`).
    #[default]
    Gzip,
    /// Faster and smaller.
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// A local folder, or `ssh://user@host[:port]/path` on the backup server.
    pub target: String,
    /// `rolling` (current + day copies, default), `rotating` (base + incrementals) or
    /// `pool` (each file stored once by its name, a file list per snapshot).
    pub layout: LayoutKind,
    /// Rolling and pool: snapshots kept (`current` included in rolling).
    pub keep: usize,
    /// Rotating: runs per cycle, base included (a new full base every N runs; at most 20).
    pub full_every: usize,
    /// Rolling: how a new store makes each day's whole tree. `auto` (default): btrfs
    /// snapshots when the target folder is on btrfs and the `btrfs` tool works there (a night
    /// then costs its new files, not a new folder tree), else hard links; `hard-links`;
    /// `btrfs` (fail when the target cannot). A store keeps the kind its first day had.
    pub day_trees: DayTrees,
    /// `full` or `gold` (database, gold, license, logs; files rebuilt after restore).
    pub mode: Mode,
    /// `gzip` or `zstd`, for the database dump.
    pub compression: Compression,
    /// Compression level (default: gzip 6, zstd 3).
    pub compression_level: Option<i32>,
    /// SSH private key for remote targets.
    pub ssh_identity: Option<PathBuf>,
    /// Extra `ssh` arguments, e.g. ["-o", "StrictHostKeyChecking=accept-new"].
    pub ssh_options: Vec<String>,
    /// Daily backup time `HH:MM` (local) for `holdfast schedule install` and scheduler.xml.
    pub schedule: String,
    /// The cron file `holdfast schedule install` writes.
    pub cron_file: PathBuf,
    /// Lock file that keeps two backups or restores from running at once. Its folder must be
    /// writable by root (or holdfast's user) alone; it is created 0700 when missing.
    pub lock_file: PathBuf,
    /// Extra rsync options for the repository copy, e.g. ["--bwlimit=50m"].
    pub rsync_args: Vec<String>,
    /// Share (percent) of the new snapshot's files hashed against their names at each backup,
    /// besides those a verification found damaged: rot in a hard-linked or pooled copy is
    /// found and the file copied again from the site. 0 turns the sample off.
    pub check_percent: f64,
    /// Weekly content verification of the snapshots (`holdfast verify --all`), as
    /// `"Sun 04:30"` (local time); empty turns the job off.
    pub verify_schedule: String,
    /// Share of each snapshot's files the scheduled verification proves (100 = all).
    pub verify_sample_percent: f64,
    /// A mount point the target must be on (rsnapshot's `no_create_root`): when it is not
    /// mounted, backups and restores refuse instead of filling the root file system.
    pub require_mount: Option<PathBuf>,
    /// Copy the repository while FOSSology's scheduler runs, and only what changed since
    /// once it is stopped (default). false: stop the scheduler for the whole copy.
    pub precopy: bool,
    /// A night whose new files (as the database counts them) stay under this many MiB and
    /// 5,000 files is not pre-copied (pool layout and btrfs day trees; 0: always pre-copy).
    ///
    /// With the scheduler stopped its copy runs beside the dump and ends about when the
    /// dump does, and the night spares the pre-copy's second pass. A hard-linked day first
    /// links the whole previous tree: that always waits for the pre-copy.
    pub precopy_above_mib: u64,
    /// Nights between whole-repository walks. In between, a night copies what FOSSology's
    /// database says is new since the previous snapshot (rolling and pool layouts), and the
    /// walk catches what the database cannot know (files put back or lost behind its back).
    /// 0 walks every night (`holdfast backup --full-walk` does once).
    pub full_walk_days: u32,
    /// Write the dump on the FOSSology server (in `dump_spool`) and send it with rsync
    /// against the previous snapshot's dump, so only changed blocks cross the wire
    /// (default). false: stream it straight to the target, nothing on the server's disk.
    /// A local target (a folder) is always streamed to: there is no wire to save, and the
    /// spool would cost a second write and a read.
    pub dump_rsync: bool,
    /// Folder for the dump while it is sent (room for one compressed dump; a private
    /// folder is made in it and removed after).
    pub dump_spool: PathBuf,
    /// Online mode: never stop FOSSology's scheduler. The dump is read from an exported
    /// PostgreSQL snapshot (`pg_dump --snapshot`, the roles with `pg_dumpall
    /// --globals-only`) and the repository copied after that point: every file the dump
    /// names is in the snapshot (or listed as missing); jobs running at that point run again
    /// after a restore. What it does not promise: see the guide (docs/full-backup.md).
    pub online: bool,
    /// `pg_dumpall` program (at least the server's major version).
    pub pg_dumpall: String,
    /// `pg_dump` program for online mode (at least the server's major version).
    pub pg_dump: String,
    /// `psql` program for the restore (at least the server's major version).
    pub psql: String,
    /// How `pg_dumpall` and the restore reach PostgreSQL as a superuser
    /// (`[backup.superuser]`; default: the `postgres` OS user over the local socket).
    pub superuser: SuperuserConfig,
    /// `[[backup.copy]]`: other stores every new snapshot is copied to (off-site copies).
    pub copy: Vec<CopyConfig>,
}

/// `[[backup.copy]]`: another store (a second ssh server, a local disk) that each new
/// snapshot is copied to once it is complete, keeping its own number of snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// The copy's name, for `holdfast copy NAME` and `holdfast restore --from NAME`.
    pub name: String,
    /// A local folder, `ssh://user@host[:port]/path`, or `s3://BUCKET/PREFIX` (an
    /// S3-compatible bucket, set up in `[backup.copy.s3]`).
    pub target: String,
    /// Snapshots kept on the copy (default: `backup.keep`).
    #[serde(default)]
    pub keep: Option<usize>,
    /// SSH key and options for this copy (default: the primary target's).
    #[serde(default)]
    pub ssh_identity: Option<PathBuf>,
    #[serde(default)]
    pub ssh_options: Option<Vec<String>>,
    /// Copy right after each backup (default); false: only `holdfast copy` copies.
    #[serde(default = "yes")]
    pub after_backup: bool,
    /// `[backup.copy.s3]`, for a target `s3://BUCKET/PREFIX`: endpoint, region, credentials
    /// file (mode 0600; else the AWS_* environment), object lock, multipart sizes. See
    /// docs/object-storage.md.
    #[serde(default)]
    pub s3: Option<holdfast_bucket::S3Settings>,
}

fn yes() -> bool {
    true
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            target: "/var/backups/holdfast".into(),
            layout: LayoutKind::Rolling,
            keep: 7,
            full_every: 7,
            day_trees: DayTrees::Auto,
            mode: Mode::Full,
            compression: Compression::Gzip,
            compression_level: None,
            ssh_identity: None,
            ssh_options: Vec::new(),
            schedule: "02:30".into(),
            cron_file: PathBuf::from("/etc/cron.d/holdfast"),
            lock_file: PathBuf::from("/run/holdfast/backup.lock"),
            rsync_args: Vec::new(),
            check_percent: 1.0,
            verify_schedule: "Sun 04:30".into(),
            verify_sample_percent: 100.0,
            require_mount: None,
            precopy: true,
            precopy_above_mib: 64,
            full_walk_days: 7,
            dump_rsync: true,
            dump_spool: PathBuf::from("/var/tmp"),
            online: false,
            pg_dumpall: "pg_dumpall".into(),
            pg_dump: "pg_dump".into(),
            psql: "psql".into(),
            superuser: SuperuserConfig::default(),
            copy: Vec::new(),
        }
    }
}

impl BackupConfig {
    /// Whether this run writes the dump to the spool and sends it with rsync (`dump_rsync`,
    /// remote targets only) or streams it to the target.
    pub fn spools_dump(&self, target: &dyn holdfast_store::Store) -> bool {
        self.dump_rsync
            && target
                .as_target()
                .is_none_or(|t| t.local_path("").is_none())
    }

    /// The superuser connection for `site_db` (see [`crate::superuser`]).
    pub fn superuser(
        &self,
        site_db: &holdfast_site::dbconf::DbConf,
    ) -> Result<crate::superuser::Superuser, crate::BackupError> {
        crate::superuser::Superuser::resolve(&self.superuser, site_db)
    }

    pub fn target(&self) -> Result<Target, holdfast_store::StoreError> {
        Target::parse(
            &self.target,
            SshOptions {
                identity: self.ssh_identity.clone(),
                options: self.ssh_options.clone(),
            },
        )
    }

    /// The configured target behind the one store interface every backup, restore and
    /// verification goes through.
    pub fn store(&self) -> Result<Box<dyn Store>, holdfast_store::StoreError> {
        self.open_store(&self.target, self.ssh())
    }

    /// The store a target address names (every kind of target is recognised here).
    pub fn open_store(
        &self,
        spec: &str,
        ssh: SshOptions,
    ) -> Result<Box<dyn Store>, holdfast_store::StoreError> {
        Ok(Box::new(Target::parse(spec, ssh)?))
    }

    fn ssh(&self) -> SshOptions {
        SshOptions {
            identity: self.ssh_identity.clone(),
            options: self.ssh_options.clone(),
        }
    }

    /// The store of copy `c` (ssh settings default to the primary target's).
    pub fn copy_store(&self, c: &CopyConfig) -> Result<Box<dyn Store>, holdfast_store::StoreError> {
        if c.target.starts_with("s3://") {
            // An S3-compatible bucket (pool layout; its retention comes with each plan).
            let settings = c.s3.clone().unwrap_or_default();
            let keep = c.keep.unwrap_or(self.keep).max(1);
            let cfg = holdfast_bucket::BucketConfig::with_settings(&c.target, keep, &settings);
            return Ok(Box::new(holdfast_bucket::BucketStore::open(&cfg)?));
        }
        if c.s3.is_some() {
            return Err(holdfast_store::StoreError::BadTarget {
                spec: c.target.clone(),
                why: format!(
                    "[backup.copy.s3] is set for copy {:?}, but its target is not s3://BUCKET/PREFIX",
                    c.name
                ),
            });
        }
        self.open_store(
            &c.target,
            SshOptions {
                identity: c.ssh_identity.clone().or_else(|| self.ssh_identity.clone()),
                options: c
                    .ssh_options
                    .clone()
                    .unwrap_or_else(|| self.ssh_options.clone()),
            },
        )
    }

    /// The `[[backup.copy]]` named `name`.
    pub fn copy_named(&self, name: &str) -> Result<&CopyConfig, crate::BackupError> {
        self.copy.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.copy.iter().map(|c| c.name.as_str()).collect();
            crate::BackupError::Config(if names.is_empty() {
                format!("no copy named {name:?}: holdfast.toml has no [[backup.copy]]")
            } else {
                format!(
                    "no copy named {name:?} in holdfast.toml (its [[backup.copy]] names: {})",
                    names.join(", ")
                )
            })
        })
    }

    /// The primary target (`None`) or copy `from`.
    pub fn store_for(&self, from: Option<&str>) -> Result<Box<dyn Store>, crate::BackupError> {
        Ok(match from {
            None => self.store()?,
            Some(n) => self.copy_store(self.copy_named(n)?)?,
        })
    }

    /// Every `[[backup.copy]]` has a plain, unique name and a target of its own.
    pub fn check_copies(&self) -> Result<(), crate::BackupError> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.copy {
            let plain = !c.name.is_empty()
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain {
                return Err(crate::BackupError::Config(format!(
                    "[[backup.copy]] name {:?}: use letters, digits, '.', '_' or '-' (e.g. \"offsite\")",
                    c.name
                )));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(crate::BackupError::Config(format!(
                    "two [[backup.copy]] sections are named {:?}: give each its own name",
                    c.name
                )));
            }
            let dest = self.copy_store(c)?;
            if dest.display() == self.store()?.display() {
                return Err(crate::BackupError::Config(format!(
                    "[[backup.copy]] {:?} has the same target as backup.target ({}): a copy must live elsewhere",
                    c.name,
                    dest.display()
                )));
            }
        }
        Ok(())
    }

    pub fn layout(&self) -> Layout {
        Layout {
            kind: self.layout,
            keep: self.keep.max(1),
            full_every: self.full_every.clamp(1, 20),
            day_trees: self.day_trees,
        }
    }

    /// `verify_schedule` as (weekday 0 = Sunday, hour, minute); `None` when off.
    pub fn verify_time(&self) -> Result<Option<(u32, u32, u32)>, crate::BackupError> {
        let v = self.verify_schedule.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let bad = || {
            crate::BackupError::Config(format!(
                "backup.verify_schedule = {v:?} is not a weekday and time such as \"Sun 04:30\" (empty: off)"
            ))
        };
        let (day, time) = v.split_once(' ').ok_or_else(bad)?;
        let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let dow = days
            .iter()
            .position(|d| day.to_ascii_lowercase().starts_with(d))
            .ok_or_else(bad)? as u32;
        let probe = BackupConfig {
            schedule: time.trim().to_string(),
            ..Default::default()
        };
        let (h, m) = probe.schedule_time().map_err(|_| bad())?;
        Ok(Some((dow, h, m)))
    }

    /// Arguments of the scheduled verification (after `holdfast --config FILE`).
    pub fn verify_args(&self) -> Vec<String> {
        let mut a = vec!["verify".to_string(), "--all".to_string()];
        if self.verify_sample_percent > 0.0 && self.verify_sample_percent < 100.0 {
            a.push(format!("--sample={}%", self.verify_sample_percent));
        }
        a
    }

    /// `schedule` as (hour, minute).
    pub fn schedule_time(&self) -> Result<(u32, u32), crate::BackupError> {
        let bad = || {
            crate::BackupError::Config(format!(
                "backup.schedule = {:?} is not a time HH:MM (e.g. \"02:30\")",
                self.schedule
            ))
        };
        let (h, m) = self.schedule.trim().split_once(':').ok_or_else(bad)?;
        let h: u32 = h.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok((h, m))
    }
}

/// True when `dir` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mount_point(dir: &std::path::Path) -> bool {
    let Ok(canon) = dir.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(unescape_mountinfo)
            .is_some_and(|m| std::path::Path::new(&m) == canon)
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl BackupConfig {
    /// With `require_mount`: the target must lie under it and it must be mounted now.
    pub fn check_mount(&self, store: &dyn Store) -> Result<(), crate::BackupError> {
        let Some(m) = &self.require_mount else {
            return Ok(());
        };
        let Some(target) = store.as_target() else {
            return Err(crate::BackupError::Config(format!(
                "backup.require_mount {} is for folder targets; {} is not one (remove require_mount)",
                m.display(),
                store.display()
            )));
        };
        let root = target.path("");
        if !std::path::Path::new(&root).starts_with(m) {
            return Err(crate::BackupError::Config(format!(
                "backup.target {} is not under backup.require_mount {}",
                target.display(),
                m.display()
            )));
        }
        let mounted = match target {
            Target::Local { .. } => is_mount_point(m),
            Target::Ssh { .. } => {
                let q = holdfast_store::target::sh_quote(&m.display().to_string());
                target
                    .run_script(&format!(
                        "if mountpoint -q {q} 2>/dev/null || [ \"$(stat -c %d {q})\" != \"$(stat -c %d {q}/..)\" ]; then echo y; fi"
                    ))?
                    .starts_with(b"y")
            }
        };
        if !mounted {
            return Err(crate::BackupError::Config(format!(
                "backup.require_mount {} is not mounted: refusing to write to {} on the root file \
                 system (mount the backup disk, or remove require_mount from holdfast.toml)",
                m.display(),
                target.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_schedule() {
        let mut c = BackupConfig::default();
        assert_eq!(c.verify_time().unwrap(), Some((0, 4, 30)));
        c.verify_schedule = "wed 23:05".into();
        assert_eq!(c.verify_time().unwrap(), Some((3, 23, 5)));
        c.verify_schedule = "".into();
        assert_eq!(c.verify_time().unwrap(), None);
        c.verify_schedule = "someday 1:00".into();
        assert!(c.verify_time().is_err());
        c.verify_sample_percent = 10.0;
        assert_eq!(c.verify_args(), ["verify", "--all", "--sample=10%"]);
    }

    #[test]
    fn mount_points() {
        assert!(is_mount_point(std::path::Path::new("/")));
        assert!(is_mount_point(std::path::Path::new("/proc")));
        let d = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(&d.path().join("nope")));
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
    }

    #[test]
    fn an_absent_mount_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let cfg = BackupConfig {
            target: d.path().join("disk/holdfast").display().to_string(),
            require_mount: Some(d.path().join("disk")),
            ..Default::default()
        };
        let t = cfg.target().unwrap();
        let e = cfg.check_mount(&t).unwrap_err().to_string();
        assert!(e.contains("is not mounted"), "{e}");
        assert!(!d.path().join("disk").exists(), "nothing created");
    }
}
