//! Site backup, restore and verification.

use serde::{Deserialize, Serialize};

/// `[backup]` in holdfast.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {}
