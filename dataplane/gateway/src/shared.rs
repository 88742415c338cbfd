//! State shared by every task of one gateway (listeners, connections, requests, the public
//! handle), and the small types they exchange. It sits below the server and the handle: both
//! import it, it imports neither.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use vigil_hw::keys::KeyProvider;
use vigil_hw::thermal::Level;

use crate::audit::Auditor;
use crate::budget::{BodyMemory, ClientShares, ConnCount};
use crate::metrics::Metrics;
use crate::reqid::IdGen;
use crate::services::Services;
use crate::state::State;
use crate::tls::CertResolver;

/// One decision as seen by a [`DecisionObserver`].
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// Status sent to the client.
    pub status: u16,
    /// Reason code (`ok` when forwarded).
    pub reason: &'static str,
    /// Matched route, if a stage matched one.
    pub route: Option<&'a str>,
    /// The client's JA4 TLS fingerprint; `None` without TLS.
    pub ja4: Option<&'a str>,
}

/// Receives every decision; see `Gateway::add_decision_observer`.
pub type DecisionObserver = Arc<dyn Fn(&Decision<'_>) + Send + Sync>;

/// The registered observers, swapped as a whole so the request path reads them without a lock.
pub struct Observers(pub ArcSwap<Vec<DecisionObserver>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.load().len())
    }
}

/// Lifecycle signal watched by listeners and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLevel {
    /// Accepting and serving.
    Running,
    /// Not accepting; connections finish their requests and close.
    Draining,
    /// Connections are dropped now.
    Abort,
}

/// Reads the inspection depth in force.
pub type DepthSource = Arc<dyn Fn() -> Level + Send + Sync>;

impl Shared {
    /// The inspection depth for a request arriving now.
    pub fn depth(&self) -> Level {
        self.depth_source
            .load()
            .as_ref()
            .map_or(Level::Full, |f| f())
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("metrics", &self.metrics)
            .field("conns", &self.conns)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

/// State shared by all tasks of one gateway.
pub struct Shared {
    pub state: ArcSwap<State>,
    pub metrics: Arc<Metrics>,
    pub audit: Auditor,
    pub ids: IdGen,
    pub conns: Arc<ConnCount>,
    /// In-flight requests per client address.
    pub clients: Arc<ClientShares>,
    /// Memory held by buffered request bodies.
    pub body_memory: Arc<BodyMemory>,
    /// Called once per decision (see `Gateway::add_decision_observer`).
    pub observers: Observers,
    /// Where the inspection depth comes from (see `Gateway::set_depth_source`).
    pub(crate) depth_source: ArcSwapOption<DepthSource>,
    /// Requests to paths and methods the OpenAPI description does not know.
    pub(crate) shadow: Arc<vigil_policy::ShadowInventory>,
    /// Shared by every config generation's stages.
    pub(crate) services: Arc<Services>,
    pub(crate) resolver: Arc<CertResolver>,
    pub(crate) keys: Mutex<Arc<dyn KeyProvider>>,
    pub(crate) reload: Mutex<()>,
    /// What else `/readyz` requires (see `Gateway::add_readiness_check`).
    pub(crate) readiness: Mutex<Vec<ReadinessCheck>>,
    /// The runtime the gateway was started on (the daemon's): a worker thread of
    /// `listener.workers` hands it the TLS connections whose handshake a TPM signs.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// A readiness condition of the embedding daemon: `Some(what is missing)` while not met.
pub type ReadinessCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Shared {
    /// What keeps the gateway from being ready; empty when ready. The gateway itself only
    /// serves with its key loaded and its policy compiled; it adds the upstreams' health and
    /// the daemon's checks (XDP attached).
    pub fn not_ready(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let health = self.state.load().pool.health();
        if !health.iter().any(|(_, ok)| *ok) {
            let names: Vec<&str> = health.iter().map(|(n, _)| n.as_str()).collect();
            missing.push(format!("no healthy upstream ({})", names.join(", ")));
        }
        let checks: Vec<ReadinessCheck> = self
            .readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        missing.extend(checks.iter().filter_map(|c| c()));
        missing
    }
}
