//! The gateway's counters, kept in atomics and small maps on the hot path, and `/metrics`: every
//! source (these counters, the process, the embedding daemon's XDP, thermal and fleet state)
//! written through one `prometheus-client` registry at scrape time ([`exposition`]).

pub mod clients;
pub mod exposition;
pub mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use exposition::{CONTENT_TYPE, Exposition, MetricsSource};

/// Label value -> count.
type ByLabel = Mutex<BTreeMap<&'static str, u64>>;

/// (status, reason) -> count, for one route.
type ByStatus = BTreeMap<(u16, &'static str), u64>;

/// (route, label value) -> count.
type ByRoute = Mutex<BTreeMap<(String, &'static str), u64>>;

/// Adds one to `(route, v)` of `map`.
fn bump(map: &ByRoute, route: &str, v: &'static str) {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    match map.get_mut(&(route.to_owned(), v)) {
        Some(n) => *n += 1,
        None => {
            map.insert((route.to_owned(), v), 1);
        }
    }
}

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// All gateway metrics.
#[derive(Default)]
pub struct Metrics {
    /// route -> (status, reason) -> count; keyed by route first so the steady state allocates
    /// nothing per request.
    requests: Mutex<BTreeMap<String, ByStatus>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    pub(crate) handshakes: AtomicU64,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    log_only: Mutex<BTreeMap<&'static str, u64>>,
    /// Injection findings, by kind.
    detections: Mutex<BTreeMap<&'static str, u64>>,
    /// Responses carrying sensitive data, by route and kind.
    response_data: ByRoute,
    /// Responses contradicting the description, by route and reason.
    response_violations: ByRoute,
    /// Requests and rejections per client TLS fingerprint (`vigilctl clients top`).
    pub clients: clients::ClientStats,
    rate_limit_fallback: Mutex<BTreeMap<String, u64>>,
    pub(crate) open_connections: AtomicI64,
    pub(crate) shed_connections: AtomicU64,
    /// Requests refused over a share of the in-flight budget, by share.
    shed_requests: Mutex<BTreeMap<&'static str, u64>>,
    /// Connections ended by the gateway or the HTTP parser, by reason.
    connection_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Bytes of request bodies buffered now (set before each render).
    pub(crate) body_memory_bytes: AtomicU64,
    pub(crate) audit_dropped: AtomicU64,
    pub(crate) audit_write_errors: AtomicU64,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    /// Client connections accepted by each worker of `listener.workers` (unset without).
    worker_connections: std::sync::OnceLock<Box<[AtomicU64]>>,
    sources: Mutex<Vec<MetricsSource>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn record_request(&self, route: &str, status: u16, reason: &'static str, us: u64) {
        {
            let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            let by_route = match map.get_mut(route) {
                Some(m) => m,
                None => map.entry(route.to_owned()).or_default(),
            };
            *by_route.entry((status, reason)).or_default() += 1;
        }
        // One counter per request: the bucket's own, not every bucket at or above it (the
        // exposition accumulates them). Over the last bound it is counted in +Inf only.
        let secs = us as f64 / 1e6;
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Keeps a connection count for each of `n` worker threads.
    pub(crate) fn set_workers(&self, n: usize) {
        let _ = self
            .worker_connections
            .set((0..n).map(|_| AtomicU64::new(0)).collect());
    }

    /// Counts a connection accepted by `worker` (1 to `listener.workers`; 0, a connection
    /// accepted on the daemon's runtime, is not counted here).
    pub(crate) fn worker_accepted(&self, worker: usize) {
        if let Some(c) = worker
            .checked_sub(1)
            .and_then(|i| self.worker_connections.get()?.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed TLS handshake.
    pub fn handshake_failed(&self, reason: &'static str) {
        let mut map = self
            .handshake_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }

    /// Counts a shared rate-limit decision taken locally because the store could not answer.
    pub fn rate_limit_fallback(&self, rule: &str) {
        let mut map = self
            .rate_limit_fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(rule) {
            Some(n) => *n += 1,
            None => {
                map.insert(rule.to_owned(), 1);
            }
        }
    }

    /// Counts a request refused over a share of the in-flight budget (`global`, `connection`,
    /// `client`, `body_memory`).
    pub fn shed_request(&self, share: &'static str) {
        let mut map = self
            .shed_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(share).or_default() += 1;
    }

    /// Counts a connection ended for `reason` (a framing error hyper refused, a timeout).
    pub fn connection_error(&self, reason: &'static str) {
        let mut map = self
            .connection_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }

    /// Counts a policy violation forwarded because the policy is log-only.
    pub fn log_only_violation(&self, reason: &'static str) {
        let mut map = self.log_only.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }

    /// Counts an injection finding of `kind` (`sqli`, `xss`, ...), whatever the mode.
    pub fn injection_detected(&self, kind: &'static str) {
        let mut map = self
            .detections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(kind).or_default() += 1;
    }

    /// Counts a response of `route` that carried sensitive data of `kind`.
    pub fn response_data(&self, route: &str, kind: &'static str) {
        bump(&self.response_data, route, kind);
    }

    /// Counts a response of `route` that contradicted the description for `reason`.
    pub fn response_violation(&self, route: &str, reason: &'static str) {
        bump(&self.response_violations, route, reason);
    }

    /// Adds a source of extra exposition text.
    pub fn add_source(&self, source: MetricsSource) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    /// The whole exposition; `upstreams` gives (name, healthy) for the current pool.
    #[cfg(test)]
    pub fn render(self: &Arc<Self>, upstreams: &[(String, bool)]) -> String {
        self.render_with(upstreams, Arc::new(|_: &mut Exposition<'_, '_>| Ok(())))
    }

    /// [`Self::render`] with one more source written after the gateway's own families.
    pub fn render_with(
        self: &Arc<Self>,
        upstreams: &[(String, bool)],
        extra: MetricsSource,
    ) -> String {
        let me = self.clone();
        let upstreams = upstreams.to_vec();
        let own: MetricsSource = Arc::new(move |e: &mut Exposition<'_, '_>| {
            e.gauges(
                "vigil_build_info",
                "Vigil's version (always 1).",
                [([("version", env!("CARGO_PKG_VERSION"))], 1)],
            )?;
            process::write(e)?;
            me.write_requests(e)?;
            me.write_labelled(e)?;
            me.write_counters(e)?;
            e.gauges(
                "vigil_gateway_upstream_healthy",
                "1 if the upstream passes its health check.",
                upstreams
                    .iter()
                    .map(|(name, ok)| ([("upstream", name.as_str())], i64::from(*ok))),
            )
        });
        let mut sources = vec![own, extra];
        sources.extend(
            self.sources
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        exposition::encode(sources)
    }

    fn write_requests(&self, e: &mut Exposition<'_, '_>) -> fmt::Result {
        {
            let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            let mut rows = Vec::new();
            for (route, counts) in requests.iter() {
                for ((status, reason), n) in counts {
                    rows.push(((route.clone(), status.to_string(), *reason), *n));
                }
            }
            drop(requests);
            e.counters(
                "vigil_gateway_requests_total",
                "Requests answered, by route, status and reason.",
                rows.iter().map(|((route, status, reason), n)| {
                    (
                        [
                            ("route", route.as_str()),
                            ("status", status.as_str()),
                            ("reason", *reason),
                        ],
                        *n,
                    )
                }),
            )?;
        }
        // Each counter holds its own bucket's requests, as the encoder wants them (it
        // accumulates them itself); +Inf gets the rest of the count.
        let count = self.latency_count.load(Ordering::Relaxed);
        let mut below: u64 = 0;
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(le, n)| {
                let own = n.load(Ordering::Relaxed);
                below = below.saturating_add(own);
                (*le, own)
            })
            .collect();
        buckets.push((f64::INFINITY, count.saturating_sub(below)));
        e.histogram(
            "vigil_gateway_request_duration_seconds",
            "Time from request head to end of response body.",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            &buckets,
        )
    }

    /// The counters kept by label value.
    fn write_labelled(&self, e: &mut Exposition<'_, '_>) -> fmt::Result {
        let maps: [(&str, &str, &str, &ByLabel); 5] = [
            (
                "vigil_gateway_tls_handshake_failures_total",
                "Failed TLS handshakes, by reason.",
                "reason",
                &self.handshake_failures,
            ),
            (
                "vigil_gateway_policy_log_only_total",
                "Policy violations forwarded because the policy or route is log-only, by reason.",
                "reason",
                &self.log_only,
            ),
            (
                "vigil_gateway_injection_detected_total",
                "Injection findings in request values, by kind, whatever the detection mode.",
                "kind",
                &self.detections,
            ),
            (
                "vigil_gateway_shed_requests_total",
                "Requests refused with 503 over a share of the in-flight budget, by share.",
                "share",
                &self.shed_requests,
            ),
            (
                "vigil_gateway_connection_errors_total",
                "Connections ended by a framing error, a timeout or a protocol error, by reason.",
                "reason",
                &self.connection_errors,
            ),
        ];
        for (name, help, label, map) in maps {
            let rows: Vec<(&'static str, u64)> = map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, n)| (*k, *n))
                .collect();
            e.counters(name, help, rows.into_iter().map(|(k, n)| ([(label, k)], n)))?;
        }
        let rules: Vec<(String, u64)> = self
            .rate_limit_fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        for (name, help, label, map) in [
            (
                "vigil_gateway_response_data_total",
                "Responses carrying sensitive data (logged, masked or blocked), by route and kind.",
                "kind",
                &self.response_data,
            ),
            (
                "vigil_gateway_response_violations_total",
                "Upstream responses contradicting the description (logged or blocked), by route \
                 and reason.",
                "reason",
                &self.response_violations,
            ),
        ] {
            let rows: Vec<((String, &'static str), u64)> = map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect();
            e.counters(
                name,
                help,
                rows.iter()
                    .map(|((route, v), n)| ([("route", route.as_str()), (label, *v)], *n)),
            )?;
        }
        e.counters(
            "vigil_gateway_rate_limit_fallback_total",
            "Shared rate-limit decisions taken with the local fallback limit, by rule.",
            rules.iter().map(|(k, n)| ([("rule", k.as_str())], *n)),
        )?;
        if let Some(w) = self.worker_connections.get() {
            let names: Vec<String> = (1..=w.len()).map(|i| i.to_string()).collect();
            e.counters(
                "vigil_gateway_worker_connections_total",
                "Client connections accepted, by worker thread (listener.workers).",
                names
                    .iter()
                    .zip(w.iter())
                    .map(|(n, c)| ([("worker", n.as_str())], c.load(Ordering::Relaxed))),
            )?;
        }
        e.counters(
            "vigil_gateway_reloads_total",
            "Config reloads, by result.",
            [
                ([("result", "ok")], self.reloads_ok.load(Ordering::Relaxed)),
                (
                    [("result", "rejected")],
                    self.reloads_failed.load(Ordering::Relaxed),
                ),
            ],
        )
    }

    /// The plain counters and gauges.
    fn write_counters(&self, e: &mut Exposition<'_, '_>) -> fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 4] = [
            (
                "vigil_gateway_tls_handshakes_total",
                "Completed TLS handshakes.",
                load(&self.handshakes),
            ),
            (
                "vigil_gateway_shed_connections_total",
                "Connections refused with 503 over listener.max_connections.",
                load(&self.shed_connections),
            ),
            (
                "vigil_gateway_audit_dropped_total",
                "Audit lines dropped because the queue was full.",
                load(&self.audit_dropped),
            ),
            (
                "vigil_gateway_audit_write_errors_total",
                "Audit lines lost to sink write errors.",
                load(&self.audit_write_errors),
            ),
        ];
        for (name, help, v) in counters {
            e.counter(name, help, v)?;
        }
        e.gauge(
            "vigil_gateway_body_memory_bytes",
            "Bytes of request bodies (and response copies for the responses check) held in memory for inspection now.",
            i64::try_from(load(&self.body_memory_bytes)).unwrap_or(i64::MAX),
        )?;
        e.gauge(
            "vigil_gateway_open_connections",
            "Client connections open now.",
            self.open_connections.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_process_and_sources() {
        let m = Arc::new(Metrics::default());
        m.record_request("-", 200, "ok", 300);
        m.record_request("-", 200, "ok", 2_000_000);
        m.handshake_failed("protocol_version");
        m.add_source(Arc::new(|e: &mut Exposition<'_, '_>| {
            e.counter("vigil_xdp_drops_total", "test", 7)
        }));
        let text = m.render(&[("a\"b".to_owned(), true)]);
        assert!(
            text.contains(
                "vigil_gateway_requests_total{route=\"-\",status=\"200\",reason=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE vigil_gateway_requests counter"),
            "{text}"
        );
        assert!(text.contains("vigil_gateway_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("vigil_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(
            text.contains(
                "vigil_gateway_tls_handshake_failures_total{reason=\"protocol_version\"} 1"
            )
        );
        assert!(
            text.contains("vigil_gateway_upstream_healthy{upstream=\"a\\\"b\"} 1"),
            "{text}"
        );
        assert!(text.contains("vigil_xdp_drops_total 7\n"), "{text}");
        assert!(text.contains("vigil_build_info{version=\""), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Families without samples are still described, so dashboards see them at zero.
        assert!(
            text.contains("# TYPE vigil_gateway_rate_limit_fallback counter"),
            "{text}"
        );
    }
}
