//! Proving a snapshot in the bucket, and fetching one back for a restore.
//!
//! Verify reads every object the snapshot lists and compares its bytes with its name
//! (FOSSology's `<sha1>.<md5>.<size>`), and the dump with the sha256 its manifest records.
//! An object that is missing is as bad as one that is wrong.
//!
//! A restore from the bucket first fetches the snapshot into a local folder laid out like a
//! pool-layout target (`pool/repository/…`: the tree form every reader still understands;
//! `snap.<time>/…`, manifest written last), then
//! runs the ordinary restore on that folder, so it gets exactly the checks a restore from
//! the primary gets. A fetch that stops half way resumes: files already there at the size
//! their name says are kept.

use crate::bucket::Bucket;
use crate::copy::{find, objects_of};
use crate::BucketError;
use holdfast_site::pfile::PfileName;
use holdfast_store::layout::{FILE_LIST, POOL};
use holdfast_store::manifest::{MANIFEST_FILE, REPO_DIR};
use holdfast_store::{pool, Target};
use md5::Md5;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An object whose content does not match its name, or that is missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BadObject {
    /// Repository-relative path (`localhost/files/ab/cd/ef/<name>`).
    pub path: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketVerify {
    pub snapshot: String,
    pub files: u64,
    pub checked_bytes: u64,
    /// Files not named by their content (logs): present, not provable.
    pub unprovable: u64,
    pub bad: Vec<BadObject>,
    /// `None`: the dump matches its sha256.
    pub dump_problem: Option<String>,
    pub secs: f64,
}

impl BucketVerify {
    pub fn is_ok(&self) -> bool {
        self.bad.is_empty() && self.dump_problem.is_none()
    }
}

/// Hashes of one object as read: sha1, md5, sha256, size.
pub(crate) struct Hashes {
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
    pub size: u64,
}

/// Streams `rel` from the bucket through the hashes, and into `out` when given.
pub(crate) async fn read_object(
    store: &object_store::aws::AmazonS3,
    key: &object_store::path::Path,
    mut out: Option<&mut std::fs::File>,
) -> Result<Option<Hashes>, String> {
    use futures::StreamExt;
    let got = match store.get(key).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (mut s1, mut m5, mut s256, mut size) = (Sha1::new(), Md5::new(), Sha256::new(), 0u64);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        s1.update(&chunk);
        m5.update(&chunk);
        s256.update(&chunk);
        size += chunk.len() as u64;
        if let Some(f) = out.as_deref_mut() {
            tokio::task::block_in_place(|| f.write_all(&chunk)).map_err(|e| e.to_string())?;
        }
    }
    Ok(Some(Hashes {
        sha1: hex::encode(s1.finalize()),
        md5: hex::encode(m5.finalize()),
        sha256: hex::encode(s256.finalize()),
        size,
    }))
}

fn judge(name: &str, h: &Hashes) -> Result<bool, String> {
    let Some(want) = PfileName::parse(name) else {
        return Ok(false);
    };
    if want.size != h.size {
        return Err(format!("size {}, name says {}", h.size, want.size));
    }
    if want.sha1 != h.sha1 || want.md5 != h.md5 {
        return Err(format!(
            "content sha1 {} md5 {} does not match the name",
            h.sha1, h.md5
        ));
    }
    Ok(true)
}

/// Snapshot `snap`'s file list as stored and the paths it names; a missing or unreadable
/// list is a corrupt bucket.
fn file_list(bucket: &Bucket, snap: &str) -> Result<(Vec<u8>, Vec<String>), BucketError> {
    let key = format!("{snap}/{FILE_LIST}");
    let data = bucket.read(&key)?.ok_or_else(|| BucketError::Corrupt {
        bucket: bucket.display(),
        key: key.clone(),
        why: "the snapshot's file list is missing".into(),
    })?;
    let list = pool::decode(&data[..]).map_err(|e| BucketError::Corrupt {
        bucket: bucket.display(),
        key,
        why: e.to_string(),
    })?;
    Ok((data, list))
}

