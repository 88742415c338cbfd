//! The fleet block of `status`: the blocklist connection and where shared rate limits are
//! decided.

use serde_json::Value;
use vigil_dataplane::duration::format_secs;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nothing when the reply has no `fleet` key (offline), one line when the box has no fleet.
pub fn fleet(v: &Value) -> String {
    fleet_at(v, unix_now())
}

fn fleet_at(v: &Value, now: u64) -> String {
    let Some(f) = v.get("fleet") else {
        return String::new();
    };
    if f.is_null() {
        return "fleet:         off (no [fleet] section)\n".to_owned();
    }
    let mut out = format!(
        "fleet:         redis {} as {}, {} (events applied {}, dropped {})\n",
        f["redis"].as_str().unwrap_or("?"),
        f["box_id"].as_str().unwrap_or("?"),
        if f["connected"].as_bool() == Some(true) {
            "connected"
        } else {
            "NOT connected"
        },
        f["events_applied"].as_u64().unwrap_or(0),
        f["events_dropped"].as_u64().unwrap_or(0),
    );
    if let Some(e) = f["last_error"].as_str() {
        out.push_str(&format!("fleet error:   {e}\n"));
    }
    let r = &f["rate_limits"];
    if r.is_object() {
        let since = r["since_unix"]
            .as_u64()
            .map(|s| format!(" for {}", format_secs(now.saturating_sub(s))))
            .unwrap_or_default();
        let backend = match r["backend"].as_str() {
            Some("redis") => format!("shared in Redis{since}"),
            Some("local-fallback") => {
                format!("LOCAL FALLBACK{since} (Redis unavailable; fallback limits per box)")
            }
            other => other.unwrap_or("?").to_owned(),
        };
        out.push_str(&format!("rate limits:   {backend}\n"));
        out.push_str(&format!(
            "               decisions {}, errors {}, fallbacks {}\n",
            r["decisions"].as_u64().unwrap_or(0),
            r["errors"].as_u64().unwrap_or(0),
            r["fallbacks"].as_u64().unwrap_or(0),
        ));
        if r["backend"] != "redis" {
            if let Some(e) = r["last_error"].as_str() {
                out.push_str(&format!("               last error: {e}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn fleet_block_shows_the_connection_and_the_rate_limit_backend() {
        let mut v = json!({ "fleet": {
            "redis": "10.0.0.5:6379", "box_id": "edge-1", "connected": true,
            "events_applied": 3, "events_dropped": 0, "last_error": null,
            "rate_limits": { "backend": "redis", "since_unix": 1000, "decisions": 42,
                             "errors": 1, "fallbacks": 2, "last_error": "old" }
        }});
        let out = fleet_at(&v, 1090);
        assert!(
            out.contains("redis 10.0.0.5:6379 as edge-1, connected (events applied 3"),
            "{out}"
        );
        assert!(
            out.contains("rate limits:   shared in Redis for 1m30s"),
            "{out}"
        );
        assert!(out.contains("decisions 42, errors 1, fallbacks 2"), "{out}");
        assert!(!out.contains("old"), "{out}");

        v["fleet"]["connected"] = json!(false);
        v["fleet"]["last_error"] = json!("subscriber: connection refused");
        v["fleet"]["rate_limits"]["backend"] = json!("local-fallback");
        v["fleet"]["rate_limits"]["last_error"] = json!("connection refused");
        let out = fleet_at(&v, 1005);
        assert!(out.contains("NOT connected"), "{out}");
        assert!(out.contains("fleet error:   subscriber"), "{out}");
        assert!(
            out.contains("rate limits:   LOCAL FALLBACK for 5s"),
            "{out}"
        );
        assert!(out.contains("last error: connection refused"), "{out}");

        // Without a gateway there is no rate-limit line; without a fleet, one line; offline,
        // nothing.
        v["fleet"]["rate_limits"] = Value::Null;
        assert!(!fleet_at(&v, 0).contains("rate limits"));
        assert!(fleet(&json!({ "fleet": null })).contains("off"));
        assert_eq!(fleet(&json!({})), "");
    }
}
