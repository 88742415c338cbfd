//! The `[thermal]` config section.

use std::time::Duration;

use super::level::Level;

/// Thermal governor settings. Every key is documented in `docs/hw.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalConfig {
    /// Temperature (°C) at or above which inspection drops to `reduced`.
    pub reduced_c: f64,
    /// Temperature (°C) at or above which inspection drops to `minimal`.
    pub minimal_c: f64,
    /// Temperature (°C) at or above which new work is shed.
    pub shed_c: f64,
    /// How far (°C) below a level's threshold the temperature must fall before leaving it.
    pub hysteresis_c: f64,
    /// How often the sensors are read, in milliseconds.
    pub poll_interval_ms: u64,
    /// Sensors to watch, by id (`thermal_zone0`, `hwmon1/temp2`), name
    /// (`coretemp/Package id 0`) or chip (`coretemp`). Empty: the maximum over all sensors.
    pub sensors: Vec<String>,
}

impl Default for ThermalConfig {
    fn default() -> Self {
        Self {
            reduced_c: 80.0,
            minimal_c: 90.0,
            shed_c: 95.0,
            hysteresis_c: 5.0,
            poll_interval_ms: 500,
            sensors: Vec::new(),
        }
    }
}

/// A `[thermal]` section that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThermalConfigError {
    /// A threshold is not a finite number.
    #[error("thermal.{key} = {value} is not a temperature; give degrees Celsius, e.g. 80")]
    NotFinite {
        /// The key.
        key: &'static str,
        /// Its value.
        value: f64,
    },
    /// Thresholds are not strictly increasing.
    #[error(
        "thermal thresholds must increase: reduced_c ({reduced}) < minimal_c ({minimal}) \
        < shed_c ({shed})"
    )]
    NotIncreasing {
        /// `reduced_c`.
        reduced: f64,
        /// `minimal_c`.
        minimal: f64,
        /// `shed_c`.
        shed: f64,
    },
    /// Hysteresis out of range.
    #[error("thermal.hysteresis_c = {value} must be between 0 and 30 °C")]
    Hysteresis {
        /// Its value.
        value: f64,
    },
    /// Poll interval out of range.
    #[error("thermal.poll_interval_ms = {value} must be between 50 and 60000")]
    PollInterval {
        /// Its value.
        value: u64,
    },
}

impl ThermalConfig {
    /// Checks the section before it is applied; a bad reload keeps the running config.
    pub fn validate(&self) -> Result<(), ThermalConfigError> {
        for (key, value) in [
            ("reduced_c", self.reduced_c),
            ("minimal_c", self.minimal_c),
            ("shed_c", self.shed_c),
            ("hysteresis_c", self.hysteresis_c),
        ] {
            if !value.is_finite() {
                return Err(ThermalConfigError::NotFinite { key, value });
            }
        }
        if !(self.reduced_c < self.minimal_c && self.minimal_c < self.shed_c) {
            return Err(ThermalConfigError::NotIncreasing {
                reduced: self.reduced_c,
                minimal: self.minimal_c,
                shed: self.shed_c,
            });
        }
        if !(0.0..=30.0).contains(&self.hysteresis_c) {
            return Err(ThermalConfigError::Hysteresis {
                value: self.hysteresis_c,
            });
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            return Err(ThermalConfigError::PollInterval {
                value: self.poll_interval_ms,
            });
        }
        Ok(())
    }

    /// The poll interval as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The temperature at which `level` is entered (`None` for `full`, which has none).
    pub fn threshold(&self, level: Level) -> Option<f64> {
        match level {
            Level::Full => None,
            Level::Reduced => Some(self.reduced_c),
            Level::Minimal => Some(self.minimal_c),
            Level::Shed => Some(self.shed_c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = ThermalConfig::default();
        c.validate().unwrap();
        assert_eq!((c.reduced_c, c.minimal_c, c.shed_c), (80.0, 90.0, 95.0));
        assert_eq!(c.poll_interval(), Duration::from_millis(500));
    }

    #[test]
    fn bad_sections_are_refused() {
        let bad = ThermalConfig {
            minimal_c: 70.0,
            ..ThermalConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ThermalConfigError::NotIncreasing { .. })
        ));
        let bad = ThermalConfig {
            shed_c: f64::NAN,
            ..ThermalConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ThermalConfigError::NotFinite { key: "shed_c", .. })
        ));
        let bad = ThermalConfig {
            hysteresis_c: -1.0,
            ..ThermalConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ThermalConfigError::Hysteresis { .. })
        ));
        let bad = ThermalConfig {
            poll_interval_ms: 1,
            ..ThermalConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ThermalConfigError::PollInterval { .. })
        ));
    }

    #[test]
    fn toml_section_fills_defaults_and_rejects_typos() {
        let c: ThermalConfig = toml::from_str("shed_c = 99.0\nsensors = [\"coretemp\"]").unwrap();
        assert_eq!((c.reduced_c, c.shed_c), (80.0, 99.0));
        assert_eq!(c.sensors, vec!["coretemp".to_owned()]);
        let err = toml::from_str::<ThermalConfig>("shed = 99.0").unwrap_err();
        assert!(err.to_string().contains("unknown field `shed`"), "{err}");
    }
}
