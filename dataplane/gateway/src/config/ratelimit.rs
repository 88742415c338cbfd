//! `[[rate_limit]]`: token buckets per client address or per request header value.

use serde::{Deserialize, Serialize};

/// One rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Shown in metrics and the audit log's reason (`rate_limited`).
    pub name: String,
    /// What a bucket is kept per: `"client_ip"`, or `"header:<name>"` (an API-key header; a
    /// request without the header falls back to its client address).
    pub key: String,
    /// Requests per second a key may sustain.
    pub rate: u32,
    /// Requests a key may send at once.
    pub burst: u32,
}

impl RateLimitConfig {
    /// The header name for `header:<name>` keys, lower-cased.
    pub fn header(&self) -> Option<String> {
        self.key
            .strip_prefix("header:")
            .map(str::to_ascii_lowercase)
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), super::ConfigError> {
        let err = |k: &str, r: &str| Err(super::ConfigError::new(format!("{at}.{k}"), r));
        if self.name.is_empty() {
            return err("name", "must not be empty");
        }
        match self.header() {
            Some(h) if h.is_empty() || http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                return err("key", "header:<name> needs a valid header name");
            }
            None if self.key != "client_ip" => {
                return err("key", "must be \"client_ip\" or \"header:<name>\"");
            }
            _ => {}
        }
        if self.rate == 0 || self.burst == 0 {
            return err("rate", "rate and burst must be at least 1");
        }
        Ok(())
    }
}
