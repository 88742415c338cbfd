//! `[listener]`, `[limits]` and `[metrics]`: where the gateway listens and what it accepts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_control::duration::{SpellingError, Spellings, Unit};

use super::duration;

/// `[listener]`: the client-facing sockets and their connection budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ListenerToml")]
pub struct ListenerConfig {
    /// TLS listener address.
    pub https: SocketAddr,
    /// Optional plain-HTTP listener (HTTP/1.1 and h2c) for east-west traffic.
    pub http: Option<SocketAddr>,
    /// Threads that serve connections, each with its own listening socket (`SO_REUSEPORT`)
    /// and a single-threaded runtime; 0 serves them on the daemon's runtime.
    pub workers: usize,
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
    #[serde(serialize_with = "duration::ser")]
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's headers (slowloris guard).
    #[serde(serialize_with = "duration::ser")]
    pub header_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(serialize_with = "duration::ser")]
    pub idle_timeout: Duration,
    /// Time allowed to receive a whole request body.
    #[serde(serialize_with = "duration::ser")]
    pub request_timeout: Duration,
    /// A connection whose responses (the gateway's own included) make no progress towards the
    /// client for this long is closed: a client that stops reading, or announces an HTTP/2
    /// window of zero, cannot hold its requests' share of the in-flight budget.
    #[serde(serialize_with = "duration::ser")]
    pub send_timeout: Duration,
    /// Seconds sent in `Retry-After` when a request or connection is shed (`retry_after` in the
    /// file, or its older spelling `retry_after_secs`).
    pub retry_after_secs: u32,
    /// `max-age` of the `Strict-Transport-Security` header on TLS responses, in seconds; 0 =
    /// not sent (`hsts_max_age` in the file, or its older spelling `hsts_max_age_secs`).
    pub hsts_max_age_secs: u64,
}

/// `[listener]` as written: durations in the duration grammar, and the two keys that used to
/// be integer seconds in either spelling.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ListenerToml {
    https: SocketAddr,
    http: Option<SocketAddr>,
    #[serde(deserialize_with = "workers")]
    workers: usize,
    max_connections: usize,
    max_requests_in_flight: usize,
    max_requests_in_flight_per_connection: usize,
    max_requests_in_flight_per_client: usize,
    #[serde(deserialize_with = "duration::de")]
    handshake_timeout: Duration,
    #[serde(deserialize_with = "duration::de")]
    header_timeout: Duration,
    #[serde(deserialize_with = "duration::de")]
    idle_timeout: Duration,
    #[serde(deserialize_with = "duration::de")]
    request_timeout: Duration,
    #[serde(deserialize_with = "duration::de")]
    send_timeout: Duration,
    #[serde(with = "duration::option")]
    retry_after: Option<Duration>,
    retry_after_secs: Option<u32>,
    #[serde(with = "duration::option")]
    hsts_max_age: Option<Duration>,
    hsts_max_age_secs: Option<u64>,
}

impl Default for ListenerToml {
    fn default() -> Self {
        let d = ListenerConfig::default();
        Self {
            https: d.https,
            http: d.http,
            workers: d.workers,
            max_connections: d.max_connections,
            max_requests_in_flight: d.max_requests_in_flight,
            max_requests_in_flight_per_connection: d.max_requests_in_flight_per_connection,
            max_requests_in_flight_per_client: d.max_requests_in_flight_per_client,
            handshake_timeout: d.handshake_timeout,
            header_timeout: d.header_timeout,
            idle_timeout: d.idle_timeout,
            request_timeout: d.request_timeout,
            send_timeout: d.send_timeout,
            retry_after: None,
            retry_after_secs: None,
            hsts_max_age: None,
            hsts_max_age_secs: None,
        }
    }
}

