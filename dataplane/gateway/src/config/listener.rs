//! `[listener]`, `[limits]` and `[metrics]`: where the gateway listens and what it accepts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[listener]`: the client-facing sockets and their connection budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// TLS listener address.
    pub https: SocketAddr,
    /// Optional plain-HTTP listener (HTTP/1.1 and h2c) for east-west traffic.
    pub http: Option<SocketAddr>,
    /// Open client connections above which new ones are shed with 503.
    pub max_connections: usize,
    /// Requests being processed at once above which new ones are shed with 503.
    pub max_requests_in_flight: usize,
    /// Share of `max_requests_in_flight` one connection may hold (HTTP/2 streams or pipelined
    /// HTTP/1.1 requests); also the HTTP/2 `MAX_CONCURRENT_STREAMS` the gateway announces.
    pub max_requests_in_flight_per_connection: usize,
    /// Share of `max_requests_in_flight` one client address (an IPv6 /64) may hold across all
    /// its connections.
    pub max_requests_in_flight_per_client: usize,
    /// Time allowed for a TLS handshake.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's headers (slowloris guard).
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub header_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub idle_timeout: Duration,
    /// Time allowed to receive a whole request body.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub request_timeout: Duration,
    /// A connection whose responses (the gateway's own included) make no progress towards the
    /// client for this long is closed: a client that stops reading, or announces an HTTP/2
    /// window of zero, cannot hold its requests' share of the in-flight budget.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub send_timeout: Duration,
    /// Seconds sent in `Retry-After` when a request or connection is shed.
    pub retry_after_secs: u32,
    /// `max-age` of the `Strict-Transport-Security` header on TLS responses (0 = not sent).
    pub hsts_max_age_secs: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            https: SocketAddr::from(([0, 0, 0, 0], 443)),
            http: None,
            max_connections: 10_000,
            max_requests_in_flight: 4_096,
            max_requests_in_flight_per_connection: 128,
            max_requests_in_flight_per_client: 1_024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            retry_after_secs: 1,
            hsts_max_age_secs: 31_536_000,
        }
    }
}

/// `[limits]`: request size limits enforced before anything is forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Maximum number of request header fields (431 above).
    pub max_header_count: usize,
    /// Maximum total size of request header names and values in bytes (431 above).
    pub max_header_bytes: usize,
    /// Maximum length of the request target (path and query) in bytes (414 above).
    pub max_uri_bytes: usize,
    /// Maximum request body size in bytes (413 above), enforced while streaming.
    pub max_body_bytes: u64,
    /// Bytes of request bodies held in memory at once, over all requests, while a stage that
    /// reads the body (schema validation, body ownership rules) waits for them; a request that
    /// would go over gets `503 body_memory_full`.
    pub max_body_memory: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_count: 100,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_body_memory: 256 * 1024 * 1024,
        }
    }
}

/// `[metrics]`: the Prometheus listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address serving `GET /metrics`; keep it on loopback or a management network.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}
