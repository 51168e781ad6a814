//! Backup targets, snapshot layouts and manifests.
