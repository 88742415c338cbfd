//! Inspection levels and the events that record a change of level.

/// How much work the request pipeline does. Ordered from coolest to hottest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Every stage runs.
    Full,
    /// Expensive stages are sampled or skipped per route policy.
    Reduced,
    /// Only the stages policy marks as essential run.
    Minimal,
    /// New work is refused (503) so the box stays up.
    Shed,
}

impl Level {
    /// All levels, coolest first.
    pub const ALL: [Level; 4] = [Level::Full, Level::Reduced, Level::Minimal, Level::Shed];

    /// The name used in config, status and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Reduced => "reduced",
            Level::Minimal => "minimal",
            Level::Shed => "shed",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionReason {
    /// The temperature reached a higher level's threshold.
    TemperatureRose,
    /// The temperature fell below a threshold by more than the hysteresis.
    TemperatureFell,
    /// An operator forced the level.
    OverrideSet,
    /// A manual override ran out; the temperature decides again.
    OverrideExpired,
    /// An operator cancelled the override.
    OverrideCleared,
}

/// A level change, for the audit log and the transition counter.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransitionEvent {
    /// The level before.
    pub from: Level,
    /// The level after.
    pub to: Level,
    /// The temperature that decided it (°C), if any sensor was readable.
    pub temperature_c: Option<f64>,
    /// Why.
    pub reason: TransitionReason,
}
