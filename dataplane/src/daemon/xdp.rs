//! The XDP side of the daemon: attaching, config rules, the expiry sweep, detaching.

use std::{
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracing::{info, warn};
use vigil_control::{
    ControlError, ErrorCode, XdpAttached, ops,
    ops::OpError,
    reply::{Detached, Status, XdpReport},
};
use vigil_xdp::{
    AttachOptions, Attachment, List, RuleEntry,
    abi::{RULE_F_AUTO, RULE_F_CONFIG},
};

use super::{Daemon, lock, syn_proxy};
use crate::config::XdpSection;

/// The operator's and auto-ban rules of a program detached by `xdp detach`, kept until
/// `xdp attach` puts them back, so an attach undoes a detach. Config rules come back from the
/// config; rules learned from the fleet are left to the fleet (they may have been deleted
/// meanwhile). One daemon per process, so one slot.
static DETACHED_RULES: Mutex<Vec<(List, RuleEntry)>> = Mutex::new(Vec::new());

impl Daemon {
    /// Replaces the rules that came from the config file with the current file's lists.
    pub(super) fn sync_config_rules(&self) -> Result<(), OpError> {
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
            // One rebuild of the lookup tables for the whole list.
            att.maps
                .insert_many(list, &wanted, "config", RULE_F_CONFIG)?;
        }
        apply_syn_guard(att, section.syn_guard.as_ref().map(|g| g.guard()).as_ref())
    }

    /// `xdp.pin_root` of the config in force.
    fn pin_root(&self) -> std::path::PathBuf {
        lock(&self.config)
            .xdp
            .as_ref()
            .map(|x| x.pin_root.clone())
            .unwrap_or_default()
    }

    pub(super) fn with_maps<T>(
        &self,
        f: impl FnOnce(&mut vigil_xdp::VigilMaps) -> Result<T, OpError>,
    ) -> Result<T, ControlError> {
        let mut xdp = lock(&self.xdp);
        let att = xdp.as_mut().ok_or_else(|| {
            ControlError::new(
                ErrorCode::NotAttached,
                "XDP is not attached (no [xdp] section, or detached); nothing to do",
            )
        })?;
        Ok(f(&mut att.maps)?)
    }

    /// A start that failed after attaching XDP: a program this start attached (not one it
    /// adopted from an earlier run, whose drops must go on) is detached and its pins removed, so
    /// nothing half-started stays behind.
    pub(super) fn undo_fresh_attach(&self) {
        let mut xdp = lock(&self.xdp);
        if xdp.as_ref().is_none_or(|a| a.adopted) {
            return;
        }
        let Some(att) = xdp.take() else { return };
        let root = self.pin_root();
        let iface = att.iface.clone();
        remove_syn_guard(&att);
        drop(att);
        match vigil_xdp::detach(&root, &iface) {
            Ok(_) => warn!(%iface, "start failed: the XDP program it attached was detached again"),
            Err(e) => warn!(%iface, error = %e, "start failed, and detaching XDP failed too"),
        }
    }

    pub(super) fn detach(&self) -> Result<Detached, ControlError> {
        let mut xdp = lock(&self.xdp);
        let Some(att) = xdp.take() else {
            return Err(ControlError::new(
                ErrorCode::NotAttached,
                "XDP is not attached",
            ));
        };
        let root = self.pin_root();
        let iface = att.iface.clone();
        let mut kept = Vec::new();
        for list in [List::Block, List::Allow] {
            match att.maps.list(list) {
                Ok(rules) => kept.extend(
                    rules
                        .into_iter()
                        .filter(|r| !r.from_config && r.fleet_box.is_none())
                        .map(|r| (list, r)),
                ),
                Err(e) => warn!(error = %e, "reading the rules to keep across a detach failed"),
            }
        }
        *lock(&DETACHED_RULES) = kept;
        remove_syn_guard(&att);
        drop(att);
        vigil_xdp::detach(&root, &iface)
            .map_err(|e| ControlError::new(ErrorCode::Failed, e.to_string()))?;
        warn!(%iface, "XDP program detached and pins removed on operator request");
        Ok(Detached { detached: iface })
    }

    /// Attaches the program of `[xdp]` again after `xdp detach`: the config's rules are
    /// applied again and the rules the detach removed (not yet expired) are put back.
    pub(super) fn reattach(&self) -> Result<XdpAttached, ControlError> {
        let Some(section) = lock(&self.config).xdp.clone() else {
            return Err(ControlError::new(
                ErrorCode::NotAttached,
                "the configuration has no [xdp] section: nothing to attach (add one and \
                 restart vigild)",
            ));
        };
        {
            let mut xdp = lock(&self.xdp);
            if let Some(att) = xdp.as_ref() {
                return Ok(XdpAttached {
                    attached: att.iface.clone(),
                    mode: att.mode,
                    already: true,
                    restored: 0,
                });
            }
            let att = attach(&section)
                .map_err(|e| ControlError::new(ErrorCode::Failed, format!("{e:#}")))?;
            *xdp = Some(att);
        }
        self.sync_config_rules().map_err(|e| {
            ControlError::new(
                ErrorCode::Failed,
                format!("attached, but applying the config's rules failed: {e}"),
            )
        })?;
        let mut xdp = lock(&self.xdp);
        let att = xdp.as_mut().ok_or_else(|| {
            ControlError::new(ErrorCode::Failed, "detached again while attaching")
        })?;
        let restored = restore(&mut att.maps);
        warn!(iface = %att.iface, restored, "XDP program attached again on operator request");
        Ok(XdpAttached {
            attached: att.iface.clone(),
            mode: att.mode,
            already: false,
            restored,
        })
    }

    /// A status whose XDP side is empty although `[xdp]` is configured was detached by an
    /// operator: say so, rather than look like a box without XDP.
    pub(super) fn mark_detached(&self, mut status: Status) -> Status {
        if status.xdp.is_none() {
            if let Some(x) = lock(&self.config).xdp.as_ref() {
                status.xdp = Some(XdpReport::Detached {
                    detached: x.interface.clone(),
                });
            }
        }
        status
    }

    pub(super) fn sweep(&self) {
        self.announce_expired_patches();
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

    pub(super) fn sweep_interval(&self) -> Duration {
        lock(&self.config)
            .xdp
            .as_ref()
            .map_or(Duration::from_secs(1), |x| x.sweep_interval())
    }
}

/// Turns the SYN guard on, changes it or turns it off. Netfilter's SYN proxy goes in before
/// XDP hands it cookie ACKs, and goes out after XDP stops.
fn apply_syn_guard(
    att: &mut Attachment,
    guard: Option<&vigil_xdp::SynGuard>,
) -> Result<(), OpError> {
    match guard {
        Some(g) => {
            syn_proxy::install(&att.iface, g).map_err(|e| {
                OpError::Xdp(vigil_xdp::XdpError::Invalid {
                    what: format!("{e:#}"),
                })
            })?;
            att.maps.set_syn_guard(Some(g))?;
        }
        None => {
            if att.maps.config()?.syn_guards > 0 {
                att.maps.set_syn_guard(None)?;
                syn_proxy::remove(&att.iface);
                info!(iface = %att.iface, "SYN guard off");
            }
        }
    }
    Ok(())
}

/// Before a detach: the guard's netfilter half goes with the program.
fn remove_syn_guard(att: &Attachment) {
    if att.maps.config().is_ok_and(|c| c.syn_guards > 0) {
        syn_proxy::remove(&att.iface);
    }
}

/// Puts back the rules [`DETACHED_RULES`] kept, with the time they had left; returns how many.
fn restore(maps: &mut vigil_xdp::VigilMaps) -> usize {
    let kept = std::mem::take(&mut *lock(&DETACHED_RULES));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut restored = 0;
    for (list, r) in kept {
        let ttl = match r.expires_unix {
            None => None,
            Some(t) if t <= now => continue, // expired while detached
            Some(t) => Some(Duration::from_secs(t - now)),
        };
        let flags = if r.auto { RULE_F_AUTO } else { 0 };
        match maps.insert(list, r.cidr, ttl, &r.reason, flags) {
            Ok(()) => restored += 1,
            Err(e) => warn!(cidr = %r.cidr, error = %e, "restoring a rule after attach failed"),
        }
    }
    restored
}

pub(super) fn mode_abi(mode: vigil_xdp::AttachedMode) -> u32 {
    match mode {
        vigil_xdp::AttachedMode::Native => vigil_xdp::abi::MODE_NATIVE,
        vigil_xdp::AttachedMode::Generic => vigil_xdp::abi::MODE_GENERIC,
        vigil_xdp::AttachedMode::Unknown => 0,
    }
}

pub(super) fn attach(x: &XdpSection) -> anyhow::Result<Attachment> {
    let att = vigil_xdp::attach(&AttachOptions {
        iface: x.interface.clone(),
        pin_root: x.pin_root.clone(),
        mode: x.mode,
        rate: x.rate(),
        rate_table_size: x.rate_table_size,
        // Applied with the config's rules, once netfilter's SYN proxy is in place.
        syn_guard: None,
        load_syn_guard: x.syn_guard.is_some(),
    })?;
    if att.mode == vigil_xdp::AttachedMode::Generic {
        warn!(iface = %att.iface, "XDP runs in generic mode: drops cost an skb each");
    }
    Ok(att)
}
