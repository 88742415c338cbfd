//! Human-readable output. `--json` bypasses all of this.

mod fleet;
mod host;
pub mod keys;
pub mod thermal;

use vigil_control::{
    RuleAdded, Rules, Stats, Status,
    duration::format_secs,
    ops::list_name,
    reply::{DaemonStatus, Rule, XdpReport},
};
use vigil_xdp::AttachedMode;

use crate::exit::Exit;

fn expiry(rule: &Rule) -> String {
    match rule.expires_in_secs {
        None => "never".to_owned(),
        Some(0) => "expired".to_owned(),
        Some(s) => format!("in {}", format_secs(s)),
    }
}

/// `added 198.18.0.0/24`, and what it replaced when a rule for the same CIDR was there.
pub fn rule_added(a: &RuleAdded) -> String {
    match &a.replaced {
        None => format!("added {}\n", a.cidr),
        Some(old) => format!(
            "added {}, replacing the existing rule (expiry {}, origin {}, reason {:?})\n",
            a.cidr,
            expiry(old),
            old.origin(),
            old.reason
        ),
    }
}

/// `status` exits 0 when XDP filters as configured (vigild running, or down with its program
/// still attached), 5 when it read the box but XDP is detached or broken.
pub fn status_exit(s: &Status) -> Exit {
    match &s.xdp {
        Some(XdpReport::Broken { .. } | XdpReport::Detached { .. }) => Exit::Degraded,
        Some(XdpReport::Attached(_)) | None => Exit::Ok,
    }
}

pub fn rules(r: &Rules) -> String {
    if r.rules.is_empty() {
        return format!("no {} rules\n", list_name(r.list));
    }
    let mut out = format!("{:<44} {:<10} {:<9} REASON\n", "CIDR", "EXPIRES", "ORIGIN");
    for rule in &r.rules {
        let expires = expiry(rule);
        out.push_str(&format!(
            "{:<44} {:<10} {:<9} {}\n",
            rule.cidr,
            expires,
            rule.origin(),
            rule.reason
        ));
    }
    out
}

pub fn stats(s: &Stats) -> String {
    let mut out = format!(
        "{:<14} {:>14} {:>16}  VERDICT\n",
        "REASON", "PACKETS", "BYTES"
    );
    let order = vigil_xdp::abi::Reason::ALL.map(|r| r.as_str());
    for (name, c) in order.iter().filter_map(|n| s.xdp.get(*n).map(|c| (n, c))) {
        let verdict = vigil_xdp::abi::Reason::ALL
            .iter()
            .find(|r| r.as_str() == *name)
            .map_or(if c.dropped { "drop" } else { "pass" }, |r| r.verdict());
        out.push_str(&format!(
            "{:<14} {:>14} {:>16}  {verdict}\n",
            name, c.packets, c.bytes
        ));
    }
    out.push_str(&format!(
        "dropped packets: {}   sources tracked by the rate limiter: {}\n",
        s.dropped_packets, s.tracked_sources
    ));
    out
}

pub fn status(s: &Status) -> String {
    let mut out = daemon(&s.daemon);
    out.push_str(&xdp(s.xdp.as_ref()));
    out.push_str(&host::gateway(s.gateway.as_ref()));
    out.push_str(&fleet::fleet(s.fleet.as_ref()));
    out.push_str(&host::host(s.host.as_ref()));
    out
}

fn daemon(d: &DaemonStatus) -> String {
    if !d.running {
        return "vigild:        not running (read from the pinned maps)\n".to_owned();
    }
    format!(
        "vigild:        running (pid {}, version {}, up {})\nconfig:        {}\n",
        d.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
        d.version.as_deref().unwrap_or("?"),
        format_secs(d.uptime_secs.unwrap_or(0)),
        d.config
            .as_ref()
            .map_or_else(|| "?".to_owned(), |c| c.display().to_string())
    )
}

pub fn mode_name(mode: AttachedMode) -> &'static str {
    match mode {
        AttachedMode::Native => "native",
        AttachedMode::Generic => "generic",
        AttachedMode::Unknown => "unknown",
    }
}

