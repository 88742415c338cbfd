//! The box itself: host facts, the thermal governor and the TLS key's mode. These mirror
//! vigil-hw's types field for field (vigild converts them), so this crate stays free of the
//! TPM and TLS stacks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Level;

/// CPU, memory, kernel, NICs and temperatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub cpu: CpuFeatures,
    /// Missing CPU features that cost throughput.
    pub cpu_warnings: Vec<String>,
    pub logical_cpus: usize,
    pub kernel: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub nics: Vec<NicFacts>,
    pub temperatures: SensorScan,
    /// The firmware image and slot, on a box flashed with one.
    #[serde(default)]
    pub firmware: Option<Firmware>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    pub version: String,
    pub slot: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuFeatures {
    pub aes_ni: bool,
    pub pclmulqdq: bool,
    pub avx2: bool,
    pub avx512f: bool,
    pub sha: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicFacts {
    pub name: String,
    pub driver: Option<String>,
    pub is_virtual: bool,
    pub rx_queues: u32,
    pub tx_queues: u32,
    pub mtu: Option<u32>,
    pub operstate: Option<String>,
    /// The driver supports native (driver-mode) XDP.
    pub native_xdp: bool,
}

/// One scan of the temperature sensors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorScan {
    pub readings: Vec<SensorReading>,
    pub errors: Vec<SensorError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorReading {
    /// `thermal_zone0`, `hwmon1/temp2`.
    pub id: String,
    pub name: String,
    pub chip: String,
    pub kind: SensorKind,
    pub celsius: f64,
    pub crit_celsius: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SensorKind {
    ThermalZone,
    Hwmon,
}

/// A sensor that exists but could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorError {
    pub path: PathBuf,
    pub detail: String,
}

impl std::fmt::Display for SensorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "temperature sensor {} unreadable: {}",
            self.path.display(),
            self.detail
        )
    }
}

/// `thermal`, `thermal_override` and `thermal_clear`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thermal {
    pub status: GovernorStatus,
    pub thresholds: ThermalThresholds,
    pub sensors: SensorScan,
    /// Level changes since vigild started.
    #[serde(default)]
    pub transitions: u64,
}

/// The level in force and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GovernorStatus {
    pub level: Level,
    /// The level the temperature alone gives.
    pub thermal_level: Level,
    pub temperature_c: Option<f64>,
    /// Sensors that fed the last reading.
    pub sensors: usize,
    pub sensor_errors: Vec<String>,
    pub override_level: Option<Level>,
    pub override_remaining_ms: Option<u64>,
    pub message: String,
}

/// The `[thermal]` section in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThermalThresholds {
    pub reduced_c: f64,
    pub minimal_c: f64,
    pub shed_c: f64,
    pub hysteresis_c: f64,
    pub poll_interval_ms: u64,
    pub sensors: Vec<String>,
}

/// Where the TLS private key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyMode {
    File,
    TpmSealed,
    TpmResident,
}
