//! The daemon's part of /metrics: inspection level, auto-ban, virtual patches, XDP (attached, counters, rules per
//! list and origin) and temperatures. XDP families are written whether or not XDP is attached
//! (at zero when detached), so dashboards and alerts see a value rather than a gap.

use std::{fmt, sync::atomic::Ordering};

use vigil_gateway::Exposition;
use vigil_hw::thermal::{Level, SysfsRoot};
use vigil_xdp::{List, abi::Reason};

use super::{Daemon, lock};

/// Origins of rules, as `vigil_xdp_rules` labels them.
const ORIGINS: [&str; 4] = vigil_xdp::tables::ORIGIN_NAMES;

pub(super) fn daemon_metrics(
    daemon: &std::sync::Weak<Daemon>,
    e: &mut Exposition<'_, '_>,
) -> fmt::Result {
    let Some(d) = daemon.upgrade() else {
        return Ok(());
    };
    let level = d.thermal.level();
    e.gauges(
        "vigil_inspection_level",
        "Inspection depth in force (1 for the current level).",
        Level::ALL
            .iter()
            .map(|l| ([("level", l.as_str())], i64::from(*l == level))),
    )?;
    e.counter(
        "vigil_thermal_transitions_total",
        "Inspection level changes.",
        d.thermal_transitions.load(Ordering::Relaxed),
    )?;
    e.counter(
        "vigil_autoban_total",
        "Sources blocked in XDP by auto-ban rules.",
        d.autoban_count(),
    )?;
    let sysfs = lock(&d.config).hw.sysfs_root.clone();
    let scan = SysfsRoot::new(&sysfs).scan_temperatures();
    e.gauges(
        "vigil_temperature_celsius",
        "Temperature of each sensor the thermal governor can read.",
        scan.readings.iter().map(|r| {
            (
                [("sensor", r.id.as_str()), ("name", r.name.as_str())],
                r.celsius,
            )
        }),
    )?;
    patch_metrics(&d, e)?;
    xdp_metrics(&d, e)
}

fn patch_metrics(d: &Daemon, e: &mut Exposition<'_, '_>) -> fmt::Result {
    let Some(set) = lock(&d.gateway).as_ref().map(|gw| gw.patches()) else {
        return Ok(());
    };
    if set.is_empty() {
        return Ok(());
    }
    let now = vigil_patch::rule::unix_now();
    let rows: Vec<(String, &'static str, u64, bool)> = set
        .patches()
        .map(|(c, h)| {
            (
                c.patch.id.clone(),
                c.patch.action.as_str(),
                h.count.load(Ordering::Relaxed),
                c.expires_unix <= now,
            )
        })
        .collect();
    e.counters(
        "vigil_patch_hits_total",
        "Requests each virtual patch matched, by patch and action.",
        rows.iter()
            .map(|(id, action, hits, _)| ([("patch", id.as_str()), ("action", *action)], *hits)),
    )?;
    e.gauges(
        "vigil_patch_expired",
        "1 for a virtual patch past its expiry: it matches nothing; remove or renew it.",
        rows.iter()
            .map(|(id, _, _, expired)| ([("patch", id.as_str())], i64::from(*expired))),
    )
}

fn xdp_metrics(d: &Daemon, e: &mut Exposition<'_, '_>) -> fmt::Result {
    // Read before taking the XDP lock: never hold two of the daemon's locks at once.
    let configured = lock(&d.config).xdp.is_some();
    let xdp = lock(&d.xdp);
    let maps = xdp.as_ref().map(|att| &att.maps);
    // Only on a box meant to run XDP: without `[xdp]` there is nothing to be detached.
    if configured {
        e.gauge(
            "vigil_xdp_attached",
            "1 while the XDP program is attached and its maps readable.",
            i64::from(maps.is_some()),
        )?;
    }
    let counters = maps.and_then(|m| m.counters().ok());
    let count = |r: Reason, bytes: bool| {
        counters.as_ref().map_or(0, |c| {
            let v = c.get(r);
            if bytes { v.bytes } else { v.packets }
        })
    };
    e.counters(
        "vigil_xdp_packets_total",
        "Packets seen by the XDP program, by verdict reason.",
        Reason::ALL
            .iter()
            .map(|r| ([("reason", r.as_str())], count(*r, false))),
    )?;
    e.counters(
        "vigil_xdp_bytes_total",
        "Bytes seen by the XDP program, by verdict reason.",
        Reason::ALL
            .iter()
            .map(|r| ([("reason", r.as_str())], count(*r, true))),
    )?;
    let syn = maps
        .and_then(|m| m.syn_guard_status().ok())
        .unwrap_or_default();
    if !syn.is_empty() {
        let ports: Vec<String> = syn.iter().map(|g| g.port.to_string()).collect();
        e.gauges(
            "vigil_xdp_syn_guard_armed",
            "1 while XDP answers the port's SYNs with SYN cookies (a SYN flood is on).",
            syn.iter()
                .zip(&ports)
                .map(|(g, p)| ([("port", p.as_str())], i64::from(g.armed))),
        )?;
        for (name, help, get) in [
            (
                "vigil_xdp_syn_guard_syns_total",
                "SYNs to a guarded port, by port.",
                (|g: &vigil_xdp::SynPortStatus| g.syns) as fn(&vigil_xdp::SynPortStatus) -> u64,
            ),
            (
                "vigil_xdp_syn_guard_cookies_total",
                "SYN-ACKs with a SYN cookie sent from XDP, by port.",
                |g| g.cookies,
            ),
            (
                "vigil_xdp_syn_guard_cookie_acks_total",
                "ACKs with a valid SYN cookie passed to the SYN proxy, by port.",
                |g| g.cookie_acks,
            ),
            (
                "vigil_xdp_syn_guard_dropped_total",
                "Segments the armed SYN guard dropped (no connection, no valid cookie), by port.",
                |g| g.dropped,
            ),
        ] {
            e.counters(
                name,
                help,
                syn.iter()
                    .zip(&ports)
                    .map(|(g, p)| ([("port", p.as_str())], get(g))),
            )?;
        }
    }
    // From the counters kept at every insert and delete: no walk over a million rules.
    let counts = maps.map(|m| m.rule_counts()).unwrap_or_default();
    let mut rules = Vec::new();
    for (list, name) in [(List::Block, "block"), (List::Allow, "allow")] {
        for o in ORIGINS {
            rules.push((
                [("list", name), ("origin", o)],
                i64::try_from(counts.get(list, o)).unwrap_or(i64::MAX),
            ));
        }
    }
    e.gauges(
        "vigil_xdp_rules",
        "Rules in the XDP maps, by list and origin (expired rules waiting for the sweep included).",
        rules,
    )
}

impl Daemon {
    /// What `/readyz` needs from the daemon: XDP attached when `[xdp]` is configured.
    pub(super) fn xdp_missing(&self) -> Option<String> {
        let configured = lock(&self.config).xdp.is_some();
        (configured && lock(&self.xdp).is_none())
            .then(|| "XDP is not attached (vigilctl status; vigilctl xdp attach)".to_owned())
    }
}
