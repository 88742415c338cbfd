//! vigild's configuration file (TOML). One struct per section, unknown keys refused with their
//! path; every key is documented in docs/config.md. A config is validated whole before it is
//! applied, so a bad reload leaves the running one in place.

mod check;
mod lines;
mod show;
mod thermal;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use vigil_control::{
    Cidr,
    duration::{Spellings, Unit},
};
use vigil_gateway::{
    GatewayConfig,
    config::{
        AuditConfig, BotsConfig, DetectionConfig, InspectionConfig, LimitsConfig, ListenerConfig,
        MetricsConfig, PolicyConfig, RateLimitConfig, ResponseDataConfig, TlsConfig,
        UpstreamConfig,
    },
};
use vigil_hw::thermal::ThermalConfig;
use vigil_xdp::{ModePolicy, RateLimit};

pub use check::{Checked, check};
use lines::Lines;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file was refused before parsing: missing, unreadable, not a regular file (a FIFO,
    /// `/dev/zero`) or over [`vigil_files::CONFIG_LIMIT`]. The message names it and what to do.
    #[error(transparent)]
    Read {
        #[from]
        source: vigil_files::FileError,
    },
    /// A key whose value cannot be applied, with the line it is written on.
    #[error("{0}")]
    Invalid(Finding),
}

impl ConfigError {
    /// The offending key and where it is written, when the file was read.
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            ConfigError::Invalid(f) => Some(f),
            ConfigError::Read { .. } => None,
        }
    }
}

/// What is wrong (or, as a warning, ignored) about one key of a config file: shown as
/// `FILE:LINE: KEY: MESSAGE`, the way compilers and `nginx -t` point at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// Where the key (or, for a key left at its default, its section) is written.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `upstream[1].url`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.key, self.message)
    }
}

/// A key path and what is wrong with its value: what validation finds before a line is known.
pub(crate) type KeyProblem = (String, String);

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// XDP filtering; absent = no XDP program is attached.
    pub xdp: Option<XdpSection>,
    #[serde(default)]
    pub control: ControlSection,
    /// Where the TLS key lives when it is TPM-backed; absent = `tls.cert` and `tls.key` files.
    pub keys: Option<KeysSection>,
    /// The inspecting TLS gateway runs when `[listener]` is present (docs/gateway.md).
    pub listener: Option<ListenerConfig>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub upstream: Vec<UpstreamConfig>,
    pub limits: Option<LimitsConfig>,
    pub audit: Option<AuditConfig>,
    pub metrics: Option<MetricsConfig>,
    /// What a lower inspection depth (thermal) means for requests (docs/gateway.md).
    pub inspection: Option<InspectionConfig>,
    /// The API's OpenAPI description, enforced on every request (docs/policy.md).
    pub policy: Option<PolicyConfig>,
    /// Token-bucket request limits (`[[rate_limit]]`, docs/gateway.md).
    #[serde(default)]
    pub rate_limit: Vec<RateLimitConfig>,
    /// Injection detection in request values (docs/detection.md); absent = off.
    pub detection: Option<DetectionConfig>,
    /// User-Agent rules from a file (docs/detection.md); absent = none.
    pub bots: Option<BotsConfig>,
    /// Sensitive data in responses (docs/detection.md); absent = off.
    pub response_data: Option<ResponseDataConfig>,
    /// Thermal governor thresholds (docs/hw.md); absent = defaults.
    #[serde(default, deserialize_with = "thermal::de")]
    pub thermal: ThermalConfig,
    #[serde(default)]
    pub hw: HwSection,
    /// Fleet-wide blocklist through Redis; absent = this box only. Shown as written
    /// (`fleet_written`): the fleet module owns its type.
    #[serde(skip_serializing)]
    pub fleet: Option<crate::fleet::FleetConfig>,
    /// Rules that ban sources collecting too many rejections (`[[autoban]]`).
    #[serde(default, serialize_with = "show::autoban")]
    pub autoban: Vec<crate::autoban::AutobanRule>,
    /// Virtual patches (`[[patch]]`, docs/patches.md); replaced on reload. Patches added with
    /// `vigilctl patch add` live in `[patches] store`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<vigil_patch::Patch>,
    #[serde(default)]
    pub patches: PatchesSection,
    /// `[fleet]` as the file wrote it, for `vigilctl config show`.
    #[serde(skip)]
    pub(crate) fleet_written: Option<toml::Table>,
}

