//! Backup server warnings: checks, recipients, templates, mail.

use serde::{Deserialize, Serialize};

/// `[notify]` in holdfast.toml: warnings, mail and templates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {}
