//! The daemon's state and lifecycle: attach (or adopt) XDP, sweep expired rules, serve the
//! control socket, reload on SIGHUP, and exit on SIGTERM leaving the pins so drops go on.

mod autoban;
mod fleet_sync;
mod hw;
mod metrics;
mod run;
mod xdp;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use serde_json::{Value, json};
use tracing::{info, warn};
use vigil_hw::thermal::{GovernorHandle, SysfsRoot, TransitionEvent};
use vigil_xdp::{Attachment, List};

pub(crate) use hw::key_provider;
pub use run::run;
use xdp::{attach, mode_abi};

use crate::{
    autoban::Autoban,
    config::Config,
    control::{
        ops,
        proto::{Reply, Request},
    },
    fleet::Fleet,
};

/// Where the governor's thread sends level changes for the audit log.
type ThermalAudit = Arc<Mutex<Option<Box<dyn Fn(&TransitionEvent) + Send>>>>;

pub struct Daemon {
    config_path: PathBuf,
    config: Mutex<Config>,
    xdp: Mutex<Option<Attachment>>,
    gateway: Mutex<Option<vigil_gateway::Gateway>>,
    thermal: GovernorHandle,
    thermal_transitions: Arc<AtomicU64>,
    /// Writes level changes to the gateway's audit log once the gateway runs.
    thermal_audit: ThermalAudit,
    fleet: Mutex<Option<Fleet>>,
    autoban: Mutex<Autoban>,
    autoban_total: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these values half-written (each update is
    // one map syscall), so recovering the guard is sound.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Daemon {
    /// Validates the config and attaches XDP; errors here stop the daemon before it serves.
    pub fn start(config_path: PathBuf) -> anyhow::Result<Arc<Daemon>> {
        let config = Config::load(&config_path)?;
        let xdp = match &config.xdp {
            Some(x) => Some(attach(x)?),
            None => {
                warn!("no [xdp] section: no packets are filtered before the kernel");
                None
            }
        };
        for w in vigil_hw::CpuFeatures::detect().warnings() {
            warn!("{w}");
        }
        let transitions = Arc::new(AtomicU64::new(0));
        let counter = transitions.clone();
        let audit_hook: ThermalAudit = Arc::default();
        let hook = audit_hook.clone();
        let thermal = GovernorHandle::spawn(
            SysfsRoot::new(&config.hw.sysfs_root),
            config.thermal.clone(),
            move |ev: TransitionEvent| {
                counter.fetch_add(1, Ordering::Relaxed);
                warn!(
                    from = ev.from.as_str(),
                    to = ev.to.as_str(),
                    temperature_c = ?ev.temperature_c,
                    reason = ?ev.reason,
                    "inspection level changed"
                );
                if let Some(audit) = lock(&hook).as_ref() {
                    audit(&ev);
                }
            },
        )?;
        let status = thermal.status();
        if status.sensors == 0 {
            info!("{}", status.message);
        }
        let autoban = Autoban::new(&config.autoban);
        let daemon = Arc::new(Daemon {
            config_path,
            config: Mutex::new(config),
            xdp: Mutex::new(xdp),
            gateway: Mutex::new(None),
            thermal,
            thermal_transitions: transitions,
            thermal_audit: audit_hook,
            fleet: Mutex::new(None),
            autoban: Mutex::new(autoban),
            autoban_total: AtomicU64::new(0),
            started: Instant::now(),
        });
        daemon.sync_config_rules()?;
        Ok(daemon)
    }

    pub fn control_socket(&self) -> PathBuf {
        lock(&self.config).control.socket.clone()
    }

    /// Re-reads the config file. An invalid file changes nothing.
    pub fn reload(&self) -> Result<Value, String> {
        let new = Config::load(&self.config_path).map_err(|e| format!("reload refused: {e}"))?;
        let old = lock(&self.config).clone();
        match (&old.xdp, &new.xdp) {
            (Some(a), Some(b)) if a.interface != b.interface || a.pin_root != b.pin_root => {
                return Err(
                    "reload refused: xdp.interface or xdp.pin_root changed; restart vigild".into(),
                );
            }
            (None, Some(_)) | (Some(_), None) => {
                return Err("reload refused: adding or removing [xdp] needs a restart".into());
            }
            _ => {}
        }
        if new.control.socket != old.control.socket {
            return Err("reload refused: control.socket changed; restart vigild".into());
        }
        if new.fleet != old.fleet {
            return Err("reload refused: [fleet] changed; restart vigild".into());
        }
        if new.listener.is_some() != old.listener.is_some() || new.keys != old.keys {
            return Err(
                "reload refused: adding or removing [listener] or changing [keys] needs a restart"
                    .into(),
            );
        }
        // The gateway validates and builds the new config fully before swapping it in.
        if let (Some(gw_cfg), Some(gw)) = (new.gateway(), lock(&self.gateway).as_ref()) {
            gw.reload(gw_cfg)
                .map_err(|e| format!("reload refused: {e}"))?;
        }
        if let (Some(section), Some(att)) = (&new.xdp, lock(&self.xdp).as_mut()) {
            let mode = att.mode;
            att.maps
                .set_config(section.rate(), mode_abi(mode))
                .map_err(|e| format!("reload failed applying the rate limit: {e}"))?;
        }
        self.thermal
            .reload(new.thermal.clone())
            .map_err(|e| format!("reload failed applying [thermal]: {e}"))?;
        if new.autoban != old.autoban {
            *lock(&self.autoban) = Autoban::new(&new.autoban);
        }
        *lock(&self.config) = new;
        self.sync_config_rules()
            .map_err(|e| format!("reload failed applying rules: {e}"))?;
        info!(path = %self.config_path.display(), "configuration reloaded");
        Ok(json!({ "reloaded": self.config_path }))
    }

    /// Handles one control request.
    pub fn handle(&self, req: Request) -> Reply {
        let res: Result<Value, String> = match req {
            Request::Status => Ok(self.status()),
            Request::Reload => self.reload(),
            Request::XdpDetach => self.detach(),
            Request::RuleAdd {
                list,
                cidr,
                ttl_secs,
                reason,
            } => self
                .with_maps(|m| {
                    let r = ops::rule_add(m, list, &cidr, ttl_secs, reason.as_deref(), 0)?;
                    info!(list = ops::list_name(list), %cidr, ?ttl_secs, "rule added");
                    Ok(r)
                })
                .inspect(|r| {
                    if list == List::Block {
                        self.share_block(r, ttl_secs);
                    }
                }),
            Request::RuleDel { list, cidr } => self
                .with_maps(|m| {
                    let r = ops::rule_del(m, list, &cidr)?;
                    info!(list = ops::list_name(list), %cidr, "rule removed");
                    Ok(r)
                })
                .inspect(|r| {
                    if let (List::Block, Some(f), Some(c)) =
                        (list, lock(&self.fleet).as_ref(), r["cidr"].as_str())
                    {
                        f.publish_del(c.to_owned());
                    }
                }),
            Request::RuleList { list } => self.with_maps(|m| ops::rule_list(m, list)),
            Request::Stats => self.with_maps(|m| ops::stats(m)),
            Request::KeysRotate => self.rotate_keys(),
            Request::Thermal => Ok(self.thermal_status()),
            Request::ThermalOverride { level, for_secs } => self.thermal_override(&level, for_secs),
            Request::ThermalClear => Ok(self.thermal_clear()),
            Request::ShadowList => match lock(&self.gateway).as_ref() {
                Some(gw) => Ok(json!({ "entries": gw.shadow() })),
                None => {
                    Err("the gateway is not running (no [listener]): no shadow inventory".into())
                }
            },
        };
        match res {
            Ok(v) => Reply::ok(v),
            Err(e) => Reply::err(e),
        }
    }

    fn status(&self) -> Value {
        let xdp = lock(&self.xdp);
        let xdp_status = match xdp.as_ref() {
            Some(att) => ops::xdp_status(&att.maps, &att.iface, att.mode)
                .map(|mut v| {
                    v["adopted"] = json!(att.adopted);
                    v
                })
                .unwrap_or_else(|e| json!({ "error": e.to_string() })),
            None => Value::Null,
        };
        let gateway = lock(&self.gateway).as_ref().map(|gw| {
            let cfg = gw.config();
            json!({
                "https": gw.https_addr().to_string(),
                "http": gw.http_addr().map(|a| a.to_string()),
                "metrics": gw.metrics_addr().to_string(),
                "upstreams": cfg.upstream.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
                // Where token keys come from, how many, the last fetch and its error.
                "jwks": gw.jwks_status(),
            })
        });
        let fleet = lock(&self.fleet).as_ref().map(Fleet::status);
        json!({
            "fleet": fleet,
            "gateway": gateway,
            "host": vigil_hw::HostFacts::collect(&vigil_hw::thermal::SysfsRoot::new("/sys")),
            "daemon": {
                "running": true,
                "pid": std::process::id(),
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": self.started.elapsed().as_secs(),
                "config": self.config_path,
            },
            "xdp": xdp_status,
        })
    }
}
