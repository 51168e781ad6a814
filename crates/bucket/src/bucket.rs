//! The connection to one bucket: keys under the configured prefix, and the few object
//! operations the layout needs (put a file, in parts when big; get; list; delete).
//!
//! Uploads prove their arrival: a FOSSology file's name holds its md5, and S3's ETag of an
//! object sent in one piece is the md5 of its bytes (sent in parts: the md5 of the parts'
//! md5s, then `-N`), so holdfast computes what the ETag must be while it reads the file and
//! compares it with what the server answers. An ETag that is not that md5 proves nothing
//! either way (SSE-KMS and SSE-C answer another 32-digit value, some servers something
//! else): such an object is read back and hashed before it counts as copied.

use crate::config::{BucketConfig, Credentials};
use crate::BucketError;
use holdfast_site::pfile::PfileName;
use md5::Md5;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, PutResult, RetryConfig,
};
use sha1::{Digest, Sha1};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// An open bucket. Blocking methods; the async client runs on the bucket's own runtime.
pub struct Bucket {
    pub(crate) cfg: BucketConfig,
    pub(crate) store: Arc<AmazonS3>,
    /// The client puts go through: with object lock it sends the retention headers.
    pub(crate) writer: Arc<AmazonS3>,
    prefix: String,
    pub(crate) rt: tokio::runtime::Runtime,
}

/// What one upload sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub bytes: u64,
    pub parts: u64,
    /// The server's MD5 ETag matched the bytes sent (it hashed what it stored).
    pub etag_proved: bool,
}

fn build(
    cfg: &BucketConfig,
    bucket: &str,
    creds: &Credentials,
    headers: Option<http::HeaderMap>,
) -> Result<AmazonS3, BucketError> {
    let mut opts = ClientOptions::new()
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(20));
    if cfg.endpoint.starts_with("http://") {
        opts = opts.with_allow_http(true);
    }
    let locked = headers.is_some();
    if let Some(h) = headers {
        opts = opts.with_default_headers(h);
    }
    let retry = RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(120),
        ..Default::default()
    };
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&cfg.region)
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(&creds.secret_access_key)
        .with_client_options(opts)
        .with_retry(retry);
    if let Some(t) = &creds.session_token {
        b = b.with_token(t);
    }
    if locked {
        // S3 refuses a locked write without a checksum of the body.
        b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    }
    if !cfg.endpoint.is_empty() {
        // Self-hosted servers answer path-style requests (`endpoint/bucket/key`).
        b = b
            .with_endpoint(&cfg.endpoint)
            .with_virtual_hosted_style_request(false);
    }
    b.build()
        .map_err(|e| BucketError::Config(format!("bucket {}: {e}", cfg.url)))
}

/// The object-lock headers for objects written now (retained `days` from now).
fn lock_headers(cfg: &BucketConfig) -> Option<http::HeaderMap> {
    if cfg.lock_days == 0 {
        return None;
    }
    let until = chrono::Utc::now() + chrono::Duration::days(cfg.lock_days.into());
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-object-lock-mode",
        http::HeaderValue::from_static(if cfg.lock_mode == "compliance" {
            "COMPLIANCE"
        } else {
            "GOVERNANCE"
        }),
    );
    h.insert(
        "x-amz-object-lock-retain-until-date",
        http::HeaderValue::from_str(&until.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .expect("ascii date"),
    );
    Some(h)
}

impl Bucket {
    pub fn open(cfg: &BucketConfig) -> Result<Bucket, BucketError> {
        cfg.check()?;
        let (bucket, prefix) = cfg.bucket_and_prefix()?;
        let creds = Credentials::load(cfg)?;
        let store = Arc::new(build(cfg, &bucket, &creds, None)?);
        let writer = match lock_headers(cfg) {
            Some(h) => Arc::new(build(cfg, &bucket, &creds, Some(h))?),
            None => store.clone(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BucketError::Io {
                path: "tokio runtime".into(),
                source: e,
            })?;
        Ok(Bucket {
            cfg: cfg.clone(),
            store,
            writer,
            prefix,
            rt,
        })
    }

    /// `s3://bucket/prefix at endpoint` (no secrets).
    pub fn display(&self) -> String {
        if self.cfg.endpoint.is_empty() {
            self.cfg.url.clone()
        } else {
            format!("{} at {}", self.cfg.url, self.cfg.endpoint)
        }
    }

    pub fn config(&self) -> &BucketConfig {
        &self.cfg
    }

    /// The key of `rel` (a `/`-separated path under the prefix).
    pub fn key(&self, rel: &str) -> Key {
        let rel = rel.trim_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => Key::from(rel),
            (false, true) => Key::from(self.prefix.as_str()),
            (false, false) => Key::from(format!("{}/{rel}", self.prefix)),
        }
    }