/// `[patches]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatchesSection {
    /// Where the patches added at run time are kept across restarts.
    #[serde(default = "default_patch_store")]
    pub store: PathBuf,
}

impl Default for PatchesSection {
    fn default() -> Self {
        PatchesSection {
            store: default_patch_store(),
        }
    }
}

fn default_patch_store() -> PathBuf {
    PathBuf::from("/var/lib/vigil/patches.json")
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HwSection {
    /// Root of the sysfs tree sensors and NIC facts are read from (tests point it at a fake tree).
    #[serde(default = "default_sysfs")]
    pub sysfs_root: PathBuf,
}

impl Default for HwSection {
    fn default() -> Self {
        HwSection {
            sysfs_root: default_sysfs(),
        }
    }
}

fn default_sysfs() -> PathBuf {
    PathBuf::from("/sys")
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// Key directory made by `vigilctl keys init` or `vigilctl keys seal` (docs/hw.md).
    pub dir: PathBuf,
    /// How to reach the TPM, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    #[serde(default = "default_tcti")]
    pub tcti: String,
    /// The signed PCR policy (`vigilctl keys policy sign`) that unseals a key sealed with
    /// `--policy-key`; usually shipped with the image. Keys sealed to fixed PCR values ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr_policy: Option<PathBuf>,
}

fn default_tcti() -> String {
    "device:/dev/tpmrm0".to_owned()
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct XdpSection {
    pub interface: String,
    #[serde(default)]
    pub mode: ModePolicy,
    #[serde(default = "default_pin_root")]
    pub pin_root: PathBuf,
    #[serde(default = "default_rate_table_size")]
    pub rate_table_size: u32,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSection>,
    /// Sources never dropped (management networks, health checkers).
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// Sources always dropped.
    #[serde(default)]
    pub block: Vec<Cidr>,
    /// How often expired rules are removed; read it with [`XdpSection::sweep_interval`].
    #[serde(default, with = "vigil_control::duration::option")]
    pub sweep_interval: Option<Duration>,
    /// The older spelling of `sweep_interval`, in milliseconds.
    #[serde(default)]
    pub sweep_interval_ms: Option<u64>,
    /// SYN cookies from XDP for the listening ports under a SYN flood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_guard: Option<SynGuardSection>,
}

/// `[xdp.syn_guard]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynGuardSection {
    /// Listening ports: a number, or `{ port = N, syn_rate = R }` for a port of its own rate.
    pub ports: Vec<SynGuardPortSpec>,
    /// SYNs per second per CPU above which XDP answers a port's SYNs itself; 0 = always.
    #[serde(default = "default_syn_rate")]
    pub syn_rate: u32,
    /// How long a port stays guarded after its SYN rate drops back.
    #[serde(default, with = "vigil_control::duration::option")]
    pub hold: Option<Duration>,
    #[serde(default = "default_mss4")]
    pub mss: u16,
    #[serde(default = "default_mss6")]
    pub mss6: u16,
    #[serde(default = "default_wscale")]
    pub wscale: u8,
    #[serde(default = "default_syn_ttl")]
    pub ttl: u8,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum SynGuardPortSpec {
    Port(u16),
    #[serde(rename_all = "snake_case")]
    WithRate {
        port: u16,
        syn_rate: u32,
    },
}

fn default_syn_rate() -> u32 {
    1000
}
fn default_mss4() -> u16 {
    1460
}
fn default_mss6() -> u16 {
    1440
}
fn default_wscale() -> u8 {
    7
}
fn default_syn_ttl() -> u8 {
    64
}
const DEFAULT_SYN_HOLD: Duration = Duration::from_secs(10);

impl SynGuardSection {
    /// The guard as the XDP layer takes it.
    pub fn guard(&self) -> vigil_xdp::SynGuard {
        vigil_xdp::SynGuard {
            ports: self
                .ports
                .iter()
                .map(|p| match *p {
                    SynGuardPortSpec::Port(port) => vigil_xdp::SynGuardPort {
                        port,
                        syn_rate: self.syn_rate,
                    },
                    SynGuardPortSpec::WithRate { port, syn_rate } => {
                        vigil_xdp::SynGuardPort { port, syn_rate }
                    }
                })
                .collect(),
            hold: self.hold.unwrap_or(DEFAULT_SYN_HOLD),
            mss4: self.mss,
            mss6: self.mss6,
            wscale: self.wscale,
            ttl: self.ttl,
        }
    }

    fn validate(&self) -> Result<(), KeyProblem> {
        let bad = |key: &str, why: &str| Err((format!("xdp.syn_guard.{key}"), why.to_owned()));
        let g = self.guard();
        if g.ports.is_empty() || g.ports.len() > vigil_xdp::abi::SYN_GUARDS {
            return bad("ports", "list 1 to 16 listening ports");
        }
        for (i, p) in g.ports.iter().enumerate() {
            if p.port == 0 {
                return bad(&format!("ports[{i}]"), "port 0 is not a listening port");
            }
            if g.ports[..i].iter().any(|q| q.port == p.port) {
                return bad(
                    &format!("ports[{i}]"),
                    &format!("port {} is listed twice", p.port),
                );
            }
            if p.syn_rate > 1_000_000_000 {
                return bad(&format!("ports[{i}].syn_rate"), "must be between 0 and 1e9");
            }
        }
        if self.syn_rate > 1_000_000_000 {
            return bad("syn_rate", "must be between 0 (always guard) and 1e9");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&g.hold) {
            return bad("hold", "must be between 1s and 1h");
        }
        if !(536..=9000).contains(&self.mss) {
            return bad("mss", "must be between 536 and 9000");
        }
        if !(1220..=9000).contains(&self.mss6) {
            return bad("mss6", "must be between 1220 and 9000");
        }
        if self.wscale > 14 {
            return bad("wscale", "must be between 0 and 14");
        }
        if self.ttl == 0 {
            return bad("ttl", "must be between 1 and 255");
        }
        Ok(())
    }
}

/// `xdp.sweep_interval` and its older integer spelling.
const SWEEP: Spellings = Spellings {
    key: "xdp.sweep_interval",
    legacy_key: "xdp.sweep_interval_ms",
    unit: Unit::Millis,
};
const DEFAULT_SWEEP: Duration = Duration::from_secs(1);
const SWEEP_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    pub pps: u64,
    pub burst: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
        }
    }
}

