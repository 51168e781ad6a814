//! A bucket on a real S3 server (rclone serve s3 on loopback) and a primary target in the
//! pool layout made by hand: files named by their content, like FOSSology's repository.
#![allow(dead_code)]

use holdfast_bucket::{Bucket, BucketConfig, BucketStore};
use holdfast_store::copy::CopyRun;
use holdfast_store::layout::{stamp, Snapshot, FILE_LIST};
use holdfast_store::manifest::MANIFEST_FILE;
use holdfast_store::{pool, Manifest, StoreError, Target};
use holdfast_testkit::s3::S3Server;
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::path::{Path, PathBuf};

pub struct World {
    pub dir: tempfile::TempDir,
    pub server: S3Server,
    pub cfg: BucketConfig,
}

pub fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), "offsite").unwrap();
    let creds = dir.path().join("s3.credentials");
    server.write_credentials(&creds).unwrap();
    let mut cfg = BucketConfig::new("s3://offsite/site-a");
    cfg.endpoint = server.endpoint();
    cfg.credentials_file = Some(creds);
    // Small parts so a test file of a few MiB goes multipart.
    cfg.multipart_threshold_mib = 5;
    cfg.part_size_mib = 5;
    World { dir, server, cfg }
}

impl World {
    pub fn bucket(&self) -> Bucket {
        Bucket::open(&self.cfg).unwrap()
    }

    pub fn primary_dir(&self) -> PathBuf {
        self.dir.path().join("primary")
    }

    pub fn primary(&self) -> Target {
        std::fs::create_dir_all(self.primary_dir()).unwrap();
        Target::parse(
            &self.primary_dir().display().to_string(),
            Default::default(),
        )
        .unwrap()
    }

    /// What `holdfast copy` runs: every primary snapshot the bucket lacks (at most `keep`),
    /// then the bucket's retention.
    pub fn copy(&self) -> Result<CopyRun, StoreError> {
        self.copy_from(&self.primary())
    }

    pub fn copy_from(&self, source: &Target) -> Result<CopyRun, StoreError> {
        let spool = self.dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let store = BucketStore::open(&self.cfg)?;
        holdfast_store::copy::run("offsite", source, &store, self.cfg.keep, &[], &spool)
    }

    /// The file behind a pool object in the bucket.
    pub fn object_file(&self, repo_rel: &str) -> PathBuf {
        self.server.object_path(&format!(
            "site-a/{}",
            holdfast_bucket::copy::object_rel(repo_rel)
        ))
    }
}

/// FOSSology's name for `data`.
pub fn pfile_name(data: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        hex::encode(Sha1::digest(data)),
        hex::encode(Md5::digest(data)),
        data.len()
    )
}

/// Repository-relative path of `data` in FOSSology's layout.
pub fn repo_rel(data: &[u8]) -> String {
    let n = pfile_name(data);
    format!("localhost/files/{}/{}/{}/{n}", &n[0..2], &n[2..4], &n[4..6])
}

/// `n` distinct contents of about `size` bytes, seeded by `seed`.
pub fn contents(seed: u64, n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut x = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i as u64 + 1);
            (0..size + i % 7)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

/// Writes a complete pool-layout snapshot started at `t` holding `files` into the primary
/// (the pool keeps every earlier file, as the real layout does) and returns it.
pub fn snapshot(primary: &Path, t: chrono::DateTime<chrono::Utc>, files: &[Vec<u8>]) -> Snapshot {
    let mut list = Vec::new();
    for data in files {
        let rel = repo_rel(data);
        let p = primary.join("pool/repository").join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        list.push(rel);
    }
    list.sort();
    let name = format!("snap.{}", stamp(t));
    let sd = primary.join(&name);
    std::fs::create_dir_all(sd.join("db")).unwrap();
    std::fs::write(sd.join(FILE_LIST), pool::encode(&list)).unwrap();
    let dump = contents(t.timestamp() as u64, 1, 40_000).remove(0);
    std::fs::write(sd.join("db/fossology.sql.gz"), &dump).unwrap();
    let bytes: u64 = files.iter().map(|f| f.len() as u64).sum();
    let manifest: Manifest = serde_json::from_value(serde_json::json!({
        "format": 1, "site": "test", "mode": "full", "layout": "pool", "kind": "full",
        "holdfast_version": "test", "started": t, "finished": t,
        "database": {
            "file": "db/fossology.sql.gz", "compression": "gzip",
            "sha256": hex::encode(Sha256::digest(&dump)), "bytes": dump.len(),
            "raw_bytes": dump.len(), "dbname": "fossology", "owner": "fossy",
            "encoding": "UTF8", "collate": "C", "ctype": "C"
        },
        "repository": {
            "root": "/srv/fossology/repository", "hosts": ["localhost"], "types": ["files"],
            "files": files.len(), "bytes": bytes, "new_files": 0, "new_bytes": 0
        },
        "jobs": { "unfinished": [], "stale_running": [] }
    }))
    .unwrap();
    std::fs::write(sd.join(MANIFEST_FILE), manifest.to_json()).unwrap();
    Snapshot { name, manifest }
}

/// Start times a day apart.
pub fn day(n: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_790_000_000 + n * 86_400, 0).unwrap()
}