    /// `rel` of a key under the prefix.
    /// The holdfast path of a key as a listing gives it: object_store keeps keys
    /// percent-encoded (`Müller [1].txt` is `M%C3%BCller %5B1%5D.txt`), holdfast's paths are
    /// not, so a listed report would match no list and never be collected.
    pub fn rel(&self, key: &Key) -> String {
        let k = key.as_ref();
        let rel = if self.prefix.is_empty() {
            k
        } else {
            k.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(k)
        };
        percent_encoding::percent_decode_str(rel)
            .decode_utf8_lossy()
            .into_owned()
    }

    pub(crate) fn err(&self, what: impl Into<String>, e: object_store::Error) -> BucketError {
        BucketError::Store {
            bucket: self.display(),
            what: what.into(),
            why: e.to_string(),
        }
    }

    /// Names of the "folders" directly under `rel`.
    pub fn list_dirs(&self, rel: &str) -> Result<Vec<String>, BucketError> {
        let key = self.key(rel);
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(prefix))
            .map_err(|e| self.err(format!("list {rel}/"), e))?;
        Ok(r.common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Every object under `rel`, at any depth.
    pub fn list_all(&self, rel: &str) -> Result<Vec<ObjectMeta>, BucketError> {
        use futures::TryStreamExt;
        let key = self.key(rel);
        self.rt
            .block_on(self.store.list(Some(&key)).try_collect::<Vec<_>>())
            .map_err(|e| self.err(format!("list {rel}/"), e))
    }

    /// The sizes of those of `rels` the bucket holds, asked `parallel` at once (a listing
    /// goes one page after another).
    pub fn sizes(
        &self,
        rels: &[String],
    ) -> Result<std::collections::HashMap<String, u64>, BucketError> {
        use futures::{StreamExt, TryStreamExt};
        let heads = rels.iter().map(|rel| async move {
            match self.store.head(&self.key(rel)).await {
                Ok(m) => Ok(Some((rel.clone(), m.size))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err(format!("look up {rel}"), e)),
            }
        });
        self.rt.block_on(
            futures::stream::iter(heads)
                .buffer_unordered(self.cfg.parallel.max(1))
                .try_filter_map(|found| async move { Ok(found) })
                .try_collect(),
        )
    }

    /// The whole object, or `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, BucketError> {
        self.rt.block_on(self.read_async(rel))
    }

    /// Each of `rels` whole (in their order), `parallel` read at once.
    pub fn read_all(&self, rels: &[String]) -> Result<Vec<Option<Vec<u8>>>, BucketError> {
        use futures::{StreamExt, TryStreamExt};
        self.rt.block_on(
            futures::stream::iter(rels.iter().map(|rel| self.read_async(rel)))
                .buffered(self.cfg.parallel.max(1))
                .try_collect(),
        )
    }

    async fn read_async(&self, rel: &str) -> Result<Option<Vec<u8>>, BucketError> {
        let r = match self.store.get(&self.key(rel)).await {
            Ok(g) => g.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        r.map(|o| o.map(|b| b.to_vec()))
            .map_err(|e| self.err(format!("read {rel}"), e))
    }

    /// Writes a small object (a list, a manifest) and proves it arrived: by its ETag, else
    /// by reading it back.
    pub fn put_bytes(&self, rel: &str, data: Vec<u8>) -> Result<(), BucketError> {
        let key = self.key(rel);
        let want = hex::encode(Md5::digest(&data));
        let r = self
            .rt
            .block_on(self.writer.put(&key, PutPayload::from(data.clone())))
            .map_err(|e| self.err(format!("write {rel}"), e))?;
        if check_etag(rel, &r, &want) || self.read(rel)?.as_deref() == Some(&data[..]) {
            return Ok(());
        }
        Err(BucketError::Corrupt {
            bucket: self.display(),
            key: rel.to_string(),
            why: "read back, it is not what was written".into(),
        })
    }

    pub fn delete(&self, rel: &str) -> Result<(), BucketError> {
        let key = self.key(rel);
        match self.rt.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("delete {rel}"), e)),
        }
    }
}

