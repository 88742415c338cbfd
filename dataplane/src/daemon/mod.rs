//! The daemon's state and lifecycle: attach (or adopt) XDP, sweep expired rules, serve the
//! control socket, reload on SIGHUP, and exit on SIGTERM leaving the pins so drops go on.

mod autoban;
mod fleet_sync;
mod hw;
mod metrics;
pub mod notify;
mod patches;
mod run;
mod syn_proxy;
mod xdp;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tracing::{error, info, warn};
use vigil_control::{
    ControlError, ErrorCode, Handler, Reply, Request, ops,
    reply::{DaemonStatus, GatewayStatus, Reloaded, Shadow, Status, XdpReport},
};
use vigil_gateway::GatewayError;
use vigil_hw::thermal::{GovernorHandle, SysfsRoot, TransitionEvent};
use vigil_xdp::{Attachment, List};

pub(crate) use hw::key_provider;
pub use run::run;
use xdp::{attach, mode_abi};

use crate::{
    autoban::Autoban,
    config::{Checked, Config, ConfigError, check},
    control::to_control,
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
    /// Virtual patches added with `vigilctl patch add`, as kept in `[patches] store`.
    runtime_patches: Mutex<Vec<vigil_patch::Patch>>,
    /// Patches whose expiry has been logged.
    expired_patches: Mutex<std::collections::HashSet<String>>,
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
        let config = checked(&config_path)?.config;
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
            runtime_patches: Mutex::new(Vec::new()),
            expired_patches: Mutex::default(),
            started: Instant::now(),
        });
        daemon.sync_config_rules()?;
        daemon.load_runtime_patches()?;
        Ok(daemon)
    }

    pub fn control_socket(&self) -> PathBuf {
        lock(&self.config).control.socket.clone()
    }

    /// Re-reads the config file. An invalid file changes nothing.
    pub fn reload(&self) -> Result<Reloaded, ControlError> {
        let refused = |why: String| ControlError::new(ErrorCode::Refused, why);
        let failed = |why: String| ControlError::new(ErrorCode::Failed, why);
        // A reload refused here (before the gateway saw it) still counts as rejected on
        // /metrics; the gateway counts its own refusals.
        let count = || {
            if let Some(gw) = lock(&self.gateway).as_ref() {
                gw.count_rejected_reload();
            }
        };
        // The same check as `vigild --check` and the start: a file it passes, a reload takes.
        let checked = checked(&self.config_path).map_err(|e| {
            count();
            refused(format!("reload refused: {e}"))
        })?;
        let new = checked.config.clone();
        let old = lock(&self.config).clone();
        let restart = |key: &str, what: &str| {
            count();
            refused(format!(
                "reload refused: {}",
                checked.finding(
                    key,
                    format!("{what} cannot change on reload; restart vigild")
                )
            ))
        };
        match (&old.xdp, &new.xdp) {
            (Some(a), Some(b)) if a.interface != b.interface => {
                return Err(restart("xdp.interface", "xdp.interface"));
            }
            (Some(a), Some(b)) if a.pin_root != b.pin_root => {
                return Err(restart("xdp.pin_root", "xdp.pin_root"));
            }
            (None, Some(_)) | (Some(_), None) => {
                return Err(restart("xdp", "[xdp] (added or removed)"));
            }
            _ => {}
        }
        if new.control.socket != old.control.socket {
            return Err(restart("control.socket", "control.socket"));
        }
        if new.fleet != old.fleet {
            return Err(restart("fleet", "[fleet]"));
        }
        if new.listener.is_some() != old.listener.is_some() {
            return Err(restart("listener", "[listener] (added or removed)"));
        }
        if new.keys != old.keys {
            return Err(restart("keys", "[keys]"));
        }
        // The gateway validates and builds the new config fully before swapping it in.
        if let (Some(gw_cfg), Some(gw)) = (new.gateway(), lock(&self.gateway).as_ref()) {
            gw.reload(gw_cfg).map_err(|e| {
                let at = |key: &str, why: String| {
                    refused(format!("reload refused: {}", checked.finding(key, why)))
                };
                match e {
                    GatewayError::Config { source } => at(&source.key, source.reason),
                    GatewayError::NeedsRestart { key, running, new } => at(
                        key,
                        format!(
                            "cannot change on reload (running: {running}, new: {new}); restart \
                             vigild to apply it"
                        ),
                    ),
                    e => refused(format!("reload refused: {e}")),
                }
            })?;
        }
        if let (Some(section), Some(att)) = (&new.xdp, lock(&self.xdp).as_mut()) {
            let mode = att.mode;
            att.maps
                .set_config(section.rate(), mode_abi(mode))
                .map_err(|e| failed(format!("reload failed applying the rate limit: {e}")))?;
        }
        self.thermal
            .reload(new.thermal.clone())
            .map_err(|e| failed(format!("reload failed applying [thermal]: {e}")))?;
        if new.autoban != old.autoban {
            *lock(&self.autoban) = Autoban::new(&new.autoban);
            // Fingerprint bans belong to the rules that made them: they end with them.
            if let Some(gw) = lock(&self.gateway).as_ref() {
                gw.clear_fingerprint_bans();
            }
        }
        *lock(&self.config) = new;
        self.sync_config_rules()
            .map_err(|e| failed(format!("reload failed applying rules: {e}")))?;
        self.apply_patches()
            .map_err(|e| failed(format!("reload failed applying the virtual patches: {e}")))?;
        info!(path = %self.config_path.display(), "configuration reloaded");
        Ok(Reloaded {
            reloaded: self.config_path.clone(),
        })
    }

    fn status(&self) -> Status {
        let xdp = lock(&self.xdp).as_ref().map(|att| {
            match ops::xdp_status(&att.maps, &att.iface, att.mode) {
                Ok(mut x) => {
                    x.adopted = Some(att.adopted);
                    XdpReport::Attached(x)
                }
                Err(e) => XdpReport::Broken {
                    error: e.to_string(),
                },
            }
        });
        let gateway = lock(&self.gateway).as_ref().map(|gw| GatewayStatus {
            https: gw.https_addr().to_string(),
            http: gw.http_addr().map(|a| a.to_string()),
            metrics: gw.metrics_addr().to_string(),
            upstreams: gw
                .config()
                .upstream
                .iter()
                .map(|u| u.name.clone())
                .collect(),
            jwks: to_control(gw.jwks_status()),
            details: Default::default(),
        });
        let fleet = lock(&self.fleet).as_ref().map(Fleet::status);
        Status {
            fleet: Some(fleet),
            gateway: Some(gateway),
            host: Some(to_control(vigil_hw::HostFacts::collect(&SysfsRoot::new(
                "/sys",
            )))),
            daemon: DaemonStatus {
                running: true,
                pid: Some(std::process::id()),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                uptime_secs: Some(self.started.elapsed().as_secs()),
                config: Some(self.config_path.clone()),
            },
            xdp,
        }
    }
}

