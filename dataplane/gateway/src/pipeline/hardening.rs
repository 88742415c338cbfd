//! Structural checks that protect the gateway and the upstream from malformed or oversized
//! requests and from request smuggling. hyper already refuses (with a bare 400) obs-fold lines,
//! invalid chunk sizes, differing duplicate Content-Length values and a Transfer-Encoding that
//! does not end in `chunked`; this stage catches what it lets through and answers with the
//! project's JSON rejections.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, Version};

use super::{Outcome, Rejection, RequestCtx, Stage, StageFuture, ready};
use crate::config::LimitsConfig;

/// Methods advertised in `Allow` when TRACE or CONNECT is refused.
const ALLOWED: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Size, method and framing checks.
#[derive(Debug)]
pub struct Hardening {
    limits: LimitsConfig,
}

impl Hardening {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            limits: limits.clone(),
        }
    }

    fn check(&self, head: &Parts) -> Result<(), Rejection> {
        if head.method == Method::TRACE || head.method == Method::CONNECT {
            return Err(
                Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                    .with_header(ALLOW, HeaderValue::from_static(ALLOWED)),
            );
        }
        if head.headers.len() > self.limits.max_header_count {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too_many_headers",
            ));
        }
        // Count as on the wire: name, ": ", value, CRLF.
        let header_bytes: usize = head
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.limits.max_header_bytes {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ));
        }
        let target_len = head.uri.path_and_query().map_or(1, |pq| pq.as_str().len());
        if target_len > self.limits.max_uri_bytes {
            return Err(Rejection::new(StatusCode::URI_TOO_LONG, "uri_too_long"));
        }
        self.check_framing(head)
    }

    /// Request smuggling: a message must have exactly one unambiguous length.
    fn check_framing(&self, head: &Parts) -> Result<(), Rejection> {
        let bad = |reason| Err(Rejection::new(StatusCode::BAD_REQUEST, reason));
        let te: Vec<&HeaderValue> = head.headers.get_all(TRANSFER_ENCODING).iter().collect();
        let cl: Vec<&HeaderValue> = head.headers.get_all(CONTENT_LENGTH).iter().collect();
        if !te.is_empty() && !cl.is_empty() {
            return bad("ambiguous_framing");
        }
        if !te.is_empty() {
            // Only a single, plain `chunked` is accepted: stacked codings are how front and
            // back ends are made to disagree.
            let plain_chunked = te.len() == 1
                && te[0]
                    .to_str()
                    .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            if !plain_chunked {
                return bad("bad_transfer_encoding");
            }
        }
        if cl.len() > 1 {
            return bad("bad_content_length");
        }
        if let Some(v) = cl.first() {
            let len = v
                .to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match len {
                None => return bad("bad_content_length"),
                Some(n) if n > self.limits.max_body_bytes => {
                    return Err(Rejection::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                    ));
                }
                Some(_) => {}
            }
        }
        let hosts = head.headers.get_all(HOST).iter().count();
        if hosts > 1 {
            return bad("duplicate_host");
        }
        if head.version == Version::HTTP_11 && hosts == 0 && head.uri.authority().is_none() {
            return bad("missing_host");
        }
        Ok(())
    }
}

impl Stage for Hardening {
    fn name(&self) -> &'static str {
        "hardening"
    }

    fn on_request<'a>(
        &'a self,
        _ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        ready(match self.check(head) {
            Ok(()) => Outcome::Continue,
            Err(r) => Outcome::Respond(r),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(build: http::request::Builder) -> Parts {
        match build.body(()) {
            Ok(r) => r.into_parts().0,
            Err(e) => panic!("bad test request: {e}"),
        }
    }

    fn reason(h: &Hardening, p: &Parts) -> Option<&'static str> {
        h.check(p).err().map(|r| r.reason)
    }

    #[test]
    fn refuses_each_violation_with_its_reason() {
        let limits = LimitsConfig {
            max_header_count: 3,
            max_header_bytes: 64,
            max_uri_bytes: 16,
            max_body_bytes: 10,
        };
        let h = Hardening::new(&limits);
        let base = || http::Request::builder().uri("/a").header("host", "x");
        assert_eq!(reason(&h, &head(base())), None);
        assert_eq!(
            reason(&h, &head(base().method("TRACE"))),
            Some("method_not_allowed")
        );
        assert_eq!(
            reason(&h, &head(base().uri("/0123456789abcdef"))),
            Some("uri_too_long")
        );
        let many = base().header("a", "1").header("b", "2").header("c", "3");
        assert_eq!(reason(&h, &head(many)), Some("too_many_headers"));
        let big = base().header("a", "x".repeat(60));
        assert_eq!(reason(&h, &head(big)), Some("headers_too_large"));
        assert_eq!(
            reason(&h, &head(base().header("content-length", "11"))),
            Some("body_too_large")
        );
        assert_eq!(
            reason(&h, &head(base().header("content-length", "1x"))),
            Some("bad_content_length")
        );
        let both = base()
            .header("content-length", "1")
            .header("transfer-encoding", "chunked");
        assert_eq!(reason(&h, &head(both)), Some("ambiguous_framing"));
        let te = base().header("transfer-encoding", "gzip, chunked");
        assert_eq!(reason(&h, &head(te)), Some("bad_transfer_encoding"));
        let no_host = http::Request::builder().uri("/a");
        assert_eq!(reason(&h, &head(no_host)), Some("missing_host"));
    }
}
