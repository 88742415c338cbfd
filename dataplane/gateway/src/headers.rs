//! Header rules shared by the request path and the proxy: hop-by-hop headers (RFC 9110
//! §7.6.1), the upgrade handshake, and the request-id header.

use http::header::{CONNECTION, HeaderMap, HeaderName, TE, UPGRADE};
use http::{HeaderValue, Method, Version};

/// Carries the request id upstream and back to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus common non-standard ones; names, not strings,
/// so removing them (twice per request) parses nothing.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
];

/// Whether the request asks for an HTTP/1.1 protocol upgrade (WebSocket).
pub fn is_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && method == Method::GET
        && headers.contains_key(UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// End-to-end headers a `Connection` token may not remove: the upstream must see the host, the
/// framing and the credentials the gateway's checks were made on (`Connection: host` would
/// otherwise send the request on without its Host).
const NEVER_HOP_BY_HOP: [&str; 7] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "authorization",
    "cookie",
    "x-request-id",
];

/// Removes hop-by-hop headers. With `keep_upgrade`, `Connection: upgrade` and `Upgrade`
/// survive so a WebSocket handshake can pass. `TE: trailers` is kept (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them: one pass over the names (standard names compare as
    // tags) instead of eleven hashed lookups and removals, twice per request.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        // Tokens naming a header removed below anyway (`keep-alive`, what most messages
        // carry) are skipped: no name is built and nothing is collected for them. `TE` is
        // not: named here, it goes before `TE: trailers` is looked for.
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
            .filter(|t| {
                t.eq_ignore_ascii_case("te")
                    || !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !NEVER_HOP_BY_HOP.contains(&n.as_str()))
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    let te_trailers = headers.get_all(TE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == "trailers"))
    });
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// Whether `strip_hop_by_hop` removes `name` without a `Connection` token naming it.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == UPGRADE || HOP_BY_HOP.contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hop_by_hop_header_goes_alone_and_other_headers_stay() {
        let mut plain = HeaderMap::new();
        plain.insert(http::header::HOST, HeaderValue::from_static("api.example"));
        plain.append("x-kept", HeaderValue::from_static("1"));
        plain.append("x-kept", HeaderValue::from_static("2"));
        let mut h = plain.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, plain);
        // Spelled out, not taken from HOP_BY_HOP: a name dropped there must fail here.
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = plain.clone();
            h.insert(name, HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h, plain, "{name}");
        }
        // For an upgrade, `Connection: upgrade` is set even on a message without any
        // hop-by-hop header (a 101 answer without one still switches protocols).
        for with_upgrade in [false, true] {
            let mut h = plain.clone();
            if with_upgrade {
                h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            }
            strip_hop_by_hop(&mut h, true);
            let upgrade = HeaderValue::from_static("upgrade");
            assert_eq!(h.get(CONNECTION), Some(&upgrade), "{with_upgrade}");
            assert_eq!(h.contains_key(UPGRADE), with_upgrade);
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers, deflate"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["te", "x-kept"]);
        assert_eq!(h.get(TE), Some(&HeaderValue::from_static("trailers")));
    }

    #[test]
    fn connection_cannot_remove_host_or_credentials() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("host, authorization, Content-Length, x-hop"),
        );
        h.insert(http::header::HOST, HeaderValue::from_static("api.example"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("content-length", HeaderValue::from_static("2"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["authorization", "content-length", "host"]);
    }
}
