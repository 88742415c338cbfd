//! Why a request is refused: a status, a stable reason code and where, never the submitted
//! value (an attacker's bytes must not flow into responses, logs or metrics labels).

use serde::Serialize;

use crate::Method;

/// A request the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status} {reason} at {location}")]
pub struct Deny {
    /// HTTP status for the response.
    pub status: u16,
    /// Stable code for the response body, the audit log and metrics (see docs/policy.md).
    pub reason: &'static str,
    /// Where: a parameter (`query.limit`, `path.id`, `header.x-key`, `cookie.session`), a JSON
    /// pointer into the body (`/name`, `""` for the whole body), or the request path for routing.
    pub location: String,
    /// The schema keyword that failed (`maximum`, `required`, `type`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// For 405: the methods the path does describe, for the `Allow` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<Method>>,
}

impl Deny {
    pub(crate) fn new(status: u16, reason: &'static str, location: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            location: location.into(),
            keyword: None,
            allow: None,
        }
    }

    pub(crate) fn with_keyword(mut self, keyword: impl Into<String>) -> Self {
        self.keyword = Some(keyword.into());
        self
    }

    /// The value of the `Allow` header for a 405 (`GET, HEAD, POST`), `None` otherwise.
    pub fn allow_header(&self) -> Option<String> {
        let allow = self.allow.as_ref()?;
        let names: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        Some(names.join(", "))
    }
}

/// Reason codes this crate produces itself; body errors add vigil-schema's codes.
pub mod reason {
    /// 404: the path is not described (shadow API).
    pub const ROUTE_NOT_FOUND: &str = "route_not_found";
    /// 405: the path is described, the method is not.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 400: the path is malformed (bad percent-encoding, encoded `/`, NUL, dot segments).
    pub const PATH_INVALID: &str = "path_invalid";
    /// 400: a parameter violates its schema or cannot be converted to its type.
    pub const PARAM_INVALID: &str = "param_invalid";
    /// 400: a required parameter is absent.
    pub const PARAM_MISSING: &str = "param_missing";
    /// 400: a query parameter is not described and `strict_query` is on.
    pub const PARAM_UNKNOWN: &str = "param_unknown";
    /// 400: a parameter appears more than once where its style reads one value (`?limit=1&
    /// limit=1000`, a repeated header or cookie): the gateway and the upstream could each read
    /// a different one.
    pub const PARAM_REPEATED: &str = "param_repeated";
    /// 415: the body's content type is not described for the operation.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 400: the operation requires a body and there is none.
    pub const BODY_MISSING: &str = "body_missing";
    /// 400: the body is valid JSON that violates the schema.
    pub const BODY_INVALID: &str = "body_invalid";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_header_lists_methods() {
        let mut d = Deny::new(405, reason::METHOD_NOT_ALLOWED, "/pets");
        assert_eq!(d.allow_header(), None);
        d.allow = Some(vec![Method::Get, Method::Head, Method::Post]);
        assert_eq!(d.allow_header().as_deref(), Some("GET, HEAD, POST"));
    }

    #[test]
    fn serializes_without_empty_fields() {
        let d = Deny::new(400, reason::PARAM_INVALID, "query.limit").with_keyword("maximum");
        let v = serde_json::to_value(&d).ok();
        assert_eq!(
            v,
            Some(serde_json::json!({"status": 400, "reason": "param_invalid",
                "location": "query.limit", "keyword": "maximum"}))
        );
        assert_eq!(d.to_string(), "400 param_invalid at query.limit");
    }
}
