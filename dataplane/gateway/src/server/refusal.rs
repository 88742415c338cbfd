//! Refusals the HTTP parser makes itself, before any request reaches the pipeline (a NUL in a
//! header, an invalid Transfer-Encoding, two different Content-Lengths...), and connections the
//! gateway ends on a timeout. hyper answers the parse errors with a bare status and closes the
//! connection; this module names them with the same stable reason codes the pipeline uses, so
//! each one still gets an audit line and a counted metric: an attack leaves a trace.

use std::error::Error as StdError;

use super::framing::Fault;

/// What a connection ended with, as the audit log and metrics say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The status hyper sent (or 408 for a head that never came).
    pub status: u16,
    /// Stable reason code.
    pub reason: &'static str,
}

/// Classifies the error a connection ended with. `None` for errors that are not refusals of a
/// request (a reset connection, an HTTP/2 protocol error): those are only counted.
pub fn classify(err: &(dyn StdError + 'static), fault: Option<Fault>) -> Option<Refusal> {
    let hyper = find_hyper(err)?;
    let refusal = |status, reason| Some(Refusal { status, reason });
    if hyper.is_timeout() {
        return refusal(408, "header_timeout");
    }
    if !hyper.is_parse() {
        return None;
    }
    // hyper's own descriptions, checked by the tests below against the pinned version.
    let text = hyper.to_string();
    if hyper.is_parse_too_large() {
        return if text.starts_with("URI too long") {
            refusal(414, "uri_too_long")
        } else if fault == Some(Fault::HugeLength) {
            refusal(431, "bad_content_length")
        } else {
            refusal(431, "headers_too_large")
        };
    }
    let reason = if text.contains("content-length") {
        "bad_content_length"
    } else if text.contains("transfer-encoding") {
        "bad_transfer_encoding"
    } else if text.contains("HTTP header") {
        "bad_header"
    } else if text.contains("HTTP method") {
        "bad_method"
    } else if text.contains("HTTP version") {
        "bad_version"
    } else if text.contains("URI") {
        "bad_request_target"
    } else {
        "malformed_request"
    };
    refusal(400, reason)
}

/// A short label for a connection error that is not a refusal, for the metric.
pub fn label(err: &(dyn StdError + 'static)) -> &'static str {
    match find_hyper(err) {
        Some(h) if h.is_incomplete_message() => "incomplete_message",
        Some(h) if h.is_closed() || h.is_canceled() => "closed",
        Some(h) if h.to_string().starts_with("http2") => "h2_protocol_error",
        Some(_) => "connection_error",
        None => "io_error",
    }
}

fn find_hyper<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a hyper::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return Some(h);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `raw` on an in-memory connection with hyper's HTTP/1.1 server and returns how the
    /// connection ended (classified) and what hyper wrote back.
    async fn serve(raw: &[u8]) -> (Option<Refusal>, String) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let svc = service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                bytes::Bytes::from_static(b"ok"),
            )))
        });
        let conn = tokio::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), svc)
                .await
        });
        let (mut rd, mut wr) = tokio::io::split(client);
        let _ = wr.write_all(raw).await;
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), rd.read_to_end(&mut out)).await;
        let ended = match conn.await {
            Ok(Err(e)) => classify(&e, None),
            _ => None,
        };
        (ended, String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn parse_errors_get_the_pipelines_reason_codes() {
        let cases: [(&[u8], u16, &str); 5] = [
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
                400,
                "bad_transfer_encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                400,
                "bad_content_length",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
                400,
                "bad_header",
            ),
            (b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_method"),
            (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_version"),
        ];
        for (raw, status, reason) in cases {
            let (ended, wire) = serve(raw).await;
            assert_eq!(
                ended,
                Some(Refusal { status, reason }),
                "{:?} -> {wire:?}",
                String::from_utf8_lossy(raw)
            );
            assert!(wire.starts_with(&format!("HTTP/1.1 {status}")), "{wire:?}");
        }
    }

    #[tokio::test]
    async fn a_clean_close_is_not_a_refusal() {
        let (ended, wire) = serve(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert_eq!(ended, None);
        assert!(wire.starts_with("HTTP/1.1 200"), "{wire:?}");
    }
}