/// `listener.workers`: a count, or `"auto"` for one worker per CPU the process may run on (its
/// affinity and cgroup quota included), at most [`super::MAX_WORKERS`].
fn workers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct Workers;
    impl serde::de::Visitor<'_> for Workers {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of worker threads (0: none) or \"auto\" (one per CPU)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom(format!("{v} worker threads is too many")))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<usize, E> {
            u64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                .and_then(|v| self.visit_u64(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<usize, E> {
            if v == "auto" {
                Ok(std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(super::MAX_WORKERS))
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
    }
    d.deserialize_any(Workers)
}

const RETRY_AFTER: Spellings = Spellings {
    key: "listener.retry_after",
    legacy_key: "listener.retry_after_secs",
    unit: Unit::Secs,
};
const HSTS_MAX_AGE: Spellings = Spellings {
    key: "listener.hsts_max_age",
    legacy_key: "listener.hsts_max_age_secs",
    unit: Unit::Secs,
};

impl TryFrom<ListenerToml> for ListenerConfig {
    type Error = SpellingError;

    fn try_from(t: ListenerToml) -> Result<Self, SpellingError> {
        let d = ListenerConfig::default();
        let retry_after_secs =
            match RETRY_AFTER.resolve(t.retry_after, t.retry_after_secs.map(u64::from))? {
                Some(v) => {
                    let secs = RETRY_AFTER.whole(v)?;
                    u32::try_from(secs).map_err(|_| SpellingError::TooLarge {
                        key: RETRY_AFTER.key,
                        value: duration::format(v),
                    })?
                }
                None => d.retry_after_secs,
            };
        let hsts_max_age_secs = match HSTS_MAX_AGE.resolve(t.hsts_max_age, t.hsts_max_age_secs)? {
            Some(v) => HSTS_MAX_AGE.whole(v)?,
            None => d.hsts_max_age_secs,
        };
        Ok(Self {
            https: t.https,
            http: t.http,
            workers: t.workers,
            max_connections: t.max_connections,
            max_requests_in_flight: t.max_requests_in_flight,
            max_requests_in_flight_per_connection: t.max_requests_in_flight_per_connection,
            max_requests_in_flight_per_client: t.max_requests_in_flight_per_client,
            handshake_timeout: t.handshake_timeout,
            header_timeout: t.header_timeout,
            idle_timeout: t.idle_timeout,
            request_timeout: t.request_timeout,
            send_timeout: t.send_timeout,
            retry_after_secs,
            hsts_max_age_secs,
        })
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            https: SocketAddr::from(([0, 0, 0, 0], 443)),
            http: None,
            workers: 0,
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
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(text: &str) -> Result<ListenerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn workers_are_a_count_or_one_per_cpu() {
        let workers = |text: &str| listener(text).map(|l| l.workers);
        assert_eq!(workers(""), Ok(0));
        assert_eq!(workers("workers = 3"), Ok(3));
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(workers("workers = \"auto\""), Ok(cpus));
        for bad in ["workers = \"all\"", "workers = -1", "workers = 1.5"] {
            let e = workers(bad).err().unwrap_or_default();
            assert!(
                e.contains("a number of worker threads (0: none) or \"auto\""),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn durations_take_the_shared_grammar() {
        let l = listener("header_timeout = \"1m30s\"\nidle_timeout = \"1h 30m\"\n");
        let l = l.as_ref().map(|l| (l.header_timeout, l.idle_timeout));
        assert_eq!(l, Ok((Duration::from_secs(90), Duration::from_secs(5400))));
        let e = listener("send_timeout = \"10\"").err().unwrap_or_default();
        assert!(e.contains("a number needs a unit"), "{e}");
        let e = listener("send_timeout = 10").err().unwrap_or_default();
        assert!(e.contains("10 is a number, not a duration"), "{e}");
    }

    #[test]
    fn retry_after_and_hsts_max_age_in_either_spelling() {
        let keys = |text: &str| listener(text).map(|l| (l.retry_after_secs, l.hsts_max_age_secs));
        assert_eq!(keys(""), Ok((1, 31_536_000)));
        assert_eq!(
            keys("retry_after = \"2m\"\nhsts_max_age = \"365d\""),
            Ok((120, 31_536_000))
        );
        // The older spellings still load.
        assert_eq!(
            keys("retry_after_secs = 3\nhsts_max_age_secs = 0"),
            Ok((3, 0))
        );
        let e = keys("retry_after = \"3s\"\nretry_after_secs = 3")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains(
                "listener.retry_after and listener.retry_after_secs are both set: keep \
                 listener.retry_after = \"3s\" and remove listener.retry_after_secs"
            ),
            "{e}"
        );
        let e = keys("hsts_max_age = \"1d\"\nhsts_max_age_secs = 1")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("listener.hsts_max_age and listener.hsts_max_age_secs"),
            "{e}"
        );
        let e = keys("retry_after = \"1500ms\"").err().unwrap_or_default();
        assert!(
            e.contains("listener.retry_after = \"1500ms\" is not a whole number of seconds"),
            "{e}"
        );
        let e = keys("retry_after = \"200y\"").err().unwrap_or_default();
        assert!(e.contains("listener.retry_after = "), "{e}");
        assert!(e.contains("is too large"), "{e}");
        let e = keys("retry_aftr = \"1s\"").err().unwrap_or_default();
        assert!(e.contains("unknown field `retry_aftr`"), "{e}");
    }
}
