//! Entry points for the fuzz targets in `tests/fuzz` (not part of the gateway's API).
//!
//! [`HttpHarness::serve`] feeds attacker bytes to hyper as one client connection, configured as
//! the gateway configures it and read through the same [`Tracked`] wrapper, so the raw framing
//! tracker sees exactly the reads hyper sees. The service behind it is trivial: the pipeline
//! has its own targets, and a crash here must point at the connection layer.
//! [`framing_is_split_invariant`] checks the tracker on its own.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::GatewayConfig;
use crate::server::framing::Framing;
use crate::server::io::{Activity, Tracked};

/// Bytes of a request body the trivial service reads before it answers 413.
const BODY_LIMIT: usize = 64 * 1024;
/// Bound on one connection in (paused, auto-advancing) tokio time: a connection that does not
/// end by then is a hang the fuzzer should see, so [`HttpHarness::serve`] reports it.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(600);

/// Which of the gateway's three server builders a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain listener, or TLS without ALPN: the client preface decides.
    Auto,
    /// ALPN `http/1.1`.
    Http1,
    /// ALPN `h2`.
    Http2,
}

/// What one fuzzed connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnReport {
    /// Requests that reached the service.
    pub requests: u64,
    /// Response bytes the client read.
    pub response_bytes: usize,
    /// The connection ended before [`CONNECTION_DEADLINE`].
    pub finished: bool,
}

/// hyper's server builders, exactly as the gateway builds them for a config.
#[derive(Debug)]
pub struct HttpHarness {
    servers: crate::state::Servers,
}

impl HttpHarness {
    /// Builders for `cfg`. Must be called inside a tokio runtime with time enabled.
    pub fn new(cfg: &GatewayConfig) -> Self {
        Self {
            servers: crate::state::servers(cfg),
        }
    }

    /// Serves `input` as everything one client sends, written `chunk` bytes at a time (0: all
    /// at once) with a yield between writes so the server reads it in pieces of that size.
    /// Then the client half-closes and reads the responses to the end.
    pub async fn serve(&self, protocol: Protocol, chunk: usize, input: &[u8]) -> ConnReport {
        let builder = match protocol {
            Protocol::Auto => &self.servers.auto,
            Protocol::Http1 => &self.servers.h1,
            Protocol::Http2 => &self.servers.h2,
        };
        let (client, server) = tokio::io::duplex(64 * 1024);
        let io = TokioIo::new(Tracked::new(
            server,
            Activity::new(),
            protocol != Protocol::Http2,
        ));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = requests.clone();
        let svc = service_fn(move |req| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            respond(req)
        });
        let conn = builder.serve_connection_with_upgrades(io, svc);
        let (mut rd, mut wr) = tokio::io::split(client);
        let write = async move {
            let step = if chunk == 0 {
                input.len().max(1)
            } else {
                chunk
            };
            for piece in input.chunks(step) {
                if wr.write_all(piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let read = async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out.len()
        };
        let all = async {
            let (_, _, n) = tokio::join!(conn, write, read);
            n
        };
        let (response_bytes, finished) = match tokio::time::timeout(CONNECTION_DEADLINE, all).await
        {
            Ok(n) => (n, true),
            Err(_) => (0, false),
        };
        ConnReport {
            requests: requests.load(std::sync::atomic::Ordering::Relaxed),
            response_bytes,
            finished,
        }
    }
}

/// Reads the body (up to [`BODY_LIMIT`]) so hyper decodes all of it, then answers.
async fn respond(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}\n")));
    *resp.status_mut() = status;
    Ok(resp)
}

/// Feeds `input` to a fresh framing tracker three ways (all at once, one byte at a time, and
/// in `chunk`-byte pieces) and checks that each finds the same first fault: a tracker whose
/// answer depends on how TCP segments the stream could be steered past by an attacker.
/// Panics with the three answers when they differ.
pub fn framing_is_split_invariant(input: &[u8], chunk: usize) {
    let whole = Framing::default().feed(input);
    let mut bytewise = Framing::default();
    let by_byte = input
        .iter()
        .find_map(|b| bytewise.feed(std::slice::from_ref(b)));
    let mut pieces = Framing::default();
    let by_chunk = input.chunks(chunk.max(1)).find_map(|c| pieces.feed(c));
    assert!(
        whole == by_byte && whole == by_chunk,
        "framing tracker depends on read boundaries: whole {whole:?}, byte by byte \
         {by_byte:?}, in {chunk}-byte reads {by_chunk:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(protocol: Protocol, chunk: usize, input: &[u8]) -> ConnReport {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(rt) = rt else {
            panic!("no tokio runtime");
        };
        rt.block_on(async {
            let h = HttpHarness::new(&GatewayConfig::default());
            h.serve(protocol, chunk, input).await
        })
    }

    #[test]
    fn pipelined_requests_reach_the_service_in_any_read_size() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for chunk in [0, 1, 7] {
            let r = run(Protocol::Auto, chunk, input);
            assert_eq!(r.requests, 2, "chunk {chunk}");
            assert!(r.finished && r.response_bytes > 0);
            framing_is_split_invariant(input, chunk);
        }
    }

    #[test]
    fn garbage_ends_the_connection() {
        let r = run(Protocol::Http1, 0, b"\x00\xffnot http\r\n\r\n");
        assert_eq!(r.requests, 0);
        assert!(r.finished);
    }
}
