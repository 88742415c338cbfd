//! Rewrites the request head for the upstream: drops hop-by-hop headers (and those the client
//! named in `Connection`), replaces client-supplied forwarding headers with what the gateway
//! saw (the gateway is the edge: anything a client wrote there is a spoofing attempt), and adds
//! the request id.

use bytes::Bytes;
use http::header::{CONNECTION, FORWARDED, HeaderMap, HeaderName, TE, UPGRADE};
use http::request::Parts;
use http::{HeaderValue, Method, Version};

use super::{Outcome, RequestCtx, Stage, StageFuture, ready};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Carries the request id upstream and back to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus common non-standard ones.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
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

/// Removes hop-by-hop headers. With `keep_upgrade`, `Connection: upgrade` and `Upgrade`
/// survive so a WebSocket handshake can pass. `TE: trailers` is kept (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    let te_trailers = headers.get_all(TE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == "trailers"))
    });
    for name in HOP_BY_HOP {
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

/// Sets forwarding and request-id headers.
#[derive(Debug)]
pub struct Forwarding;

impl Stage for Forwarding {
    fn name(&self) -> &'static str {
        "forwarding"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        let upgrade = is_upgrade(&head.method, head.version, &head.headers);
        let h = &mut head.headers;
        strip_hop_by_hop(h, upgrade);
        let ip = ctx.conn.client.ip();
        let proto = if ctx.conn.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = h
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| head.uri.authority().map(|a| a.to_string()));
        for n in [
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            FORWARDED,
        ] {
            h.remove(n);
        }
        let for_node = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let mut forwarded = format!("for={for_node};proto={proto}");
        if let Some(host) = &host
            && let Ok(v) = HeaderValue::from_str(host)
        {
            // Host was a valid header value already, so quoting keeps it one.
            forwarded.push_str(&format!(";host=\"{host}\""));
            h.insert(X_FORWARDED_HOST, v);
        }
        if let Ok(v) = HeaderValue::from_str(&forwarded) {
            h.insert(FORWARDED, v);
        }
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            h.insert(X_FORWARDED_FOR, v);
        }
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            h.insert(X_REQUEST_ID, v);
        }
        ready(Outcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-kept", "te"]);
        assert_eq!(h.get(TE), Some(&HeaderValue::from_static("trailers")));
    }
}
