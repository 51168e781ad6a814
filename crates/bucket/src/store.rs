//! The bucket behind holdfast's one target interface, [`holdfast_store::Store`], so a
//! `[[backup.copy]]` of kind `s3` (and `restore`/`verify`/`snapshots --from` it) go through
//! the same code as every other target.
//!
//! Layout as in [`crate::copy`]; what a snapshot being made holds (its dump and list) waits
//! under `.partial/` until [`Store::commit`] names it: the objects are copied server-side to
//! `snap.<time>/`, the manifest is written last, then `.partial/` is emptied. A run killed
//! before the manifest leaves no listed snapshot; the next one sends only the pool objects
//! the bucket lacks ([`Store::missing`] lists the pool) and writes `.partial/` again.

use crate::bucket::Bucket;
use crate::check::{fetch_paths, read_object};
use crate::copy::{
    object_rel, objects_of, present_objects, prune as bucket_prune, send_objects, send_one,
    SWEEP_DUE,
};
use crate::{BucketConfig, BucketError};
use holdfast_core::progress::Progress;
use holdfast_store::layout::{stamp, Layout, LayoutKind, Snapshot, FILE_LIST};
use holdfast_store::manifest::{Manifest, MANIFEST_FILE};
use holdfast_store::proof::{judge, pfile_of, Proof, Proven};
use holdfast_store::store::{DumpSent, Files, Place, Plan, Source, TransferStats, Upload};
use holdfast_store::{pool, Store, StoreError};
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Where the snapshot being made waits for its name.
pub const PENDING: &str = ".partial";

/// Written under [`PENDING`] as a run begins, so the next run knows when one stopped before
/// its commit, whatever it had sent.
const BEGUN: &str = "begun";

