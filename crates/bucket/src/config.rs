//! Where a bucket is and how holdfast signs in to it.
//!
//! The secret key never comes from the command line or the configuration file: it is read
//! from a credentials file that only its owner may read (mode 0600 or stricter), or from the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`).
//! [`Credentials`] prints as `<redacted>` so a `{:?}` in a log line cannot leak it.

use crate::BucketError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One S3-compatible bucket used as a backup target (a `[[backup.copy]]` of kind `s3`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`: every object holdfast writes is under PREFIX.
    pub url: String,
    /// The server, e.g. `https://s3.example.net` or `http://127.0.0.1:9000`; empty for AWS.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// File with `access_key_id = ...` and `secret_access_key = ...` lines (mode 0600);
    /// without it the environment's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are used.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Snapshots kept in the bucket (the copy's own retention).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Files at least this big are sent in parts (S3 multipart upload).
    #[serde(default = "default_multipart_mib")]
    pub multipart_threshold_mib: u64,
    /// Size of each part (S3 needs at least 5 MiB, except for the last part).
    #[serde(default = "default_part_mib")]
    pub part_size_mib: u64,
    /// Objects sent at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Object lock: every object written is retained for this many days (`0`: no lock).
    /// The bucket must have been created with object lock enabled.
    #[serde(default)]
    pub lock_days: u32,
    /// `governance` (an administrator with the bypass permission may still delete) or
    /// `compliance` (nobody can, not even the account's root, until the date passes).
    #[serde(default = "default_lock_mode")]
    pub lock_mode: String,
    /// Objects at most this big are moved into a snapshot by one server-side copy; S3 copies
    /// at most 5 GiB so, a bigger dump is read back and sent again in parts.
    #[serde(default = "default_copy_max_mib")]
    pub copy_max_mib: u64,
}

/// The bucket settings besides its address and retention: `[backup.copy.s3]` (and
/// `[backup.s3]` when the primary target itself is a bucket).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    #[serde(default)]
    pub multipart_threshold_mib: Option<u64>,
    #[serde(default)]
    pub part_size_mib: Option<u64>,
    #[serde(default)]
    pub parallel: Option<usize>,
    #[serde(default)]
    pub lock_days: u32,
    #[serde(default)]
    pub lock_mode: Option<String>,
}

impl BucketConfig {
    /// The bucket at `url` keeping `keep` snapshots, with `s` (defaults where unset).
    pub fn with_settings(url: &str, keep: usize, s: &S3Settings) -> BucketConfig {
        let mut c = BucketConfig::new(url);
        c.keep = keep;
        c.endpoint = s.endpoint.clone();
        if let Some(r) = &s.region {
            c.region = r.clone();
        }
        c.credentials_file = s.credentials_file.clone();
        if let Some(v) = s.multipart_threshold_mib {
            c.multipart_threshold_mib = v;
        }
        if let Some(v) = s.part_size_mib {
            c.part_size_mib = v;
        }
        if let Some(v) = s.parallel {
            c.parallel = v;
        }
        c.lock_days = s.lock_days;
        if let Some(m) = &s.lock_mode {
            c.lock_mode = m.clone();
        }
        c
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_keep() -> usize {
    14
}
fn default_multipart_mib() -> u64 {
    64
}
fn default_part_mib() -> u64 {
    16
}
fn default_parallel() -> usize {
    8
}
fn default_lock_mode() -> String {
    "governance".into()
}

fn default_copy_max_mib() -> u64 {
    5 << 10
}

impl BucketConfig {
    /// A config for `url` with every other field at its default.
    pub fn new(url: &str) -> BucketConfig {
        BucketConfig {
            url: url.into(),
            endpoint: String::new(),
            region: default_region(),
            credentials_file: None,
            keep: default_keep(),
            multipart_threshold_mib: default_multipart_mib(),
            part_size_mib: default_part_mib(),
            parallel: default_parallel(),
            lock_days: 0,
            lock_mode: default_lock_mode(),
            copy_max_mib: default_copy_max_mib(),
        }
    }

    /// The bucket name and the key prefix (without slashes at either end).
    pub fn bucket_and_prefix(&self) -> Result<(String, String), BucketError> {
        let rest = self.url.strip_prefix("s3://").ok_or_else(|| {
            BucketError::Config(format!(
                "bucket url {:?} must start with s3:// (e.g. s3://backups/fossology)",
                self.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BucketError::Config(format!(
                "bucket url {:?} names no bucket (e.g. s3://backups/fossology)",
                self.url
            )));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    pub fn check(&self) -> Result<(), BucketError> {
        self.bucket_and_prefix()?;
        if self.part_size_mib < 5 {
            return Err(BucketError::Config(format!(
                "part_size_mib = {} for {}: S3 needs parts of at least 5 MiB",
                self.part_size_mib, self.url
            )));
        }
        if !matches!(self.lock_mode.as_str(), "governance" | "compliance") {
            return Err(BucketError::Config(format!(
                "lock_mode = {:?} for {}: use \"governance\" or \"compliance\"",
                self.lock_mode, self.url
            )));
        }
        Ok(())
    }
}

/// An access key pair. Never printed.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials(<redacted>)")
    }
}

impl Credentials {
    /// From `cfg.credentials_file` when set, else from the environment.
    pub fn load(cfg: &BucketConfig) -> Result<Credentials, BucketError> {
        match &cfg.credentials_file {
            Some(f) => Credentials::from_file(f),
            None => Credentials::from_env(),
        }
    }

    pub fn from_env() -> Result<Credentials, BucketError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
            _ => Err(BucketError::Config(
                "no bucket credentials: set credentials_file in the copy's configuration \
                 (a file of mode 0600 with access_key_id and secret_access_key lines) or \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                    .into(),
            )),
        }
    }

    /// Reads `key = value` lines (`#` comments; `aws_` prefixes as in `~/.aws/credentials`
    /// are accepted, section headers ignored). Refuses a file others may read.
    pub fn from_file(path: &Path) -> Result<Credentials, BucketError> {
        let bad = |why: String| BucketError::Credentials {
            file: path.display().to_string(),
            why,
        };
        let text = holdfast_core::fs::read_secret(path).map_err(|e| bad(e.to_string()))?;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(bad(
                    "a line is not `key = value` (expected access_key_id and secret_access_key)"
                        .into(),
                ));
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().trim_start_matches("aws_") {
                "access_key_id" => id = Some(v),
                "secret_access_key" => secret = Some(v),
                "session_token" => token = Some(v),
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: token,
            }),
            _ => Err(bad(
                "needs both access_key_id and secret_access_key lines".into()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn url_parts() {
        let c = BucketConfig::new("s3://b/some/prefix/");
        assert_eq!(
            c.bucket_and_prefix().unwrap(),
            ("b".into(), "some/prefix".into())
        );
        assert!(BucketConfig::new("b/x").bucket_and_prefix().is_err());
        assert!(BucketConfig::new("s3:///x").bucket_and_prefix().is_err());
    }

    #[test]
    fn credentials_file_must_be_private_and_is_never_printed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("creds");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = AK\naws_secret_access_key = \"s3cr3t\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("creds"), "{e}");
        assert!(!e.contains("s3cr3t"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Credentials::from_file(&f).unwrap();
        assert_eq!(c.access_key_id, "AK");
        assert_eq!(c.secret_access_key, "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
