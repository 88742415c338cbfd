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
//!
//! A burst of requests opens more connections than `pool_size`. nginx closes those past its
//! `keepalive` as soon as their response is read, so every burst opens them again (a connect,
//! a TCP handshake and a close on both ends per request past the bound). Here they stay on the
//! stack, up to [`SURPLUS`] times `pool_size`, and the sweep closes the ones past `pool_size`
//! that have sat unused for `pool_purge_delay` (counted from the response head they came back
//! with), least recently used first: bursts that come back within the delay find their
//! connections, and a burst that does not come back leaves `pool_size` once the delay has
//! passed. HAProxy's `pool-purge-delay` has the same aim and purges differently. A zero delay
//! gives nginx's behaviour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::config::{POOL_SURPLUS, UpstreamConfig};
use crate::server::workers;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, timed out).
    Connect,
    /// The connection failed while the request was sent or the response awaited.
    Failed,
}

/// How many connections a stack may hold, as a multiple of `pool_size` ([`POOL_SURPLUS`]). It
/// bounds the stack a request's [`take`](H1Pool::take) looks through; a connection put back past
/// it closes once its response is read.
const SURPLUS: usize = POOL_SURPLUS;

/// What an upstream's `[[upstream]]` entry sets for its HTTP/1.1 connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time allowed to open a connection (`connect_timeout`).
    pub connect_timeout: Duration,
    /// Pooled connections idle this long are closed (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Connections kept until `idle_timeout` (`pool_size`).
    pub pool_size: usize,
    /// Connections past `pool_size` are closed once unused this long (`pool_purge_delay`).
    pub purge_delay: Duration,
}

impl From<&UpstreamConfig> for Limits {
    fn from(cfg: &UpstreamConfig) -> Self {
        Self {
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            pool_size: cfg.pool_size,
            purge_delay: cfg.pool_purge_delay,
        }
    }
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
    /// Connections kept until `idle_timeout` (`pool_size`).
    keep: usize,
    /// Connections past `keep` are closed once unused this long.
    purge_delay: Duration,
    /// Stack `i` belongs to worker `i` (0: threads that are no worker); workers beyond the
    /// last stack share them round.
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Connections opened so far.
    opened: AtomicU64,
}

impl H1Pool {
    /// A pool for the upstream at `base`, with a stack for each of `workers` worker threads and
    /// one for the other threads.
    pub fn new(base: &http::uri::Authority, limits: Limits, workers: usize) -> Self {
        Self {
            addr: format!("{}:{}", base.host(), base.port_u16().unwrap_or(80)),
            host: HeaderValue::from_str(base.as_str()).ok(),
            connect_timeout: limits.connect_timeout,
            idle_timeout: limits.idle_timeout,
            keep: limits.pool_size,
            purge_delay: limits.purge_delay,
            idle: (0..workers::slots(workers))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            opened: AtomicU64::new(0),
        }
    }

    /// The connections opened so far, and those on the stacks now (idle, still reading the
    /// body of the response they were put back with, or closed by the upstream and not yet
    /// dropped).
    pub fn connections(&self) -> (u64, usize) {
        let pooled = self
            .idle
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        (self.opened.load(Ordering::Relaxed), pooled)
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

    /// Closes the connections idle for `idle_timeout` or longer, and those past `pool_size`
    /// unused for `pool_purge_delay` (least recently used first), and drops closed ones.
    pub fn sweep(&self) {
        let now = Instant::now();
        for stack in &self.idle {
            let mut idle = stack.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < self.idle_timeout);
            let mut surplus = idle.len().saturating_sub(self.keep);
            if surplus > 0 {
                // The stack's bottom holds the connections put back longest ago. A busy one (its
                // response body still being read) is in use, not idle: it stays.
                idle.retain(|i| {
                    let purge = surplus > 0
                        && i.tx.is_ready()
                        && now.duration_since(i.since) >= self.purge_delay;
                    surplus -= usize::from(purge);
                    !purge
                });
            }
        }
    }

    /// How often [`sweep`](Self::sweep) should run so no connection outlives `idle_timeout`,
    /// nor one past `pool_size` its `pool_purge_delay`, by more than half of it.
    pub fn sweep_period(&self) -> Duration {
        let shortest = if self.purge_delay.is_zero() {
            self.idle_timeout
        } else {
            self.idle_timeout.min(self.purge_delay)
        };
        (shortest / 2).max(Duration::from_millis(100))
    }

