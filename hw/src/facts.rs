//! Everything `vigilctl status --json` reports about the box itself.

use crate::cpu::CpuFeatures;
use crate::nic::NicFacts;
use crate::thermal::{SensorScan, SysfsRoot};

/// Host facts: CPU, memory, kernel, NICs and temperatures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostFacts {
    /// CPU instruction-set extensions.
    pub cpu: CpuFeatures,
    /// Warnings about missing CPU features (see [`CpuFeatures::warnings`]).
    pub cpu_warnings: Vec<String>,
    /// Logical CPUs this process may run on.
    pub logical_cpus: usize,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
    /// Total memory in bytes (`MemTotal` of `/proc/meminfo`).
    pub memory_total_bytes: Option<u64>,
    /// Network interfaces.
    pub nics: Vec<NicFacts>,
    /// Temperature sensors.
    pub temperatures: SensorScan,
    /// The firmware image this box runs, when it runs one (`/etc/vigil/version`).
    pub firmware: Option<Firmware>,
}

/// A Vigil firmware image: its version and the A/B slot it was booted from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Firmware {
    pub version: String,
    /// `rauc.slot=` of the kernel command line.
    pub slot: Option<String>,
}

impl Firmware {
    /// The running image, from its version file and the kernel command line.
    pub fn read(version_file: &std::path::Path, cmdline: &str) -> Option<Firmware> {
        let version = std::fs::read_to_string(version_file).ok()?;
        let version = version.trim();
        if version.is_empty() || version.len() > 64 {
            return None;
        }
        Some(Firmware {
            version: version.to_owned(),
            slot: cmdline_value(cmdline, "rauc.slot").map(str::to_owned),
        })
    }
}

impl HostFacts {
    /// Collects the facts. `sys` is the sysfs root (`/sys` on a box); `/proc` is always the
    /// live one, since nothing in it needs faking in tests.
    pub fn collect(sys: &SysfsRoot) -> Self {
        let cpu = CpuFeatures::detect();
        Self {
            cpu,
            cpu_warnings: cpu.warnings(),
            logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
            memory_total_bytes: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| parse_mem_total(&m)),
            nics: NicFacts::read_all(sys),
            temperatures: sys.scan_temperatures(),
            firmware: Firmware::read(
                std::path::Path::new("/etc/vigil/version"),
                &std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            ),
        }
    }
}

/// The value of `key=value` on a kernel command line (`rauc.slot=B` -> `B`).
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `MemTotal:  16384 kB` -> bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_firmware_is_its_version_file_and_the_booted_slot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("version");
        assert_eq!(Firmware::read(&file, "rauc.slot=A"), None);
        std::fs::write(&file, "0.2.0\n").unwrap();
        let fw = Firmware::read(&file, "ro rauc.slot=B quiet").unwrap();
        assert_eq!(fw.version, "0.2.0");
        assert_eq!(fw.slot.as_deref(), Some("B"));
        assert_eq!(Firmware::read(&file, "ro").unwrap().slot, None);
        let line = "ro rauc.slot=B vigil.attempts=3";
        assert_eq!(cmdline_value(line, "vigil.attempts"), Some("3"));
        assert_eq!(cmdline_value(line, "vigil.rescue"), None);
    }

    #[test]
    fn mem_total_is_parsed_in_bytes() {
        assert_eq!(
            parse_mem_total("MemFree: 1 kB\nMemTotal:       2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(parse_mem_total(""), None);
    }

    #[test]
    fn sensors_and_nics_come_from_the_given_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        crate::test_support::put(r, "class/thermal/thermal_zone0/temp", "42000");
        crate::test_support::put(r, "class/net/veth9/ifindex", "9");
        crate::test_support::put(r, "class/net/veth9/iflink", "8");
        let facts = HostFacts::collect(&SysfsRoot::new(r));
        assert_eq!(facts.temperatures.readings.len(), 1);
        assert_eq!(facts.temperatures.readings[0].celsius, 42.0);
        assert_eq!(facts.nics.len(), 1);
        assert_eq!(facts.nics[0].driver.as_deref(), Some("veth"));
        assert_eq!(facts.cpu_warnings, facts.cpu.warnings());
    }

    #[test]
    fn live_facts_round_trip_through_json() {
        let facts = HostFacts::collect(&SysfsRoot::new("/sys"));
        // Every Linux box has a loopback interface with a readable MTU.
        let lo = facts.nics.iter().find(|n| n.name == "lo").unwrap();
        assert_eq!(lo.driver.as_deref(), Some("loopback"));
        assert!(lo.mtu.is_some());
        assert!(facts.logical_cpus >= 1);
        let json = serde_json::to_string(&facts).unwrap();
        let back: HostFacts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, facts);
    }
}
