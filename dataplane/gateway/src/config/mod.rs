//! Configuration sections of the gateway. The daemon places them at the top level of its TOML
//! file (`[listener]`, `[tls]`, `[[upstream]]`, `[limits]`, `[audit]`, `[metrics]`); every key is
//! documented in `docs/gateway.md`.

mod audit;
mod bots;
mod check;
mod detection;
mod listener;
mod policy;
mod ratelimit;
mod tls;
mod upstream;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
/// Durations in the config file: Vigil's one grammar (`"500ms"`, `"10s"`, `"1h 30m"`), see
/// docs/config.md.
pub use vigil_control::duration;
use vigil_control::duration::{SpellingError, Spellings, Unit};

pub use audit::{AuditConfig, AuditSink, SyslogTransport};
pub use bots::{BotAction, BotList, BotsConfig};
pub use detection::{DetectionConfig, DetectionMode, ResponseDataConfig, ResponseDataMode};
pub use listener::{LimitsConfig, ListenerConfig, MetricsConfig};
pub use policy::{PolicyConfig, PolicyMode};
pub use ratelimit::{KeyPart, RateLimitConfig};
pub use tls::{ClientAuth, MinVersion, TlsConfig};
pub use upstream::{POOL_SURPLUS, UpstreamConfig};

/// A config value that cannot be applied, named by its key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Key path, e.g. `upstream[1].url`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Every section the gateway reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `[listener]`
    pub listener: ListenerConfig,
    /// `[tls]`
    pub tls: TlsConfig,
    /// `[[upstream]]`; with none, every request is answered 503 `policy_missing`.
    pub upstream: Vec<UpstreamConfig>,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[inspection]`
    pub inspection: InspectionConfig,
    /// `[policy]`; without it every request that passes hardening is forwarded.
    pub policy: Option<PolicyConfig>,
    /// `[[rate_limit]]`
    pub rate_limit: Vec<RateLimitConfig>,
    /// `[detection]`
    pub detection: DetectionConfig,
    /// `[bots]`; without it no User-Agent rule applies.
    pub bots: Option<BotsConfig>,
    /// `[response_data]`
    pub response_data: ResponseDataConfig,
}

/// What a lower inspection depth (a hot box) means for requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDegrade {
    /// Refuse (503 with Retry-After) rather than forward anything less inspected.
    #[default]
    Shed,
    /// Keep serving, skipping the costly stages in the documented order (body schema first,
    /// then parameter checks); identity, rate limits and XDP always run.
    Degrade,
}

/// `[inspection]`: how the thermal governor's level applies to requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "InspectionToml")]
pub struct InspectionConfig {
    /// At `reduced` and `minimal` depth: `"shed"` (default) or `"degrade"`. At `shed` depth
    /// every request is refused whatever this says.
    pub on_degrade: OnDegrade,
    /// Seconds sent in `Retry-After` when a request is shed for heat (`retry_after` in the
    /// file, or its older spelling `retry_after_secs`).
    pub retry_after_secs: u64,
}

/// `[inspection]` as written: `retry_after` or its older spelling.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct InspectionToml {
    on_degrade: OnDegrade,
    #[serde(with = "duration::option")]
    retry_after: Option<std::time::Duration>,
    retry_after_secs: Option<u64>,
}

impl Default for InspectionToml {
    fn default() -> Self {
        Self {
            on_degrade: InspectionConfig::default().on_degrade,
            retry_after: None,
            retry_after_secs: None,
        }
    }
}

/// `listener.workers` above this is a typo, not a machine: each worker is a thread.
pub const MAX_WORKERS: usize = 1024;

const INSPECTION_RETRY_AFTER: Spellings = Spellings {
    key: "inspection.retry_after",
    legacy_key: "inspection.retry_after_secs",
    unit: Unit::Secs,
};

impl TryFrom<InspectionToml> for InspectionConfig {
    type Error = SpellingError;

    fn try_from(t: InspectionToml) -> Result<Self, SpellingError> {
        let s = INSPECTION_RETRY_AFTER;
        Ok(Self {
            on_degrade: t.on_degrade,
            retry_after_secs: match s.resolve(t.retry_after, t.retry_after_secs)? {
                Some(d) => s.whole(d)?,
                None => InspectionConfig::default().retry_after_secs,
            },
        })
    }
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self {
            on_degrade: OnDegrade::Shed,
            retry_after_secs: 30,
        }
    }
}

/// A parsed upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamUrl {
    /// `http://authority` base the request path is appended to.
    pub base: http::uri::Authority,
    /// HTTP/2 with prior knowledge.
    pub h2c: bool,
}

