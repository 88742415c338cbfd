//! Keys and the thermal governor, as the control socket exposes them.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tracing::{info, warn};
use vigil_hw::{
    keys::{FileKeyProvider, KeyProvider},
    thermal::{Level, SysfsRoot},
};

use super::{Daemon, lock};
use crate::config::Config;

impl Daemon {
    pub(super) fn rotate_keys(&self) -> Result<Value, String> {
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

    pub(super) fn thermal_status(&self) -> Value {
        let cfg = lock(&self.config).clone();
        json!({
            "status": self.thermal.status(),
            "thresholds": cfg.thermal,
            "sensors": SysfsRoot::new(&cfg.hw.sysfs_root).scan_temperatures(),
            "transitions": self.thermal_transitions.load(Ordering::Relaxed),
        })
    }

    pub(super) fn thermal_override(&self, level: &str, for_secs: u64) -> Result<Value, String> {
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
        self.settle_thermal(Some(level));
        Ok(self.thermal_status())
    }

    pub(super) fn thermal_clear(&self) -> Value {
        self.thermal.clear_override();
        info!("thermal override cleared by operator");
        self.settle_thermal(None);
        self.thermal_status()
    }

    /// The governor thread applies overrides; wait briefly so the reply already shows it.
    fn settle_thermal(&self, want: Option<Level>) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.thermal.status().override_level != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The inspection level in force (one atomic load).
    pub fn inspection_level(&self) -> Level {
        self.thermal.level()
    }
}

/// The key the TLS listener serves: TPM-backed when `[keys]` is set, else PEM files.
pub(crate) fn key_provider(cfg: &Config) -> anyhow::Result<Arc<dyn KeyProvider>> {
    match (&cfg.keys, &cfg.tls) {
        (Some(k), _) => Ok(vigil_hw::keys::provider(&k.dir, &k.tcti)?),
        (None, Some(tls)) => Ok(Arc::new(FileKeyProvider::new(&tls.cert, &tls.key))),
        (None, None) => anyhow::bail!("[listener] needs [tls] cert and key, or a [keys] directory"),
    }
}
