//! The public handle: start, reload, rotate keys, add metrics, shut down.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_hw::keys::KeyProvider;

use crate::audit::Auditor;
use crate::budget::ConnCount;
use crate::budget::{BodyMemory, ClientShares};
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::metrics::{Metrics, MetricsSource};
use crate::reqid::IdGen;
use crate::server::workers::{self, Workers};
use crate::server::{conn, metrics_http};
use crate::services::Services;
use crate::shared::Shared;
pub use crate::shared::{Decision, DecisionObserver, DepthSource, Observers, RunLevel};
use crate::state::State;
use crate::tls::CertResolver;

async fn save_shadow(inv: &Arc<vigil_policy::ShadowInventory>, file: &std::path::Path) {
    let (inv, file) = (inv.clone(), file.to_owned());
    let res = tokio::task::spawn_blocking(move || inv.save(&file).map_err(|e| (file, e))).await;
    if let Ok(Err((file, e))) = res {
        tracing::warn!(file = %file.display(), error = %e, "saving the shadow-API inventory failed");
    }
}

/// Where client connections are accepted: on the caller's runtime, or by worker threads.
enum Listeners {
    Shared {
        https: TcpListener,
        http: Option<(TcpListener, SocketAddr)>,
    },
    Workers(workers::Bound),
}

/// Shadow-API entries kept; the least recently seen go first when full.
const SHADOW_CAPACITY: usize = 10_000;

/// A running gateway. Dropping it without [`Gateway::shutdown`] stops the listeners and cuts
/// open connections at once; call `shutdown` for a graceful drain.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    level: watch::Sender<RunLevel>,
    tasks: Vec<JoinHandle<()>>,
    /// The threads of `listener.workers` (none when it is 0).
    workers: Workers,
    https_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    metrics_addr: SocketAddr,
    shadow_file: Option<std::path::PathBuf>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { what, addr, source })
}

