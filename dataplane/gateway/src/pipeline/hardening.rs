//! Structural checks that protect the gateway and the upstream from malformed or oversized
//! requests and from request smuggling. hyper already refuses (with a bare 400) obs-fold lines,
//! invalid chunk sizes, differing duplicate Content-Length values and a Transfer-Encoding that
//! does not end in `chunked`; this stage catches what it lets through and answers with the
//! project's JSON rejections.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HOST, HeaderName, TRANSFER_ENCODING, UPGRADE};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, Version};

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
use crate::config::LimitsConfig;

/// The settings an `Upgrade: h2c` request carries (RFC 7540 §3.2.1).
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

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

    fn verify(&self, head: &Parts) -> Result<(), Rejection> {
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
        check_target(head)
    }
}

/// The request target and the host it names (RFC 9112 §3.2, RFC 9113 §8.3.1): an `http` or
/// `https` absolute form only, a Host that is a plain `host[:port]`, and on HTTP/2 a Host
/// that agrees with `:authority`. Anything else is how a front end and a back end are made to
/// route one request to two different places.
fn check_target(head: &Parts) -> Result<(), Rejection> {
    let bad = |reason| Err(Rejection::new(StatusCode::BAD_REQUEST, reason));
    if let Some(scheme) = head.uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return bad("bad_request_target");
    }
    if let Some(a) = head.uri.authority()
        && !plain_authority(a.as_str())
    {
        return bad("bad_host");
    }
    let Some(host) = head.headers.get(HOST) else {
        return Ok(());
    };
    let Some(host) = host.to_str().ok().filter(|h| plain_authority(h)) else {
        return bad("bad_host");
    };
    // The host names must agree; a port given in one and left out of the other names the
    // same origin for routing purposes.
    if head.version == Version::HTTP_2
        && let Some(a) = head.uri.authority()
        && let Ok(h) = host.parse::<http::uri::Authority>()
        && !a.host().eq_ignore_ascii_case(h.host())
    {
        return bad("host_mismatch");
    }
    Ok(())
}

/// `host[:port]` with nothing else: no user info, path, query, space or control character.
fn plain_authority(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(['@', '/', '?', '#', '\\', ' '])
        && !text.bytes().any(|b| b.is_ascii_control())
        && text.parse::<http::uri::Authority>().is_ok()
}

/// Upgrade tokens the gateway lets through: WebSocket only, and only to operations that allow
/// it (checked by the route stage). `h2c` in particular is never passed on: an upstream that
/// switched to HTTP/2 would carry requests no stage ever saw through the spliced connection.
fn strip_upgrades(head: &mut Parts) {
    head.headers.remove(HTTP2_SETTINGS);
    if !head.headers.contains_key(UPGRADE) {
        return;
    }
    let keep = head.method == Method::GET
        && head.version == Version::HTTP_11
        && head.headers.get_all(UPGRADE).iter().all(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|t| t.eq_ignore_ascii_case("websocket"))
            })
        });
    if !keep {
        // The request is answered as the plain request it also is, as RFC 9110 §7.8 allows.
        head.headers.remove(UPGRADE);
    }
}

impl SyncStage for Hardening {
    fn name(&self) -> &'static str {
        "hardening"
    }

    fn check(&self, _ctx: &mut RequestCtx, head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        strip_upgrades(head);
        match self.verify(head) {
            Ok(()) => Outcome::Continue,
            Err(r) => Outcome::Respond(r),
        }
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
        h.verify(p).err().map(|r| r.reason)
    }

    #[test]
    fn refuses_each_violation_with_its_reason() {
        let limits = LimitsConfig {
            max_header_count: 3,
            max_header_bytes: 64,
            max_uri_bytes: 16,
            max_body_bytes: 10,
            max_body_memory: 100,
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

    #[test]
    fn refuses_hosts_and_targets_that_name_two_places() {
        let h = Hardening::new(&LimitsConfig::default());
        let with_host = |host: &str| http::Request::builder().uri("/a").header("host", host);
        assert_eq!(reason(&h, &head(with_host("api.example:8443"))), None);
        assert_eq!(reason(&h, &head(with_host("[2001:db8::1]:443"))), None);
        for bad in ["a b", "evil.example/x?y", "a@evil.example", "", "a\\b"] {
            assert_eq!(
                reason(&h, &head(with_host(bad))),
                Some("bad_host"),
                "{bad:?}"
            );
        }
        let ftp = http::Request::builder()
            .uri("ftp://x.example/a")
            .header("host", "x.example");
        assert_eq!(reason(&h, &head(ftp)), Some("bad_request_target"));
        let userinfo = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://u:p@api.example/a");
        assert_eq!(reason(&h, &head(userinfo)), Some("bad_host"));
        let mismatch = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://api.example/a")
            .header("host", "internal.example");
        assert_eq!(reason(&h, &head(mismatch)), Some("host_mismatch"));
        let agree = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://api.example/a")
            .header("host", "API.example");
        assert_eq!(reason(&h, &head(agree)), None);
        let port_only_once = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://api.example:8443/a")
            .header("host", "api.example");
        assert_eq!(reason(&h, &head(port_only_once)), None);
    }

    #[test]
    fn h2c_and_unknown_upgrades_are_stripped_websocket_is_kept() {
        let upgrade = |proto: &str| {
            head(
                http::Request::get("/a")
                    .header("host", "x")
                    .header("connection", "Upgrade, HTTP2-Settings")
                    .header("upgrade", proto)
                    .header("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
            )
        };
        let mut h2c = upgrade("h2c");
        strip_upgrades(&mut h2c);
        assert!(h2c.headers.get(UPGRADE).is_none());
        assert!(h2c.headers.get(HTTP2_SETTINGS).is_none());
        let mut mixed = upgrade("websocket, h2c");
        strip_upgrades(&mut mixed);
        assert!(mixed.headers.get(UPGRADE).is_none());
        let mut ws = upgrade("websocket");
        strip_upgrades(&mut ws);
        assert_eq!(
            ws.headers.get(UPGRADE).map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert!(ws.headers.get(HTTP2_SETTINGS).is_none());
    }
}
