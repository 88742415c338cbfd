//! Everything a request reads from the config, built once per (re)load and swapped atomically:
//! a request keeps the `State` it started with until its response is finished, so a reload
//! never changes the rules under an in-flight request.

use std::sync::Arc;

use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::audit::Redactor;
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::pipeline::{self, Stage};
use crate::services::Services;
use crate::tls::{self, CertResolver};
use crate::upstream::Pool;

/// HTTP server settings for the three kinds of connections.
#[derive(Debug)]
pub struct Servers {
    /// Protocol chosen by the client preface (plain listener, or TLS without ALPN).
    pub auto: auto::Builder<TokioExecutor>,
    /// ALPN `http/1.1`.
    pub h1: auto::Builder<TokioExecutor>,
    /// ALPN `h2`.
    pub h2: auto::Builder<TokioExecutor>,
}

/// One generation of the config.
pub struct State {
    pub cfg: Arc<GatewayConfig>,
    pub tls: TlsAcceptor,
    pub chain: Vec<Arc<dyn Stage>>,
    /// Index of the first stage that reads the body: the stages before it run before a byte
    /// of the body is read (`chain.len()` when none reads it and bodies stream).
    pub body_at: usize,
    pub pool: Arc<Pool>,
    pub inflight: Arc<Semaphore>,
    pub redactor: Redactor,
    pub hsts: Option<HeaderValue>,
    /// The OpenAPI description in force (responses are held against it).
    pub policy: Option<Arc<vigil_policy::Policy>>,
    /// The sensitive-data patterns of `[response_data] kinds`.
    pub response_scanner: Arc<crate::response_data::Scanner>,
    pub servers: Servers,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Builds a generation from a validated config.
    pub fn build(
        cfg: GatewayConfig,
        resolver: Arc<CertResolver>,
        shadow: Arc<vigil_policy::ShadowInventory>,
        services: &Arc<Services>,
    ) -> Result<Self, GatewayError> {
        let tls = TlsAcceptor::from(tls::server_config(&cfg.tls, resolver)?);
        let pool = Pool::new(&cfg.upstream, cfg.listener.workers)?;
        let policy = match &cfg.policy {
            Some(pc) => {
                let options = vigil_policy::PolicyOptions {
                    strict_query: pc.strict_query,
                    strict_objects: pc.strict_objects,
                    ..vigil_policy::PolicyOptions::default()
                };
                let policy = vigil_policy::Policy::load(&pc.file, &options).map_err(|e| {
                    GatewayError::from(crate::config::ConfigError {
                        key: "policy.file".into(),
                        reason: format!("{}: {e}", pc.file.display()),
                    })
                })?;
                Some(Arc::new(policy))
            }
            None => None,
        };
        let chain = pipeline::chain::chain_with(&cfg, policy.clone(), shadow, services)?;
        let body_at = chain
            .iter()
            .position(|s| s.needs_body())
            .unwrap_or(chain.len());
        let hsts = (cfg.listener.hsts_max_age_secs > 0)
            .then(|| HeaderValue::from_str(&format!("max-age={}", cfg.listener.hsts_max_age_secs)))
            .and_then(Result::ok);
        Ok(Self {
            tls,
            pool,
            chain,
            body_at,
            inflight: Arc::new(Semaphore::new(cfg.listener.max_requests_in_flight)),
            redactor: Redactor::new(&cfg.audit),
            hsts,
            policy,
            response_scanner: Arc::new(crate::response_data::Scanner::new(
                &cfg.response_data.kinds,
            )),
            servers: servers(&cfg),
            cfg: Arc::new(cfg),
        })
    }
}

/// The server builders for `cfg` (also what the HTTP fuzz target drives).
pub(crate) fn servers(cfg: &GatewayConfig) -> Servers {
    let lim = &cfg.limits;
    let build = || {
        let mut b = auto::Builder::new(TokioExecutor::new());
        // hyper's own limits sit above ours so the hardening stage answers ordinary
        // violations with a JSON body; hyper's bare 431 only meets gross ones.
        let buf = (2 * (lim.max_header_bytes + lim.max_uri_bytes)).max(16 * 1024);
        // The header timeout is the connection's own (server::conn): the framing tracker sees
        // a head arrive byte by byte, and a check per tick costs a request nothing, where
        // hyper's timer is made, registered and cancelled for every request.
        b.http1()
            .header_read_timeout(None)
            .max_buf_size(buf)
            .max_headers((2 * lim.max_header_count).max(100))
            .keep_alive(true);
        b.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(buf).unwrap_or(u32::MAX))
            // A stream is held until its response is sent: this and the per-connection share
            // of the in-flight budget are one number.
            .max_concurrent_streams(
                u32::try_from(cfg.listener.max_requests_in_flight_per_connection)
                    .unwrap_or(u32::MAX),
            )
            .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
            .keep_alive_timeout(std::time::Duration::from_secs(10))
            .max_pending_accept_reset_streams(Some(64));
        b
    };
    Servers {
        auto: build(),
        h1: build().http1_only(),
        h2: build().http2_only(),
    }
}
