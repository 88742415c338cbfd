//! The printed table and the JSON file, with the facts about the machine that make a number
//! comparable to another run's.

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::{cost, syn, veth};

/// Now as RFC 3339 UTC, without pulling in a date crate.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn print_cost(r: &cost::Report) {
    let o = r.options;
    println!(
        "Program cost: BPF_PROG_TEST_RUN, {}-byte frame, repeat {}, median of {} rounds",
        o.frame_len, o.repeat, o.rounds
    );
    for l in &r.lists {
        println!(
            "  list {}: {} entries ({} IPv4 + {} IPv6; {}), loaded in {:.0} ms; tables {:.1} MiB, \
             {} /24 groups, {} IPv6 lengths",
            l.name,
            l.entries,
            l.ipv4,
            l.ipv6,
            l.shape,
            l.load_ms,
            l.memory.memory_bytes as f64 / f64::from(1u32 << 20),
            l.memory.groups_used,
            l.memory.ipv6_lengths
        );
    }
    println!(
        "{:<52} {:>6} {:>9} {:>8} {:>7} {:>7} {:>5}  rounds (ns)",
        "case", "action", "median ns", "+ns/bare", "x bare", "target", "met"
    );
    for c in &r.cases {
        let (target, met) = match (c.target_extra_ns, r.target_met(c)) {
            (Some(t), Some(m)) => (format!("<={t:.0}"), if m { "yes" } else { "NO" }),
            _ => (String::new(), ""),
        };
        println!(
            "{:<52} {:>6} {:>9.1} {:>8.1} {:>7.2} {:>7} {:>5}  {:?}",
            c.label,
            c.action,
            c.median_ns,
            r.extra_ns(c),
            r.ratio(c),
            target,
            met,
            c.rounds_ns
        );
    }
    let missed = r.missed();
    if missed.is_empty() {
        println!("every case meets its target (extra ns over the bare drop)");
    } else {
        let keys: Vec<&str> = missed.iter().map(|c| c.key.as_str()).collect();
        println!("targets NOT met: {}", keys.join(", "));
    }
}

pub fn print_veth(r: &veth::Report) {
    println!();
    println!(
        "veth drop rate on {} from {} ({}-byte frames, sendmmsg batches of {}, at most {} \
         packets or {:.1} s per run)",
        r.iface,
        r.source,
        r.frame_len,
        r.limits.batch,
        r.limits.packets,
        r.limits.duration.as_secs_f64()
    );
    println!(
        "{:<20} {:>10} {:>7} {:>12} {:>10} {:>12} {:>10} {:>8} {:>11}",
        "dropper",
        "sent",
        "secs",
        "sent pps",
        "dropped",
        "dropped pps",
        "veth drop",
        "pauses",
        "cpu ns/pkt"
    );
    for d in &r.runs {
        println!(
            "{:<20} {:>10} {:>7.2} {:>12.0} {:>10} {:>12.0} {:>10} {:>8} {:>11.0}",
            d.dropper,
            d.send.sent,
            d.send.elapsed.as_secs_f64(),
            d.send.pps(),
            d.dropped,
            d.dropped_pps(),
            d.veth_dropped,
            d.send.pauses,
            d.send.cpu_ns_per_packet()
        );
    }
    if let Some(ratio) = veth_cpu_ratio(r) {
        println!("Vigil / nftables sender CPU ns per packet: {ratio:.2}");
    }
    if let Some(ratio) = veth_ratio(r) {
        println!(
            "Vigil / nftables dropped pps: {ratio:.2} (a regression signal: the sender is the bottleneck)"
        );
    }
}

fn veth_ratio(r: &veth::Report) -> Option<f64> {
    let xdp = r.runs.iter().find(|d| d.dropper == "vigil-xdp")?;
    let nft = r.runs.iter().find(|d| d.dropper == "nft-netdev-ingress")?;
    let n = nft.dropped_pps();
    (n > 0.0).then(|| xdp.dropped_pps() / n)
}

fn veth_cpu_ratio(r: &veth::Report) -> Option<f64> {
    let xdp = r.runs.iter().find(|d| d.dropper == "vigil-xdp")?;
    let nft = r.runs.iter().find(|d| d.dropper == "nft-netdev-ingress")?;
    let n = nft.send.cpu_ns_per_packet();
    (n > 0.0).then(|| xdp.send.cpu_ns_per_packet() / n)
}

