//! `[[upstream]]`: the servers requests are forwarded to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// How many HTTP/1.1 connections a pool's stack may hold, as a multiple of `pool_size`, when
/// a burst opened more than `pool_size` (with a nonzero `pool_purge_delay`).
pub const POOL_SURPLUS: usize = 16;

/// One `[[upstream]]` entry. All entries form the default pool, used round-robin over the
/// healthy ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Unique name, used in logs, metrics and (later) route policy.
    pub name: String,
    /// `http://host:port` (HTTP/1.1) or `h2c://host:port` (HTTP/2 with prior knowledge).
    pub url: String,
    /// Time allowed to open a TCP connection.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send response headers (504 after).
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub header_timeout: Duration,
    /// Pooled connections idle longer than this are closed.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub idle_timeout: Duration,
    /// Time allowed for the whole exchange, response body included.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub total_timeout: Duration,
    /// Idle connections kept per upstream (per worker thread), up to `idle_timeout`.
    pub pool_size: usize,
    /// HTTP/1.1 connections opened beyond `pool_size` (in a burst) are kept until they have
    /// gone unused this long, counted from their last response head; zero closes them as soon
    /// as their response is read.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub pool_purge_delay: Duration,
    /// Path probed with GET; 2xx/3xx is healthy. No probing when unset.
    pub health_path: Option<String>,
    /// Time between health probes.
    #[serde(deserialize_with = "duration::de", serialize_with = "duration::ser")]
    pub health_interval: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            connect_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(60),
            pool_size: 64,
            pool_purge_delay: Duration::from_secs(5),
            health_path: None,
            health_interval: Duration::from_secs(5),
        }
    }
}
