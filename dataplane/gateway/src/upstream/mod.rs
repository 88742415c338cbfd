//! The upstream pool: one pooled hyper client per `[[upstream]]` (HTTP/1.1 or h2c), active
//! health checks, and round-robin over the healthy members.

pub(crate) mod h1;
pub(crate) mod proxy;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use self::h1::{H1Pool, SendError};
use crate::body::UpstreamBody;
use crate::config::{UpstreamConfig, UpstreamUrl, parse_upstream_url};
use crate::error::GatewayError;
use crate::server::workers;

/// One upstream server.
#[derive(Debug)]
pub struct Member {
    /// Its config entry.
    pub cfg: UpstreamConfig,
    /// Parsed URL.
    pub url: UpstreamUrl,
    /// Its connections.
    conns: Conns,
    healthy: AtomicBool,
}

/// How a member's requests travel.
#[derive(Debug)]
enum Conns {
    /// HTTP/1.1: keep-alive connections, one request at a time on each.
    H1(H1Pool),
    /// h2c: hyper's pooled client, which multiplexes on one connection. One client per worker
    /// of `listener.workers` and one for other threads, as the HTTP/1.1 pool keeps a stack per
    /// worker: a client runs its connections' tasks on the runtime of the thread that opened
    /// them, so with one shared client every worker's requests would travel through the one
    /// worker that happened to connect first (a wake-up across threads per request, and that
    /// worker's core doing every worker's HTTP/2 framing).
    H2(Box<[Client<HttpConnector, UpstreamBody>]>),
}

impl Member {
    /// Whether the last health probe passed (always true without `health_path`).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The request target to send: origin form (`/path?query`) to an HTTP/1.1 upstream, which
    /// gets the host in `Host`; `http://host:port` + `path_and_query` to an h2c one.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        if !self.url.h2c {
            return Uri::try_from(path_and_query).map_err(http::Error::from);
        }
        Uri::builder()
            .scheme("http")
            .authority(self.url.base.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// HTTP/1.1: the connections opened so far and those pooled now; `None` for h2c, whose
    /// connections hyper's client keeps.
    pub fn connections(&self) -> Option<(u64, usize)> {
        match &self.conns {
            Conns::H1(pool) => Some(pool.connections()),
            Conns::H2(_) => None,
        }
    }

    /// Sends a request on one of the member's connections.
    pub async fn send(&self, req: Request<UpstreamBody>) -> Result<Response<Incoming>, SendError> {
        match &self.conns {
            Conns::H1(pool) => pool.send(req).await,
            Conns::H2(clients) => clients[workers::slot(clients.len())]
                .request(req)
                .await
                .map_err(|e| {
                    if e.is_connect() {
                        SendError::Connect
                    } else {
                        SendError::Failed
                    }
                }),
        }
    }
}

/// The default pool.
#[derive(Debug, Default)]
pub struct Pool {
    members: Vec<Arc<Member>>,
    next: AtomicUsize,
}

impl Pool {
    /// Builds clients for every entry and starts health probes (they stop when the pool is
    /// dropped, i.e. when a reload replaced it and its last request finished). `workers` is
    /// `listener.workers`: each keeps idle HTTP/1.1 connections and h2c connections of its own.
    pub fn new(cfgs: &[UpstreamConfig], workers: usize) -> Result<Arc<Self>, GatewayError> {
        let mut members = Vec::with_capacity(cfgs.len());
        for (i, cfg) in cfgs.iter().enumerate() {
            let url =
                parse_upstream_url(&cfg.url).map_err(|reason| crate::config::ConfigError {
                    key: format!("upstream[{i}].url"),
                    reason,
                })?;
            let conns = if url.h2c {
                Conns::H2(
                    (0..crate::server::workers::slots(workers))
                        .map(|_| h2c_client(cfg))
                        .collect(),
                )
            } else {
                Conns::H1(H1Pool::new(&url.base, h1::Limits::from(cfg), workers))
            };
            members.push(Arc::new(Member {
                cfg: cfg.clone(),
                url,
                conns,
                healthy: AtomicBool::new(true),
            }));
        }
        let pool = Arc::new(Self {
            members,
            next: AtomicUsize::new(0),
        });
        for m in &pool.members {
            if m.cfg.health_path.is_some() {
                tokio::spawn(probe_loop(Arc::downgrade(&pool), m.clone()));
            }
            if let (Conns::H1(_), Ok(rt)) = (&m.conns, tokio::runtime::Handle::try_current()) {
                rt.spawn(sweep_loop(Arc::downgrade(m)));
            }
        }
        Ok(pool)
    }