fn xdp(x: Option<&XdpReport>) -> String {
    let x = match x {
        None => return "xdp:           not attached\n".to_owned(),
        Some(XdpReport::Broken { error }) => return format!("xdp:           error: {error}\n"),
        Some(XdpReport::Detached { detached }) => {
            return format!(
                "xdp:           detached from {detached} by an operator: no drops (`vigilctl xdp \
                 attach` attaches it again)\n"
            );
        }
        Some(XdpReport::Attached(x)) => x,
    };
    let mut out = format!(
        "xdp:           {} on {}{}\n",
        mode_name(x.mode),
        x.interface,
        if x.mode == AttachedMode::Generic {
            "  (generic fallback: drops cost an skb each)"
        } else {
            ""
        }
    );
    out.push_str(&format!("pins:          {}\n", x.pins.display()));
    match x.rate_limit {
        None => out.push_str("rate limit:    off\n"),
        Some(r) => out.push_str(&format!(
            "rate limit:    {} pps per source, burst {}\n",
            r.pps, r.burst
        )),
    }
    out.push_str(&format!(
        "rules:         {} block, {} allow\n",
        x.block_rules, x.allow_rules
    ));
    for g in &x.syn_guard {
        let when = if g.syn_rate == 0 {
            "always".to_owned()
        } else {
            format!("over {} SYN/s per CPU", g.syn_rate)
        };
        out.push_str(&format!(
            "syn guard:     port {} {} ({when}): {} SYNs, {} cookies sent, {} cookie ACKs, {} \
             dropped\n",
            g.port,
            if g.armed { "ARMED" } else { "watching" },
            g.syns,
            g.cookies,
            g.cookie_acks,
            g.dropped
        ));
    }
    if let Some(t) = x.tables {
        out.push_str(&format!(
            "tables:        {} ({} of {} rule slots, {} of {} /24 groups, {} IPv6 length{})\n",
            mib(t.memory_bytes),
            t.slots_used,
            t.slots_max,
            t.groups_used,
            t.groups_max,
            t.ipv6_lengths,
            if t.ipv6_lengths == 1 { "" } else { "s" }
        ));
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// `block import`.
pub fn imported(i: &vigil_control::RulesImported) -> String {
    let name = vigil_control::ops::list_name(i.list);
    let mut out = format!(
        "imported {} network{} ({} IPv4, {} IPv6) into the {name} list from {} in {} ms: {} \
         new, {} replaced\n",
        i.prefixes,
        if i.prefixes == 1 { "" } else { "s" },
        i.ipv4,
        i.ipv6,
        if i.file.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            i.file.display().to_string()
        },
        i.millis,
        i.added,
        i.replaced
    );
    if i.duplicate_lines > 0 {
        out.push_str(&format!(
            "{} line{} repeated a network listed above and {} skipped\n",
            i.duplicate_lines,
            if i.duplicate_lines == 1 { "" } else { "s" },
            if i.duplicate_lines == 1 {
                "was"
            } else {
                "were"
            }
        ));
    }
    out.push_str(&format!("the {name} list holds {} rules\n", i.rules_now));
    out
}

/// `vigilctl clients top`: one row per fingerprint, busiest first.
pub fn clients(c: &vigil_control::reply::Clients) -> String {
    let mut banned = String::new();
    if !c.banned.is_empty() {
        banned.push_str("banned fingerprints (auto-ban; refused from any address):\n");
        for b in &c.banned {
            banned.push_str(&format!(
                "  {:<38} {} left\n",
                b.ja4,
                vigil_control::duration::format_secs(b.expires_in_secs)
            ));
        }
    }
    if c.clients.is_empty() {
        return format!("no TLS clients seen yet\n{banned}");
    }
    let mut out = format!(
        "{:<38} {:>10} {:>10} {:>6}\n",
        "JA4", "REQUESTS", "REJECTED", "%REJ"
    );
    for row in &c.clients {
        let pct = 100.0 * row.rejected as f64 / row.requests.max(1) as f64;
        out.push_str(&format!(
            "{:<38} {:>10} {:>10} {:>5.1}%\n",
            row.ja4, row.requests, row.rejected, pct
        ));
    }
    out.push_str(&format!(
        "{} fingerprint{} tracked since vigild started\n",
        c.tracked,
        if c.tracked == 1 { "" } else { "s" }
    ));
    out.push_str(&banned);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn an_import_says_what_it_added_and_from_where() {
        let i: vigil_control::RulesImported = serde_json::from_value(json!({
            "list": "block", "file": "-", "prefixes": 3, "ipv4": 2, "ipv6": 1, "added": 2,
            "replaced": 1, "duplicate_lines": 1, "rules_now": 7, "millis": 12
        }))
        .unwrap();
        let out = imported(&i);
        assert!(
            out.starts_with(
                "imported 3 networks (2 IPv4, 1 IPv6) into the block list from standard input \
                 in 12 ms: 2 new, 1 replaced\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("1 line repeated a network listed above and was skipped"),
            "{out}"
        );
        assert!(out.ends_with("the block list holds 7 rules\n"), "{out}");
    }

    #[test]
    fn rules_table_shows_expiry_and_origin() {
        let r: Rules = serde_json::from_value(json!({ "list": "block", "rules": [
            { "cidr": "198.18.0.0/24", "reason": "e2e", "created_unix": 1, "expires_unix": 700,
              "expires_in_secs": 598, "auto": false, "from_config": false },
            { "cidr": "2001:db8::/48", "reason": "config", "created_unix": 1,
              "expires_unix": null, "expires_in_secs": null, "auto": false, "from_config": true },
            { "cidr": "198.18.9.9/32", "reason": "auto-ban: r", "created_unix": 1,
              "expires_unix": 1, "expires_in_secs": 0, "auto": true, "from_config": false }
        ]}))
        .unwrap();
        let out = rules(&r);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "{:<44} {:<10} {:<9} e2e",
                "198.18.0.0/24", "in 9m58s", "operator"
            )
        );
        assert!(lines[2].contains("never      config"), "{out}");
        assert!(
            lines[3].contains("expired    auto-ban  auto-ban: r"),
            "{out}"
        );
        let empty: Rules = serde_json::from_value(json!({ "list": "allow", "rules": [] })).unwrap();
        assert_eq!(rules(&empty), "no allow rules\n");
    }

    #[test]
    fn offline_status_says_the_daemon_is_down() {
        let s: Status = serde_json::from_value(json!({
            "daemon": { "running": false },
            "xdp": { "error": "maps are pinned for eth0 but no program is attached" }
        }))
        .unwrap();
        let out = status(&s);
        assert_eq!(
            out,
            "vigild:        not running (read from the pinned maps)\n\
             xdp:           error: maps are pinned for eth0 but no program is attached\n"
        );
        let s: Status = serde_json::from_value(json!({
            "daemon": { "running": false },
            "xdp": { "interface": "eth0", "mode": "generic", "pins": "/sys/fs/bpf/vigil/eth0",
                     "rate_limit": { "pps": 20, "burst": 40 }, "block_rules": 2,
                     "allow_rules": 0 }
        }))
        .unwrap();
        let out = status(&s);
        assert!(
            out.contains("xdp:           generic on eth0  (generic fallback"),
            "{out}"
        );
        assert!(
            out.contains("rate limit:    20 pps per source, burst 40"),
            "{out}"
        );
        assert!(out.contains("rules:         2 block, 0 allow"), "{out}");
    }

    #[test]
    fn client_fingerprints_and_their_bans() {
        let c: vigil_control::reply::Clients = serde_json::from_value(json!({
            "clients": [{"ja4": "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", "requests": 10,
                         "rejected": 4}],
            "tracked": 1,
            "banned": [{"ja4": "t13i3111h1_e8f1e7e78f70_b26ce05bbdd6", "expires_in_secs": 90}]
        }))
        .unwrap();
        let out = clients(&c);
        assert!(
            out.contains("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"),
            "{out}"
        );
        assert!(out.contains("40.0%"), "{out}");
        assert!(out.contains("1 fingerprint tracked"), "{out}");
        assert!(
            out.contains("banned fingerprints (auto-ban; refused from any address):\n  t13i3111h1_e8f1e7e78f70_b26ce05bbdd6"),
            "{out}"
        );
        assert!(out.contains("1m30s left"), "{out}");
        // An older vigild's reply has no bans: nothing about them is printed.
        let old: vigil_control::reply::Clients =
            serde_json::from_value(json!({"clients": [], "tracked": 0})).unwrap();
        assert_eq!(clients(&old), "no TLS clients seen yet\n");
    }
}
