//! The daemon's state and lifecycle: attach (or adopt) XDP, sweep expired rules, serve the
//! control socket, reload on SIGHUP, and exit on SIGTERM leaving the pins so drops go on.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};
use vigil_hw::{
    keys::{FileKeyProvider, KeyProvider},
    thermal::{GovernorHandle, Level, SysfsRoot, TransitionEvent},
};
use vigil_xdp::{AttachOptions, Attachment, List, abi::RULE_F_CONFIG};

use crate::{
    config::{Config, XdpSection},
    control::{
        self,
        ops::{self, OpError},
        proto::{Reply, Request},
    },
    fleet::{self, Fleet},
};

#[derive(Debug)]
pub struct Daemon {
    config_path: PathBuf,
    config: Mutex<Config>,
    xdp: Mutex<Option<Attachment>>,
    gateway: Mutex<Option<vigil_gateway::Gateway>>,
    thermal: GovernorHandle,
    thermal_transitions: Arc<AtomicU64>,
    fleet: Mutex<Option<Fleet>>,
    started: Instant,
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
            },
        )?;
        let status = thermal.status();
        if status.sensors == 0 {
            info!("{}", status.message);
        }
        let daemon = Arc::new(Daemon {
            config_path,
            config: Mutex::new(config),
            xdp: Mutex::new(xdp),
            gateway: Mutex::new(None),
            thermal,
            thermal_transitions: transitions,
            fleet: Mutex::new(None),
            started: Instant::now(),
        });
        daemon.sync_config_rules()?;
        Ok(daemon)
    }

    pub fn control_socket(&self) -> PathBuf {
        lock(&self.config).control.socket.clone()
    }

    /// Replaces the rules that came from the config file with the current file's lists.
    fn sync_config_rules(&self) -> Result<(), OpError> {
        let cfg = lock(&self.config).clone();
        let mut xdp = lock(&self.xdp);
        let (Some(att), Some(section)) = (xdp.as_mut(), cfg.xdp.as_ref()) else {
            return Ok(());
        };
        for (list, wanted) in [
            (List::Allow, section.allow_cidrs()),
            (List::Block, section.block_cidrs()),
        ] {
            for old in att.maps.list(list)? {
                if old.from_config && !wanted.contains(&old.cidr) {
                    att.maps.remove(list, old.cidr)?;
                }
            }
            for net in wanted {
                att.maps.insert(list, net, None, "config", RULE_F_CONFIG)?;
            }
        }
        Ok(())
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
            Request::ThermalClear => {
                self.thermal.clear_override();
                info!("thermal override cleared by operator");
                Ok(self.thermal_status())
            }
        };
        match res {
            Ok(v) => Reply::ok(v),
            Err(e) => Reply::err(e),
        }
    }

    fn with_maps(
        &self,
        f: impl FnOnce(&mut vigil_xdp::VigilMaps) -> Result<Value, OpError>,
    ) -> Result<Value, String> {
        let mut xdp = lock(&self.xdp);
        let att = xdp
            .as_mut()
            .ok_or("XDP is not attached (no [xdp] section, or detached); nothing to do")?;
        f(&mut att.maps).map_err(|e| e.to_string())
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

    /// Sends a block this box just applied to the rest of the fleet.
    fn share_block(&self, added: &Value, ttl_secs: Option<u64>) {
        let fleet = lock(&self.fleet);
        let (Some(f), Some(cidr)) = (fleet.as_ref(), added["cidr"].as_str()) else {
            return;
        };
        f.publish_add(fleet::Block {
            cidr: cidr.to_owned(),
            reason: added["reason"].as_str().unwrap_or("").to_owned(),
            expires_unix: ttl_secs.map(|t| vigil_xdp::clock::unix_now().saturating_add(t)),
            auto: false,
        });
    }

    /// Applies a block or unblock that another box of the fleet made.
    fn apply_fleet_event(&self, ev: &fleet::Event) {
        let mut xdp = lock(&self.xdp);
        let Some(att) = xdp.as_mut() else { return };
        match ev {
            fleet::Event::Add { from, block } => {
                let Ok(net) = vigil_xdp::parse_cidr(&block.cidr) else {
                    warn!(cidr = %block.cidr, "fleet: ignored a block with a malformed CIDR");
                    return;
                };
                let ttl = match block.expires_unix {
                    Some(t) => {
                        let now = vigil_xdp::clock::unix_now();
                        if t <= now {
                            return;
                        }
                        Some(Duration::from_secs(t - now))
                    }
                    None => None,
                };
                let mut reason: String = block.reason.chars().filter(|c| !c.is_control()).collect();
                while reason.len() > vigil_xdp::abi::REASON_LEN - 1 {
                    reason.pop();
                }
                let flags = if block.auto {
                    vigil_xdp::abi::RULE_F_AUTO
                } else {
                    0
                };
                match att.maps.insert(List::Block, net, ttl, &reason, flags) {
                    Ok(()) => info!(%net, %from, "fleet: block applied"),
                    Err(e) => warn!(%net, error = %e, "fleet: applying a block failed"),
                }
            }
            fleet::Event::Del { from, cidr } => {
                if let Ok(net) = vigil_xdp::parse_cidr(cidr) {
                    if let Ok(true) = att.maps.remove(List::Block, net) {
                        info!(%net, %from, "fleet: block removed");
                    }
                }
            }
        }
    }

    fn rotate_keys(&self) -> Result<Value, String> {
        let cfg = lock(&self.config).clone();
        let gw = lock(&self.gateway);
        let gw = gw
            .as_ref()
            .ok_or("the gateway is not running (no [listener]); no key to rotate")?;
        let keys = key_provider(&cfg).map_err(|e| format!("keys rotate refused: {e:#}"))?;
        let mode = keys.mode();
        gw.rotate_keys(keys)
            .map_err(|e| format!("keys rotate refused: {e}"))?;
        info!(?mode, "TLS key rotated; new handshakes use the new key");
        Ok(json!({ "rotated": true, "mode": mode }))
    }

    fn thermal_status(&self) -> Value {
        let cfg = lock(&self.config).clone();
        json!({
            "status": self.thermal.status(),
            "thresholds": cfg.thermal,
            "sensors": SysfsRoot::new(&cfg.hw.sysfs_root).scan_temperatures(),
            "transitions": self.thermal_transitions.load(Ordering::Relaxed),
        })
    }

    fn thermal_override(&self, level: &str, for_secs: u64) -> Result<Value, String> {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.as_str() == level)
            .ok_or_else(|| {
                format!("unknown level {level:?}: use full, reduced, minimal or shed")
            })?;
        if for_secs == 0 || for_secs > 7 * 86_400 {
            return Err("override duration must be between 1 second and 7 days".into());
        }
        self.thermal
            .override_level(level, Instant::now() + Duration::from_secs(for_secs));
        warn!(
            level = level.as_str(),
            for_secs, "thermal level pinned by operator"
        );
        // The governor thread applies the override; wait briefly so status shows it.
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.thermal.status().override_level != Some(level) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(self.thermal_status())
    }

    /// The inspection level in force (one atomic load).
    pub fn inspection_level(&self) -> Level {
        self.thermal.level()
    }

    fn detach(&self) -> Result<Value, String> {
        let mut xdp = lock(&self.xdp);
        let Some(att) = xdp.take() else {
            return Err("XDP is not attached".into());
        };
        let root = lock(&self.config)
            .xdp
            .as_ref()
            .map(|x| x.pin_root.clone())
            .unwrap_or_default();
        let iface = att.iface.clone();
        drop(att);
        vigil_xdp::detach(&root, &iface).map_err(|e| e.to_string())?;
        warn!(%iface, "XDP program detached and pins removed on operator request");
        Ok(json!({ "detached": iface }))
    }

    fn sweep(&self) {
        let mut xdp = lock(&self.xdp);
        let Some(att) = xdp.as_mut() else { return };
        match att.maps.sweep_expired() {
            Ok(removed) => {
                for (list, e) in removed {
                    info!(list = ops::list_name(list), cidr = %e.cidr, reason = %e.reason, "rule expired");
                }
            }
            Err(e) => warn!(error = %e, "sweeping expired rules failed"),
        }
    }

    fn sweep_interval(&self) -> Duration {
        let ms = lock(&self.config)
            .xdp
            .as_ref()
            .map(|x| x.sweep_interval_ms)
            .unwrap_or(1000);
        Duration::from_millis(ms)
    }
}