/// Reads every object snapshot `name` (the latest when `None`) needs and proves it.
pub fn verify(bucket: &Bucket, name: Option<&str>) -> Result<BucketVerify, BucketError> {
    use futures::StreamExt;
    let t0 = Instant::now();
    let snap = find(bucket, name)?;
    let (_, list) = file_list(bucket, &snap.name)?;
    let mut report = BucketVerify {
        snapshot: snap.name.clone(),
        files: list.len() as u64,
        ..Default::default()
    };
    let objects = objects_of(&list);
    let store = bucket.store.clone();
    type Read<'a> = (&'a String, &'a Vec<String>, Result<Option<Hashes>, String>);
    let results: Vec<Read> = bucket.rt.block_on(async {
        futures::stream::iter(objects.iter().map(|(obj, paths)| {
            let key = bucket.key(obj);
            let store = store.clone();
            async move { (obj, paths, read_object(&store, &key, None).await) }
        }))
        .buffer_unordered(bucket.cfg.parallel.max(1))
        .collect()
        .await
    });
    // A bad object is bad under every path that holds it.
    let bad_all = |report: &mut BucketVerify, paths: &[String], why: String| {
        for p in paths {
            report.bad.push(BadObject {
                path: p.clone(),
                why: why.clone(),
            });
        }
    };
    for (obj, paths, r) in results {
        let name = obj.rsplit('/').next().unwrap_or(obj);
        match r {
            Ok(None) => bad_all(&mut report, paths, "missing from the bucket".into()),
            Err(e) => bad_all(&mut report, paths, format!("unreadable: {e}")),
            Ok(Some(h)) => match judge(name, &h) {
                Ok(true) => report.checked_bytes += h.size,
                Ok(false) => report.unprovable += paths.len() as u64,
                Err(why) => bad_all(&mut report, paths, why),
            },
        }
    }
    report.bad.sort();
    let db = &snap.manifest.database;
    let dump_key = bucket.key(&format!("{}/{}", snap.name, db.file));
    report.dump_problem = match bucket.rt.block_on(read_object(&store, &dump_key, None)) {
        Ok(None) => Some(format!("{} is missing from the bucket", db.file)),
        Err(e) => Some(format!("{} unreadable: {e}", db.file)),
        Ok(Some(h)) if h.sha256 != db.sha256 || h.size != db.bytes => Some(format!(
            "{}: sha256 {} ({} bytes), the manifest says {} ({} bytes)",
            db.file, h.sha256, h.size, db.sha256, db.bytes
        )),
        Ok(Some(_)) => None,
    };
    report.secs = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// What [`fetch`] did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fetched {
    pub snapshot: String,
    /// The local folder, usable as a pool-layout target.
    pub dir: PathBuf,
    pub files: u64,
    pub fetched_files: u64,
    pub fetched_bytes: u64,
    /// Objects whose content did not match their name (fetched as they are: the restore's
    /// own check moves them aside and reports them).
    pub bad: Vec<BadObject>,
    pub secs: f64,
}

impl Fetched {
    /// The fetched folder as a backup target.
    pub fn target(&self) -> Result<Target, BucketError> {
        Ok(Target::parse(
            &self.dir.display().to_string(),
            Default::default(),
        )?)
    }
}

fn io_err(p: &Path) -> impl FnOnce(std::io::Error) -> BucketError + '_ {
    move |source| BucketError::Io {
        path: p.display().to_string(),
        source,
    }
}

/// Fetches snapshot `name` (the latest when `None`) into `dir`, laid out as a pool-layout
/// target holding just that snapshot.
pub fn fetch(bucket: &Bucket, name: Option<&str>, dir: &Path) -> Result<Fetched, BucketError> {
    let t0 = Instant::now();
    let snap = find(bucket, name)?;
    let snap_dir = dir.join(&snap.name);
    let pool_dir = dir.join(POOL).join(REPO_DIR);
    std::fs::create_dir_all(&pool_dir).map_err(io_err(&pool_dir))?;
    std::fs::create_dir_all(&snap_dir).map_err(io_err(&snap_dir))?;
    let (data, list) = file_list(bucket, &snap.name)?;
    let mut out = Fetched {
        snapshot: snap.name.clone(),
        dir: dir.to_path_buf(),
        files: list.len() as u64,
        ..Default::default()
    };
    let (files, bytes, bad) = fetch_paths(bucket, &list, &pool_dir)?;
    out.fetched_files = files;
    out.fetched_bytes = bytes;
    out.bad = bad;
    out.bad.sort();
    // The dump, the list, and last the manifest: only then is the folder a target holding
    // a complete snapshot.
    let db_file = &snap.manifest.database.file;
    let dump_dest = snap_dir.join(db_file);
    if let Some(parent) = dump_dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let dump_key = bucket.key(&format!("{}/{db_file}", snap.name));
    let (bytes, _) = bucket.rt.block_on(fetch_one(
        &bucket.store,
        &dump_key,
        &dump_dest,
        db_file,
        &bucket.display(),
    ))?;
    out.fetched_bytes += bytes;
    let list_dest = snap_dir.join(FILE_LIST);
    std::fs::write(&list_dest, &data).map_err(io_err(&list_dest))?;
    let man = snap_dir.join(MANIFEST_FILE);
    std::fs::write(&man, snap.manifest.to_json()).map_err(io_err(&man))?;
    out.secs = t0.elapsed().as_secs_f64();
    Ok(out)
}

