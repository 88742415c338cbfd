//! Operations on the XDP maps that both the daemon and `vigilctl` (when the daemon is down)
//! run, so a rule looks the same whichever path wrote it.

use std::time::Duration;

use serde_json::{Value, json};
use vigil_xdp::{List, VigilMaps, XdpError, abi::Reason};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Xdp(#[from] XdpError),
    #[error("no rule for {cidr} in the {list} list")]
    NoSuchRule { list: &'static str, cidr: String },
    #[error("reason must be printable text without control characters")]
    BadReason,
    #[error("ttl must be at least 1 second and at most 365 days")]
    BadTtl,
}

pub fn list_name(list: List) -> &'static str {
    match list {
        List::Block => "block",
        List::Allow => "allow",
    }
}

const MAX_TTL_SECS: u64 = 365 * 86_400;

pub fn rule_add(
    maps: &mut VigilMaps,
    list: List,
    cidr: &str,
    ttl_secs: Option<u64>,
    reason: Option<&str>,
    flags: u32,
) -> Result<Value, OpError> {
    let net = vigil_xdp::parse_cidr(cidr)?;
    let reason = reason.unwrap_or("operator");
    if reason.chars().any(char::is_control) {
        return Err(OpError::BadReason);
    }
    let ttl = match ttl_secs {
        Some(s) if s == 0 || s > MAX_TTL_SECS => return Err(OpError::BadTtl),
        Some(s) => Some(Duration::from_secs(s)),
        None => None,
    };
    maps.insert(list, net, ttl, reason, flags)?;
    Ok(
        json!({ "list": list_name(list), "cidr": net.to_string(), "ttl_secs": ttl_secs, "reason": reason }),
    )
}

pub fn rule_del(maps: &mut VigilMaps, list: List, cidr: &str) -> Result<Value, OpError> {
    let net = vigil_xdp::parse_cidr(cidr)?;
    if !maps.remove(list, net)? {
        return Err(OpError::NoSuchRule {
            list: list_name(list),
            cidr: net.to_string(),
        });
    }
    Ok(json!({ "list": list_name(list), "cidr": net.to_string(), "removed": true }))
}

pub fn rule_list(maps: &VigilMaps, list: List) -> Result<Value, OpError> {
    Ok(json!({ "list": list_name(list), "rules": maps.list(list)? }))
}

pub fn stats(maps: &VigilMaps) -> Result<Value, OpError> {
    let c = maps.counters()?;
    let mut reasons = serde_json::Map::new();
    for r in Reason::ALL {
        let v = c.get(r);
        reasons.insert(
            r.as_str().to_owned(),
            json!({ "packets": v.packets, "bytes": v.bytes, "dropped": r.drops() }),
        );
    }
    Ok(json!({
        "xdp": reasons,
        "dropped_packets": c.dropped_packets(),
        "tracked_sources": maps.tracked_sources(),
    }))
}

/// What status says about the XDP side, from the maps alone.
pub fn xdp_status(
    maps: &VigilMaps,
    iface: &str,
    mode: vigil_xdp::AttachedMode,
) -> Result<Value, OpError> {
    let cfg = maps.config()?;
    let rate = (cfg.rate_enabled == 1 && cfg.ns_per_packet > 0).then(|| {
        json!({
            "pps": 1_000_000_000 / cfg.ns_per_packet,
            "burst": cfg.burst_ns / cfg.ns_per_packet,
        })
    });
    Ok(json!({
        "interface": iface,
        "mode": mode,
        "pins": maps.dir(),
        "rate_limit": rate,
        "block_rules": maps.list(List::Block)?.len(),
        "allow_rules": maps.list(List::Allow)?.len(),
    }))
}
