//! What vigilctl (or any script with `socat`) asks vigild: one JSON object per line, tagged by
//! `cmd`. Every value is validated when it is parsed, on either side of the socket.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use vigil_xdp::List;

use crate::{Cidr, reply::ReplyKind};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    RuleAdd {
        list: List,
        cidr: Cidr,
        /// Permanent when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<Ttl>,
        /// `operator` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RuleDel {
        list: List,
        cidr: Cidr,
    },
    RuleList {
        list: List,
    },
    /// Add every network of a feed file (plain list, Spamhaus DROP, FireHOL netset) to a list
    /// at once: one rebuild of the lookup tables. vigild reads the file itself, so a feed of a
    /// million lines never crosses the socket.
    RuleImport {
        list: List,
        path: PathBuf,
        /// `import` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Remove every rule of a list.
    RuleFlush {
        list: List,
    },
    Stats,
    Status,
    Reload,
    XdpDetach,
    /// Attach the program of the config's `[xdp]` section again after a detach.
    XdpAttach,
    /// Reload the TLS key from its source (files or the `[keys]` directory) and serve it to new
    /// handshakes; established connections keep theirs.
    KeysRotate,
    /// Sensors, inspection level, thresholds and any override.
    Thermal,
    /// Pin the inspection level for a while.
    ThermalOverride {
        level: Level,
        for_secs: OverrideSecs,
    },
    /// End an override now.
    ThermalClear,
    /// Requests to paths and methods the OpenAPI description does not know.
    ShadowList,
    /// The configuration in force, defaults filled in, secrets redacted.
    ConfigShow,
    /// Add a virtual patch at run time (kept across restarts).
    PatchAdd {
        patch: Box<vigil_patch::Patch>,
    },
    /// Remove a patch added at run time.
    PatchDel {
        id: String,
    },
    /// Every patch, from the config and added at run time, with hits and expiry.
    PatchList,
    PatchShow {
        id: String,
    },
    /// The client TLS fingerprints (JA4) with the most requests.
    ClientsTop {
        /// How many (1 to 1000; 20 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Lift an auto-ban of a client fingerprint now; its count starts over. Answered with the
    /// fingerprints as `clients_top` lists them.
    ClientsUnban {
        ja4: String,
    },
}

impl Request {
    /// The reply this request gets when it succeeds.
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Request::RuleAdd { .. } => ReplyKind::RuleAdded,
            Request::RuleDel { .. } => ReplyKind::RuleRemoved,
            Request::RuleList { .. } => ReplyKind::Rules,
            Request::RuleImport { .. } => ReplyKind::RulesImported,
            Request::RuleFlush { .. } => ReplyKind::RulesFlushed,
            Request::Stats => ReplyKind::Stats,
            Request::Status => ReplyKind::Status,
            Request::Reload => ReplyKind::Reloaded,
            Request::XdpDetach => ReplyKind::Detached,
            Request::XdpAttach => ReplyKind::XdpAttached,
            Request::KeysRotate => ReplyKind::KeysRotated,
            Request::Thermal | Request::ThermalOverride { .. } | Request::ThermalClear => {
                ReplyKind::Thermal
            }
            Request::ShadowList => ReplyKind::Shadow,
            Request::ConfigShow => ReplyKind::Config,
            Request::PatchAdd { .. } | Request::PatchList | Request::PatchShow { .. } => {
                ReplyKind::Patches
            }
            Request::PatchDel { .. } => ReplyKind::PatchRemoved,
            Request::ClientsTop { .. } | Request::ClientsUnban { .. } => ReplyKind::Clients,
        }
    }

    /// The `cmd` this request is sent as.
    pub fn name(&self) -> &'static str {
        match self {
            Request::RuleAdd { .. } => "rule_add",
            Request::RuleDel { .. } => "rule_del",
            Request::RuleList { .. } => "rule_list",
            Request::RuleImport { .. } => "rule_import",
            Request::RuleFlush { .. } => "rule_flush",
            Request::Stats => "stats",
            Request::Status => "status",
            Request::Reload => "reload",
            Request::XdpDetach => "xdp_detach",
            Request::XdpAttach => "xdp_attach",
            Request::KeysRotate => "keys_rotate",
            Request::Thermal => "thermal",
            Request::ThermalOverride { .. } => "thermal_override",
            Request::ThermalClear => "thermal_clear",
            Request::ShadowList => "shadow_list",
            Request::ConfigShow => "config_show",
            Request::PatchAdd { .. } => "patch_add",
            Request::PatchDel { .. } => "patch_del",
            Request::PatchList => "patch_list",
            Request::PatchShow { .. } => "patch_show",
            Request::ClientsTop { .. } => "clients_top",
            Request::ClientsUnban { .. } => "clients_unban",
        }
    }

    /// The command's name when only vigild can answer (there is no pinned-map fallback).
    pub fn needs_daemon(&self) -> Option<&'static str> {
        match self {
            Request::Reload => Some("reload"),
            Request::KeysRotate => Some("keys rotate"),
            Request::Thermal | Request::ThermalOverride { .. } | Request::ThermalClear => {
                Some("thermal")
            }
            Request::ShadowList => Some("shadow list"),
            Request::ConfigShow => Some("config show"),
            Request::XdpAttach => Some("xdp attach"),
            Request::PatchAdd { .. }
            | Request::PatchDel { .. }
            | Request::PatchList
            | Request::PatchShow { .. } => Some("patch"),
            Request::ClientsTop { .. } => Some("clients top"),
            Request::ClientsUnban { .. } => Some("clients unban"),
            _ => None,
        }
    }
}

