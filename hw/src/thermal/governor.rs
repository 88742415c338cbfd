//! The inspection-depth governor: temperature in, level out.
//!
//! Pure logic driven by [`Governor::observe`] with an explicit clock, so tests step through
//! every state without sleeping. [`Governor::poll`] adds the sensor read; `runner.rs` wraps it
//! in a thread for the daemon.

use std::time::Instant;

use super::config::ThermalConfig;
use super::level::{Level, TransitionEvent, TransitionReason};
use super::sysfs::{SensorError, SensorScan, SysfsRoot};

/// What `vigilctl status` shows about the governor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GovernorStatus {
    /// The level in force.
    pub level: Level,
    /// The level the temperature alone would give.
    pub thermal_level: Level,
    /// The temperature last used (°C).
    pub temperature_c: Option<f64>,
    /// How many sensors fed the last reading.
    pub sensors: usize,
    /// Sensors that exist but failed to read at the last poll.
    pub sensor_errors: Vec<String>,
    /// The level forced by an operator, if an override is active.
    pub override_level: Option<Level>,
    /// Milliseconds until the override expires.
    pub override_remaining_ms: Option<u64>,
    /// One line for humans.
    pub message: String,
}

/// Temperature-driven level with hysteresis and an expiring manual override.
#[derive(Debug, Clone)]
pub struct Governor {
    config: ThermalConfig,
    thermal: Level,
    temperature: Option<f64>,
    sensors: usize,
    sensor_errors: Vec<SensorError>,
    manual: Option<(Level, Instant)>,
    last_now: Option<Instant>,
}

impl Governor {
    /// A governor at `full`. The config should have passed [`ThermalConfig::validate`].
    pub fn new(config: ThermalConfig) -> Self {
        Self {
            config,
            thermal: Level::Full,
            temperature: None,
            sensors: 0,
            sensor_errors: Vec::new(),
            manual: None,
            last_now: None,
        }
    }

    /// The config in use.
    pub fn config(&self) -> &ThermalConfig {
        &self.config
    }

    /// Replaces the config; the current levels are kept until the next observation.
    pub fn set_config(&mut self, config: ThermalConfig) {
        self.config = config;
    }

    /// The level in force (the override if one is active, else the thermal level).
    pub fn level(&self) -> Level {
        self.manual.map_or(self.thermal, |(level, _)| level)
    }

    /// Feeds one temperature (°C; `None` when no sensor could be read) at time `now`.
    /// Returns the transition, if the level in force changed.
    pub fn observe(&mut self, temperature: Option<f64>, now: Instant) -> Option<TransitionEvent> {
        let before = self.level();
        self.last_now = Some(now);
        self.temperature = temperature;
        // Without a reading the thermal level is kept: dropping from shed to full because a
        // sensor vanished would be the wrong way to fail. At start (no sensors) that is full.
        if let Some(t) = temperature {
            self.thermal = self.next_thermal_level(t);
        }
        let mut reason = None;
        if let Some((_, until)) = self.manual {
            if now >= until {
                self.manual = None;
                reason = Some(TransitionReason::OverrideExpired);
            }
        }
        let after = self.level();
        if before == after {
            return None;
        }
        let reason = reason.unwrap_or(if after > before {
            TransitionReason::TemperatureRose
        } else {
            TransitionReason::TemperatureFell
        });
        Some(self.event(before, after, reason))
    }

    /// Forces `level` until `until`; the override ends by itself at the first observation
    /// after that instant.
    pub fn override_level(&mut self, level: Level, until: Instant) -> Option<TransitionEvent> {
        let before = self.level();
        self.manual = Some((level, until));
        (before != level).then(|| self.event(before, level, TransitionReason::OverrideSet))
    }

    /// Cancels an active override; the thermal level applies again at once.
    pub fn clear_override(&mut self) -> Option<TransitionEvent> {
        let before = self.level();
        self.manual = None;
        let after = self.level();
        (before != after).then(|| self.event(before, after, TransitionReason::OverrideCleared))
    }

    /// Reads the sensors under `root`, picks the configured ones and observes their maximum.
    pub fn poll(&mut self, root: &SysfsRoot, now: Instant) -> Option<TransitionEvent> {
        let scan = root.scan_temperatures();
        let (temperature, used) = self.select(&scan);
        self.sensors = used;
        self.sensor_errors = scan.errors;
        self.observe(temperature, now)
    }

