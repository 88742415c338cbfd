//! `[detection]`: injection detection in request values (docs/detection.md).

use serde::{Deserialize, Serialize};
pub use vigil_policy::{DetectionMode, ResponseDataMode};

use crate::response_data::Kind;

use super::ConfigError;

/// `[detection]`. Off unless `mode` says otherwise (or a route's `x-vigil: {detection: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// `off` (default), `log` or `block`; a route's `x-vigil: {detection: ...}` overrides it.
    pub mode: DetectionMode,
    /// Which detectors run (all by default).
    pub sqli: bool,
    pub xss: bool,
    pub command_injection: bool,
    pub path_traversal: bool,
    /// Request headers whose values are inspected, besides the path, query and cookies.
    pub headers: Vec<String>,
    /// Bytes inspected per value; a longer value is inspected on its head and its tail.
    pub max_value_bytes: usize,
    /// Values of a body (JSON strings and keys, form fields) inspected per request: a body with
    /// more is inspected on its first ones only.
    pub max_body_values: usize,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            mode: DetectionMode::Off,
            sqli: true,
            xss: true,
            command_injection: true,
            path_traversal: true,
            headers: vec!["user-agent".into(), "referer".into()],
            max_value_bytes: 4096,
            max_body_values: 1000,
        }
    }
}

impl DetectionConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (i, name) in self.headers.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    format!("detection.headers[{i}]"),
                    format!("\"{name}\" is not a valid header name"),
                ));
            }
        }
        if !(16..=65_536).contains(&self.max_value_bytes) {
            return Err(ConfigError::new(
                "detection.max_value_bytes",
                "must be between 16 and 65536 (the SQL detector costs up to ~0.6 us per byte)",
            ));
        }
        if self.max_body_values == 0 {
            return Err(ConfigError::new(
                "detection.max_body_values",
                "must be at least 1",
            ));
        }
        if !(self.sqli || self.xss || self.command_injection || self.path_traversal) {
            return Err(ConfigError::new(
                "detection",
                "turns every detector off; set mode = \"off\" instead",
            ));
        }
        Ok(())
    }

    /// The detector these settings describe.
    pub(crate) fn detector(&self) -> vigil_detect::Detector {
        vigil_detect::Detector::new(vigil_detect::Config {
            sqli: self.sqli,
            xss: self.xss,
            command_injection: self.command_injection,
            path_traversal: self.path_traversal,
            limits: vigil_detect::Limits {
                max_len: self.max_value_bytes,
                ..vigil_detect::Limits::default()
            },
        })
    }
}

/// `[response_data]`: sensitive data in responses. Off unless `mode` (or a route) says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseDataConfig {
    /// `off` (default), `log`, `mask` or `block`; a route's `x-vigil: {response_data: ...}`
    /// overrides it.
    pub mode: ResponseDataMode,
    /// What counts as sensitive (`email` is left out by default: most APIs return some).
    pub kinds: Vec<Kind>,
    /// Bytes of a response `block` buffers to decide; a longer response is masked instead.
    pub max_block_bytes: u64,
}

impl Default for ResponseDataConfig {
    fn default() -> Self {
        Self {
            mode: ResponseDataMode::Off,
            kinds: vec![
                Kind::Card,
                Kind::Iban,
                Kind::Jwt,
                Kind::Bearer,
                Kind::PrivateKey,
            ],
            max_block_bytes: 1024 * 1024,
        }
    }
}

impl ResponseDataConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.kinds.is_empty() {
            return Err(ConfigError::new(
                "response_data.kinds",
                "is empty; list some of card, iban, email, jwt, bearer, private_key, or set \
                 mode = \"off\"",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_block_bytes) {
            return Err(ConfigError::new(
                "response_data.max_block_bytes",
                "must be between 1024 and 67108864 (64 MiB)",
            ));
        }
        Ok(())
    }
}