/// Parses `http://host:port` or `h2c://host:port` (no path, no query, no user info).
pub(crate) fn parse_upstream_url(url: &str) -> Result<UpstreamUrl, String> {
    let (h2c, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("h2c://") {
        (true, rest)
    } else {
        return Err(format!(
            "\"{url}\" must start with http:// (HTTP/1.1) or h2c:// (HTTP/2 cleartext); TLS to \
             upstreams is not supported"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "\"{url}\" must be scheme://host:port without path, query or user info"
        ));
    }
    let base: http::uri::Authority = rest
        .parse()
        .map_err(|e| format!("\"{url}\" has an invalid host:port ({e})"))?;
    Ok(UpstreamUrl { base, h2c })
}

/// Whether two listeners would compete for one address: the same port (port 0 asks the OS for
/// a free one, so two never collide) on the same address, or on the wildcard of a family that
/// covers the other (`[::]` takes IPv4 too unless the socket is IPv6-only, and vigild's are not).
fn clash(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    let covers = |w: std::net::SocketAddr, o: std::net::SocketAddr| {
        w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4())
    };
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}

impl GatewayConfig {
    /// Checks every value; the first problem is returned with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, r) in self.rate_limit.iter().enumerate() {
            r.validate(&format!("rate_limit[{i}]"))?;
            if self.rate_limit[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError::new(
                    format!("rate_limit[{i}].name"),
                    format!(
                        "{:?} is used by an earlier rule: names must be unique",
                        r.name
                    ),
                ));
            }
        }
        let l = &self.listener;
        if l.workers > MAX_WORKERS {
            return Err(ConfigError::new(
                "listener.workers",
                format!(
                    "{} is more than {MAX_WORKERS}: use one per CPU (or 0 to serve on the \
                     daemon's runtime)",
                    l.workers
                ),
            ));
        }
        if l.max_connections == 0 {
            return Err(ConfigError::new(
                "listener.max_connections",
                "must be at least 1",
            ));
        }
        for (key, v) in [
            ("listener.max_requests_in_flight", l.max_requests_in_flight),
            (
                "listener.max_requests_in_flight_per_connection",
                l.max_requests_in_flight_per_connection,
            ),
            (
                "listener.max_requests_in_flight_per_client",
                l.max_requests_in_flight_per_client,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        // Counted by a semaphore, which holds at most this many permits (and panics above).
        if l.max_requests_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "listener.max_requests_in_flight",
                format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            ));
        }
        if l.max_requests_in_flight_per_connection > u32::MAX as usize {
            return Err(ConfigError::new(
                "listener.max_requests_in_flight_per_connection",
                "must be at most 4294967295 (it is announced as HTTP/2 MAX_CONCURRENT_STREAMS)",
            ));
        }
        if let Some(http) = l.http
            && clash(http, l.https)
        {
            return Err(ConfigError::new(
                "listener.http",
                format!(
                    "{http} is also listener.https ({}): use another port",
                    l.https
                ),
            ));
        }
        for (other, addr) in [("listener.https", Some(l.https)), ("listener.http", l.http)] {
            if let Some(addr) = addr
                && clash(self.metrics.listen, addr)
            {
                return Err(ConfigError::new(
                    "metrics.listen",
                    format!(
                        "{} is also {other} ({addr}): the second listener could not bind; use \
                         another port",
                        self.metrics.listen
                    ),
                ));
            }
        }
        for (key, d) in [
            ("listener.handshake_timeout", l.handshake_timeout),
            ("listener.header_timeout", l.header_timeout),
            ("listener.idle_timeout", l.idle_timeout),
            ("listener.request_timeout", l.request_timeout),
            ("listener.send_timeout", l.send_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(
                    key,
                    "must be greater than 0, e.g. \"10s\"",
                ));
            }
        }
        self.validate_tls()?;
        self.validate_upstreams()?;
        self.detection.validate()?;
        self.response_data.validate()?;
        let lim = &self.limits;
        for (key, v) in [
            ("limits.max_header_count", lim.max_header_count as u64),
            ("limits.max_header_bytes", lim.max_header_bytes as u64),
            ("limits.max_uri_bytes", lim.max_uri_bytes as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if lim.max_body_memory < lim.max_body_bytes {
            return Err(ConfigError::new(
                "limits.max_body_memory",
                format!(
                    "must be at least limits.max_body_bytes ({}), or no body that fits the \
                     limit could ever be checked",
                    lim.max_body_bytes
                ),
            ));
        }
        if lim.max_header_count > 10_000 {
            return Err(ConfigError::new(
                "limits.max_header_count",
                "must be at most 10000",
            ));
        }
        if lim.max_header_bytes > 1024 * 1024 {
            return Err(ConfigError::new(
                "limits.max_header_bytes",
                "must be at most 1048576 (1 MiB)",
            ));
        }
        if self.audit.queue_capacity == 0 {
            return Err(ConfigError::new(
                "audit.queue_capacity",
                "must be at least 1",
            ));
        }
        for (i, name) in self.audit.headers.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    format!("audit.headers[{i}]"),
                    format!("\"{name}\" is not a valid header name"),
                ));
            }
        }
        if self.audit.sink == AuditSink::File && self.audit.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "audit.path",
                "must be set when audit.sink = \"file\"",
            ));
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        if t.alpn.is_empty() {
            return Err(ConfigError::new(
                "tls.alpn",
                "must list at least one of \"h2\", \"http/1.1\"",
            ));
        }
        for (i, p) in t.alpn.iter().enumerate() {
            if p != "h2" && p != "http/1.1" {
                return Err(ConfigError::new(
                    format!("tls.alpn[{i}]"),
                    format!("\"{p}\" is not supported; use \"h2\" or \"http/1.1\""),
                ));
            }
        }
        if let Some(ca) = &t.client_ca
            && ca.as_os_str().is_empty()
        {
            return Err(ConfigError::new(
                "tls.client_ca",
                "is empty; remove it or set a path",
            ));
        }
        Ok(())
    }

    fn validate_upstreams(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, u) in self.upstream.iter().enumerate() {
            if u.name.is_empty() {
                return Err(ConfigError::new(
                    format!("upstream[{i}].name"),
                    "must be set",
                ));
            }
            if !names.insert(u.name.as_str()) {
                return Err(ConfigError::new(
                    format!("upstream[{i}].name"),
                    format!(
                        "\"{}\" is used by an earlier upstream; names must be unique",
                        u.name
                    ),
                ));
            }
            parse_upstream_url(&u.url)
                .map_err(|reason| ConfigError::new(format!("upstream[{i}].url"), reason))?;
            for (key, d) in [
                ("connect_timeout", u.connect_timeout),
                ("header_timeout", u.header_timeout),
                ("total_timeout", u.total_timeout),
                ("health_interval", u.health_interval),
            ] {
                if d.is_zero() {
                    return Err(ConfigError::new(
                        format!("upstream[{i}].{key}"),
                        "must be greater than 0",
                    ));
                }
            }
            if let Some(p) = &u.health_path
                && (!p.starts_with('/') || p.parse::<http::uri::PathAndQuery>().is_err())
            {
                return Err(ConfigError::new(
                    format!("upstream[{i}].health_path"),
                    format!("\"{p}\" must be an absolute path such as \"/healthz\""),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_upstreams(urls: &[&str]) -> GatewayConfig {
        let mut cfg = GatewayConfig::default();
        for (i, url) in urls.iter().enumerate() {
            cfg.upstream.push(UpstreamConfig {
                name: format!("u{i}"),
                url: (*url).to_owned(),
                ..UpstreamConfig::default()
            });
        }
        cfg
    }

    #[test]
    fn default_is_valid() {
        assert_eq!(GatewayConfig::default().validate(), Ok(()));
    }

    #[test]
    fn an_in_flight_budget_past_what_a_semaphore_counts_is_refused() {
        // The budget is a semaphore, which cannot be built with more permits than it counts.
        let cfg: GatewayConfig =
            match toml::from_str("[listener]\nmax_requests_in_flight = 9223372036854775807\n") {
                Ok(cfg) => cfg,
                Err(e) => panic!("{e}"),
            };
        let err = cfg.validate().err();
        assert_eq!(
            err.as_ref().map(|e| e.key.as_str()),
            Some("listener.max_requests_in_flight")
        );
        assert!(
            err.is_some_and(|e| e.reason.contains("at most")),
            "the error says what the limit is"
        );
        let mut cfg = GatewayConfig::default();
        cfg.listener.max_requests_in_flight = tokio::sync::Semaphore::MAX_PERMITS + 1;
        assert_eq!(
            cfg.validate().err().map(|e| e.key).as_deref(),
            Some("listener.max_requests_in_flight")
        );
        cfg.listener.max_requests_in_flight = tokio::sync::Semaphore::MAX_PERMITS;
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn bad_upstream_url_names_its_index() {
        let cfg = with_upstreams(&["http://127.0.0.1:80", "ftp://x"]);
        let err = cfg.validate().err().map(|e| e.key);
        assert_eq!(err.as_deref(), Some("upstream[1].url"));
        let cfg = with_upstreams(&["h2c://127.0.0.1:80/path"]);
        assert_eq!(
            cfg.validate().err().map(|e| e.key).as_deref(),
            Some("upstream[0].url")
        );
    }

    #[test]
    fn duplicate_names_and_bad_alpn_are_rejected() {
        let mut cfg = with_upstreams(&["http://a:1", "http://b:2"]);
        cfg.upstream[1].name = "u0".to_owned();
        assert_eq!(
            cfg.validate().err().map(|e| e.key).as_deref(),
            Some("upstream[1].name")
        );
        let mut cfg = GatewayConfig::default();
        cfg.tls.alpn = vec!["h2".to_owned(), "spdy/3".to_owned()];
        assert_eq!(
            cfg.validate().err().map(|e| e.key).as_deref(),
            Some("tls.alpn[1]")
        );
    }

    #[test]
    fn listeners_that_would_share_an_address_are_refused() {
        let addr = |s: &str| {
            s.parse::<std::net::SocketAddr>()
                .ok()
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 1)))
        };
        let key = |https: &str, http: Option<&str>, metrics: &str| {
            let mut cfg = GatewayConfig::default();
            cfg.listener.https = addr(https);
            cfg.listener.http = http.map(addr);
            cfg.metrics.listen = addr(metrics);
            cfg.validate().err().map(|e| e.key)
        };
        assert_eq!(
            key("127.0.0.1:8443", None, "127.0.0.1:8443").as_deref(),
            Some("metrics.listen")
        );
        assert_eq!(
            key("0.0.0.0:8443", None, "127.0.0.1:8443").as_deref(),
            Some("metrics.listen")
        );
        assert_eq!(
            key("[::]:8443", None, "127.0.0.1:8443").as_deref(),
            Some("metrics.listen")
        );
        assert_eq!(
            key("127.0.0.1:8443", Some("127.0.0.1:8080"), "127.0.0.1:8080").as_deref(),
            Some("metrics.listen")
        );
        assert_eq!(
            key("127.0.0.1:8443", Some("0.0.0.0:8443"), "127.0.0.1:9100").as_deref(),
            Some("listener.http")
        );
        assert_eq!(key("127.0.0.1:8443", None, "127.0.0.2:8443"), None);
        assert_eq!(key("0.0.0.0:8443", None, "[::1]:8443"), None);
        assert_eq!(key("127.0.0.1:0", Some("127.0.0.1:0"), "127.0.0.1:0"), None);
    }

    #[test]
    fn inspection_retry_after_in_either_spelling() {
        let retry = |text: &str| {
            toml::from_str::<InspectionConfig>(text)
                .map(|i| i.retry_after_secs)
                .map_err(|e| e.to_string())
        };
        assert_eq!(retry(""), Ok(30));
        assert_eq!(retry("retry_after = \"1m\""), Ok(60));
        assert_eq!(retry("retry_after_secs = 7"), Ok(7));
        let e = retry("retry_after = \"1m\"\nretry_after_secs = 60")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("inspection.retry_after and inspection.retry_after_secs are both set"),
            "{e}"
        );
        let degrade = toml::from_str::<InspectionConfig>("on_degrade = \"degrade\"")
            .map(|i| i.on_degrade)
            .ok();
        assert_eq!(degrade, Some(OnDegrade::Degrade));
    }

    #[test]
    fn upstream_durations_take_the_shared_grammar() {
        let u: Result<UpstreamConfig, _> =
            toml::from_str("name = \"a\"\nurl = \"http://a:1\"\ntotal_timeout = \"1m30s\"");
        assert_eq!(
            u.map(|u| u.total_timeout).ok(),
            Some(std::time::Duration::from_secs(90))
        );
        let purge = |v: &str| {
            toml::from_str::<UpstreamConfig>(&format!("pool_purge_delay = \"{v}\""))
                .map(|u| u.pool_purge_delay)
                .map_err(|e| e.to_string())
        };
        assert_eq!(purge("250ms"), Ok(std::time::Duration::from_millis(250)));
        assert_eq!(
            purge("0s"),
            Ok(std::time::Duration::ZERO),
            "zero: nginx's behaviour"
        );
        assert_eq!(
            UpstreamConfig::default().pool_purge_delay,
            std::time::Duration::from_secs(5)
        );
        let zero = UpstreamConfig {
            pool_purge_delay: std::time::Duration::ZERO,
            ..UpstreamConfig::default()
        };
        let back = toml::to_string(&zero).map(|t| toml::from_str::<UpstreamConfig>(&t));
        assert!(matches!(back, Ok(Ok(ref u)) if *u == zero), "{back:?}");
        let bad = purge("soon");
        assert!(
            bad.as_ref()
                .is_err_and(|e| e.contains("pool_purge_delay") && e.contains("expected a number")),
            "{bad:?}"
        );
    }

    #[test]
    fn parses_upstream_urls() {
        let u = parse_upstream_url("h2c://127.0.0.1:50051/").ok();
        assert_eq!(u.as_ref().map(|u| u.h2c), Some(true));
        assert_eq!(
            u.map(|u| u.base.to_string()).as_deref(),
            Some("127.0.0.1:50051")
        );
        assert!(parse_upstream_url("http://user@host:1").is_err());
    }
}