    /// The maximum temperature over the selected sensors, and how many were selected.
    fn select(&self, scan: &SensorScan) -> (Option<f64>, usize) {
        let wanted = &self.config.sensors;
        let chosen = scan.readings.iter().filter(|r| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| *w == r.id || *w == r.name || *w == r.chip)
        });
        chosen.fold((None, 0), |(max, n), r| {
            let max = match max {
                Some(m) if m >= r.celsius => Some(m),
                _ => Some(r.celsius),
            };
            (max, n + 1)
        })
    }

    /// Current state for `vigilctl status`.
    pub fn status(&self) -> GovernorStatus {
        let remaining = match (self.manual, self.last_now) {
            (Some((_, until)), Some(now)) => Some(until.saturating_duration_since(now)),
            (Some((_, until)), None) => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        };
        let message = match (self.manual, self.temperature) {
            (Some((level, _)), _) => format!("level {level} forced by operator"),
            (None, None) if self.sensors == 0 && self.sensor_errors.is_empty() => {
                format!("no temperature sensors found; level stays {}", self.thermal)
            }
            (None, None) => format!(
                "no sensor readable ({} errors); level stays {}",
                self.sensor_errors.len(),
                self.thermal
            ),
            (None, Some(t)) => format!("{t:.1} °C over {} sensors: {}", self.sensors, self.thermal),
        };
        GovernorStatus {
            level: self.level(),
            thermal_level: self.thermal,
            temperature_c: self.temperature,
            sensors: self.sensors,
            sensor_errors: self.sensor_errors.iter().map(ToString::to_string).collect(),
            override_level: self.manual.map(|(l, _)| l),
            override_remaining_ms: remaining
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            message,
        }
    }

    /// Rising: jump straight to the hottest level whose threshold is reached. Falling: leave a
    /// level only once the temperature is `hysteresis_c` below its threshold, possibly several
    /// levels at once.
    fn next_thermal_level(&self, t: f64) -> Level {
        let reached = Level::ALL
            .into_iter()
            .filter(|l| self.config.threshold(*l).is_none_or(|th| t >= th))
            .max()
            .unwrap_or(Level::Full);
        if reached >= self.thermal {
            return reached;
        }
        let hyst = self.config.hysteresis_c;
        Level::ALL
            .into_iter()
            .filter(|l| *l <= self.thermal)
            .filter(|l| self.config.threshold(*l).is_none_or(|th| t > th - hyst))
            .max()
            .unwrap_or(Level::Full)
    }

    fn event(&self, from: Level, to: Level, reason: TransitionReason) -> TransitionEvent {
        TransitionEvent {
            from,
            to,
            temperature_c: self.temperature,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::test_support::put;

    fn gov() -> Governor {
        Governor::new(ThermalConfig::default())
    }

    /// Feeds a temperature sequence and returns the level after each step.
    fn run(g: &mut Governor, temps: &[f64]) -> Vec<Level> {
        let now = Instant::now();
        temps
            .iter()
            .map(|t| {
                g.observe(Some(*t), now);
                g.level()
            })
            .collect()
    }

    #[test]
    fn steps_up_and_down_through_every_level_with_hysteresis() {
        use Level::*;
        let mut g = gov();
        let temps = [
            60.0, 80.0, 85.0, 90.0, 94.9, 95.0, 92.0, 90.1, 89.9, 85.1, 85.0, 80.0, 75.1, 75.0,
            60.0,
        ];
        let expected = [
            Full, Reduced, Reduced, Minimal, Minimal, Shed, Shed, Shed, Minimal, Minimal, Reduced,
            Reduced, Reduced, Full, Full,
        ];
        assert_eq!(run(&mut g, &temps), expected);
    }

    #[test]
    fn jumps_skip_levels_and_report_one_event() {
        let mut g = gov();
        let now = Instant::now();
        let ev = g.observe(Some(99.0), now).unwrap();
        assert_eq!((ev.from, ev.to), (Level::Full, Level::Shed));
        assert_eq!(ev.reason, TransitionReason::TemperatureRose);
        assert_eq!(ev.temperature_c, Some(99.0));
        assert_eq!(g.observe(Some(97.0), now), None);
        let ev = g.observe(Some(40.0), now).unwrap();
        assert_eq!((ev.from, ev.to), (Level::Shed, Level::Full));
        assert_eq!(ev.reason, TransitionReason::TemperatureFell);
    }

    #[test]
    fn override_holds_then_expires_by_itself() {
        let mut g = gov();
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(60);
        let ev = g.override_level(Level::Minimal, until).unwrap();
        assert_eq!(
            (ev.from, ev.to, ev.reason),
            (Level::Full, Level::Minimal, TransitionReason::OverrideSet)
        );
        // Temperature changes are tracked but do not move the level while forced.
        assert_eq!(g.observe(Some(96.0), t0 + Duration::from_secs(1)), None);
        assert_eq!(g.level(), Level::Minimal);
        let st = g.status();
        assert_eq!(st.thermal_level, Level::Shed);
        assert_eq!(st.override_remaining_ms, Some(59_000));
        let ev = g.observe(Some(96.0), until).unwrap();
        assert_eq!((ev.from, ev.to), (Level::Minimal, Level::Shed));
        assert_eq!(ev.reason, TransitionReason::OverrideExpired);
        assert_eq!(g.status().override_level, None);
    }

    #[test]
    fn clearing_an_override_restores_the_thermal_level() {
        let mut g = gov();
        let now = Instant::now();
        g.observe(Some(82.0), now);
        g.override_level(Level::Full, now + Duration::from_secs(5));
        assert_eq!(g.level(), Level::Full);
        let ev = g.clear_override().unwrap();
        assert_eq!(
            (ev.to, ev.reason),
            (Level::Reduced, TransitionReason::OverrideCleared)
        );
        assert_eq!(g.clear_override(), None);
    }

    #[test]
    fn no_sensors_stays_full_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = gov();
        assert_eq!(g.poll(&SysfsRoot::new(dir.path()), Instant::now()), None);
        let st = g.status();
        assert_eq!(
            (st.level, st.sensors, st.temperature_c),
            (Level::Full, 0, None)
        );
        assert!(
            st.message.contains("no temperature sensors"),
            "{}",
            st.message
        );
    }

    #[test]
    fn poll_takes_the_maximum_of_selected_sensors_and_survives_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "class/thermal/thermal_zone0/type", "acpitz");
        put(r, "class/thermal/thermal_zone0/temp", "97000");
        put(r, "class/hwmon/hwmon0/name", "coretemp");
        put(r, "class/hwmon/hwmon0/temp1_input", "81000");
        put(r, "class/hwmon/hwmon0/temp2_input", "91000");
        put(r, "class/hwmon/hwmon0/temp3_input", "garbage");
        let root = SysfsRoot::new(r);
        let mut all = gov();
        assert_eq!(
            all.poll(&root, Instant::now()).map(|e| e.to),
            Some(Level::Shed)
        );
        let mut core = Governor::new(ThermalConfig {
            sensors: vec!["coretemp".into()],
            ..ThermalConfig::default()
        });
        assert_eq!(
            core.poll(&root, Instant::now()).map(|e| e.to),
            Some(Level::Minimal)
        );
        let st = core.status();
        assert_eq!((st.sensors, st.temperature_c), (2, Some(91.0)));
        assert_eq!(st.sensor_errors.len(), 1, "{:?}", st.sensor_errors);
        let mut one = Governor::new(ThermalConfig {
            sensors: vec!["hwmon0/temp1".into()],
            ..ThermalConfig::default()
        });
        assert_eq!(
            one.poll(&root, Instant::now()).map(|e| e.to),
            Some(Level::Reduced)
        );
        // Every sensor turns to garbage: keep the level, report the errors.
        put(r, "class/thermal/thermal_zone0/temp", "x");
        put(r, "class/hwmon/hwmon0/temp1_input", "");
        put(r, "class/hwmon/hwmon0/temp2_input", "?");
        assert_eq!(all.poll(&root, Instant::now()), None);
        let st = all.status();
        assert_eq!((st.level, st.sensor_errors.len()), (Level::Shed, 4));
        assert!(st.message.contains("no sensor readable"), "{}", st.message);
    }
}
