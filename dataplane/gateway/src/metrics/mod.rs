//! Counters and the Prometheus text exposition, written by hand (the format is a few lines and
//! a client library would pull in more than it saves).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Extra exposition text appended by the embedding daemon (e.g. XDP counters).
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Label value -> count.
type ByLabel = Mutex<BTreeMap<&'static str, u64>>;

/// (status, reason) -> count, for one route.
type ByStatus = BTreeMap<(u16, &'static str), u64>;

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
        let secs = us as f64 / 1e6;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
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

    /// Adds a source of extra exposition text.
    pub fn add_source(&self, source: MetricsSource) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    /// The whole exposition; `upstreams` gives (name, healthy) for the current pool.
    pub fn render(&self, upstreams: &[(String, bool)]) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.render_labelled(&mut out);
        self.render_counters(&mut out);
        render_upstreams(&mut out, upstreams);
        let sources: Vec<MetricsSource> = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for s in sources {
            s(&mut out);
        }
        out
    }

    fn render_requests(&self, o: &mut String) {
        header(
            o,
            "vigil_gateway_requests_total",
            "counter",
            "Requests answered, by route, status and reason.",
        );
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        for (route, counts) in requests.iter() {
            let route = escape(route);
            for ((status, reason), n) in counts {
                let _ = writeln!(
                    o,
                    "vigil_gateway_requests_total{{route=\"{route}\",status=\"{status}\",\
                     reason=\"{reason}\"}} {n}"
                );
            }
        }
    }

    fn render_latency(&self, o: &mut String) {
        const NAME: &str = "vigil_gateway_request_duration_seconds";
        header(
            o,
            NAME,
            "histogram",
            "Time from request head to end of response body.",
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(o, "{NAME}_bucket{{le=\"{le}\"}} {n}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "{NAME}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "{NAME}_sum {sum}");
        let _ = writeln!(o, "{NAME}_count {count}");
    }

    /// The counters kept by label value.
    fn render_labelled(&self, o: &mut String) {
        let maps: [(&str, &str, &str, &ByLabel); 4] = [
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
            let map = map.lock().unwrap_or_else(PoisonError::into_inner);
            labelled(o, name, help, label, map.iter().map(|(k, n)| (*k, *n)));
        }
        let rules = self
            .rate_limit_fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        labelled(
            o,
            "vigil_gateway_rate_limit_fallback_total",
            "Shared rate-limit decisions taken with the local fallback limit, by rule.",
            "rule",
            rules.iter().map(|(k, n)| (k.as_str(), *n)),
        );
        let reloads = [
            ("ok", self.reloads_ok.load(Ordering::Relaxed)),
            ("rejected", self.reloads_failed.load(Ordering::Relaxed)),
        ];
        labelled(
            o,
            "vigil_gateway_reloads_total",
            "Config reloads, by result.",
            "result",
            reloads.into_iter(),
        );
    }

    /// The plain counters and gauges.
    fn render_counters(&self, o: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let plain: [(&str, &str, &str, u64); 5] = [
            (
                "vigil_gateway_tls_handshakes_total",
                "counter",
                "Completed TLS handshakes.",
                load(&self.handshakes),
            ),
            (
                "vigil_gateway_shed_connections_total",
                "counter",
                "Connections refused with 503 over listener.max_connections.",
                load(&self.shed_connections),
            ),
            (
                "vigil_gateway_body_memory_bytes",
                "gauge",
                "Bytes of request bodies held in memory for inspection now.",
                load(&self.body_memory_bytes),
            ),
            (
                "vigil_gateway_audit_dropped_total",
                "counter",
                "Audit lines dropped because the queue was full.",
                load(&self.audit_dropped),
            ),
            (
                "vigil_gateway_audit_write_errors_total",
                "counter",
                "Audit lines lost to sink write errors.",
                load(&self.audit_write_errors),
            ),
        ];
        for (name, kind, help, v) in plain {
            simple(o, name, kind, help, v);
        }
        simple(
            o,
            "vigil_gateway_open_connections",
            "gauge",
            "Client connections open now.",
            self.open_connections.load(Ordering::Relaxed),
        );
    }
}

fn render_upstreams(o: &mut String, upstreams: &[(String, bool)]) {
    header(
        o,
        "vigil_gateway_upstream_healthy",
        "gauge",
        "1 if the upstream passes its health check.",
    );
    for (name, healthy) in upstreams {
        let _ = writeln!(
            o,
            "vigil_gateway_upstream_healthy{{upstream=\"{}\"}} {}",
            escape(name),
            u8::from(*healthy)
        );
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn simple(o: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    header(o, name, kind, help);
    let _ = writeln!(o, "{name} {v}");
}

/// A counter with one label, from (label value, count) pairs.
fn labelled<'a>(
    o: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) {
    header(o, name, "counter", help);
    for (value, n) in values {
        let _ = writeln!(o, "{name}{{{label}=\"{}\"}} {n}", escape(value));
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_sources() {
        let m = Metrics::default();
        m.record_request("-", 200, "ok", 300);
        m.record_request("-", 200, "ok", 2_000_000);
        m.handshake_failed("protocol_version");
        m.add_source(Arc::new(|s: &mut String| {
            s.push_str("vigil_xdp_drops_total 7\n")
        }));
        let text = m.render(&[("a\"b".to_owned(), true)]);
        assert!(
            text.contains(
                "vigil_gateway_requests_total{route=\"-\",status=\"200\",reason=\"ok\"} 2"
            )
        );
        assert!(text.contains("vigil_gateway_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("vigil_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(
            text.contains(
                "vigil_gateway_tls_handshake_failures_total{reason=\"protocol_version\"} 1"
            )
        );
        assert!(text.contains("vigil_gateway_upstream_healthy{upstream=\"a\\\"b\"} 1"));
        assert!(text.ends_with("vigil_xdp_drops_total 7\n"));
    }
}