async fn fetch_one(
    store: &object_store::aws::AmazonS3,
    key: &object_store::path::Path,
    dest: &Path,
    rel: &str,
    display: &str,
) -> Result<(u64, Option<BadObject>), BucketError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // Beside its file under its whole name: `report/X` and `report/X.pdf` download at once.
    let mut tmp_name = dest.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".holdfast-fetch");
    let tmp = dest.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let h = read_object(store, key, Some(&mut f))
        .await
        .map_err(|why| BucketError::Store {
            bucket: display.to_string(),
            what: format!("read {rel}"),
            why,
        })?
        .ok_or_else(|| BucketError::Corrupt {
            bucket: display.to_string(),
            key: rel.to_string(),
            why: "listed by the snapshot but missing from the bucket".into(),
        })?;
    drop(f);
    std::fs::rename(&tmp, dest).map_err(io_err(dest))?;
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let bad = judge(name, &h).err().map(|why| BadObject {
        path: rel.to_string(),
        why,
    });
    Ok((h.size, bad))
}

/// Writes `list` (repository-relative paths) from the pool under `pool_dir`, resuming: a
/// file already there at the size its name says is kept. Returns files and bytes fetched
/// and the objects that were missing or did not match their names.
pub(crate) fn fetch_paths(
    bucket: &Bucket,
    list: &[String],
    pool_dir: &Path,
) -> Result<(u64, u64, Vec<BadObject>), BucketError> {
    let (mut files, mut total, mut bads) = (0u64, 0u64, Vec::new());
    use futures::StreamExt;
    // Resume: a file already here at the size its name says was fetched whole (each is
    // written aside and renamed into place). One not named by its content (a report, a log)
    // cannot be judged by what is there: it is always fetched.
    let objects = objects_of(list);
    let todo: Vec<(&String, &String)> = objects
        .iter()
        .filter(|(_, paths)| {
            let rel = &paths[0];
            let want = rel
                .rsplit('/')
                .next()
                .and_then(PfileName::parse)
                .map(|n| n.size);
            match (std::fs::metadata(pool_dir.join(rel)), want) {
                (Ok(m), Some(w)) => m.len() != w,
                (Ok(_), None) => true,
                (Err(_), _) => true,
            }
        })
        .map(|(obj, paths)| (obj, &paths[0]))
        .collect();
    let store = bucket.store.clone();
    let results: Vec<Result<(u64, Option<BadObject>), BucketError>> = bucket.rt.block_on(async {
        futures::stream::iter(todo.iter().map(|(obj, rel)| {
            let key = bucket.key(obj);
            let dest = pool_dir.join(rel);
            let store = store.clone();
            let display = bucket.display();
            async move { fetch_one(&store, &key, &dest, rel, &display).await }
        }))
        .buffer_unordered(bucket.cfg.parallel.max(1))
        .collect()
        .await
    });
    for r in results {
        match r {
            Ok((bytes, bad)) => {
                files += 1;
                total += bytes;
                bads.extend(bad);
            }
            // Missing: the restore's own check reports it missing; fetch the rest.
            Err(BucketError::Corrupt { key, why, .. }) => bads.push(BadObject { path: key, why }),
            Err(e) => return Err(e),
        }
    }
    // Every other path holding the same content becomes a hard link to the first.
    for paths in objects.values() {
        let first = pool_dir.join(&paths[0]);
        let Ok(m) = std::fs::metadata(&first) else {
            continue;
        };
        for other in &paths[1..] {
            let p = pool_dir.join(other);
            if std::fs::metadata(&p).is_ok_and(|o| o.ino() == m.ino()) {
                continue;
            }
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            let _ = std::fs::remove_file(&p);
            std::fs::hard_link(&first, &p).map_err(io_err(&p))?;
        }
    }
    bads.sort();
    Ok((files, total, bads))
}
