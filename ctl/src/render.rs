//! Human-readable output. `--json` bypasses all of this.

mod fleet;
mod host;
pub mod keys;
pub mod thermal;

use serde_json::Value;
use vigil_dataplane::duration::format_secs;

pub fn rules(v: &Value) -> String {
    let mut out = String::new();
    let rules = v["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        return format!("no {} rules\n", v["list"].as_str().unwrap_or(""));
    }
    out.push_str(&format!(
        "{:<44} {:<10} {:<9} REASON\n",
        "CIDR", "EXPIRES", "ORIGIN"
    ));
    for r in rules {
        let expires = match r["expires_in_secs"].as_u64() {
            None => "never".to_owned(),
            Some(0) => "expired".to_owned(),
            Some(s) => format!("in {}", format_secs(s)),
        };
        let origin = if r["auto"].as_bool() == Some(true) {
            "auto-ban"
        } else if r["from_config"].as_bool() == Some(true) {
            "config"
        } else {
            "operator"
        };
        out.push_str(&format!(
            "{:<44} {:<10} {:<9} {}\n",
            r["cidr"].as_str().unwrap_or("?"),
            expires,
            origin,
            r["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

pub fn stats(v: &Value) -> String {
    let mut out = format!(
        "{:<14} {:>14} {:>16}  VERDICT\n",
        "REASON", "PACKETS", "BYTES"
    );
    if let Some(map) = v["xdp"].as_object() {
        let order = vigil_xdp::abi::Reason::ALL.map(|r| r.as_str());
        for (name, c) in order.iter().filter_map(|n| map.get(*n).map(|c| (n, c))) {
            let verdict = if c["dropped"].as_bool() == Some(true) {
                "drop"
            } else {
                "pass"
            };
            out.push_str(&format!(
                "{:<14} {:>14} {:>16}  {verdict}\n",
                name,
                c["packets"].as_u64().unwrap_or(0),
                c["bytes"].as_u64().unwrap_or(0)
            ));
        }
    }
    out.push_str(&format!(
        "dropped packets: {}   sources tracked by the rate limiter: {}\n",
        v["dropped_packets"].as_u64().unwrap_or(0),
        v["tracked_sources"].as_u64().unwrap_or(0)
    ));
    out
}

pub fn status(v: &Value) -> String {
    let mut out = daemon_and_xdp(v);
    out.push_str(&host::gateway(v));
    out.push_str(&fleet::fleet(v));
    out.push_str(&host::host(v));
    out
}

fn daemon_and_xdp(v: &Value) -> String {
    let mut out = String::new();
    let d = &v["daemon"];
    if d["running"].as_bool() == Some(true) {
        out.push_str(&format!(
            "vigild:        running (pid {}, version {}, up {})\n",
            d["pid"],
            d["version"].as_str().unwrap_or("?"),
            format_secs(d["uptime_secs"].as_u64().unwrap_or(0))
        ));
        out.push_str(&format!(
            "config:        {}\n",
            d["config"].as_str().unwrap_or("?")
        ));
    } else {
        out.push_str("vigild:        not running (read from the pinned maps)\n");
    }
    let x = &v["xdp"];
    if x.is_null() {
        out.push_str("xdp:           not attached\n");
        return out;
    }
    if let Some(e) = x["error"].as_str() {
        out.push_str(&format!("xdp:           error: {e}\n"));
        return out;
    }
    out.push_str(&format!(
        "xdp:           {} on {}{}\n",
        x["mode"].as_str().unwrap_or("?"),
        x["interface"].as_str().unwrap_or("?"),
        if x["mode"] == "generic" {
            "  (generic fallback: drops cost an skb each)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "pins:          {}\n",
        x["pins"].as_str().unwrap_or("?")
    ));
    let rate = &x["rate_limit"];
    if rate.is_null() {
        out.push_str("rate limit:    off\n");
    } else {
        out.push_str(&format!(
            "rate limit:    {} pps per source, burst {}\n",
            rate["pps"], rate["burst"]
        ));
    }
    out.push_str(&format!(
        "rules:         {} block, {} allow\n",
        x["block_rules"], x["allow_rules"]
    ));
    out
}
