//! The responses an operation describes: which statuses, and for JSON ones the body's schema.
//! The gateway holds upstream responses against them (`x-vigil: {responses: ...}`): counted
//! and logged by default, refused only where a route asks, because a description that lags its
//! API must not break it.

use std::sync::Arc;

use vigil_schema::{Limits, Validator};

use crate::body::is_json;

/// A documented status: `200`, `4XX`, `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKey {
    Exact(u16),
    /// `4XX`: 400 to 499.
    Class(u16),
    Default,
}

impl StatusKey {
    /// Reads a key of a Responses Object; `None` for anything else.
    pub(crate) fn parse(key: &str) -> Option<StatusKey> {
        if key == "default" {
            return Some(StatusKey::Default);
        }
        let b = key.as_bytes();
        if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
            return None;
        }
        if b[1..].eq_ignore_ascii_case(b"XX") {
            return Some(StatusKey::Class(u16::from(b[0] - b'0')));
        }
        key.parse().ok().map(StatusKey::Exact)
    }
}

/// One documented response.
#[derive(Debug)]
pub(crate) struct Documented {
    pub key: StatusKey,
    /// The schema of its JSON body, when it describes one.
    pub json: Option<Arc<Validator>>,
}

/// An operation's Responses Object, compiled.
#[derive(Debug, Default)]
pub(crate) struct Responses {
    pub entries: Vec<Documented>,
}

/// How an upstream response departs from the description: a stable reason and where (a JSON
/// pointer into the body, `""` for the status or the whole body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseViolation {
    pub reason: &'static str,
    pub location: String,
}

/// The status is not described (no exact code, no class, no `default`).
pub const UNDOCUMENTED_STATUS: &str = "response_undocumented_status";
/// The JSON body does not match the documented schema (or is not JSON).
pub const INVALID_BODY: &str = "response_invalid_body";

fn json_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .and_then(|e| e.trim().split_once('/'))
        .is_some_and(|(t, s)| is_json(&t.to_ascii_lowercase(), &s.to_ascii_lowercase()))
}

impl Responses {
    /// The entry describing `status`: the exact code, else its class, else `default`.
    fn entry(&self, status: u16) -> Option<&Documented> {
        let by = |k: StatusKey| self.entries.iter().find(|e| e.key == k);
        by(StatusKey::Exact(status))
            .or_else(|| by(StatusKey::Class(status / 100)))
            .or_else(|| by(StatusKey::Default))
    }

    pub(crate) fn check_status(&self, status: u16) -> Result<(), ResponseViolation> {
        match self.entry(status) {
            Some(_) => Ok(()),
            None => Err(ResponseViolation {
                reason: UNDOCUMENTED_STATUS,
                location: String::new(),
            }),
        }
    }

    /// Whether a body with this status and content type has a schema to be held against.
    pub(crate) fn wants_body(&self, status: u16, content_type: Option<&str>) -> bool {
        json_type(content_type) && self.entry(status).is_some_and(|e| e.json.is_some())
    }

    /// Validates a JSON body (parsed in place) against the schema its status documents.
    pub(crate) fn check_body(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<(), ResponseViolation> {
        if !json_type(content_type) {
            return Ok(());
        }
        let Some(v) = self.entry(status).and_then(|e| e.json.as_deref()) else {
            return Ok(());
        };
        v.validate_vec(body, limits)
            .map_err(|rej| ResponseViolation {
                reason: INVALID_BODY,
                location: rej
                    .violations
                    .first()
                    .map(|v| v.instance_location.clone())
                    .unwrap_or_default(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn status_keys_read_as_openapi_writes_them() {
        assert_eq!(StatusKey::parse("200"), Some(StatusKey::Exact(200)));
        assert_eq!(StatusKey::parse("4XX"), Some(StatusKey::Class(4)));
        assert_eq!(StatusKey::parse("5xx"), Some(StatusKey::Class(5)));
        assert_eq!(StatusKey::parse("default"), Some(StatusKey::Default));
        for bad in ["20", "600", "2X0", "ok", ""] {
            assert_eq!(StatusKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_status_is_found_exactly_then_by_class_then_by_default() {
        let r = Responses {
            entries: vec![
                Documented {
                    key: StatusKey::Exact(200),
                    json: None,
                },
                Documented {
                    key: StatusKey::Class(4),
                    json: None,
                },
            ],
        };
        assert!(r.check_status(200).is_ok() && r.check_status(404).is_ok());
        assert_eq!(r.check_status(500).unwrap_err().reason, UNDOCUMENTED_STATUS);
        assert!(r.check_status(201).is_err());
        let with_default = Responses {
            entries: vec![Documented {
                key: StatusKey::Default,
                json: None,
            }],
        };
        assert!(with_default.check_status(503).is_ok());
    }
}
