//! Keys and the thermal governor, as the control socket exposes them.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tracing::{info, warn};
use vigil_control::{
    ControlError, ErrorCode, Level, OverrideSecs,
    reply::{KeysRotated, Thermal},
};
use vigil_hw::{
    keys::{FileKeyProvider, KeyProvider},
    thermal::SysfsRoot,
};

use super::{Daemon, lock};
use crate::{
    config::Config,
    control::{hw_level, to_control},
};

impl Daemon {
    pub(super) fn rotate_keys(&self) -> Result<KeysRotated, ControlError> {
        let refused = |why: String| ControlError::new(ErrorCode::Refused, why);
        let cfg = lock(&self.config).clone();
        let gw = lock(&self.gateway);
        let gw = gw.as_ref().ok_or_else(|| {
            ControlError::new(
                ErrorCode::NotRunning,
                "the gateway is not running (no [listener]); no key to rotate",
            )
        })?;
        let keys =
            key_provider(&cfg).map_err(|e| refused(format!("keys rotate refused: {e:#}")))?;
        let mode = keys.mode();
        gw.rotate_keys(keys)
            .map_err(|e| refused(format!("keys rotate refused: {e}")))?;
        info!(?mode, "TLS key rotated; new handshakes use the new key");
        Ok(KeysRotated {
            rotated: true,
            mode: to_control(mode),
        })
    }

    pub(super) fn thermal_status(&self) -> Thermal {
        let cfg = lock(&self.config).clone();
        Thermal {
            status: to_control(self.thermal.status()),
            thresholds: to_control(cfg.thermal),
            sensors: to_control(SysfsRoot::new(&cfg.hw.sysfs_root).scan_temperatures()),
            transitions: self.thermal_transitions.load(Ordering::Relaxed),
        }
    }

    /// Both values were bounded when the request was parsed.
    pub(super) fn thermal_override(&self, level: Level, for_secs: OverrideSecs) -> Thermal {
        let level = hw_level(level);
        self.thermal
            .override_level(level, Instant::now() + for_secs.as_duration());
        warn!(
            level = level.as_str(),
            for_secs = for_secs.as_secs(),
            "thermal level pinned by operator"
        );
        self.settle_thermal(Some(level));
        self.thermal_status()
    }

    pub(super) fn thermal_clear(&self) -> Thermal {
        self.thermal.clear_override();
        info!("thermal override cleared by operator");
        self.settle_thermal(None);
        self.thermal_status()
    }

    /// The governor thread applies overrides; wait briefly so the reply already shows it.
    fn settle_thermal(&self, want: Option<vigil_hw::thermal::Level>) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.thermal.status().override_level != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The inspection level in force (one atomic load).
    pub fn inspection_level(&self) -> vigil_hw::thermal::Level {
        self.thermal.level()
    }
}

/// The key the TLS listener serves: TPM-backed when `[keys]` is set, else PEM files.
pub(crate) fn key_provider(cfg: &Config) -> anyhow::Result<Arc<dyn KeyProvider>> {
    match (&cfg.keys, &cfg.tls) {
        (Some(k), _) => Ok(vigil_hw::keys::provider_with_policy(
            &k.dir,
            &k.tcti,
            k.pcr_policy.as_deref(),
        )?),
        (None, Some(tls)) => Ok(Arc::new(FileKeyProvider::new(&tls.cert, &tls.key))),
        (None, None) => anyhow::bail!("[listener] needs [tls] cert and key, or a [keys] directory"),
    }
}