    /// The named member, or the next healthy one round-robin.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<Member>> {
        if let Some(name) = name {
            return self
                .members
                .iter()
                .find(|m| m.cfg.name == name && m.is_healthy())
                .cloned();
        }
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.members[(start + i) % n])
            .find(|m| m.is_healthy())
            .cloned()
    }

    /// (name, connections opened, connections pooled) of every HTTP/1.1 member, for metrics.
    pub fn connections(&self) -> Vec<(String, u64, usize)> {
        self.members
            .iter()
            .filter_map(|m| {
                let (opened, pooled) = m.connections()?;
                Some((m.cfg.name.clone(), opened, pooled))
            })
            .collect()
    }

    /// (name, healthy) of every member, for metrics.
    pub fn health(&self) -> Vec<(String, bool)> {
        self.members
            .iter()
            .map(|m| (m.cfg.name.clone(), m.is_healthy()))
            .collect()
    }
}

/// An h2c client for one worker (or for the threads that are no worker).
fn h2c_client(cfg: &UpstreamConfig) -> Client<HttpConnector, UpstreamBody> {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(cfg.connect_timeout));
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.idle_timeout)
        .pool_max_idle_per_host(cfg.pool_size)
        .http2_only(true)
        .build(conn)
}

/// Closes a member's idle connections once they pass its idle_timeout (and those past pool_size
/// once unused for its pool_purge_delay), until the member is
/// gone.
async fn sweep_loop(member: Weak<Member>) {
    let Some(period) = member.upgrade().and_then(|m| match &m.conns {
        Conns::H1(p) => Some(p.sweep_period()),
        Conns::H2(_) => None,
    }) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = member.upgrade() else { return };
        if let Conns::H1(p) = &m.conns {
            p.sweep();
        }
    }
}

/// Probes one member until its pool is gone.
async fn probe_loop(pool: Weak<Pool>, member: Arc<Member>) {
    let Some(path) = member.cfg.health_path.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(member.cfg.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.strong_count() == 0 {
            return;
        }
        let ok = probe(&member, &path).await;
        let was = member.healthy.swap(ok, Ordering::Relaxed);
        // Transitions only: one line when an upstream goes down and one when it is back.
        match (was, ok) {
            (true, false) => tracing::warn!(
                upstream = %member.cfg.name,
                url = %member.cfg.url,
                path = %path,
                "upstream unhealthy: its health check failed; requests go to the healthy ones \
                 (vigilctl status lists them)"
            ),
            (false, true) => tracing::info!(upstream = %member.cfg.name, "upstream healthy again"),
            _ => {}
        }
    }
}

async fn probe(member: &Member, path: &str) -> bool {
    let Ok(uri) = member.uri_for(path) else {
        return false;
    };
    let body: UpstreamBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    let Ok(req) = Request::get(uri)
        .header(http::header::USER_AGENT, "vigil-health")
        .body(body)
    else {
        return false;
    };
    match tokio::time::timeout(member.cfg.header_timeout, member.send(req)).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success() || resp.status().is_redirection();
            // Drain so the connection returns to the pool.
            let _ =
                tokio::time::timeout(member.cfg.total_timeout, resp.into_body().collect()).await;
            ok
        }
        _ => false,
    }
}
