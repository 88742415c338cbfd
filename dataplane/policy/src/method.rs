//! HTTP methods an OpenAPI path item can describe.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A method an OpenAPI Path Item can describe. CONNECT and extension methods are not here: a
/// request with one of them is refused with 405 before any operation is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// PUT
    Put,
    /// POST
    Post,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// HEAD
    Head,
    /// PATCH
    Patch,
    /// TRACE
    Trace,
}

impl Method {
    /// Every method, in the order OpenAPI lists the Path Item fields.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// Parses a request method. HTTP methods are case-sensitive, so `get` is not GET.
    pub fn from_request(method: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == method)
    }

    /// Parses the lower-case key of an OpenAPI Path Item (`get`, `post`, ...).
    pub fn from_openapi_key(key: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.openapi_key() == key)
    }

    /// The method as it appears on the wire and in `Allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }

    /// The Path Item key for this method.
    pub fn openapi_key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_methods_are_case_sensitive() {
        assert_eq!(Method::from_request("GET"), Some(Method::Get));
        assert_eq!(Method::from_request("get"), None);
        assert_eq!(Method::from_request("CONNECT"), None);
        assert_eq!(Method::from_openapi_key("patch"), Some(Method::Patch));
        assert_eq!(Method::from_openapi_key("parameters"), None);
    }

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_request(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
    }
}
