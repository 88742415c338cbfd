//! The HTTP/1.1 connections to one upstream: a stack of idle keep-alive connections, each a
//! hyper `SendRequest` whose connection runs in its own task.
//!
//! hyper's pooled client does the same with more machinery per request (a pool map keyed by
//! scheme and authority, a checkout future, and a task spawned per response to put the
//! connection back once it is idle); one upstream needs none of it. A connection goes back on
//! the stack as soon as its response head has arrived and is taken again only once hyper says
//! it is ready, that is once that response's body has been read.
//!
//! Each worker thread of `listener.workers` keeps a stack of its own (`pool_size` idle
//! connections each, like nginx's `keepalive` per worker): a connection's task runs on the
//! worker that opened it, so a request reuses only connections its own thread drives.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::server::workers;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, timed out).
    Connect,
    /// The connection failed while the request was sent or the response awaited.
    Failed,
}

#[derive(Debug)]
struct Idle {
    tx: SendRequest<UpstreamBody>,
    since: Instant,
}

/// Keep-alive connections to one HTTP/1.1 upstream.
#[derive(Debug)]
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    /// What goes in `Host` when the request has none.
    host: Option<HeaderValue>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Stack `i` belongs to worker `i` (0: threads that are no worker); workers beyond the
    /// last stack share them round.
    idle: Box<[Mutex<Vec<Idle>>]>,
}

impl H1Pool {
    pub fn new(
        base: &http::uri::Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        workers: usize,
    ) -> Self {
        Self {
            addr: format!("{}:{}", base.host(), base.port_u16().unwrap_or(80)),
            host: HeaderValue::from_str(base.as_str()).ok(),
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: (0..workers::slots(workers))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// The calling thread's stack.
    fn stack(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle[workers::slot(self.idle.len())]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `req` (its target in origin form or absolute) on an idle connection, or a new one.
    /// A request that a reused connection closed before taking is sent once more on a new one,
    /// as hyper's pooled client does.
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        if req.uri().authority().is_some() {
            let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            if let Ok(origin) = Uri::try_from(pq) {
                *req.uri_mut() = origin;
            }
        }
        if let Some(host) = &self.host {
            req.headers_mut()
                .entry(HOST)
                .or_insert_with(|| host.clone());
        }
        loop {
            let (mut tx, reused) = match self.take() {
                Some(tx) => (tx, true),
                // Boxed: a connect and handshake hold far more state than a send on an idle
                // connection, and every request's future would carry (and move) it.
                None => (Box::pin(self.connect()).await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    self.put(tx);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Failed),
                },
            }
        }
    }

    /// The most recently used connection that is ready for a request; busy ones (a response
    /// body still being read) stay. Closed and expired ones go in [`sweep`](Self::sweep).
    fn take(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.stack();
        if idle.is_empty() {
            return None;
        }
        let at = idle.iter().rposition(|i| i.tx.is_ready())?;
        Some(idle.remove(at).tx)
    }

    /// Closes the connections idle for `idle_timeout` or longer (and drops closed ones).
    pub fn sweep(&self) {
        let now = Instant::now();
        for stack in &self.idle {
            let mut idle = stack.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < self.idle_timeout);
        }
    }

    /// How often [`sweep`](Self::sweep) should run so no connection outlives `idle_timeout` by
    /// more than half of it.
    pub fn sweep_period(&self) -> Duration {
        (self.idle_timeout / 2).max(Duration::from_millis(100))
    }

