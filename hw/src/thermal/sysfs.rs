//! Temperature sensors read from sysfs under an injectable root.
//!
//! Real boxes read `/sys`; tests point the same reader at a fake tree in a temp dir. A sensor
//! whose file is unreadable or holds garbage is reported on its own and never stops the scan:
//! one flaky hwmon driver must not blind the governor to the others.

use std::path::{Path, PathBuf};

/// The root of a sysfs tree (`/sys` on a real box).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot {
    root: PathBuf,
}

/// Where a reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SensorKind {
    /// `class/thermal/thermal_zone*`.
    ThermalZone,
    /// `class/hwmon/hwmon*/temp*_input`.
    Hwmon,
}

/// One temperature reading.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorReading {
    /// Stable identifier from the sysfs path: `thermal_zone0` or `hwmon1/temp2`.
    pub id: String,
    /// Human name: the zone's `type`, or `chip/label` (`coretemp/Package id 0`) for hwmon.
    pub name: String,
    /// The thermal zone type or hwmon chip name (`x86_pkg_temp`, `coretemp`, `nvme`).
    pub chip: String,
    /// Which sysfs class it came from.
    pub kind: SensorKind,
    /// Temperature in degrees Celsius.
    pub celsius: f64,
    /// The critical temperature the driver reports (hwmon `temp*_crit`), if any.
    pub crit_celsius: Option<f64>,
}

/// A sensor that exists but could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("temperature sensor {path} unreadable: {detail}")]
pub struct SensorError {
    /// The file that failed.
    pub path: PathBuf,
    /// Why (I/O error or unparsable contents).
    pub detail: String,
}

/// The result of one scan: readings and the sensors that failed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorScan {
    /// Sensors read successfully.
    pub readings: Vec<SensorReading>,
    /// Sensors that exist but failed to read.
    pub errors: Vec<SensorError>,
}

impl SysfsRoot {
    /// A reader rooted at `root` (`/sys` on a real box).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Reads every thermal zone and hwmon temperature input. Missing classes are not errors
    /// (many VMs have neither); the scan is then empty.
    pub fn scan_temperatures(&self) -> SensorScan {
        let mut scan = SensorScan::default();
        self.scan_thermal_zones(&mut scan);
        self.scan_hwmon(&mut scan);
        scan
    }

    fn scan_thermal_zones(&self, scan: &mut SensorScan) {
        for (zone, dir) in sorted_entries(&self.root.join("class/thermal"), "thermal_zone") {
            let chip = read_trimmed(&dir.join("type")).unwrap_or_else(|_| zone.clone());
            match read_millidegrees(&dir.join("temp")) {
                Ok(celsius) => scan.readings.push(SensorReading {
                    id: zone,
                    name: chip.clone(),
                    chip,
                    kind: SensorKind::ThermalZone,
                    celsius,
                    crit_celsius: None,
                }),
                Err(e) => scan.errors.push(e),
            }
        }
    }

    fn scan_hwmon(&self, scan: &mut SensorScan) {
        for (hwmon, dir) in sorted_entries(&self.root.join("class/hwmon"), "hwmon") {
            let chip = read_trimmed(&dir.join("name")).unwrap_or_else(|_| hwmon.clone());
            for (file, input) in sorted_entries(&dir, "temp") {
                let Some(prefix) = file.strip_suffix("_input") else {
                    continue;
                };
                let label = read_trimmed(&dir.join(format!("{prefix}_label")))
                    .unwrap_or_else(|_| prefix.to_owned());
                // A missing or broken crit file only loses the annotation, not the reading.
                let crit = read_millidegrees(&dir.join(format!("{prefix}_crit"))).ok();
                match read_millidegrees(&input) {
                    Ok(celsius) => scan.readings.push(SensorReading {
                        id: format!("{hwmon}/{prefix}"),
                        name: format!("{chip}/{label}"),
                        chip: chip.clone(),
                        kind: SensorKind::Hwmon,
                        celsius,
                        crit_celsius: crit,
                    }),
                    Err(e) => scan.errors.push(e),
                }
            }
        }
    }
}

/// Entries of `dir` whose name starts with `prefix`, sorted by name with numeric suffixes in
/// numeric order (`hwmon2` before `hwmon10`). An unreadable directory yields nothing.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with(prefix).then(|| (name, e.path()))
        })
        .collect();
    out.sort_by_key(|(name, _)| natural_key(name));
    out
}