pub use vigil_control::DEFAULT_SOCKET;

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
fn default_pin_root() -> PathBuf {
    PathBuf::from(vigil_xdp::DEFAULT_PIN_ROOT)
}
fn default_rate_table_size() -> u32 {
    65_536
}

impl XdpSection {
    pub fn rate(&self) -> Option<RateLimit> {
        self.rate_limit.map(|r| RateLimit {
            pps: r.pps,
            burst: r.burst,
        })
    }

    pub fn allow_cidrs(&self) -> Vec<ipnet::IpNet> {
        self.allow.iter().map(|c| c.net()).collect()
    }

    pub fn block_cidrs(&self) -> Vec<ipnet::IpNet> {
        self.block.iter().map(|c| c.net()).collect()
    }

    /// How often expired rules are removed. Validation has refused both spellings at once.
    pub fn sweep_interval(&self) -> Duration {
        SWEEP
            .resolve(self.sweep_interval, self.sweep_interval_ms)
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_SWEEP)
    }
}

impl Config {
    /// The gateway's sections, when `[listener]` is present.
    pub fn gateway(&self) -> Option<GatewayConfig> {
        Some(GatewayConfig {
            listener: self.listener.clone()?,
            tls: self.tls.clone().unwrap_or_default(),
            upstream: self.upstream.clone(),
            limits: self.limits.clone().unwrap_or_default(),
            audit: self.audit.clone().unwrap_or_default(),
            metrics: self.metrics.clone().unwrap_or_default(),
            inspection: self.inspection.clone().unwrap_or_default(),
            policy: self.policy.clone(),
            rate_limit: self.rate_limit.clone(),
            detection: self.detection.clone().unwrap_or_default(),
            bots: self.bots.clone(),
            response_data: self.response_data.clone().unwrap_or_default(),
        })
    }