    /// Keeps a connection for the next request, unless the stack is full (it then closes once
    /// its response is read).
    fn put(&self, tx: SendRequest<UpstreamBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.stack();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, SendError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| SendError::Connect)?
            .map_err(|_| SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|_| SendError::Connect)?;
        // Upgrades (a WebSocket the upstream answered 101) keep the connection for the splice.
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    /// An upstream answering `ok` with the Host it saw, counting the connections it accepted;
    /// with `close`, it closes every connection after one response.
    async fn upstream(close: bool) -> (http::uri::Authority, Arc<AtomicUsize>) {
        let (listener, authority) = listen().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let host = req.headers().get(HOST).cloned();
                        let target = req.uri().to_string();
                        let mut resp = Response::new(Full::new(Bytes::from(target)));
                        if let Some(h) = host {
                            resp.headers_mut().insert("x-host", h);
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        (authority, accepted)
    }

    /// Up to four idle connections, kept a minute.
    fn kept(upstream: &http::uri::Authority) -> H1Pool {
        H1Pool::new(
            upstream,
            Duration::from_secs(1),
            Duration::from_secs(60),
            4,
            0,
        )
    }

    /// A listener on a free loopback port, and its address.
    async fn listen() -> (TcpListener, http::uri::Authority) {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind")
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("addr")
        };
        let Ok(authority) = addr.to_string().parse() else {
            panic!("authority")
        };
        (listener, authority)
    }

    fn get(uri: &str) -> Request<UpstreamBody> {
        let body = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed();
        let Ok(req) = Request::get(uri).body(body) else {
            panic!("request")
        };
        req
    }

    async fn fetch(pool: &H1Pool, uri: &str) -> (String, Option<HeaderValue>) {
        let Ok(resp) = pool.send(get(uri)).await else {
            panic!("send {uri}")
        };
        let host = resp.headers().get("x-host").cloned();
        let Ok(body) = resp.into_body().collect().await else {
            panic!("body")
        };
        let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        // The connection task marks the connection ready once the response is read.
        tokio::task::yield_now().await;
        (text, host)
    }

    #[test]
    fn a_pool_keeps_one_stack_per_worker_and_one_for_other_threads() {
        let Ok(authority) = "127.0.0.1:9".parse::<http::uri::Authority>() else {
            panic!("authority")
        };
        let stacks = |workers| {
            H1Pool::new(
                &authority,
                Duration::from_secs(1),
                Duration::ZERO,
                4,
                workers,
            )
            .idle
            .len()
        };
        // Whatever the CPU count: listener.workers decides.
        assert_eq!(stacks(0), 1);
        assert_eq!(stacks(3), 4);
        assert_eq!(stacks(1024), 64, "beyond it, workers share stacks");
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection_in_origin_form_with_host() {
        let (authority, accepted) = upstream(false).await;
        let pool = kept(&authority);
        let absolute = format!("http://{authority}/a?b=1");
        let (target, host) = fetch(&pool, &absolute).await;
        assert_eq!(target, "/a?b=1");
        assert_eq!(
            host.as_ref().and_then(|h| h.to_str().ok()),
            Some(authority.as_str())
        );
        for _ in 0..3 {
            assert_eq!(fetch(&pool, "/c").await.0, "/c");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_sweep_closes_connections_past_their_idle_timeout() {
        let (authority, accepted) = upstream(false).await;
        let pool = H1Pool::new(&authority, Duration::from_secs(1), Duration::ZERO, 4, 0);
        assert_eq!(fetch(&pool, "/a").await.0, "/a");
        pool.sweep();
        assert_eq!(fetch(&pool, "/b").await.0, "/b");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let kept = kept(&authority);
        assert_eq!(fetch(&kept, "/c").await.0, "/c");
        kept.sweep();
        assert_eq!(fetch(&kept, "/d").await.0, "/d");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn closed_connections_are_replaced_and_a_refused_connect_is_a_connect_error() {
        let (authority, accepted) = upstream(true).await;
        let pool = kept(&authority);
        for _ in 0..3 {
            assert_eq!(fetch(&pool, "/x").await.0, "/x");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // A port nobody listens on any more.
        let (gone, authority) = listen().await;
        drop(gone);
        let pool = kept(&authority);
        assert_eq!(pool.send(get("/")).await.err(), Some(SendError::Connect));
    }
}