fn natural_key(name: &str) -> (String, u64, String) {
    let start = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let digits: String = name[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let rest = name[start + digits.len()..].to_owned();
    (name[..start].to_owned(), digits.parse().unwrap_or(0), rest)
}

/// Reads an attribute through the bounded reader: `hw.sysfs_root` comes from the config, so a
/// FIFO or device planted in the tree must not hang or flood the governor.
pub(crate) fn read_trimmed(path: &Path) -> Result<String, SensorError> {
    vigil_files::read_to_string(path, vigil_files::FileKind::SysfsAttribute)
        .map(|s| s.trim().to_owned())
        .map_err(|e| SensorError {
            path: path.to_path_buf(),
            // The path is in SensorError's message already; an OS error needs no more.
            detail: match e {
                vigil_files::FileError::Io { error, .. } => error.to_string(),
                other => other.to_string(),
            },
        })
}

/// Reads a sysfs millidegree value and converts it to degrees Celsius.
fn read_millidegrees(path: &Path) -> Result<f64, SensorError> {
    let text = read_trimmed(path)?;
    let milli: i64 = text.parse().map_err(|_| SensorError {
        path: path.to_path_buf(),
        detail: format!("expected an integer in millidegrees Celsius, found {text:?}"),
    })?;
    // Precision loss is irrelevant below 2^53 millidegrees.
    #[allow(clippy::cast_precision_loss)]
    let celsius = milli as f64 / 1000.0;
    Ok(celsius)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_support::put;

    #[test]
    fn reads_zones_and_hwmon_with_labels_and_crit() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "class/thermal/thermal_zone0/type", "x86_pkg_temp\n");
        put(r, "class/thermal/thermal_zone0/temp", "45500\n");
        put(r, "class/thermal/thermal_zone1/temp", "-2000\n");
        put(r, "class/hwmon/hwmon10/name", "nvme\n");
        put(r, "class/hwmon/hwmon10/temp1_input", "38850\n");
        put(r, "class/hwmon/hwmon2/name", "coretemp\n");
        put(r, "class/hwmon/hwmon2/temp1_input", "61000\n");
        put(r, "class/hwmon/hwmon2/temp1_label", "Package id 0\n");
        put(r, "class/hwmon/hwmon2/temp1_crit", "100000\n");
        let scan = SysfsRoot::new(r).scan_temperatures();
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        let got: Vec<(&str, &str, f64, Option<f64>)> = scan
            .readings
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str(), s.celsius, s.crit_celsius))
            .collect();
        assert_eq!(
            got,
            vec![
                ("thermal_zone0", "x86_pkg_temp", 45.5, None),
                ("thermal_zone1", "thermal_zone1", -2.0, None),
                ("hwmon2/temp1", "coretemp/Package id 0", 61.0, Some(100.0)),
                ("hwmon10/temp1", "nvme/temp1", 38.85, None),
            ]
        );
    }

    #[test]
    fn garbage_and_unreadable_sensors_are_reported_individually() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "class/thermal/thermal_zone0/temp", "hot\n");
        // A zone directory without a temp file: unreadable.
        std::fs::create_dir_all(r.join("class/thermal/thermal_zone1")).unwrap();
        put(r, "class/hwmon/hwmon0/name", "acpitz\n");
        put(r, "class/hwmon/hwmon0/temp1_input", "\u{0}\u{1}");
        put(r, "class/hwmon/hwmon0/temp2_input", "52000");
        put(r, "class/hwmon/hwmon0/temp2_crit", "n/a");
        let scan = SysfsRoot::new(r).scan_temperatures();
        assert_eq!(scan.readings.len(), 1);
        assert_eq!(scan.readings[0].name, "acpitz/temp2");
        assert_eq!(scan.readings[0].celsius, 52.0);
        assert_eq!(scan.readings[0].crit_celsius, None);
        let paths: Vec<String> = scan
            .errors
            .iter()
            .map(|e| e.path.strip_prefix(r).unwrap().display().to_string())
            .collect();
        assert_eq!(
            paths,
            vec![
                "class/thermal/thermal_zone0/temp",
                "class/thermal/thermal_zone1/temp",
                "class/hwmon/hwmon0/temp1_input",
            ]
        );
        assert!(scan.errors[0].to_string().contains("\"hot\""));
    }

    #[test]
    fn a_fifo_or_device_in_the_tree_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "class/thermal/thermal_zone0/type", "x\n");
        let fifo = r.join("class/thermal/thermal_zone0/temp");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        std::fs::create_dir_all(r.join("class/thermal/thermal_zone1")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", r.join("class/thermal/thermal_zone1/temp"))
            .unwrap();
        let scan = SysfsRoot::new(r).scan_temperatures();
        assert!(scan.readings.is_empty());
        let msgs: Vec<String> = scan.errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("is a FIFO, not a regular file"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("is a character device"), "{msgs:?}");
    }

    #[test]
    fn empty_or_missing_tree_has_no_sensors() {
        let dir = tempfile::tempdir().unwrap();
        let scan = SysfsRoot::new(dir.path().join("nothing")).scan_temperatures();
        assert_eq!(scan, SensorScan::default());
    }
}