/// An S3-compatible bucket as a backup store (pool layout only).
pub struct BucketStore {
    bucket: Arc<Bucket>,
    /// Paths sent by this process whose object's MD5 ETag the server computed matched the
    /// bytes read (and those bytes matched the name): proved on arrival without reading
    /// them back.
    arrived: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl BucketStore {
    pub fn open(cfg: &BucketConfig) -> Result<BucketStore, StoreError> {
        let bucket = Bucket::open(cfg).map_err(|e| StoreError::BadTarget {
            spec: cfg.url.clone(),
            why: e.to_string(),
        })?;
        Ok(BucketStore {
            bucket: Arc::new(bucket),
            arrived: Default::default(),
        })
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn err(&self, e: BucketError) -> StoreError {
        to_store_error(&self.bucket, e)
    }

    /// Pool objects a run may take as held, with their sizes. The pool is listed only when
    /// a run stopped before its commit (it may have sent objects no list names) or nothing
    /// is listed yet: otherwise what a night adds is new, and with `newest` the objects the
    /// newest snapshot lists are held (its manifest was written after every one arrived, and
    /// no collection deletes what a kept list names). Listing a pool of a million objects
    /// takes a thousand requests one after another; `holdfast verify` reads them all.
    fn present(&self, plan: &Plan, newest: bool) -> Result<HashMap<String, u64>, StoreError> {
        let b = &self.bucket;
        let due = b.read(SWEEP_DUE).map_err(|e| self.err(e))?.is_some();
        let Some(previous) = plan.previous.as_ref().filter(|_| !due) else {
            return present_objects(b).map_err(|e| self.err(e));
        };
        if !newest {
            return Ok(HashMap::new());
        }
        let held = self.snapshot_files(&self.find(Some(previous))?)?;
        Ok(held
            .iter()
            .filter_map(|p| pfile_of(p).map(|n| (object_rel(p), n.size)))
            .collect())
    }
}

fn to_store_error(bucket: &Bucket, e: BucketError) -> StoreError {
    {
        match e {
            BucketError::Target(t) => t,
            BucketError::Io { path, source } => StoreError::Io { path, source },
            BucketError::NoSnapshot { bucket, name } => StoreError::NoSnapshot {
                target: bucket,
                name,
            },
            other => StoreError::Remote {
                target: bucket.display(),
                what: "object storage".into(),
                why: other.to_string(),
            },
        }
    }
}

fn stats(files: u64, bytes: u64, sent_files: u64, sent_bytes: u64) -> TransferStats {
    TransferStats {
        files,
        bytes,
        transferred_files: sent_files,
        transferred_bytes: sent_bytes,
        sent: sent_bytes,
        literal: sent_bytes,
    }
}

/// The dump being streamed: written to a local spool file, sent on `finish`.
struct SpoolUpload {
    bucket: Arc<Bucket>,
    rel: String,
    file: std::fs::File,
    _dir: tempdir::Dir,
    path: std::path::PathBuf,
}

/// Reads the chunks a download thread sends; the end of the object is the thread's end, an
/// error is the read's.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.recv() {
                Ok(c) => self.chunk = c?,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

mod tempdir {
    /// A private spool folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Write for SpoolUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Upload for SpoolUpload {
    fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        self.file.flush().map_err(|source| StoreError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        let f = std::fs::File::open(&self.path).map_err(|source| StoreError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        send_one(&self.bucket, Box::new(f), &self.rel, None)
            .map(|_| ())
            .map_err(|e| to_store_error(&self.bucket, e))
    }
}

impl Store for BucketStore {
    fn display(&self) -> String {
        self.bucket.display()
    }

    fn check(&self) -> Result<(), StoreError> {
        self.bucket
            .list_dirs("")
            .map(|_| ())
            .map_err(|e| StoreError::Unreachable {
                target: self.bucket.display(),
                why: e.to_string(),
            })
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket.read(rel).map_err(|e| self.err(e))
    }

    fn write_atomic(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        self.bucket
            .put_bytes(rel, data.to_vec())
            .map_err(|e| self.err(e))
    }

    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        // Streamed in chunks by a thread driving the GET on the bucket's runtime, so a dump
        // of many GB is never held in memory. A failed read reaches the reader as an error:
        // a stream cut short must never look like the end of the object (a restore would
        // load a truncated dump).
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<bytes::Bytes>>(16);
        let store = self.bucket.store.clone();
        let key = self.bucket.key(rel);
        let handle = self.bucket.rt.handle().clone();
        let got = handle
            .block_on(store.get(&key))
            .map_err(|e| self.err(self.bucket.err(format!("read {rel}"), e)))?;
        let what = format!("{}: read {rel}", self.display());
        std::thread::spawn(move || {
            use futures::StreamExt;
            handle.block_on(async move {
                let mut s = got.into_stream();
                while let Some(chunk) = s.next().await {
                    let item = chunk.map_err(|e| std::io::Error::other(format!("{what}: {e}")));
                    let failed = item.is_err();
                    // The reader went away, or the error is sent: nothing more to do.
                    if tx.send(item).is_err() || failed {
                        return;
                    }
                }
            })
        });
        Ok(Box::new(ChunkReader {
            rx,
            chunk: bytes::Bytes::new(),
        }))
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        crate::copy::snapshots(&self.bucket).map_err(|e| self.err(e))
    }

    fn snapshot_files(&self, snap: &Snapshot) -> Result<Vec<String>, StoreError> {
        let rel = format!("{}/{FILE_LIST}", snap.name);
        let data = self.read(&rel)?.ok_or_else(|| StoreError::Remote {
            target: self.display(),
            what: format!("read {rel}"),
            why: "the snapshot's file list is missing".into(),
        })?;
        pool::decode(&data[..]).map_err(|source| StoreError::Io {
            path: format!("{} {rel}", self.display()),
            source,
        })
    }

    fn plan(&self, layout: &Layout) -> Result<Plan, StoreError> {
        if layout.kind != LayoutKind::Pool {
            return Err(StoreError::BadTarget {
                spec: self.display(),
                why: format!(
                    "an object-store target keeps the pool layout only, not {}",
                    layout.kind
                ),
            });
        }
        let previous = self.snapshots()?.last().map(|s| s.name.clone());
        let b = &self.bucket;
        if !b.list_all(PENDING).map_err(|e| self.err(e))?.is_empty() {
            // A run stopped before its commit: the objects it sent may be named by no list.
            self.write_atomic(SWEEP_DUE, b"")?;
        }
        self.write_atomic(&format!("{PENDING}/{BEGUN}"), b"")?;
        Ok(Plan {
            layout: layout.clone(),
            kind: "full".into(),
            builds_on: Vec::new(),
            reuses: previous.iter().cloned().collect(),
            lists_files: true,
            previous,
            link_dest: Vec::new(),
            snapshot_of: None,
            recycled: None,
            spare_lacks: None,
            pool: None,
            // Objects are sent whole: no dump is a basis.
            dumps: Vec::new(),
        })
    }

    fn send_repository(
        &self,
        plan: &Plan,
        src: &Source,
        files: Files,
    ) -> Result<TransferStats, StoreError> {
        let walked;
        // With `All` or `Delta` the store decides what it holds; `Only` names the files to
        // send, but a file kept by path (a report) is sent only when its size changed, and
        // `Again` sends every one.
        let (paths, mut present) = match files {
            Files::All { list: Some(l) } => (l, Some(self.present(plan, true)?)),
            Files::All { list: None } => {
                walked = pool::list_files(src.root, src.dirs);
                (&walked[..], Some(self.present(plan, true)?))
            }
            Files::Delta { send, .. } => (send, Some(self.present(plan, false)?)),
            Files::Only(p) => (p, Some(HashMap::new())),
            Files::Again(p) => (p, None),
        };
        let objects = objects_of(paths);
        if let Some(present) = present.as_mut() {
            // Objects kept by path, not named by their content, are compared by size.
            let by_path: Vec<String> = objects
                .iter()
                .filter(|(key, paths)| pfile_of(&paths[0]).is_none() && !present.contains_key(*key))
                .map(|(key, _)| key.clone())
                .collect();
            present.extend(self.bucket.sizes(&by_path).map_err(|e| self.err(e))?);
        }
        let present = present.unwrap_or_default();
        let root = src.root.to_path_buf();
        let todo: Vec<(String, String)> = objects
            .iter()
            .filter(|(key, paths)| {
                let want = pfile_of(&paths[0]).map(|p| p.size).or_else(|| {
                    std::fs::metadata(root.join(&paths[0]))
                        .ok()
                        .map(|m| m.len())
                });
                match (present.get(key.as_str()), want) {
                    (Some(have), Some(want)) => *have != want,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
            })
            .map(|(k, p)| (k.clone(), p[0].clone()))
            .collect();
        let bytes: u64 = paths
            .iter()
            .filter_map(|p| std::fs::metadata(root.join(p)).ok())
            .map(|m| m.len())
            .sum();
        let (sent, damaged) = send_objects(&self.bucket, &todo, 256, true, &|rel| {
            let p = root.join(rel);
            std::fs::File::open(&p)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|source| BucketError::Io {
                    path: p.display().to_string(),
                    source,
                })
        })
        .map_err(|e| self.err(e))?;
        for d in &damaged {
            // Not stored: the proof after the transfer finds it missing, and the copy
            // leaves it out and names it.
            tracing::error!("not sent to {}: {d}", self.display());
        }
        {
            let mut arrived = self.arrived.lock().expect("not poisoned");
            for (rel, s) in &sent {
                if s.etag_proved && pfile_of(rel).is_some() {
                    arrived.insert(rel.clone());
                }
            }
        }
        Ok(stats(
            paths.len() as u64,
            bytes,
            sent.len() as u64,
            sent.iter().map(|(_, s)| s.bytes).sum(),
        ))
    }

    fn pending_files(&self, _plan: &Plan) -> Result<Vec<String>, StoreError> {
        match self.read(&format!("{PENDING}/{FILE_LIST}"))? {
            Some(data) => pool::decode(&data[..]).map_err(|source| StoreError::Io {
                path: format!("{} {PENDING}/{FILE_LIST}", self.display()),
                source,
            }),
            None => Ok(Vec::new()),
        }
    }

    fn create_dump(&self, _plan: &Plan, rel: &str) -> Result<Box<dyn Upload>, StoreError> {
        let dir = std::env::temp_dir().join(format!(
            "holdfast-s3-dump-{}-{}",
            std::process::id(),
            stamp(chrono::Utc::now())
        ));
        let io = |source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let path = dir.join("dump");
        let file = std::fs::File::create(&path).map_err(io)?;
        Ok(Box::new(SpoolUpload {
            bucket: self.bucket.clone(),
            rel: format!("{PENDING}/{rel}"),
            file,
            _dir: tempdir::Dir(dir),
            path,
        }))
    }

    fn send_dump(&self, _plan: &Plan, local: &Path, rel: &str) -> Result<DumpSent, StoreError> {
        let f = std::fs::File::open(local).map_err(|source| StoreError::Io {
            path: local.display().to_string(),
            source,
        })?;
        let sent = send_one(&self.bucket, Box::new(f), &format!("{PENDING}/{rel}"), None)
            .map_err(|e| self.err(e))?;
        Ok(DumpSent {
            sent: sent.bytes,
            against: None,
        })
    }

    fn write_file_list(&self, _plan: &Plan, list: &[String]) -> Result<(), StoreError> {
        self.write_atomic(&format!("{PENDING}/{FILE_LIST}"), &pool::encode(list))
    }

    fn commit(&self, plan: &Plan, manifest: &mut Manifest) -> Result<String, StoreError> {
        let b = &self.bucket;
        manifest.sequence = holdfast_store::layout::next_sequence(&self.snapshots()?);
        let mut name = format!("snap.{}", stamp(manifest.started));
        let mut n = 1;
        while self.read(&format!("{name}/{MANIFEST_FILE}"))?.is_some() {
            name = format!("snap.{}-{n}", stamp(manifest.started));
            n += 1;
        }
        // The pending objects move under the name (server-side copies), the manifest last.
        let pending = b.list_all(PENDING).map_err(|e| self.err(e))?;
        for m in &pending {
            let rel = b.rel(&m.location);
            if rel == format!("{PENDING}/{BEGUN}") {
                continue;
            }
            let to = format!(
                "{name}/{}",
                rel.trim_start_matches(PENDING).trim_start_matches('/')
            );
            if m.size > b.cfg.copy_max_mib << 20 {
                // Beyond one CopyObject (S3: 5 GiB): down and up again, in parts.
                let src = self.open(&rel)?;
                crate::copy::send_one(b, src, &to, None).map_err(|e| self.err(e))?;
                continue;
            }
            b.rt.block_on(b.writer.copy(&m.location, &b.key(&to)))
                .map_err(|e| self.err(b.err(format!("copy {rel} to {to}"), e)))?;
        }
        let mut m = manifest.clone();
        m.layout = "pool".into();
        self.write_atomic(&format!("{name}/{MANIFEST_FILE}"), m.to_json().as_bytes())?;
        for m in &pending {
            let _ = b.delete(&b.rel(&m.location));
        }
        self.prune(&plan.layout)?;
        Ok(name)
    }

    fn prove_with(
        &self,
        place: Place,
        paths: &[String],
        progress: &Progress,
        proven: &Proven,
    ) -> Result<Vec<Proof>, StoreError> {
        use futures::StreamExt;
        let b = &self.bucket;
        let store = b.store.clone();
        // Files this run sent were proved by the server's MD5 on arrival, objects the
        // snapshots share by an earlier call; the rest (left by a killed run, or a snapshot's
        // verify) are read back and hashed.
        // Looked up under the lock, not copied: a first copy proves millions of paths in
        // chunks, and a copy of the whole set per chunk made it quadratic.
        let arrived = match place {
            Place::Pending(_) => Some(self.arrived.lock().expect("not poisoned")),
            Place::Snapshot(_) => None,
        };
        let memo_key = |rel: &str| proven.object_key(&object_rel(rel));
        let mut results: Vec<(usize, Proof)> = Vec::new();
        let mut read = Vec::new();
        for (i, rel) in paths.iter().enumerate() {
            match pfile_of(rel) {
                Some(n) if arrived.as_ref().is_some_and(|a| a.contains(rel)) => {
                    results.push((i, Proof::Good(n.size)))
                }
                Some(n) => match proven.reuse(memo_key(rel), &n) {
                    Some(p) => results.push((i, p)),
                    None => read.push((i, rel)),
                },
                None => read.push((i, rel)),
            }
        }
        drop(arrived);
        let read_back: Vec<(usize, Proof)> = b.rt.block_on(async {
            futures::stream::iter(read.into_iter().map(|(i, rel)| {
                let key = b.key(&object_rel(rel));
                let store = store.clone();
                async move {
                    let proof = match read_object(&store, &key, None).await {
                        Ok(None) => Proof::Bad("missing from the bucket".into()),
                        Err(e) => Proof::Bad(format!("unreadable: {e}")),
                        Ok(Some(h)) => match pfile_of(rel) {
                            Some(want) => judge(&want, &h.sha1, &h.md5, h.size),
                            None => Proof::Unprovable,
                        },
                    };
                    proven.put(memo_key(rel), &proof);
                    (i, proof)
                }
            }))
            .buffer_unordered(b.cfg.parallel.max(1))
            .collect()
            .await
        });
        results.extend(read_back);
        let mut out = vec![Proof::Unprovable; paths.len()];
        for (i, p) in results {
            if let Proof::Good(n) = p {
                progress.inc(n);
            }
            out[i] = p;
        }
        Ok(out)
    }

    fn prune(&self, layout: &Layout) -> Result<Vec<String>, StoreError> {
        bucket_prune(&self.bucket, layout.keep)
            .map(|(gone, _)| gone)
            .map_err(|e| self.err(e))
    }

    fn collect_garbage(&self) -> Result<u64, StoreError> {
        crate::copy::collect_garbage(&self.bucket).map_err(|e| self.err(e))
    }

    fn fetch_files(
        &self,
        _snap: &Snapshot,
        paths: &[String],
        dest: &Path,
    ) -> Result<TransferStats, StoreError> {
        let (files, bytes, bad) =
            fetch_paths(&self.bucket, paths, dest).map_err(|e| self.err(e))?;
        for b in &bad {
            // Fetched as they are: the restore's check against the names moves them aside.
            tracing::warn!(path = %b.path, "{}", b.why);
        }
        Ok(stats(paths.len() as u64, bytes, files, bytes))
    }

    fn missing(&self, plan: &Plan, paths: &[String]) -> Result<Vec<String>, StoreError> {
        let present = self.present(plan, false)?;
        Ok(paths
            .iter()
            .filter(|p| {
                let have = present.get(&object_rel(p));
                match (have, pfile_of(p)) {
                    (Some(h), Some(want)) => *h != want.size,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
            })
            .cloned()
            .collect())
    }
}
