//! The daemon's state and lifecycle: attach (or adopt) XDP, sweep expired rules, serve the
//! control socket, reload on SIGHUP, and exit on SIGTERM leaving the pins so drops go on.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};
use vigil_xdp::{AttachOptions, Attachment, List, abi::RULE_F_CONFIG};

use crate::{
    config::{Config, XdpSection},
    control::{
        self,
        ops::{self, OpError},
        proto::{Reply, Request},
    },
};

#[derive(Debug)]
pub struct Daemon {
    config_path: PathBuf,
    config: Mutex<Config>,
    xdp: Mutex<Option<Attachment>>,
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
        let daemon = Arc::new(Daemon {
            config_path,
            config: Mutex::new(config),
            xdp: Mutex::new(xdp),
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
        if let (Some(section), Some(att)) = (&new.xdp, lock(&self.xdp).as_mut()) {
            let mode = att.mode;
            att.maps
                .set_config(section.rate(), mode_abi(mode))
                .map_err(|e| format!("reload failed applying the rate limit: {e}"))?;
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
            } => self.with_maps(|m| {
                let r = ops::rule_add(m, list, &cidr, ttl_secs, reason.as_deref(), 0)?;
                info!(list = ops::list_name(list), %cidr, ?ttl_secs, "rule added");
                Ok(r)
            }),
            Request::RuleDel { list, cidr } => self.with_maps(|m| {
                let r = ops::rule_del(m, list, &cidr)?;
                info!(list = ops::list_name(list), %cidr, "rule removed");
                Ok(r)
            }),
            Request::RuleList { list } => self.with_maps(|m| ops::rule_list(m, list)),
            Request::Stats => self.with_maps(|m| ops::stats(m)),
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
        json!({
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

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let daemon = Daemon::start(config_path)?;
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
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
