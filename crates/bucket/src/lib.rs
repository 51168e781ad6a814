//! S3-compatible object storage as a backup target.
//!
//! holdfast talks to buckets through the `object_store` crate (Apache Arrow project), not
//! OpenDAL: holdfast needs S3 only, and object_store gives exactly the operations the layout
//! uses (put, multipart put with caller-sized parts, ranged get, listing with delimiters,
//! delete) behind an API that has been stable across releases, with retries and SigV4
//! signing built in. OpenDAL's fifty services and blocking layer are more than we need, its
//! 0.x API still changes every few months, and both cost about the same to build.
//!
//! The bucket holds the pool layout ([`copy`]): each repository file once under its name,
//! one list object per snapshot, the dump, and the manifest written last. [`check`] proves
//! a snapshot against the names and fetches one back for a restore; [`copy::prune`] and
//! [`copy::collect_garbage`] apply the bucket's own retention. Credentials come from a
//! private file or the environment ([`config`]); object lock is requested with the
//! `x-amz-object-lock-*` headers when `lock_days` is set.

pub mod bucket;
pub mod check;
pub mod config;
pub mod copy;
pub mod store;

pub use bucket::Bucket;
pub use check::{fetch, verify, BucketVerify, Fetched};
pub use config::{BucketConfig, Credentials, S3Settings};
pub use copy::snapshots;
pub use store::BucketStore;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("bucket configuration: {0}")]
    Config(String),
    #[error("bucket credentials file {file}: {why}")]
    Credentials { file: String, why: String },
    #[error("bucket {bucket}: {what} failed: {why}")]
    Store {
        bucket: String,
        what: String,
        why: String,
    },
    #[error("bucket {bucket}: {key} is unusable: {why}")]
    Corrupt {
        bucket: String,
        key: String,
        why: String,
    },
    #[error("{path}: its content does not match its name ({why})")]
    Damaged { path: String, why: String },
    #[error("{files} file(s) on the primary target do not match their names, so they were not copied (first: {first}); run `holdfast verify` and let the next backup copy them again from the site")]
    SourceDamaged { files: usize, first: String },
    #[error("{}", match name {
        Some(n) => format!("no snapshot named {n:?} in bucket {bucket}"),
        None => format!("no complete snapshot in bucket {bucket} yet (run `holdfast copy` first)"),
    })]
    NoSnapshot {
        bucket: String,
        name: Option<String>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Target(#[from] holdfast_store::StoreError),
}
