//! Thermal sensors and the inspection-depth governor.

mod config;
mod governor;
mod level;
mod runner;
mod sysfs;

pub use config::{ThermalConfig, ThermalConfigError};
pub use governor::{Governor, GovernorStatus};
pub use level::{Level, TransitionEvent, TransitionReason};
pub use runner::{GovernorHandle, ThermalError};
pub use sysfs::{SensorError, SensorKind, SensorReading, SensorScan, SysfsRoot};