fn mode_abi(mode: vigil_xdp::AttachedMode) -> u32 {
    match mode {
        vigil_xdp::AttachedMode::Native => vigil_xdp::abi::MODE_NATIVE,
        vigil_xdp::AttachedMode::Generic => vigil_xdp::abi::MODE_GENERIC,
        vigil_xdp::AttachedMode::Unknown => 0,
    }
}

fn attach(x: &XdpSection) -> anyhow::Result<Attachment> {
    let att = vigil_xdp::attach(&AttachOptions {
        iface: x.interface.clone(),
        pin_root: x.pin_root.clone(),
        mode: x.mode,
        rate: x.rate(),
        rate_table_size: x.rate_table_size,
    })?;
    if att.mode == vigil_xdp::AttachedMode::Generic {
        warn!(iface = %att.iface, "XDP runs in generic mode: drops cost an skb each");
    }
    Ok(att)
}

/// The key the TLS listener serves: TPM-backed when `[keys]` is set, else PEM files.
fn key_provider(cfg: &Config) -> anyhow::Result<Arc<dyn KeyProvider>> {
    match (&cfg.keys, &cfg.tls) {
        (Some(k), _) => Ok(vigil_hw::keys::provider(&k.dir, &k.tcti)?),
        (None, Some(tls)) => Ok(Arc::new(FileKeyProvider::new(&tls.cert, &tls.key))),
        (None, None) => anyhow::bail!("[listener] needs [tls] cert and key, or a [keys] directory"),
    }
}

