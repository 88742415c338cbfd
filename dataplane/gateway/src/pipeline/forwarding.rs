//! Rewrites the request head for the upstream: drops hop-by-hop headers (and those the client
//! named in `Connection`), replaces client-supplied forwarding headers with what the gateway
//! saw (the gateway is the edge: anything a client wrote there is a spoofing attempt), and adds
//! the request id.

use bytes::Bytes;
use http::header::{FORWARDED, HeaderName};
use http::request::Parts;
use http::{HeaderValue, Version};

use super::stage::{Outcome, RequestCtx, SyncStage};
use crate::headers::{X_REQUEST_ID, is_upgrade, strip_hop_by_hop};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sets forwarding and request-id headers.
#[derive(Debug)]
pub struct Forwarding;

impl SyncStage for Forwarding {
    fn name(&self) -> &'static str {
        "forwarding"
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
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
        // could otherwise break out of the Forwarded syntax the upstream parses. The header's
        // own value is kept (a shared buffer, not a copy) for X-Forwarded-Host.
        let host = h
            .get(http::header::HOST)
            .filter(|v| v.to_str().is_ok())
            .cloned()
            .or_else(|| {
                head.uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            })
            .filter(|v| {
                v.to_str().is_ok_and(|h| {
                    !h.contains(['"', '\\', ';', ',']) && h.parse::<http::uri::Authority>().is_ok()
                })
            });
        for n in [
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            FORWARDED,
        ] {
            h.remove(n);
        }
        // The address was written once for the connection; the Forwarded value is built by
        // appending to it: these headers are set on every request.
        let ip_text = &ctx.conn.ip_text;
        let host_text = host.as_ref().and_then(|v| v.to_str().ok());
        // Sized exactly, so the header value takes the string's buffer as it is.
        let len = "for=".len()
            + ip_text.len()
            + if ip.is_ipv6() { 4 } else { 0 }
            + ";proto=".len()
            + proto.len()
            + host_text.map_or(0, |h| ";host=\"\"".len() + h.len());
        let mut forwarded = String::with_capacity(len);
        forwarded.push_str("for=");
        if ip.is_ipv6() {
            forwarded.push_str("\"[");
            forwarded.push_str(ip_text);
            forwarded.push_str("]\"");
        } else {
            forwarded.push_str(ip_text);
        }
        forwarded.push_str(";proto=");
        forwarded.push_str(proto);
        if let (Some(v), Some(text)) = (host.clone(), host_text) {
            // Host was a valid header value already, so quoting keeps it one.
            forwarded.push_str(";host=\"");
            forwarded.push_str(text);
            forwarded.push('"');
            h.insert(X_FORWARDED_HOST, v);
        }
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(forwarded)) {
            h.insert(FORWARDED, v);
        }
        if let Some(v) = &ctx.conn.ip_header {
            h.insert(X_FORWARDED_FOR, v.clone());
        }
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if let Some(v) = ctx.request_id.header() {
            h.insert(X_REQUEST_ID, v.clone());
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::RequestId;
    use http::HeaderMap;

    async fn forward(host: &str, spoofed: &str) -> HeaderMap {
        let client = "[2001:db8::7]:4000"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let mut ctx = crate::pipeline::test_ctx(client);
        ctx.request_id = RequestId::new("id-1".to_owned());
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
            Forwarding.check(&mut ctx, &mut head, None),
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
}
