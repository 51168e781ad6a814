//! Backup server: LDAP accounts, homes, snapshots, size accounting.

use serde::{Deserialize, Serialize};

/// `[server]` in holdfast.toml: the backup server side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {}