    /// Reads (bounded: a regular file of at most 1 MiB), parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = vigil_files::read_to_string(path, vigil_files::FileKind::Config)?;
        Self::parse(&text, path)
    }

    /// Parses and validates a config file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_located(text, path).map(|(cfg, _)| cfg)
    }

    /// [`Config::parse`], also returning where each key is written.
    pub(crate) fn parse_located(text: &str, path: &Path) -> Result<(Config, Source), ConfigError> {
        let src = Source {
            file: path.to_owned(),
            lines: Lines::of(text),
        };
        let de = toml::Deserializer::new(text);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // toml's message carries the line and a caret; keep its first line only.
            let msg = inner.message().lines().next().unwrap_or("invalid");
            let key = if key == "." {
                "(top level)".to_owned()
            } else {
                key
            };
            let at = inner
                .span()
                .map(|s| src.lines.line_at(s.start.min(text.len())));
            ConfigError::Invalid(src.finding_near(&key, msg, at))
        })?;
        cfg.validate().map_err(|p| src.invalid(p))?;
        cfg.fleet_written = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|mut t| t.remove("fleet"))
            .and_then(|v| match v {
                toml::Value::Table(t) => Some(t),
                _ => None,
            });
        Ok((cfg, src))
    }

    fn validate(&self) -> Result<(), KeyProblem> {
        if let Some(x) = &self.xdp {
            if x.interface.is_empty() || x.interface.len() > 15 || x.interface.contains('/') {
                return Err((
                    "xdp.interface".into(),
                    "must be an interface name (1-15 bytes, no '/')".into(),
                ));
            }
            if !x.pin_root.is_absolute() {
                return Err((
                    "xdp.pin_root".into(),
                    "must be an absolute path under a bpffs mount".into(),
                ));
            }
            if !(1024..=1 << 24).contains(&x.rate_table_size) {
                return Err((
                    "xdp.rate_table_size".into(),
                    "must be between 1024 and 16777216".into(),
                ));
            }
            let sweep = SWEEP
                .resolve(x.sweep_interval, x.sweep_interval_ms)
                .map_err(|e| (SWEEP.key.to_owned(), e.to_string()))?;
            match (sweep, x.sweep_interval_ms) {
                (Some(d), Some(_)) if !SWEEP_RANGE.contains(&d) => {
                    return Err((
                        SWEEP.legacy_key.into(),
                        "must be between 100 and 60000".into(),
                    ));
                }
                (Some(d), None) if !SWEEP_RANGE.contains(&d) => {
                    return Err((SWEEP.key.into(), "must be between 100ms and 60s".into()));
                }
                _ => {}
            }
            if let Some(g) = &x.syn_guard {
                g.validate()?;
            }
            if let Some(r) = x.rate_limit {
                if r.pps == 0 || r.pps > 1_000_000_000 {
                    return Err((
                        "xdp.rate_limit.pps".into(),
                        "must be between 1 and 1e9".into(),
                    ));
                }
                if r.burst == 0 || r.burst > 1_000_000_000 {
                    return Err((
                        "xdp.rate_limit.burst".into(),
                        "must be between 1 and 1e9".into(),
                    ));
                }
            }
        }
        if let Some(gw) = self.gateway() {
            gw.validate().map_err(|e| (e.key, e.reason))?;
        } else if self.tls.is_some() || !self.upstream.is_empty() {
            return Err((
                "listener".into(),
                "[tls] or [[upstream]] is set but [listener] is missing: add [listener] to run \
                 the gateway"
                    .into(),
            ));
        }
        let now = vigil_patch::rule::unix_now();
        for (i, p) in self.patch.iter().enumerate() {
            p.check(Some(now))
                .map_err(|e| (format!("patch[{i}]"), e.to_string()))?;
            if self.patch[..i].iter().any(|q| q.id == p.id) {
                return Err((
                    format!("patch[{i}].id"),
                    format!("{:?} is used by an earlier patch: ids are unique", p.id),
                ));
            }
        }
        self.thermal
            .validate()
            .map_err(|e| (thermal::key_of(&e), e.to_string()))?;
        if let Some(k) = &self.keys {
            if !k.dir.is_absolute() {
                return Err(("keys.dir".into(), "must be an absolute path".into()));
            }
        }
        for (i, rule) in self.autoban.iter().enumerate() {
            rule.validate(&format!("autoban[{i}]"))?;
        }
        if let Some(f) = &self.fleet {
            // Fleet settings (Redis address, credentials, TLS files, signing keys) are checked
            // by the fleet module, which names the offending key.
            f.validate()?;
        }
        // Shared buckets live in the fleet's Redis: without it the rule would silently run on
        // its fallback limits forever.
        if self.fleet.is_none() {
            if let Some(i) = self.rate_limit.iter().position(|r| r.shared) {
                return Err((
                    format!("rate_limit[{i}].shared"),
                    "shared buckets are kept in the fleet's Redis: add a [fleet] section with \
                     redis = \"host:port\", or set shared = false for a per-box limit"
                        .into(),
                ));
            }
        }
        if !self.control.socket.is_absolute() {
            return Err(("control.socket".into(), "must be an absolute path".into()));
        }
        Ok(())
    }
}

