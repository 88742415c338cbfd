//! Facts about the machine that make one benchmark run comparable with another, and the report
//! file they go into.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

/// Kernel, CPU model, logical CPUs and the 1-minute load average now.
pub fn machine() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    json!({
        "kernel": kernel,
        "cpu_model": cpu_model(),
        "nproc": nproc(),
        "loadavg_1m": loadavg(),
    })
}

/// The first `model name` of /proc/cpuinfo ("unknown" without one).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Logical CPUs this process may run on.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The 1-minute load average: figures from a busy machine are pessimistic.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Writes a benchmark's report as pretty JSON to `out`, creating its directory.
pub fn write_report(out: &Path, report: &impl Serialize) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_filled_in() {
        let m = machine();
        assert!(m["nproc"].as_u64().is_some_and(|n| n >= 1), "{m}");
        assert!(m["loadavg_1m"].as_f64().is_some(), "{m}");
        assert!(!m["kernel"].as_str().unwrap_or_default().is_empty(), "{m}");
    }

    #[test]
    fn reports_land_in_new_directories() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("results/x.json");
        write_report(&out, &json!({"a": 1}))?;
        assert_eq!(std::fs::read_to_string(out)?, "{\n  \"a\": 1\n}\n");
        Ok(())
    }
}