/// Prometheus text for the XDP counters, appended to the gateway's /metrics.
fn xdp_metrics(daemon: &std::sync::Weak<Daemon>, out: &mut String) {
    use std::fmt::Write;
    let Some(d) = daemon.upgrade() else { return };
    let level = d.thermal.level();
    out.push_str(
        "# HELP vigil_inspection_level Inspection depth in force (1 for the current level).\n",
    );
    out.push_str("# TYPE vigil_inspection_level gauge\n");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "vigil_inspection_level{{level=\"{}\"}} {}",
            l.as_str(),
            u8::from(l == level)
        );
    }
    out.push_str("# HELP vigil_thermal_transitions_total Inspection level changes.\n");
    out.push_str("# TYPE vigil_thermal_transitions_total counter\n");
    let _ = writeln!(
        out,
        "vigil_thermal_transitions_total {}",
        d.thermal_transitions.load(Ordering::Relaxed)
    );
    let xdp = lock(&d.xdp);
    let Some(att) = xdp.as_ref() else { return };
    let Ok(c) = att.maps.counters() else { return };
    out.push_str(
        "# HELP vigil_xdp_packets_total Packets seen by the XDP program, by verdict reason.\n",
    );
    out.push_str("# TYPE vigil_xdp_packets_total counter\n");
    for r in vigil_xdp::abi::Reason::ALL {
        let _ = writeln!(
            out,
            "vigil_xdp_packets_total{{reason=\"{}\"}} {}",
            r.as_str(),
            c.get(r).packets
        );
    }
    out.push_str(
        "# HELP vigil_xdp_bytes_total Bytes seen by the XDP program, by verdict reason.\n",
    );
    out.push_str("# TYPE vigil_xdp_bytes_total counter\n");
    for r in vigil_xdp::abi::Reason::ALL {
        let _ = writeln!(
            out,
            "vigil_xdp_bytes_total{{reason=\"{}\"}} {}",
            r.as_str(),
            c.get(r).bytes
        );
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let daemon = Daemon::start(config_path)?;
    let cfg = lock(&daemon.config).clone();
    if let Some(gw_cfg) = cfg.gateway() {
        let keys = key_provider(&cfg)?;
        let mode = keys.mode();
        let gw = vigil_gateway::Gateway::start(gw_cfg, keys).await?;
        let weak = Arc::downgrade(&daemon);
        gw.add_metrics_source(Arc::new(move |out: &mut String| xdp_metrics(&weak, out)));
        info!(https = %gw.https_addr(), metrics = %gw.metrics_addr(), key = ?mode, "gateway serving");
        *lock(&daemon.gateway) = Some(gw);
    } else {
        info!("no [listener] section: the gateway is not running");
    }
    if let Some(fc) = cfg.fleet.clone() {
        let weak = Arc::downgrade(&daemon);
        let apply: fleet::Apply = Arc::new(move |ev: &fleet::Event| {
            if let Some(d) = weak.upgrade() {
                d.apply_fleet_event(ev);
            }
        });
        let f = Fleet::start(fc, apply);
        info!(box_id = f.box_id(), "fleet blocklist enabled");
        *lock(&daemon.fleet) = Some(f);
    }
    let socket = daemon.control_socket();
    let listener = control::serve(daemon.clone(), &socket).await?;
    info!(socket = %socket.display(), "control socket ready");

    let sweeper = {
        let d = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(d.sweep_interval());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                d.sweep();
            }
        })
    };

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = daemon.reload() { error!("{e}") }
            }
        }
    }
    info!("stopping; XDP pins stay in place so drops continue");
    sweeper.abort();
    listener.abort();
    let gw = lock(&daemon.gateway).take();
    if let Some(gw) = gw {
        gw.shutdown(Duration::from_secs(10)).await;
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
