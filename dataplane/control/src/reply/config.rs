//! `config_show`: the configuration vigild runs with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The configuration in force (the last one started or reloaded), every default filled in and
/// secrets (passwords, tokens, inline key material) replaced by `<redacted>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigShown {
    /// The file it was read from.
    pub file: PathBuf,
    /// The configuration as a JSON object, one key per section.
    pub config: serde_json::Value,
    /// The same as TOML: a file vigild would load.
    pub toml: String,
}