    /// Keeps a connection for the next request: up to `pool_size` on the stack, or up to
    /// [`SURPLUS`] times that with a nonzero `pool_purge_delay` (the sweep trims it back). Past
    /// that the connection closes once its response is read.
    fn put(&self, tx: SendRequest<UpstreamBody>) {
        if tx.is_closed() {
            return;
        }
        let bound = if self.purge_delay.is_zero() {
            self.keep
        } else {
            self.keep.saturating_mul(SURPLUS)
        };
        let mut idle = self.stack();
        if idle.len() >= bound {
            // Room held by connections that have closed since they came back (the upstream
            // closed them) goes to this one.
            idle.retain(|i| !i.tx.is_closed());
        }
        if idle.len() < bound {
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
        self.opened.fetch_add(1, Ordering::Relaxed);
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
        slow_upstream(close, Duration::ZERO).await
    }

    /// [`upstream`], answering each request after `delay`.
    async fn slow_upstream(
        close: bool,
        delay: Duration,
    ) -> (http::uri::Authority, Arc<AtomicUsize>) {
        let (listener, authority) = listen().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| async move {
                        tokio::time::sleep(delay).await;
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

    /// `pool_size`, `idle_timeout` and `pool_purge_delay`, with a 1 s connect timeout.
    fn limits(pool_size: usize, idle_timeout: Duration, purge_delay: Duration) -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(1),
            idle_timeout,
            pool_size,
            purge_delay,
        }
    }

    /// Up to four idle connections, kept a minute.
    fn kept(upstream: &http::uri::Authority) -> H1Pool {
        H1Pool::new(
            upstream,
            limits(4, Duration::from_secs(60), Duration::ZERO),
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
                limits(4, Duration::ZERO, Duration::ZERO),
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
        let pool = H1Pool::new(&authority, limits(4, Duration::ZERO, Duration::ZERO), 0);
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
        let pool = H1Pool::new(
            &authority,
            limits(4, Duration::from_secs(60), Duration::from_secs(60)),
            0,
        );
        for _ in 0..3 {
            assert_eq!(fetch(&pool, "/x").await.0, "/x");
            // `Connection: close`: here the connection task has read the head and the body and
            // ended by the time the response is returned (one poll on this current-thread
            // runtime), so it is not put back; on a worker where it has not yet ended, a full
            // stack drops it when it next needs the room.
            assert_eq!(pool.connections().1, 0);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // A port nobody listens on any more.
        let (gone, authority) = listen().await;
        drop(gone);
        let pool = kept(&authority);
        assert_eq!(pool.send(get("/")).await.err(), Some(SendError::Connect));
    }

    /// Three requests at once, against an upstream that answers after 100 ms, so that each
    /// needs a connection of its own; then, within a second, every connection on the stack is
    /// ready for the next request.
    async fn burst(pool: &H1Pool) {
        let (a, b, c) = tokio::join!(fetch(pool, "/1"), fetch(pool, "/2"), fetch(pool, "/3"));
        assert_eq!([a.0, b.0, c.0], ["/1", "/2", "/3"]);
        for _ in 0..1000 {
            if stack(pool).iter().all(|i| i.tx.is_ready()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("pooled connections not ready a second after their responses");
    }

    fn stack(pool: &H1Pool) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        pool.idle[0].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the connections on the stack look put back `ago`, bottom first.
    fn age(pool: &H1Pool, ago: &[Duration]) {
        let now = Instant::now();
        for (i, ago) in stack(pool).iter_mut().zip(ago) {
            let Some(then) = now.checked_sub(*ago) else {
                panic!("the clock is younger than {ago:?}")
            };
            i.since = then;
        }
    }

    #[tokio::test]
    async fn a_burst_keeps_its_connections_past_pool_size_until_the_purge_delay() {
        let (authority, accepted) = slow_upstream(false, Duration::from_millis(100)).await;
        let minute = Duration::from_secs(60);
        // One connection kept until the idle timeout, the burst's others for a minute unused.
        let pool = H1Pool::new(&authority, limits(1, 2 * minute, minute), 0);
        burst(&pool).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // A burst within the delay finds all three, and a sweep before the delay keeps them.
        pool.sweep();
        burst(&pool).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "the second burst reused the first's"
        );
        let s = Duration::from_secs;
        age(&pool, &[s(61), s(61), s(61)]);
        pool.sweep();
        // Past the delay the sweep left pool_size: the next burst opens two.
        assert_eq!(pool.connections(), (3, 1));
        burst(&pool).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        assert_eq!(pool.connections(), (5, 3), "what the metrics report");
        // Least recently used first: with two kept, the oldest goes.
        let pool2 = H1Pool::new(&authority, limits(2, 2 * minute, minute), 0);
        burst(&pool2).await;
        age(&pool2, &[s(63), s(62), s(61)]);
        pool2.sweep();
        let left: Vec<u64> = stack(&pool2)
            .iter()
            .map(|i| i.since.elapsed().as_secs())
            .collect();
        assert_eq!(left, [62, 61]);

        // A zero delay closes what goes past pool_size at once, as nginx's keepalive does.
        let (authority, accepted) = slow_upstream(false, Duration::from_millis(100)).await;
        let pool = H1Pool::new(&authority, limits(1, minute, Duration::ZERO), 0);
        burst(&pool).await;
        burst(&pool).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 5);

        // pool_size 0 keeps nothing, whatever the delay.
        let (authority, accepted) = slow_upstream(false, Duration::ZERO).await;
        let pool = H1Pool::new(&authority, limits(0, minute, minute), 0);
        for _ in 0..3 {
            assert_eq!(fetch(&pool, "/x").await.0, "/x");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_sweep_runs_often_enough_for_the_shorter_of_the_two_timers() {
        let Ok(authority) = "127.0.0.1:9".parse::<http::uri::Authority>() else {
            panic!("authority")
        };
        let period =
            |idle, purge| H1Pool::new(&authority, limits(4, idle, purge), 0).sweep_period();
        let s = Duration::from_secs;
        assert_eq!(period(s(60), s(5)), Duration::from_millis(2500));
        assert_eq!(period(s(4), s(60)), s(2));
        assert_eq!(
            period(s(60), Duration::ZERO),
            s(30),
            "a zero delay needs no sweep of its own"
        );
        assert_eq!(
            period(Duration::ZERO, Duration::ZERO),
            Duration::from_millis(100)
        );
    }
}
