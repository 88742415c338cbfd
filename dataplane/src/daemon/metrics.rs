//! The daemon's part of /metrics: the inspection level and the XDP counters.

use std::{fmt::Write, sync::atomic::Ordering};

use vigil_hw::thermal::Level;
use vigil_xdp::abi::Reason;

use super::{Daemon, lock};

/// Writes one labelled metric family in Prometheus text format.
fn family(out: &mut String, name: &str, kind: &str, help: &str, label: &str, rows: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (value, n) in rows {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

pub(super) fn xdp_metrics(daemon: &std::sync::Weak<Daemon>, out: &mut String) {
    let Some(d) = daemon.upgrade() else { return };
    let level = d.thermal.level();
    let levels: Vec<(&str, u64)> = Level::ALL
        .iter()
        .map(|l| (l.as_str(), u64::from(*l == level)))
        .collect();
    family(
        out,
        "vigil_inspection_level",
        "gauge",
        "Inspection depth in force (1 for the current level).",
        "level",
        &levels,
    );
    let _ = writeln!(
        out,
        "# HELP vigil_thermal_transitions_total Inspection level changes.\n\
         # TYPE vigil_thermal_transitions_total counter\n\
         vigil_thermal_transitions_total {}",
        d.thermal_transitions.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP vigil_autoban_total Sources blocked in XDP by auto-ban rules.\n\
         # TYPE vigil_autoban_total counter\n\
         vigil_autoban_total {}",
        d.autoban_count()
    );
    let xdp = lock(&d.xdp);
    let Some(att) = xdp.as_ref() else { return };
    let Ok(c) = att.maps.counters() else { return };
    let packets: Vec<(&str, u64)> = Reason::ALL
        .iter()
        .map(|r| (r.as_str(), c.get(*r).packets))
        .collect();
    let bytes: Vec<(&str, u64)> = Reason::ALL
        .iter()
        .map(|r| (r.as_str(), c.get(*r).bytes))
        .collect();
    family(
        out,
        "vigil_xdp_packets_total",
        "counter",
        "Packets seen by the XDP program, by verdict reason.",
        "reason",
        &packets,
    );
    family(
        out,
        "vigil_xdp_bytes_total",
        "counter",
        "Bytes seen by the XDP program, by verdict reason.",
        "reason",
        &bytes,
    );
}
