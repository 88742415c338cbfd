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
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| !NEVER_HOP_BY_HOP.contains(&n.as_str()))
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
        // An absolute-form target names the host; Host is then ignored (RFC 9112 §3.2.2), so
        // the upstream gets the one the checks saw. (HTTP/2 Host and :authority agree, or the
        // hardening stage refused the request.)
        if head.version < Version::HTTP_2
            && let Some(a) = head.uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            h.insert(http::header::HOST, v);
        }
        let ip = ctx.conn.client.ip();
        let proto = if ctx.conn.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // Only a well-formed host:port is repeated: a quote or backslash in a client's Host
        // could otherwise break out of the Forwarded syntax the upstream parses.
        let host = h
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| head.uri.authority().map(|a| a.to_string()))
            .filter(|h| {
                !h.contains(['"', '\\', ';', ',']) && h.parse::<http::uri::Authority>().is_ok()
            });
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
    use crate::pipeline::ConnInfo;

    async fn forward(host: &str, spoofed: &str) -> HeaderMap {
        let mut ctx = RequestCtx {
            request_id: "id-1".to_owned(),
            conn: std::sync::Arc::new(ConnInfo {
                client: "[2001:db8::7]:4000"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
                tls: None,
            }),
            identity: None,
            principal: None,
            matched: None,
            route: None,
            upstream: None,
            started: std::time::Instant::now(),
            timings: Vec::new(),
            depth: vigil_hw::thermal::Level::Full,
            log_only_violation: None,
            body_announced: false,
        };
        let req = http::Request::get("/x")
            .header(
                "host",
                HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static("x")),
            )
            .header("x-forwarded-for", spoofed)
            .header("forwarded", format!("for={spoofed}"))
            .body(());
        let Ok(req) = req else { unreachable!() };
        let (mut head, ()) = req.into_parts();
        assert_eq!(
            Forwarding.on_request(&mut ctx, &mut head, None).await,
            Outcome::Continue
        );
        head.headers
    }

    #[tokio::test]
    async fn replaces_spoofed_forwarding_headers_and_quotes_ipv6() {
        let h = forward("api.example:8443", "6.6.6.6").await;
        assert_eq!(
            h.get(X_FORWARDED_FOR).map(|v| v.as_bytes()),
            Some(&b"2001:db8::7"[..])
        );
        assert_eq!(
            h.get(FORWARDED).map(|v| v.as_bytes()),
            Some(&b"for=\"[2001:db8::7]\";proto=http;host=\"api.example:8443\""[..])
        );
        assert_eq!(
            h.get(X_REQUEST_ID).map(|v| v.as_bytes()),
            Some(&b"id-1"[..])
        );
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
    }

    #[tokio::test]
    async fn a_host_that_could_break_forwarded_syntax_is_left_out() {
        let h = forward("a\";for=1.2.3.4", "6.6.6.6").await;
        assert_eq!(
            h.get(FORWARDED).map(|v| v.as_bytes()),
            Some(&b"for=\"[2001:db8::7]\";proto=http"[..])
        );
        assert!(h.get(X_FORWARDED_HOST).is_none());
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
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-kept", "te"]);
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