fn local(
    what: &'static str,
    l: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, GatewayError> {
    l.local_addr()
        .map_err(|source| GatewayError::Bind { what, addr, source })
}

impl Gateway {
    /// Validates `cfg`, loads the key, binds the listeners (port 0 picks a free port; see the
    /// `*_addr` methods) and starts serving. Must run inside a multi-threaded tokio runtime
    /// for TPM-resident keys to be signed without stalling other connections.
    pub async fn start(
        cfg: GatewayConfig,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Gateway, GatewayError> {
        cfg.validate()?;
        let resolver = Arc::new(CertResolver::new(keys.as_ref())?);
        let shadow_file = cfg.policy.as_ref().and_then(|p| p.shadow_file.clone());
        let shadow = Arc::new(match &shadow_file {
            Some(f) if f.exists() => vigil_policy::ShadowInventory::load(f, SHADOW_CAPACITY)
                .map_err(|e| crate::config::ConfigError {
                    key: "policy.shadow_file".into(),
                    reason: format!("{}: {e}", f.display()),
                })?,
            _ => vigil_policy::ShadowInventory::new(SHADOW_CAPACITY),
        });
        let metrics = Arc::new(Metrics::default());
        let services = Arc::new(Services::new(metrics.clone()));
        let state = State::build(cfg, resolver.clone(), shadow.clone(), &services)?;
        let cfg = state.cfg.clone();
        let l = &cfg.listener;
        let listeners = if l.workers == 0 {
            let https = bind("listener.https", l.https).await?;
            let http = match l.http {
                Some(a) => Some((bind("listener.http", a).await?, a)),
                None => None,
            };
            Listeners::Shared { https, http }
        } else {
            Listeners::Workers(workers::bind(l.workers, l.https, l.http)?)
        };
        let metrics_l = bind("metrics.listen", cfg.metrics.listen).await?;
        let (https_addr, http_addr) = match &listeners {
            Listeners::Shared { https, http } => (
                local("listener.https", https, l.https)?,
                match http {
                    Some((h, a)) => Some(local("listener.http", h, *a)?),
                    None => None,
                },
            ),
            Listeners::Workers(b) => (b.https, b.http),
        };
        let metrics_addr = local("metrics.listen", &metrics_l, cfg.metrics.listen)?;
        let audit = Auditor::start(&cfg.audit, metrics.clone()).await?;
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(state),
            metrics,
            audit,
            ids: IdGen::new(),
            conns: Arc::new(ConnCount::default()),
            clients: Arc::new(ClientShares::default()),
            body_memory: Arc::new(BodyMemory::default()),
            resolver,
            keys: Mutex::new(keys),
            reload: Mutex::new(()),
            readiness: Mutex::new(Vec::new()),
            observers: Observers(ArcSwap::from_pointee(Vec::new())),
            depth_source: ArcSwapOption::empty(),
            shadow: shadow.clone(),
            services,
            runtime: tokio::runtime::Handle::current(),
        });
        let (level, rx) = watch::channel(RunLevel::Running);
        let mut tasks = vec![tokio::spawn(metrics_http::serve(
            shared.clone(),
            metrics_l,
            rx.clone(),
        ))];
        let workers = match listeners {
            Listeners::Shared { https, http } => {
                tasks.push(tokio::spawn(conn::accept_loop(
                    shared.clone(),
                    https,
                    true,
                    rx.clone(),
                )));
                if let Some((l, _)) = http {
                    tasks.push(tokio::spawn(conn::accept_loop(
                        shared.clone(),
                        l,
                        false,
                        rx,
                    )));
                }
                Workers::default()
            }
            Listeners::Workers(b) => {
                shared.metrics.set_workers(b.workers.len());
                match Workers::spawn(b.workers, &shared, &rx) {
                    Ok(w) => w,
                    Err(e) => {
                        for t in &tasks {
                            t.abort();
                        }
                        return Err(e);
                    }
                }
            }
        };
        if let Some(f) = shadow_file.clone() {
            // Saved in the background so a crash loses at most the last interval.
            let inv = shadow.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    save_shadow(&inv, &f).await;
                }
            }));
        }
        Ok(Gateway {
            shared,
            level,
            tasks,
            workers,
            https_addr,
            http_addr,
            metrics_addr,
            shadow_file,
        })
    }

    /// Address of the TLS listener.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Address of the plain-HTTP listener, if configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Address of the metrics listener.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The config now serving.
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.shared.state.load().cfg.clone()
    }

    /// Adds `source`'s families to every `/metrics` response (e.g. the daemon's XDP counters).
    pub fn add_metrics_source(&self, source: MetricsSource) {
        self.shared.metrics.add_source(source);
    }

    /// Adds a condition `/readyz` requires (e.g. XDP attached): the check returns what is
    /// missing, or `None` when met.
    pub fn add_readiness_check(&self, check: crate::shared::ReadinessCheck) {
        self.shared
            .readiness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(check);
    }

    /// Counts a reload the embedding daemon refused before handing it to the gateway (a parse
    /// error, a key that needs a restart), so `vigil_gateway_reloads_total{result="rejected"}`
    /// counts every refused reload.
    pub fn count_rejected_reload(&self) {
        self.shared
            .metrics
            .reloads_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens the audit file again before the next batch (after logrotate moved it away).
    pub fn reopen_audit(&self) {
        self.shared.audit.reopen();
    }

    /// Each upstream of the pool in force and whether it passes its health check.
    pub fn upstream_health(&self) -> Vec<(String, bool)> {
        self.shared.state.load().pool.health()
    }

    /// When the served certificate expires (notAfter, seconds since the epoch).
    pub fn cert_not_after(&self) -> Option<i64> {
        self.shared.resolver.not_after()
    }

    /// What keeps the box from being ready (`/readyz`); empty when ready.
    pub fn not_ready(&self) -> Vec<String> {
        self.shared.not_ready()
    }

    /// Writes an event of the box itself (e.g. `thermal_transition`) to the audit log, next to
    /// the request decisions: `{"time":..,"event":..,<fields>}`.
    pub fn audit_event(
        &self,
        event: &'static str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) {
        self.shared.audit.record_system(crate::audit::SystemEvent {
            time: crate::clock::rfc3339_now(),
            event,
            fields,
        });
    }

    /// The key sets the identity stage verifies tokens with: where from, how many keys, the
    /// last fetch and its error, for `vigilctl status`.
    pub fn jwks_status(&self) -> Vec<vigil_identity::JwksStatus> {
        self.shared.services.jwks_status()
    }

    /// The `n` client TLS fingerprints with the most requests, with their requests and
    /// rejections, and how many fingerprints are tracked (for `vigilctl clients top`).
    pub fn clients_top(&self, n: usize) -> (Vec<(String, crate::metrics::clients::Counts)>, usize) {
        self.shared.metrics.clients.top(n)
    }

    /// The shadow-API inventory (for `vigilctl shadow list`).
    pub fn shadow(&self) -> Vec<vigil_policy::ShadowEntry> {
        self.shared.shadow.list()
    }

    /// Sets where each request reads the inspection depth (the thermal governor's level; one
    /// atomic load there). Without a source every request runs at full depth.
    pub fn set_depth_source(&self, source: DepthSource) {
        self.shared.depth_source.store(Some(Arc::new(source)));
    }

    /// Keeps the `shared = true` rate-limit rules' buckets in `store` (the fleet's Redis), so
    /// several boxes share one limit. Until a store is set, and whenever it cannot answer,
    /// those rules decide with their local fallback limits.
    pub fn set_shared_buckets(&self, store: Arc<dyn crate::limits::SharedBuckets>) {
        self.shared.services.buckets.store(Some(Arc::new(store)));
    }

    /// The virtual patches in force.
    pub fn patches(&self) -> Arc<vigil_patch::PatchSet> {
        self.shared.services.patches.load_full()
    }

    /// Puts `set` in force for the next requests. When it changes whether patches look at
    /// bodies, the chain is built again (bodies are then read before the patch stage), as a
    /// reload of the running config would.
    pub fn set_patches(&self, set: vigil_patch::PatchSet) -> Result<(), GatewayError> {
        let body = set.needs_body();
        let was = self.shared.services.patches.load().needs_body();
        self.shared.services.patches.store(Arc::new(set));
        if body != was {
            let cfg = GatewayConfig::clone(&self.shared.state.load().cfg);
            self.reload(cfg)?;
        }
        Ok(())
    }

    /// What a `ban` patch calls to block a source in XDP.
    pub fn set_patch_ban(&self, ban: crate::pipeline::patch::PatchBan) {
        self.shared.services.patch_ban.store(Some(Arc::new(ban)));
    }

    /// Refuses requests whose client presents the JA4 fingerprint `ja4` for `ttl` (403
    /// `fingerprint_banned`), e.g. when an `[[autoban]]` rule counting per fingerprint bans it.
    pub fn ban_fingerprint(&self, ja4: &str, ttl: std::time::Duration) {
        self.shared
            .services
            .ban_fingerprint(ja4, std::time::Instant::now() + ttl);
    }

    /// The fingerprints banned now and the time left on each, soonest to end first.
    pub fn fingerprint_bans(&self) -> Vec<(String, std::time::Duration)> {
        let now = std::time::Instant::now();
        let mut bans: Vec<(String, std::time::Duration)> = self
            .shared
            .services
            .banned_fingerprints
            .load()
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(fp, until)| (fp.to_string(), *until - now))
            .collect();
        bans.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        bans
    }

    /// Lifts the ban of `ja4` now; whether it was banned.
    pub fn unban_fingerprint(&self, ja4: &str) -> bool {
        let now = std::time::Instant::now();
        let mut was = false;
        self.shared.services.banned_fingerprints.rcu(|old| {
            was = old.get(ja4).is_some_and(|until| *until > now);
            let mut map = (**old).clone();
            map.remove(ja4);
            map
        });
        was
    }

    /// Lifts every fingerprint ban (the auto-ban rules that made them changed).
    pub fn clear_fingerprint_bans(&self) {
        self.shared
            .services
            .banned_fingerprints
            .store(Arc::default());
    }

    /// Calls `observer` once for every decision (forwarded or rejected), when its response has
    /// been sent, e.g. for the daemon's auto-ban counters. It runs on the request path: keep it
    /// to a counter update or a channel send.
    pub fn add_decision_observer(&self, observer: DecisionObserver) {
        self.shared.observers.0.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(observer.clone());
            list
        });
    }

    /// Applies a new config: validated and fully built first, then swapped atomically. On any
    /// error the running config keeps serving. Requests in flight finish under the config
    /// they started with. The key is reloaded from the current provider (file rotation).
    pub fn reload(&self, cfg: GatewayConfig) -> Result<(), GatewayError> {
        let res = self.try_reload(cfg);
        let counter = match res {
            Ok(()) => &self.shared.metrics.reloads_ok,
            Err(_) => &self.shared.metrics.reloads_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        res
    }

    fn try_reload(&self, cfg: GatewayConfig) -> Result<(), GatewayError> {
        cfg.validate()?;
        let _one_at_a_time = self
            .shared
            .reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let running = self.shared.state.load().cfg.clone();
        needs_restart(&running, &cfg)?;
        let keys = self
            .shared
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Everything is loaded and built before anything is swapped, so an error changes nothing.
        let key = self.shared.resolver.load(keys.as_ref())?;
        let state = State::build(
            cfg,
            self.shared.resolver.clone(),
            self.shared.shadow.clone(),
            &self.shared.services,
        )?;
        self.shared.resolver.store(key);
        self.shared.state.store(Arc::new(state));
        Ok(())
    }

    /// Replaces the key provider (e.g. the daemon moved the key into the TPM) and serves its
    /// key to new handshakes; established connections keep theirs.
    pub fn rotate_keys(&self, keys: Arc<dyn KeyProvider>) -> Result<(), GatewayError> {
        let _one_at_a_time = self
            .shared
            .reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared
            .resolver
            .store(self.shared.resolver.load(keys.as_ref())?);
        *self
            .shared
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// Stops accepting, lets open connections finish their requests for up to `drain`, then
    /// drops what is left and flushes the audit log.
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.level.send(RunLevel::Draining);
        let _ = tokio::time::timeout(drain, self.shared.conns.wait_zero()).await;
        let _ = self.level.send(RunLevel::Abort);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.conns.wait_zero()).await;
        for t in &self.tasks {
            t.abort();
        }
        self.workers.join().await;
        self.shared.audit.flush_and_stop().await;
        if let Some(f) = &self.shadow_file {
            save_shadow(&self.shared.shadow, f).await;
        }
    }
}