/// A value outside what its field allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("ttl must be at least 1 second and at most 365 days")]
    Ttl,
    #[error("an override lasts between 1s and 7d")]
    Override,
    #[error("unknown level {0:?}: use full, reduced, minimal or shed")]
    Level(String),
}

/// How long a rule lasts: 1 second to 365 days, in whole seconds (`ttl_secs` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Ttl(u64);

impl Ttl {
    pub const MAX_SECS: u64 = 365 * 86_400;

    pub fn from_secs(secs: u64) -> Result<Self, RangeError> {
        if secs == 0 || secs > Self::MAX_SECS {
            return Err(RangeError::Ttl);
        }
        Ok(Ttl(secs))
    }

    /// Whole seconds, at least one (`500ms` lasts a second).
    pub fn from_duration(d: Duration) -> Result<Self, RangeError> {
        Self::from_secs(d.as_secs().max(1))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl TryFrom<u64> for Ttl {
    type Error = RangeError;
    fn try_from(secs: u64) -> Result<Self, RangeError> {
        Self::from_secs(secs)
    }
}

impl From<Ttl> for u64 {
    fn from(t: Ttl) -> u64 {
        t.0
    }
}

/// How long an inspection-level override lasts: 1 second to 7 days, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct OverrideSecs(u64);

impl OverrideSecs {
    pub const MAX_SECS: u64 = 7 * 86_400;

    pub fn from_secs(secs: u64) -> Result<Self, RangeError> {
        if secs == 0 || secs > Self::MAX_SECS {
            return Err(RangeError::Override);
        }
        Ok(OverrideSecs(secs))
    }

    /// Whole seconds, rounded up (`1500ms` lasts two).
    pub fn from_duration(d: Duration) -> Result<Self, RangeError> {
        Self::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl TryFrom<u64> for OverrideSecs {
    type Error = RangeError;
    fn try_from(secs: u64) -> Result<Self, RangeError> {
        Self::from_secs(secs)
    }
}

impl From<OverrideSecs> for u64 {
    fn from(t: OverrideSecs) -> u64 {
        t.0
    }
}

/// How much work the gateway does per request (the thermal governor's levels), coolest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Full,
    Reduced,
    Minimal,
    Shed,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Full, Level::Reduced, Level::Minimal, Level::Shed];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Reduced => "reduced",
            Level::Minimal => "minimal",
            Level::Shed => "shed",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = RangeError;

    /// By name only, lower case.
    fn from_str(s: &str) -> Result<Self, RangeError> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| RangeError::Level(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_wire_format_is_what_vigild_always_read() {
        let req = Request::RuleAdd {
            list: List::Block,
            cidr: "198.18.0.0/24".parse().unwrap(),
            ttl_secs: Some(Ttl::from_secs(600).unwrap()),
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({ "cmd": "rule_add", "list": "block", "cidr": "198.18.0.0/24", "ttl_secs": 600 })
        );
        let req = Request::ThermalOverride {
            level: Level::Minimal,
            for_secs: OverrideSecs::from_secs(90).unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"cmd":"thermal_override","level":"minimal","for_secs":90}"#
        );
        for line in [
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"rule_del","list":"allow","cidr":"2001:db8::/48"}"#,
            r#"{"cmd":"shadow_list"}"#,
            r#"{"cmd":"config_show"}"#,
            r#"{"cmd":"xdp_attach"}"#,
        ] {
            let req: Request = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
        }
    }

    #[test]
    fn bad_values_are_refused_when_parsed() {
        for (line, why) in [
            (
                r#"{"cmd":"rule_add","list":"block","cidr":"198.18.0.9/24"}"#,
                "did you mean 198.18.0.0/24",
            ),
            (
                r#"{"cmd":"rule_add","list":"block","cidr":"198.18.0.9","ttl_secs":0}"#,
                "ttl must be at least 1 second and at most 365 days",
            ),
            (
                r#"{"cmd":"thermal_override","level":"shed","for_secs":604801}"#,
                "an override lasts between 1s and 7d",
            ),
            (
                r#"{"cmd":"thermal_override","level":"hot","for_secs":1}"#,
                "unknown variant `hot`",
            ),
            (
                r#"{"cmd":"rule_list","list":"block","extra":1}"#,
                "unknown field `extra`",
            ),
        ] {
            let e = serde_json::from_str::<Request>(line)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn durations_round_to_whole_seconds() {
        let d = Duration::from_millis;
        assert_eq!(Ttl::from_duration(d(500)).unwrap().as_secs(), 1);
        assert_eq!(Ttl::from_duration(d(1500)).unwrap().as_secs(), 1);
        assert!(Ttl::from_duration(Duration::from_secs(366 * 86_400)).is_err());
        assert_eq!(OverrideSecs::from_duration(d(1500)).unwrap().as_secs(), 2);
        assert_eq!(
            OverrideSecs::from_duration(d(600_000)).unwrap().as_secs(),
            600
        );
        assert!(OverrideSecs::from_duration(Duration::ZERO).is_err());
        assert!(OverrideSecs::from_duration(Duration::from_secs(8 * 86_400)).is_err());
    }

    #[test]
    fn levels_parse_by_name_only() {
        assert_eq!("minimal".parse(), Ok(Level::Minimal));
        let e = "hot".parse::<Level>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown level \"hot\": use full, reduced, minimal or shed"
        );
        assert!("Shed".parse::<Level>().is_err());
    }
}
