//! The daemon's lifecycle: start, serve, reload on SIGHUP, stop on SIGTERM.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use super::{Daemon, key_provider, lock, metrics::daemon_metrics, notify};
use crate::{
    control,
    fleet::{self, Fleet},
};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let daemon = Daemon::start(config_path)?;
    let (socket, listener) = match bring_up(&daemon).await {
        Ok(up) => up,
        // A key that cannot be loaded (sealed to another boot state, TPM missing) will not
        // come back by restarting: the box keeps its XDP protection while the gateway is down,
        // fail-closed for the sources it blocks, and a restart adopts the attachment.
        Err(e) if is_key_failure(&e) => {
            error!(
                error = %e,
                "the TLS key could not be loaded: the gateway stays down; XDP stays attached and \
                 keeps dropping"
            );
            return Err(e);
        }
        Err(e) => {
            daemon.undo_fresh_attach();
            return Err(e);
        }
    };
    serve(daemon, socket, listener).await
}

fn is_key_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<vigil_hw::keys::KeyError>().is_some()
        || matches!(
            e.downcast_ref::<vigil_gateway::GatewayError>(),
            Some(vigil_gateway::GatewayError::Keys { .. })
        )
}

/// Starts the gateway, the fleet and the control socket on a started daemon.
async fn bring_up(daemon: &Arc<Daemon>) -> anyhow::Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let daemon = daemon.clone();
    let cfg = lock(&daemon.config).clone();
    if let Some(gw_cfg) = cfg.gateway() {
        let keys = key_provider(&cfg)?;
        let mode = keys.mode();
        let gw = vigil_gateway::Gateway::start(gw_cfg, keys).await?;
        let weak = Arc::downgrade(&daemon);
        gw.add_metrics_source(Arc::new(
            move |out: &mut vigil_gateway::Exposition<'_, '_>| daemon_metrics(&weak, out),
        ));
        let weak = Arc::downgrade(&daemon);
        gw.add_readiness_check(Arc::new(move || {
            weak.upgrade().map_or_else(
                || Some("vigild is stopping".to_owned()),
                |d| d.xdp_missing(),
            )
        }));
        // Each request reads the governor's level: one atomic load.
        let weak = Arc::downgrade(&daemon);
        gw.set_depth_source(Arc::new(move || {
            weak.upgrade()
                .map_or(vigil_hw::thermal::Level::Full, |d| d.inspection_level())
        }));
        // Level changes go to the audit log beside the decisions they affect.
        let weak = Arc::downgrade(&daemon);
        *lock(&daemon.thermal_audit) = Some(Box::new(move |ev| {
            let Some(d) = weak.upgrade() else { return };
            let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(ev) else {
                return;
            };
            if let Some(gw) = lock(&d.gateway).as_ref() {
                gw.audit_event("thermal_transition", fields);
            }
        }));
        // Every decision feeds auto-ban; it only takes a lock and, on a ban, one map write.
        let weak = Arc::downgrade(&daemon);
        gw.add_decision_observer(Arc::new(move |d: &vigil_gateway::Decision<'_>| {
            if let Some(daemon) = weak.upgrade() {
                daemon.observe_decision(d.client.ip(), d.ja4, d.status, d.reason);
            }
        }));
        gw.set_patch_ban(daemon.patch_ban_hook());
        info!(https = %gw.https_addr(), metrics = %gw.metrics_addr(), key = ?mode, "gateway serving");
        *lock(&daemon.gateway) = Some(gw);
        daemon
            .apply_patches()
            .map_err(|e| anyhow::anyhow!("virtual patches: {e}"))?;
    } else {
        info!("no [listener] section: the gateway is not running");
    }
    if let Some(fc) = cfg.fleet.clone() {
        let weak = Arc::downgrade(&daemon);
        let apply: fleet::Apply = Arc::new(move |from: &str, ev: &fleet::Event| {
            if let Some(d) = weak.upgrade() {
                d.apply_fleet_event(from, ev);
            }
        });
        let mut f = Fleet::start(fc, apply).map_err(|(key, e)| anyhow::anyhow!("{key}: {e}"))?;
        info!(box_id = f.box_id(), "fleet blocklist enabled");
        if let Some(gw) = lock(&daemon.gateway).as_ref() {
            // Set even without a shared rule yet: a reload may add one, and `[fleet]` itself
            // cannot change without a restart.
            let store = f.start_buckets();
            gw.set_shared_buckets(Arc::new(store.clone()));
            gw.add_metrics_source(Arc::new(
                move |out: &mut vigil_gateway::Exposition<'_, '_>| store.write_metrics(out),
            ));
            let link = f.clone();
            gw.add_metrics_source(Arc::new(
                move |out: &mut vigil_gateway::Exposition<'_, '_>| link.write_metrics(out),
            ));
        }
        *lock(&daemon.fleet) = Some(f);
    }
    let socket = daemon.control_socket();
    let listener = control::serve(daemon.clone(), &socket).await?;
    info!(socket = %socket.display(), "control socket ready");
    Ok((socket, listener))
}

/// Serves until SIGTERM or SIGINT.
async fn serve(
    daemon: Arc<Daemon>,
    socket: PathBuf,
    listener: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    // Everything a start does is done: XDP attached, key loaded, policy compiled, listeners
    // bound, control socket up.
    notify::notify_or_warn(&format!(
        "READY=1\nMAINPID={}\nSTATUS=serving",
        std::process::id()
    ));
    // The watchdog is fed from a task of the runtime: a runtime that stops scheduling stops
    // feeding it, and systemd restarts vigild (XDP keeps dropping meanwhile).
    let watchdog = notify::watchdog_every().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify::notify_or_warn("WATCHDOG=1");
            }
        })
    });

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
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notify::notify_or_warn("RELOADING=1");
                if let Err(e) = daemon.reload() { error!("{e}") }
                notify::notify_or_warn("READY=1");
            }
            // SIGUSR1, as for nginx: reopen the audit file after logrotate moved it.
            _ = usr1.recv() => {
                if let Some(gw) = lock(&daemon.gateway).as_ref() {
                    gw.reopen_audit();
                }
            }
        }
    }
    info!("stopping; XDP pins stay in place so drops continue");
    notify::notify_or_warn("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    sweeper.abort();
    listener.abort();
    let gw = lock(&daemon.gateway).take();
    if let Some(gw) = gw {
        gw.shutdown(Duration::from_secs(10)).await;
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