/// Whether the server's ETag proves the sent bytes arrived: it is the md5 they must have.
/// Anything else leaves the object to be read back (an encrypting server's ETag is not an
/// md5 even when it looks like one).
pub(crate) fn check_etag(rel: &str, r: &PutResult, want: &str) -> bool {
    let got = r
        .e_tag
        .as_deref()
        .map(|e| e.trim_matches('"').to_ascii_lowercase());
    let proved = got.as_deref() == Some(want);
    if !proved {
        tracing::debug!(key = rel, etag = ?got, want, "ETag proves nothing; read back");
    }
    proved
}

/// Sends what `src` reads to `rel`: in one piece below the multipart threshold, else in
/// parts. With `expect`, the bytes must match that FOSSology name (sha1, md5 and size) or
/// nothing is stored (a multipart upload is aborted).
pub(crate) async fn put_reader(
    writer: Arc<AmazonS3>,
    cfg: BucketConfig,
    bucket: String,
    key: Key,
    rel: String,
    mut src: Box<dyn Read + Send>,
    expect: Option<PfileName>,
) -> Result<Sent, BucketError> {
    let threshold = (cfg.multipart_threshold_mib.max(1) << 20) as usize;
    let part = (cfg.part_size_mib.max(5) << 20) as usize;
    let io = |e: std::io::Error| BucketError::Io {
        path: rel.clone(),
        source: e,
    };
    let store_err = |what: &str, e: object_store::Error| BucketError::Store {
        bucket: bucket.clone(),
        what: format!("{what} {rel}"),
        why: e.to_string(),
    };
    let mut sha1 = Sha1::new();
    let mut md5 = Md5::new();
    let mut total = 0u64;
    // Fill the first buffer up to the threshold: a smaller file is one PUT.
    let mut buf = Vec::with_capacity(threshold.min(1 << 20));
    let eof = tokio::task::block_in_place(|| fill(&mut src, &mut buf, threshold)).map_err(io)?;
    if eof {
        sha1.update(&buf);
        md5.update(&buf);
        total += buf.len() as u64;
        let whole_md5 = hex::encode(md5.finalize());
        judge(
            &rel,
            expect.as_ref(),
            &hex::encode(sha1.finalize()),
            &whole_md5,
            total,
        )?;
        let r = writer
            .put(&key, PutPayload::from(buf))
            .await
            .map_err(|e| store_err("write", e))?;
        let etag_proved = check_etag(&rel, &r, &whole_md5);
        return Ok(Sent {
            bytes: total,
            parts: 1,
            etag_proved,
        });
    }
    let mut upload = writer
        .put_multipart(&key)
        .await
        .map_err(|e| store_err("start multipart upload of", e))?;
    let mut part_md5s = Vec::new();
    let mut in_flight = Vec::new();
    let result: Result<(), BucketError> = async {
        let mut eof = false;
        loop {
            while buf.len() >= part || (eof && !buf.is_empty()) {
                let rest = if buf.len() > part {
                    buf.split_off(part)
                } else {
                    Vec::new()
                };
                let chunk = std::mem::replace(&mut buf, rest);
                sha1.update(&chunk);
                md5.update(&chunk);
                total += chunk.len() as u64;
                part_md5s.extend_from_slice(&Md5::digest(&chunk));
                in_flight.push(upload.put_part(PutPayload::from(chunk)));
                // Two parts in the air keep the link busy without holding the file in memory.
                if in_flight.len() >= 2 {
                    futures::future::try_join_all(in_flight.drain(..))
                        .await
                        .map_err(|e| store_err("send a part of", e))?;
                }
            }
            if eof {
                break;
            }
            eof = tokio::task::block_in_place(|| fill(&mut src, &mut buf, part)).map_err(io)?;
        }
        futures::future::try_join_all(in_flight.drain(..))
            .await
            .map_err(|e| store_err("send a part of", e))?;
        judge(
            &rel,
            expect.as_ref(),
            &hex::encode(sha1.clone().finalize()),
            &hex::encode(md5.clone().finalize()),
            total,
        )
    }
    .await;
    if let Err(e) = result {
        let _ = upload.abort().await;
        return Err(e);
    }
    let parts = (part_md5s.len() / 16) as u64;
    let r = upload
        .complete()
        .await
        .map_err(|e| store_err("complete multipart upload of", e))?;
    let want = format!("{}-{parts}", hex::encode(Md5::digest(&part_md5s)));
    let etag_proved = check_etag(&rel, &r, &want);
    Ok(Sent {
        bytes: total,
        parts,
        etag_proved,
    })
}

