//! The control socket's protocol: one JSON request per line, one JSON reply per line.
//! `vigilctl` speaks it; so can any script with `socat`.

use serde::{Deserialize, Serialize};
use vigil_xdp::List;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    RuleAdd {
        list: List,
        cidr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RuleDel {
        list: List,
        cidr: String,
    },
    RuleList {
        list: List,
    },
    Stats,
    Status,
    Reload,
    XdpDetach,
    /// Reload the TLS key from its source (files or the `[keys]` directory) and serve it to new
    /// handshakes; established connections keep theirs.
    KeysRotate,
    /// Sensors, inspection level, thresholds and any override.
    Thermal,
    /// Pin the inspection level (`full`, `reduced`, `minimal`, `shed`) for a while.
    ThermalOverride {
        level: String,
        for_secs: u64,
    },
    /// End an override now.
    ThermalClear,
    /// Requests to paths and methods the OpenAPI description does not know.
    ShadowList,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn ok(data: serde_json::Value) -> Self {
        Reply {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Longest request line accepted; anything longer is refused before parsing.
pub const MAX_LINE: usize = 64 * 1024;