/// The config at `path` after the check `vigild --check` runs, its warnings logged.
fn checked(path: &std::path::Path) -> Result<Checked, ConfigError> {
    let checked = check(path)?;
    for w in &checked.warnings {
        warn!("{w}");
    }
    Ok(checked)
}

/// The control socket's requests, each answered on a blocking thread.
impl Handler for Daemon {
    fn handle(&self, req: Request) -> Result<Reply, ControlError> {
        Ok(match req {
            Request::Status => {
                let mut status = self.mark_detached(self.status());
                let keys = lock(&self.config).keys.as_ref().map(|k| k.dir.clone());
                if let (Some(Some(g)), Some(gw)) =
                    (status.gateway.as_mut(), lock(&self.gateway).as_ref())
                {
                    g.details = crate::control::gateway_details(gw, keys.as_deref());
                }
                Reply::Status(Box::new(status))
            }
            // Logged as a refused SIGHUP is: the operator may be reading the log, not vigilctl.
            Request::Reload => Reply::Reloaded(self.reload().inspect_err(|e| error!("{e}"))?),
            Request::PatchAdd { patch } => Reply::Patches(self.patch_add(*patch)?),
            Request::PatchDel { id } => Reply::PatchRemoved(self.patch_del(&id)?),
            Request::PatchList => Reply::Patches(self.patch_list(None)?),
            Request::PatchShow { id } => Reply::Patches(self.patch_list(Some(&id))?),
            Request::ConfigShow => {
                Reply::Config(Box::new(lock(&self.config).shown(&self.config_path)))
            }
            Request::XdpDetach => Reply::Detached(self.detach()?),
            Request::XdpAttach => Reply::XdpAttached(self.reattach()?),
            Request::RuleAdd {
                list,
                cidr,
                ttl_secs,
                reason,
            } => {
                let added = self
                    .with_maps(|m| ops::rule_add(m, list, cidr, ttl_secs, reason.as_deref(), 0))?;
                info!(list = ops::list_name(list), %cidr, ttl_secs = ?ttl_secs.map(u64::from), "rule added");
                if list == List::Block {
                    self.share_block(&added);
                }
                Reply::RuleAdded(added)
            }
            Request::RuleDel { list, cidr } => {
                let removed = self.with_maps(|m| ops::rule_del(m, list, cidr))?;
                info!(list = ops::list_name(list), %cidr, "rule removed");
                if let (List::Block, Some(f)) = (list, lock(&self.fleet).as_ref()) {
                    f.publish_del(removed.cidr.to_string());
                }
                Reply::RuleRemoved(removed)
            }
            Request::RuleList { list } => {
                Reply::Rules(self.with_maps(|m| ops::rule_list(m, list))?)
            }
            // Imported rules stay on this box: a feed is loaded on each box that wants it,
            // not fanned out to the fleet rule by rule.
            Request::RuleImport { list, path, reason } => {
                let done =
                    self.with_maps(|m| ops::rule_import(m, list, &path, reason.as_deref()))?;
                info!(list = ops::list_name(list), file = %path.display(), prefixes = done.prefixes,
                    added = done.added, millis = done.millis, "feed imported");
                Reply::RulesImported(done)
            }
            Request::RuleFlush { list } => {
                let done = self.with_maps(|m| ops::rule_flush(m, list))?;
                warn!(
                    list = ops::list_name(list),
                    removed = done.removed,
                    "list flushed"
                );
                Reply::RulesFlushed(done)
            }
            Request::Stats => Reply::Stats(self.with_maps(|m| ops::stats(m))?),
            Request::KeysRotate => Reply::KeysRotated(self.rotate_keys()?),
            Request::Thermal => Reply::Thermal(Box::new(self.thermal_status())),
            Request::ThermalOverride { level, for_secs } => {
                Reply::Thermal(Box::new(self.thermal_override(level, for_secs)))
            }
            Request::ThermalClear => Reply::Thermal(Box::new(self.thermal_clear())),
            Request::ClientsTop { limit } => {
                let n = limit.unwrap_or(20).clamp(1, 1000) as usize;
                Reply::Clients(self.clients(n)?)
            }
            Request::ClientsUnban { ja4 } => {
                self.unban_fingerprint(&ja4)?;
                Reply::Clients(self.clients(20)?)
            }
            Request::ShadowList => match lock(&self.gateway).as_ref() {
                Some(gw) => Reply::Shadow(Shadow {
                    entries: to_control(gw.shadow()),
                }),
                None => {
                    return Err(ControlError::new(
                        ErrorCode::NotRunning,
                        "the gateway is not running (no [listener]): no shadow inventory",
                    ));
                }
            },
        })
    }
}