fn cost_json(r: &cost::Report) -> Value {
    let cases: Vec<Value> = r
        .cases
        .iter()
        .map(|c| {
            json!({
                "case": c.key,
                "label": c.label,
                "source": c.source.to_string(),
                "blocklist_entries": c.blocklist_entries,
                "rate_limit": c.rate_limit.map(|l| json!({"pps": l.pps, "burst": l.burst})),
                "action": c.action,
                "median_ns": c.median_ns,
                "extra_ns_over_bare": round2(r.extra_ns(c)),
                "ratio_to_bare": round2(r.ratio(c)),
                "target_extra_ns": c.target_extra_ns,
                "target_met": r.target_met(c),
                "rounds_ns": c.rounds_ns,
            })
        })
        .collect();
    let lists: Vec<Value> = r
        .lists
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "shape": l.shape,
                "entries": l.entries,
                "ipv4": l.ipv4,
                "ipv6": l.ipv6,
                "seed": format!("{:#x}", cost::BLOCKLIST_SEED),
                "load_ms": round2(l.load_ms),
                "tables": l.memory,
            })
        })
        .collect();
    json!({
        "method": "BPF_PROG_TEST_RUN with repeat; kernel-measured mean ns per run, median over rounds",
        "frame_bytes": r.options.frame_len,
        "repeat": r.options.repeat,
        "rounds": r.options.rounds,
        "lists": lists,
        "run_ms": round2(r.run_ms),
        "cases": cases,
        "targets_extra_ns": {
            "no_rules": cost::TARGET_NO_RULES_NS,
            "ipv4": cost::TARGET_V4_NS,
            "ipv6": cost::TARGET_V6_NS,
        },
        "targets_missed": r.missed().iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
        "targets_met": r.missed().is_empty(),
    })
}

fn veth_json(r: &veth::Report) -> Value {
    let runs: Vec<Value> = r
        .runs
        .iter()
        .map(|d| {
            json!({
                "dropper": d.dropper,
                "detail": d.detail,
                "sent": d.send.sent,
                "seconds": d.send.elapsed.as_secs_f64(),
                "sent_pps": d.send.pps().round(),
                "dropped": d.dropped,
                "dropped_pps": d.dropped_pps().round(),
                "veth_tx_dropped": d.veth_dropped,
                "sender_pauses": d.send.pauses,
                "sendmmsg_calls": d.send.calls,
                "sender_cpu_seconds": d.send.cpu.as_secs_f64(),
                "sender_cpu_ns_per_packet": round2(d.send.cpu_ns_per_packet()),
            })
        })
        .collect();
    json!({
        "note": "regression signal, not a line rate: on veth the sender is the bottleneck",
        "iface": r.iface,
        "source": r.source.to_string(),
        "frame_bytes": r.frame_len,
        "max_packets": r.limits.packets,
        "max_seconds": r.limits.duration.as_secs_f64(),
        "batch": r.limits.batch,
        "vigil_blocklist_entries": r.vigil_rules,
        "runs": runs,
        "ratio_dropped_pps_vigil_to_nft": veth_ratio(r).map(round2),
        "ratio_cpu_ns_per_packet_vigil_to_nft": veth_cpu_ratio(r).map(round2),
    })
}

pub fn print_syn(cases: &[syn::SynCase]) {
    println!("\nSYN guard (BPF_PROG_TEST_RUN; SYN cases as single runs, see perf/README.md)");
    println!(
        "{:<72} {:>9} {:>9} {:>7} {:>8}",
        "case", "ns/pkt", "bare ns", "ratio", "+ns"
    );
    for c in cases {
        println!(
            "{:<72} {:>9.1} {:>9.1} {:>6.2}x {:>+8.1}",
            c.label,
            c.median_ns,
            c.bare_ns,
            c.ratio(),
            c.extra_ns()
        );
    }
}

fn syn_json(cases: &[syn::SynCase]) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "case": c.key,
                "label": c.label,
                "action": c.action,
                "median_ns": c.median_ns,
                "bare_ns": c.bare_ns,
                "extra_ns_over_bare": round2(c.extra_ns()),
                "ratio_to_bare": round2(c.ratio()),
                "runs": c.runs,
            })
        })
        .collect();
    json!({
        "method": "BPF_PROG_TEST_RUN; an answered SYN is rewritten in place, so SYN cases are \
                   single runs (kernel-measured ns each, median) against single runs of the bare \
                   drop; the refused ACK runs with repeat against the bare drop with repeat",
        "cases": cases,
    })
}

pub fn write(
    out: &Path,
    cost: &cost::Report,
    syn: &[syn::SynCase],
    veth: Option<&anyhow::Result<veth::Report>>,
    machine: Value,
    started: &str,
) -> anyhow::Result<()> {
    let doc = json!({
        "benchmark": "xdp",
        "timestamp": started,
        "machine": machine,
        "program_cost": cost_json(cost),
        "syn_guard": syn_json(syn),
        "veth": veth.map(|v| match v {
            Ok(r) => veth_json(r),
            Err(e) => json!({ "error": format!("{e:#}") }),
        }),
    });
    vigil_testkit::machine::write_report(out, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_time_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_966_245), "2026-11-29T15:30:45Z");
    }
}
