//! `[policy]`: the API's OpenAPI description, enforced on every request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether violations are refused or only logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// Violations are answered with their status (400, 404, 405, 415...).
    #[default]
    Enforce,
    /// Violations are logged and counted, and the request is forwarded: for trying a new
    /// description on live traffic before it enforces. `x-vigil: {mode: log-only}` does the same
    /// for one operation.
    LogOnly,
}

/// `[policy]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The OpenAPI 3.0/3.1 description (YAML or JSON); sibling files it `$ref`s are read too.
    pub file: PathBuf,
    #[serde(default)]
    pub mode: PolicyMode,
    /// Refuse query parameters the description does not list.
    #[serde(default)]
    pub strict_query: bool,
    /// Close every object schema unless it says `additionalProperties: true`.
    #[serde(default)]
    pub strict_objects: bool,
    /// Where the shadow-API inventory (requests to undescribed paths and methods) is kept
    /// across restarts; saved every 10 s and at shutdown. Unset: kept in memory only.
    #[serde(default)]
    pub shadow_file: Option<PathBuf>,
}

impl PolicyConfig {
    /// How the description is compiled.
    pub fn options(&self) -> vigil_policy::PolicyOptions {
        vigil_policy::PolicyOptions {
            strict_query: self.strict_query,
            strict_objects: self.strict_objects,
            ..vigil_policy::PolicyOptions::default()
        }
    }
}