/// Reads into `buf` until it holds `upto` bytes or the source ends; true at the end.
fn fill(src: &mut dyn Read, buf: &mut Vec<u8>, upto: usize) -> std::io::Result<bool> {
    // Straight into `buf`: a zeroed 1 MiB bounce buffer per object cost more than reading
    // a repository's typical few-KiB file.
    let want = upto.saturating_sub(buf.len()) as u64;
    let n = src.take(want).read_to_end(buf)?;
    Ok((n as u64) < want)
}

/// A file named by its content must have that content.
pub(crate) fn judge(
    rel: &str,
    want: Option<&PfileName>,
    sha1: &str,
    md5: &str,
    size: u64,
) -> Result<(), BucketError> {
    let Some(w) = want else { return Ok(()) };
    if w.size != size {
        return Err(BucketError::Damaged {
            path: rel.to_string(),
            why: format!("size {size}, name says {}", w.size),
        });
    }
    if w.sha1 != sha1 || w.md5 != md5 {
        return Err(BucketError::Damaged {
            path: rel.to_string(),
            why: format!("content sha1 {sha1} md5 {md5} does not match the name"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_etag, fill};
    use object_store::PutResult;

    #[test]
    fn only_the_md5_the_bytes_must_have_proves_an_upload() {
        let want = "9dd4e461268c8034f5c8564e155c67a6";
        let put = |e: Option<&str>| PutResult {
            e_tag: e.map(str::to_string),
            version: None,
            extensions: Default::default(),
        };
        assert!(check_etag("k", &put(Some(&format!("\"{want}\""))), want));
        // SSE-KMS: 32 hex digits, not the md5: read back, not refused.
        assert!(!check_etag(
            "k",
            &put(Some("\"8a2b0c5e3f1d4e6a9b7c0d1e2f3a4b5c\"")),
            want
        ));
        assert!(!check_etag("k", &put(Some("\"opaque\"")), want));
        assert!(!check_etag("k", &put(None), want));
    }

    #[test]
    fn fill_stops_at_the_mark_and_says_when_the_source_ended() {
        let data: Vec<u8> = (0..10u8).collect();
        let mut src: &[u8] = &data;
        let mut buf = Vec::new();
        assert!(
            !fill(&mut src, &mut buf, 4).unwrap(),
            "4 of 10 read: not the end"
        );
        assert_eq!(buf, [0, 1, 2, 3]);
        buf.clear();
        // Exactly what is left: full, and the end is only seen by the next read.
        assert!(!fill(&mut src, &mut buf, 6).unwrap());
        assert_eq!(buf, [4, 5, 6, 7, 8, 9]);
        buf.clear();
        assert!(fill(&mut src, &mut buf, 6).unwrap());
        assert!(buf.is_empty());
        let mut short: &[u8] = &data[..3];
        let mut buf = vec![9];
        assert!(
            fill(&mut short, &mut buf, 8).unwrap(),
            "3 bytes for 7 wanted"
        );
        assert_eq!(buf, [9, 0, 1, 2]);
    }
}