/// Keys bound at start (sockets, the audit sink) cannot change on reload.
fn needs_restart(running: &GatewayConfig, new: &GatewayConfig) -> Result<(), GatewayError> {
    let (r, n) = (running, new);
    let checks: [(&'static str, String, String); 8] = [
        (
            "listener.workers",
            r.listener.workers.to_string(),
            n.listener.workers.to_string(),
        ),
        (
            "listener.https",
            r.listener.https.to_string(),
            n.listener.https.to_string(),
        ),
        (
            "listener.http",
            format!("{:?}", r.listener.http),
            format!("{:?}", n.listener.http),
        ),
        (
            "metrics.listen",
            r.metrics.listen.to_string(),
            n.metrics.listen.to_string(),
        ),
        (
            "audit.sink",
            format!("{:?}", r.audit.sink),
            format!("{:?}", n.audit.sink),
        ),
        (
            "audit.path",
            r.audit.path.display().to_string(),
            n.audit.path.display().to_string(),
        ),
        (
            "audit.syslog_address",
            r.audit.syslog_address.to_string(),
            n.audit.syslog_address.to_string(),
        ),
        (
            "audit.queue_capacity",
            r.audit.queue_capacity.to_string(),
            n.audit.queue_capacity.to_string(),
        ),
    ];
    for (key, running, new) in checks {
        // Compared as configured: a listener configured with port 0 stays equal to itself.
        if running != new {
            return Err(GatewayError::NeedsRestart { key, running, new });
        }
    }
    if r.audit.syslog_transport != n.audit.syslog_transport {
        return Err(GatewayError::NeedsRestart {
            key: "audit.syslog_transport",
            running: format!("{:?}", r.audit.syslog_transport),
            new: format!("{:?}", n.audit.syslog_transport),
        });
    }
    Ok(())
}