/// The file a config was read from and where each of its keys is written.
#[derive(Debug)]
pub(crate) struct Source {
    file: PathBuf,
    lines: Lines,
}

impl Source {
    /// `key` and `message` at the line where `key` is written (or its nearest written parent).
    pub(crate) fn finding(&self, key: &str, message: impl Into<String>) -> Finding {
        self.finding_near(key, message, None)
    }

    /// Like [`Source::finding`]; `fallback` (the parser's own position) wins when only a
    /// parent of `key` is written.
    fn finding_near(
        &self,
        key: &str,
        message: impl Into<String>,
        fallback: Option<usize>,
    ) -> Finding {
        let line = match self.lines.find(key) {
            Some((line, true)) => Some(line),
            Some((line, false)) => fallback.or(Some(line)),
            None => fallback,
        };
        Finding {
            file: self.file.clone(),
            line,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(&self, (key, message): KeyProblem) -> ConfigError {
        ConfigError::Invalid(self.finding(&key, message))
    }

    /// Whether `key` is written in the file rather than left at its default.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.lines.has(key)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        Config::parse(s, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn syn_guard_ports_rates_and_limits() {
        let cfg = parse(
            "[xdp]\ninterface = \"eth0\"\n[xdp.syn_guard]\nports = [443, { port = 8443, \
             syn_rate = 0 }]\nsyn_rate = 500\nhold = \"30s\"\n",
        )
        .unwrap();
        let g = cfg.xdp.unwrap().syn_guard.unwrap().guard();
        assert_eq!(
            g.ports,
            vec![
                vigil_xdp::SynGuardPort {
                    port: 443,
                    syn_rate: 500
                },
                vigil_xdp::SynGuardPort {
                    port: 8443,
                    syn_rate: 0
                },
            ]
        );
        assert_eq!(
            (g.hold, g.mss4, g.mss6, g.wscale, g.ttl),
            (Duration::from_secs(30), 1460, 1440, 7, 64)
        );
        for (extra, want) in [
            (
                "ports = []",
                "xdp.syn_guard.ports: list 1 to 16 listening ports",
            ),
            (
                "ports = [443, 443]",
                "xdp.syn_guard.ports[1]: port 443 is listed twice",
            ),
            (
                "ports = [0]",
                "xdp.syn_guard.ports[0]: port 0 is not a listening port",
            ),
            (
                "ports = [443]\nhold = \"100ms\"",
                "xdp.syn_guard.hold: must be between 1s and 1h",
            ),
            (
                "ports = [443]\nwscale = 15",
                "xdp.syn_guard.wscale: must be between 0 and 14",
            ),
            (
                "ports = [443]\nmss = 100",
                "xdp.syn_guard.mss: must be between 536 and 9000",
            ),
            ("ports = [443]\nsynrate = 5", "unknown field `synrate`"),
        ] {
            let e = parse(&format!(
                "[xdp]\ninterface = \"eth0\"\n[xdp.syn_guard]\n{extra}\n"
            ))
            .unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let many: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
        let e = parse(&format!(
            "[xdp]\ninterface = \"eth0\"\n[xdp.syn_guard]\nports = [{}]\n",
            many.join(",")
        ))
        .unwrap_err();
        assert!(e.contains("list 1 to 16"), "{e}");
    }

    /// A fleet signing key file (`[fleet]` needs a readable one), in a temporary directory
    /// removed when the returned guard drops: keep it alive while the path is used.
    pub(super) fn fleet_key() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.pem");
        vigil_control::fleet_key::SigningKey::create(&path, true).unwrap();
        (dir, path)
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../config/vigild.toml");
        let cfg = parse(text).unwrap();
        let x = cfg.xdp.unwrap();
        assert_eq!(x.mode, ModePolicy::Native);
        assert!(x.rate_limit.is_some());
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let e = parse("[xdp]\ninterface = \"eth0\"\nintreface = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("test.toml:3: xdp.intreface: unknown field `intreface`"),
            "{e}"
        );
        let e = parse("[xdp]\ninterface = \"eth0\"\n[xdp.rate_limit]\npps = 10\nburts = 5\n")
            .unwrap_err();
        assert!(e.contains("xdp.rate_limit"), "{e}");
        let e = parse("[contrl]\n").unwrap_err();
        assert!(e.contains("contrl"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_line_of_their_full_path() {
        let gw = "[listener]\nhttps = \"127.0.0.1:0\"\n";
        for (text, want) in [
            (
                format!("{gw}[[upstream]]\nname = \"a\"\n[[upstream]]\nnmae = \"b\"\n"),
                "test.toml:6: upstream[1].nmae: unknown field `nmae`",
            ),
            (
                "[listener]\n\nhttps = \"nonsense\"\n".to_owned(),
                "test.toml:3: listener.https: ",
            ),
            (
                "[xdp]\ninterface = \"eth0\"\n[xdp.rate_limit]\npps = \"many\"\n".to_owned(),
                "test.toml:4: xdp.rate_limit.pps: invalid type",
            ),
            (
                "[policy]\nmode = \"enforce\"\n".to_owned(),
                "test.toml:1: policy: missing field `file`",
            ),
            ("x = [1,\n".to_owned(), "test.toml:2: (top level): "),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.starts_with(want), "want {want:?}, got {e}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let e = parse("[xdp]\ninterface = \"eth0\"\nblock = [\"198.18.0.1/40\"]\n").unwrap_err();
        assert!(e.contains("xdp.block[0]"), "{e}");
        let e = parse("[xdp]\ninterface = \"eth0\"\nmode = \"fast\"\n").unwrap_err();
        assert!(e.contains("xdp.mode"), "{e}");
        let e = parse("[xdp]\ninterface = \"eth0\"\n[xdp.rate_limit]\npps = 0\nburst = 1\n")
            .unwrap_err();
        assert!(e.contains("xdp.rate_limit.pps"), "{e}");
        let e = parse("[xdp]\ninterface = \"an-interface-name-too-long\"\n").unwrap_err();
        assert!(e.contains("xdp.interface"), "{e}");
    }

    #[test]
    fn shared_rate_limits_need_the_fleet() {
        let gw = "[listener]\nhttps = \"127.0.0.1:8443\"\n\
                  [tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n\
                  [[upstream]]\nname = \"api\"\nurl = \"http://127.0.0.1:9\"\n";
        let rule = |shared: bool| {
            format!(
                "[[rate_limit]]\nname = \"a\"\nkey = \"client_ip\"\nrate = 1\nburst = 2\n\
                 [[rate_limit]]\nname = \"b\"\nkey = \"sub+route\"\nrate = 1\nburst = 2\n\
                 shared = {shared}\n"
            )
        };
        let e = parse(&format!("{gw}{}", rule(true))).unwrap_err();
        assert!(e.contains("rate_limit[1].shared"), "{e}");
        assert!(e.contains("[fleet]"), "{e}");
        parse(&format!("{gw}{}", rule(false))).unwrap();
        let (_dir, key) = fleet_key();
        let fleet = format!(
            "[fleet]\nredis = \"127.0.0.1:6379\"\nsigning_key = \"{}\"\n",
            key.display()
        );
        let cfg = parse(&format!("{gw}{}{fleet}", rule(true))).unwrap();
        let f = cfg.fleet.unwrap();
        assert_eq!(f.rate_limit_timeout, Duration::from_millis(250));
        for (bad, why) in [("0ms", "more than 0"), ("1s", "less than 1s"), ("soon", "")] {
            let e = parse(&format!("{fleet}rate_limit_timeout = \"{bad}\"\n")).unwrap_err();
            assert!(e.contains("fleet.rate_limit_timeout"), "{e}");
            assert!(e.contains(why), "{e}");
        }
        parse(&format!("{fleet}rate_limit_timeout = \"100ms\"\n")).unwrap();
    }

    #[test]
    fn sweep_interval_in_either_spelling_but_not_both() {
        let sweep = |extra: &str| {
            parse(&format!("[xdp]\ninterface = \"eth0\"\n{extra}"))
                .map(|c| c.xdp.unwrap().sweep_interval())
        };
        assert_eq!(sweep(""), Ok(Duration::from_secs(1)));
        assert_eq!(
            sweep("sweep_interval = \"200ms\""),
            Ok(Duration::from_millis(200))
        );
        assert_eq!(
            sweep("sweep_interval = \"1m\""),
            Ok(Duration::from_secs(60))
        );
        // The older spelling still loads, with its old range and message.
        assert_eq!(
            sweep("sweep_interval_ms = 200"),
            Ok(Duration::from_millis(200))
        );
        let e = sweep("sweep_interval_ms = 50").unwrap_err();
        assert!(
            e.contains("xdp.sweep_interval_ms: must be between 100 and 60000"),
            "{e}"
        );
        let e = sweep("sweep_interval = \"50ms\"").unwrap_err();
        assert!(
            e.contains("xdp.sweep_interval: must be between 100ms and 60s"),
            "{e}"
        );
        let e = sweep("sweep_interval = \"200ms\"\nsweep_interval_ms = 200").unwrap_err();
        assert!(
            e.contains(
                "xdp.sweep_interval and xdp.sweep_interval_ms are both set: keep \
                 xdp.sweep_interval = \"200ms\" and remove xdp.sweep_interval_ms"
            ),
            "{e}"
        );
        let e = sweep("sweep_interval = 200").unwrap_err();
        assert!(e.contains("xdp.sweep_interval: 200 is a number"), "{e}");
    }

    #[test]
    fn autoban_durations_take_the_shared_grammar() {
        let rule = |window: &str, ban: &str| {
            parse(&format!(
                "[[autoban]]\nname = \"r\"\nstatuses = [401]\nthreshold = 5\n\
                 window = \"{window}\"\nban = \"{ban}\"\n"
            ))
            .map(|c| (c.autoban[0].window, c.autoban[0].ban))
        };
        assert_eq!(
            rule("1m30s", "1d"),
            Ok((Duration::from_secs(90), Duration::from_secs(86_400)))
        );
        assert_eq!(
            rule("60s", "1h 30m"),
            Ok((Duration::from_secs(60), Duration::from_secs(5400)))
        );
        let e = rule("soon", "1m").unwrap_err();
        assert!(e.contains("autoban[0].window"), "{e}");
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        let e = rule("0s", "1m").unwrap_err();
        assert!(
            e.contains("autoban[0].window: must be more than zero"),
            "{e}"
        );
        let e = rule("1m", "2y").unwrap_err();
        assert!(
            e.contains("autoban[0].ban: must be at most 365 days"),
            "{e}"
        );
    }

    #[test]
    fn gateway_durations_load_in_both_spellings() {
        let gw = "[listener]\nhttps = \"127.0.0.1:8443\"\n";
        let cfg = parse(&format!(
            "{gw}header_timeout = \"1m30s\"\nretry_after = \"2s\"\nhsts_max_age = \"1d\"\n\
             [inspection]\nretry_after = \"1m\"\n"
        ))
        .unwrap();
        let l = cfg.listener.unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(90));
        assert_eq!((l.retry_after_secs, l.hsts_max_age_secs), (2, 86_400));
        assert_eq!(cfg.inspection.unwrap().retry_after_secs, 60);
        let cfg = parse(&format!(
            "{gw}retry_after_secs = 3\nhsts_max_age_secs = 0\n[inspection]\nretry_after_secs = 5\n"
        ))
        .unwrap();
        let l = cfg.listener.unwrap();
        assert_eq!((l.retry_after_secs, l.hsts_max_age_secs), (3, 0));
        assert_eq!(cfg.inspection.unwrap().retry_after_secs, 5);
        let e = parse(&format!("{gw}retry_after = \"3s\"\nretry_after_secs = 3\n")).unwrap_err();
        assert!(
            e.contains("test.toml:1: listener: listener.retry_after and "),
            "{e}"
        );
        assert!(e.contains("remove listener.retry_after_secs"), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let cfg = parse("").unwrap();
        assert!(cfg.xdp.is_none());
        assert_eq!(cfg.control.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let e = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero is a character device, not a regular file"),
            "{e}"
        );
        let e = Config::load(&std::env::temp_dir()).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        let e = Config::load(Path::new("/nonexistent/vigild.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /nonexistent/vigild.toml"),
            "{e}"
        );
    }
}
