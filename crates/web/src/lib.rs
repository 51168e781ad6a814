//! holdfast serve: web pages and JSON API for browsing and recovery.

use serde::{Deserialize, Serialize};

/// `[web]` in holdfast.toml: `holdfast serve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {}