/// Fingerprints are printable ASCII, and JA4's are 36 characters: anything else is no ban.
const MAX_FINGERPRINT_LEN: usize = 64;

impl Daemon {
    /// The `n` busiest client fingerprints and the banned ones (`vigilctl clients`).
    fn clients(&self, n: usize) -> Result<vigil_control::reply::Clients, ControlError> {
        let guard = lock(&self.gateway);
        let Some(gw) = guard.as_ref() else {
            return Err(ControlError::new(
                ErrorCode::NotRunning,
                "the gateway is not running (no [listener]): no clients",
            ));
        };
        let (rows, tracked) = gw.clients_top(n);
        Ok(vigil_control::reply::Clients {
            clients: rows
                .into_iter()
                .map(|(ja4, c)| vigil_control::reply::ClientCount {
                    ja4,
                    requests: c.requests,
                    rejected: c.rejected,
                })
                .collect(),
            tracked: tracked as u64,
            banned: gw
                .fingerprint_bans()
                .into_iter()
                .map(|(ja4, left)| vigil_control::reply::BannedFingerprint {
                    ja4,
                    expires_in_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                })
                .collect(),
        })
    }

    /// Lifts the gateway's ban of `ja4` and forgets what the auto-ban rules counted for it. The
    /// addresses blocked with it stay blocked until their own rules expire or are removed.
    fn unban_fingerprint(&self, ja4: &str) -> Result<(), ControlError> {
        if ja4.is_empty()
            || ja4.len() > MAX_FINGERPRINT_LEN
            || !ja4.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ControlError::new(
                ErrorCode::Invalid,
                "a fingerprint is 1 to 64 printable ASCII characters (a JA4 such as \
                 t13d1516h2_8daaf6152771_e5627efa2ab1)",
            ));
        }
        let guard = lock(&self.gateway);
        let Some(gw) = guard.as_ref() else {
            return Err(ControlError::new(
                ErrorCode::NotRunning,
                "the gateway is not running (no [listener]): no fingerprint bans",
            ));
        };
        if !gw.unban_fingerprint(ja4) {
            return Err(ControlError::new(
                ErrorCode::NoSuchRule,
                format!("fingerprint {ja4} is not banned (vigilctl clients top lists the bans)"),
            ));
        }
        lock(&self.autoban).forget_fingerprint(ja4);
        info!(
            ja4,
            "fingerprint ban lifted (vigilctl clients unban); its count starts over"
        );
        Ok(())
    }
}
