//! Virtual patches: the config's `[[patch]]` and the ones added at run time (kept in
//! `[patches] store`), compiled into one set the gateway's patch stage reads. A `ban` hit
//! goes through the same path as an auto-ban: an XDP block for the patch's `ban_ttl`, shared
//! with the fleet.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tracing::{info, warn};
use vigil_control::{
    ControlError, ErrorCode,
    reply::{PatchInfo, PatchRemoved, Patches},
};
use vigil_patch::{Patch, PatchSet, rule::unix_now, store::Store};

use super::{Daemon, lock};

fn failed(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Failed, e.to_string())
}

fn refused(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Invalid, e.to_string())
}

impl Daemon {
    fn patch_store(&self) -> Store {
        let path = lock(&self.config).patches.store.clone();
        Store::at(path)
    }

    /// Reads the patches kept by an earlier run. A damaged file stops the start: patches
    /// are never dropped silently.
    pub(super) fn load_runtime_patches(&self) -> anyhow::Result<()> {
        let store = self.patch_store();
        let patches = store.load()?;
        let now = unix_now();
        for p in &patches {
            let checked = p.check(None)?;
            if checked.expires_unix <= now {
                warn!(patch = %p.id, note = %p.note, "virtual patch has expired: it matches nothing; remove it (vigilctl patch del) or add it again with a new expiry");
                lock(&self.expired_patches).insert(p.id.clone());
            }
        }
        if !patches.is_empty() {
            info!(count = patches.len(), store = %store.path().display(), "virtual patches loaded");
        }
        *lock(&self.runtime_patches) = patches;
        Ok(())
    }

    /// Compiles the config's and the run-time patches and hands them to the gateway.
    pub(super) fn apply_patches(&self) -> Result<(), ControlError> {
        let config = lock(&self.config).patch.clone();
        let runtime = lock(&self.runtime_patches).clone();
        let mut checked = Vec::with_capacity(config.len() + runtime.len());
        for p in config.iter().chain(runtime.iter()) {
            checked.push(p.check(None).map_err(refused)?);
        }
        let gw = lock(&self.gateway);
        let Some(gw) = gw.as_ref() else {
            return Ok(());
        };
        let old = gw.patches();
        let set = PatchSet::compile(checked, Some(&old)).map_err(refused)?;
        gw.set_patches(set).map_err(failed)?;
        Ok(())
    }

    /// What the gateway calls on a `ban` hit (set once the gateway runs).
    pub(super) fn patch_ban_hook(self: &Arc<Self>) -> vigil_gateway::PatchBan {
        let weak = Arc::downgrade(self);
        Arc::new(move |source: IpAddr, id: &str, ttl: Duration| {
            if let Some(d) = weak.upgrade() {
                d.ban_source(source, &format!("virtual patch {id}"), ttl);
            }
        })
    }

    /// Logs, once each, the patches that expired since the last call (the sweep calls it
    /// every second): a temporary measure must not end unnoticed.
    pub(super) fn announce_expired_patches(&self) {
        let Some(set) = lock(&self.gateway).as_ref().map(|gw| gw.patches()) else {
            return;
        };
        let now = unix_now();
        let mut seen = lock(&self.expired_patches);
        for (c, hits) in set.patches() {
            if c.expires_unix <= now && seen.insert(c.patch.id.clone()) {
                warn!(
                    patch = %c.patch.id, note = %c.patch.note, expired = %c.patch.expires,
                    hits = hits.count.load(std::sync::atomic::Ordering::Relaxed),
                    "virtual patch expired: it matches nothing now; remove it (vigilctl patch del, or from the config) or add it again with a new expiry"
                );
            }
        }
    }

    fn require_gateway(&self) -> Result<(), ControlError> {
        if lock(&self.gateway).is_none() {
            return Err(ControlError::new(
                ErrorCode::NotRunning,
                "the gateway is not running (no [listener] section): virtual patches apply to \
                 its requests",
            ));
        }
        Ok(())
    }

    pub(super) fn patch_add(&self, mut patch: Patch) -> Result<Patches, ControlError> {
        self.require_gateway()?;
        patch.created = unix_now();
        patch.check(Some(patch.created)).map_err(refused)?;
        let taken = lock(&self.config).patch.iter().any(|p| p.id == patch.id)
            || lock(&self.runtime_patches).iter().any(|p| p.id == patch.id);
        if taken {
            return Err(refused(vigil_patch::PatchError::Exists { id: patch.id }));
        }
        let before = lock(&self.runtime_patches).clone();
        let mut after = before.clone();
        after.push(patch.clone());
        *lock(&self.runtime_patches) = after.clone();
        if let Err(e) = self.apply_patches() {
            *lock(&self.runtime_patches) = before;
            return Err(e);
        }
        if let Err(e) = self.patch_store().save(&after) {
            // Not kept, so not applied either: a restart would silently lose it.
            *lock(&self.runtime_patches) = before;
            let _ = self.apply_patches();
            return Err(failed(e));
        }
        info!(patch = %patch.id, action = patch.action.as_str(), expires = %patch.expires, note = %patch.note, "virtual patch added");
        self.patch_list(Some(&patch.id))
    }

    pub(super) fn patch_del(&self, id: &str) -> Result<PatchRemoved, ControlError> {
        self.require_gateway()?;
        if lock(&self.config).patch.iter().any(|p| p.id == id) {
            return Err(refused(format!(
                "patch {id} comes from the config file: remove its [[patch]] there and reload"
            )));
        }
        let before = lock(&self.runtime_patches).clone();
        let after: Vec<Patch> = before.iter().filter(|p| p.id != id).cloned().collect();
        if after.len() == before.len() {
            return Err(ControlError::new(
                ErrorCode::NoSuchRule,
                vigil_patch::PatchError::NoSuch { id: id.to_owned() }.to_string(),
            ));
        }
        self.patch_store().save(&after).map_err(failed)?;
        *lock(&self.runtime_patches) = after;
        self.apply_patches()?;
        info!(patch = %id, "virtual patch removed");
        Ok(PatchRemoved {
            removed: id.to_owned(),
        })
    }

    /// Every patch (or the one named), with its hits.
    pub(super) fn patch_list(&self, only: Option<&str>) -> Result<Patches, ControlError> {
        self.require_gateway()?;
        let set = lock(&self.gateway)
            .as_ref()
            .map(|gw| gw.patches())
            .unwrap_or_default();
        let config_ids: Vec<String> = lock(&self.config)
            .patch
            .iter()
            .map(|p| p.id.clone())
            .collect();
        let now = unix_now();
        let patches: Vec<PatchInfo> = set
            .patches()
            .filter(|(c, _)| only.is_none_or(|id| c.patch.id == id))
            .map(|(c, hits)| {
                let last = hits.last_unix.load(std::sync::atomic::Ordering::Relaxed);
                PatchInfo {
                    patch: c.patch.clone(),
                    source: if config_ids.contains(&c.patch.id) {
                        "config".into()
                    } else {
                        "runtime".into()
                    },
                    expired: c.expires_unix <= now,
                    expires_unix: c.expires_unix,
                    hits: hits.count.load(std::sync::atomic::Ordering::Relaxed),
                    last_hit_unix: (last > 0).then_some(last),
                }
            })
            .collect();
        if let (Some(id), true) = (only, patches.is_empty()) {
            return Err(ControlError::new(
                ErrorCode::NoSuchRule,
                vigil_patch::PatchError::NoSuch { id: id.to_owned() }.to_string(),
            ));
        }
        Ok(Patches { patches })
    }
}
