//! `[[rate_limit]]`: token buckets per client address, API-key header, identity, route, or a
//! combination of them, kept in this process or (`shared = true`) in the fleet's store.

use serde::{Deserialize, Serialize};

/// One part of a bucket key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's address.
    ClientIp,
    /// A request header's value (lower-cased name), e.g. an API key. A request without the
    /// header uses its client address instead: leaving the header out is no way around a limit.
    Header(String),
    /// The identity's subject (JWT `sub` or the mTLS identity); anonymous requests use their
    /// client address instead.
    Subject,
    /// The matched route (`GET /users/{id}`).
    Route,
    /// The client's TLS fingerprint (JA4); plain-HTTP requests use their client address.
    Ja4,
}

impl KeyPart {
    /// Whether this part is only known once identity and route are established.
    pub fn needs_identity(&self) -> bool {
        matches!(self, Self::Subject | Self::Route)
    }
}

/// One rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Shown in metrics; also namespaces the rule's buckets.
    pub name: String,
    /// What a bucket is kept per: parts joined by `+`, each one of `client_ip`,
    /// `header:<name>`, `sub`, `route` (e.g. `"sub+route"`).
    pub key: String,
    /// Requests per second a key may sustain.
    pub rate: u32,
    /// Requests a key may send at once.
    pub burst: u32,
    /// Keep the buckets in the fleet's store (needs `[fleet]`), shared by every box.
    #[serde(default)]
    pub shared: bool,
    /// Per-box rate used while the shared store cannot answer; default half of `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_rate: Option<u32>,
    /// Per-box burst used while the shared store cannot answer; default half of `burst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_burst: Option<u32>,
}

impl RateLimitConfig {
    /// The key's parts, or what is wrong with it.
    pub fn key_parts(&self) -> Result<Vec<KeyPart>, String> {
        let mut parts = Vec::new();
        for raw in self.key.split('+') {
            let raw = raw.trim();
            let part = match raw {
                "client_ip" => KeyPart::ClientIp,
                "sub" => KeyPart::Subject,
                "route" => KeyPart::Route,
                "ja4" => KeyPart::Ja4,
                _ => match raw.strip_prefix("header:") {
                    Some(h)
                        if !h.is_empty() && http::HeaderName::from_bytes(h.as_bytes()).is_ok() =>
                    {
                        KeyPart::Header(h.to_ascii_lowercase())
                    }
                    Some(_) => return Err("header:<name> needs a valid header name".into()),
                    None => {
                        return Err(format!(
                            "unknown key part {raw:?}: use client_ip, header:<name>, sub, route, \
                             ja4, joined by '+'"
                        ));
                    }
                },
            };
            if parts.contains(&part) {
                return Err(format!("key part {raw:?} given twice"));
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// Whether the rule runs after identity and route match (its key names `sub` or `route`).
    pub fn needs_identity(&self) -> bool {
        self.key_parts()
            .is_ok_and(|p| p.iter().any(KeyPart::needs_identity))
    }

    /// The per-box limits used while the shared store is unavailable.
    pub fn fallback(&self) -> (u32, u32) {
        (
            self.fallback_rate.unwrap_or(self.rate.div_ceil(2)),
            self.fallback_burst.unwrap_or(self.burst.div_ceil(2)),
        )
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), super::ConfigError> {
        let err = |k: &str, r: &str| Err(super::ConfigError::new(format!("{at}.{k}"), r));
        // The name is a metrics label and part of shared bucket keys: keep it plain.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(plain) {
            return err(
                "name",
                "must be 1-64 characters of letters, digits, '_', '-' or '.'",
            );
        }
        if let Err(reason) = self.key_parts() {
            return err("key", &reason);
        }
        if self.rate == 0 || self.burst == 0 {
            return err("rate", "rate and burst must be at least 1");
        }
        if self.fallback_rate == Some(0) || self.fallback_burst == Some(0) {
            return err(
                "fallback_rate",
                "fallback_rate and fallback_burst must be at least 1",
            );
        }
        if !self.shared && (self.fallback_rate.is_some() || self.fallback_burst.is_some()) {
            return err(
                "fallback_rate",
                "fallback limits apply only to shared rules: set shared = true or remove them",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(key: &str) -> RateLimitConfig {
        RateLimitConfig {
            name: "r".into(),
            key: key.into(),
            rate: 10,
            burst: 5,
            shared: false,
            fallback_rate: None,
            fallback_burst: None,
        }
    }

    #[test]
    fn keys_combine_parts_and_name_what_is_wrong() {
        assert_eq!(
            rule("sub+route").key_parts(),
            Ok(vec![KeyPart::Subject, KeyPart::Route])
        );
        assert_eq!(
            rule("header:X-Api-Key+client_ip").key_parts(),
            Ok(vec![KeyPart::Header("x-api-key".into()), KeyPart::ClientIp])
        );
        assert!(rule("sub+route").needs_identity());
        assert!(!rule("client_ip").needs_identity());
        for bad in ["user", "sub+sub", "header:", "header:a b", ""] {
            let e = rule(bad).validate("rate_limit[0]");
            assert!(
                matches!(&e, Err(e) if e.key == "rate_limit[0].key"),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn fallback_defaults_to_half_and_only_for_shared_rules() {
        assert_eq!(rule("client_ip").fallback(), (5, 3));
        let mut r = rule("client_ip");
        r.fallback_rate = Some(2);
        assert!(r.validate("x").is_err());
        r.shared = true;
        assert!(r.validate("x").is_ok());
        assert_eq!(r.fallback(), (2, 3));
    }
}
