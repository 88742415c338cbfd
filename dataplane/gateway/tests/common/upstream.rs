//! An in-process upstream on loopback (HTTP/1.1 and h2c on one port) with endpoints the tests
//! need: echo of what arrived, slow answers, trailers, WebSocket echo, health and status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Data, then optional trailers.
pub struct TestBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl TestBody {
    /// No data frames at all (a GET ends its stream with the headers).
    pub fn empty() -> Self {
        Self {
            data: None,
            trailers: None,
        }
    }

    pub fn new(data: impl Into<Bytes>) -> Self {
        Self {
            data: Some(data.into()),
            trailers: None,
        }
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests that reached this upstream (health probes excluded).
    pub hits: Arc<AtomicUsize>,
    /// What `/health` answers.
    pub healthy: Arc<AtomicBool>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(id: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(AtomicUsize::new(0));
        let (h, ok, accepted) = (hits.clone(), healthy.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let (h, ok) = (h.clone(), ok.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(id, h.clone(), ok.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            hits,
            healthy,
            conns,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn h2c_url(&self) -> String {
        format!("h2c://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn handle(
    id: &'static str,
    hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        let s = if healthy.load(Ordering::Relaxed) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return Ok(reply(s, TestBody::new("health")));
    }
    hits.fetch_add(1, Ordering::Relaxed);
    if let Some(ms) = query(&req, "sleep_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let resp = match path.as_str() {
        "/trailers" => {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from_static("0"));
            t.insert("grpc-message", HeaderValue::from_static("fine"));
            let mut r = reply(
                StatusCode::OK,
                TestBody {
                    data: Some(Bytes::from_static(b"payload")),
                    trailers: Some(t),
                },
            );
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            r
        }
        "/ws" => websocket(&mut req),
        "/big" => reply(
            StatusCode::OK,
            TestBody::new(vec![b'x'; query(&req, "n").unwrap_or(0) as usize]),
        ),
        _ => {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let version = format!("{:?}", req.version());
            let mut headers: BTreeMap<String, String> = BTreeMap::new();
            for (n, v) in req.headers() {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                headers
                    .entry(n.as_str().to_owned())
                    .and_modify(|e| *e = format!("{e}, {v}"))
                    .or_insert(v);
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let json = serde_json::json!({
                "upstream": id, "method": method, "uri": uri, "version": version,
                "headers": headers, "body_len": body.len(),
            });
            let mut r = reply(StatusCode::OK, TestBody::new(json.to_string()));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
    };
    Ok(resp)
}

fn reply(status: StatusCode, body: TestBody) -> Response<TestBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    // The gateway must strip both of these.
    r.headers_mut()
        .insert("server", HeaderValue::from_static("upstream-secret/9.9"));
    r.headers_mut()
        .insert("connection", HeaderValue::from_static("x-upstream-hop"));
    r.headers_mut()
        .insert("x-upstream-hop", HeaderValue::from_static("1"));
    r
}

/// RFC 6455 handshake, then echoes one text frame back unmasked.
fn websocket(req: &mut Request<Incoming>) -> Response<TestBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return reply(StatusCode::BAD_REQUEST, TestBody::new("no key"));
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let mut io = TokioIo::new(up);
        let mut head = [0u8; 2];
        if io.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = (head[1] & 0x7f) as usize;
        let mut mask = [0u8; 4];
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut mask).await.is_err() || io.read_exact(&mut payload).await.is_err() {
            return;
        }
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        let mut frame = vec![0x81, len as u8];
        frame.extend_from_slice(&payload);
        let _ = io.write_all(&frame).await;
        let _ = io.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let mut r = Response::new(TestBody::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&ws_accept(key.as_bytes())).unwrap(),
    );
    r
}

/// `base64(sha1(key + GUID))`.
pub fn ws_accept(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64(digest.as_ref())
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
