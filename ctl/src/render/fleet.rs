//! The fleet block of `status`: the blocklist connection and where shared rate limits are
//! decided.

use vigil_control::{
    duration::format_secs,
    reply::{FleetStatus, StoreBackend},
};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nothing when the reply has no `fleet` key (offline), one line when the box has no fleet.
pub fn fleet(f: Option<&Option<FleetStatus>>) -> String {
    fleet_at(f, unix_now())
}

fn fleet_at(f: Option<&Option<FleetStatus>>, now: u64) -> String {
    let f = match f {
        None => return String::new(),
        Some(None) => return "fleet:         off (no [fleet] section)\n".to_owned(),
        Some(Some(f)) => f,
    };
    let mut out = format!(
        "fleet:         redis {} as {}, {} (events applied {}, dropped {})\n",
        f.redis,
        f.box_id,
        if f.connected {
            "connected"
        } else {
            "NOT connected"
        },
        f.events_applied,
        f.events_dropped,
    );
    out.push_str(&format!(
        "               {}, {}, {} trusted box{}\n",
        if f.tls { "TLS" } else { "NO TLS" },
        f.user
            .as_deref()
            .map_or_else(|| "no ACL user".to_owned(), |u| format!("ACL user {u}")),
        f.trusted_boxes,
        if f.trusted_boxes == 1 { "" } else { "es" },
    ));
    let refused: Vec<String> = f
        .events_refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    if !refused.is_empty() {
        out.push_str(&format!(
            "fleet REFUSED: {} (not applied: unsigned, unknown or replayed)\n",
            refused.join(", ")
        ));
    }
    if let Some(e) = &f.last_error {
        out.push_str(&format!("fleet error:   {e}\n"));
    }
    if let Some(r) = &f.rate_limits {
        let since = format!(" for {}", format_secs(now.saturating_sub(r.since_unix)));
        let backend = match r.backend {
            StoreBackend::Redis => format!("shared in Redis{since}"),
            StoreBackend::LocalFallback => {
                format!("LOCAL FALLBACK{since} (Redis unavailable; fallback limits per box)")
            }
        };
        out.push_str(&format!("rate limits:   {backend}\n"));
        out.push_str(&format!(
            "               decisions {}, errors {}, fallbacks {}\n",
            r.decisions, r.errors, r.fallbacks,
        ));
        if r.backend != StoreBackend::Redis
            && let Some(e) = &r.last_error
        {
            out.push_str(&format!("               last error: {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn at(v: &Value, now: u64) -> String {
        let f: Option<Option<FleetStatus>> = v
            .get("fleet")
            .map(|f| serde_json::from_value(f.clone()).unwrap());
        fleet_at(f.as_ref(), now)
    }

    #[test]
    fn fleet_block_shows_the_connection_and_the_rate_limit_backend() {
        let mut v = json!({ "fleet": {
            "redis": "10.0.0.5:6379", "box_id": "edge-1", "connected": true,
            "events_applied": 3, "events_dropped": 0, "last_error": null,
            "rate_limits": { "backend": "redis", "since_unix": 1000, "decisions": 42,
                             "errors": 1, "fallbacks": 2, "queue_full": 0, "timeout_ms": 250,
                             "last_error": "old" }
        }});
        let out = at(&v, 1090);
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
        assert!(
            out.contains("NO TLS, no ACL user, 0 trusted boxes"),
            "{out}"
        );
        assert!(!out.contains("REFUSED"), "{out}");
        v["fleet"]["tls"] = json!(true);
        v["fleet"]["user"] = json!("vigil-box");
        v["fleet"]["trusted_boxes"] = json!(3);
        v["fleet"]["events_refused"] = json!({ "unsigned": 2, "replayed": 0, "stale": 1 });
        let out = at(&v, 1090);
        assert!(
            out.contains("TLS, ACL user vigil-box, 3 trusted boxes"),
            "{out}"
        );
        assert!(
            out.contains("fleet REFUSED: stale 1, unsigned 2 ("),
            "{out}"
        );

        v["fleet"]["connected"] = json!(false);
        v["fleet"]["last_error"] = json!("subscriber: connection refused");
        v["fleet"]["rate_limits"]["backend"] = json!("local-fallback");
        v["fleet"]["rate_limits"]["last_error"] = json!("connection refused");
        let out = at(&v, 1005);
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
        assert!(!at(&v, 0).contains("rate limits"));
        assert!(at(&json!({ "fleet": null }), 0).contains("off"));
        assert_eq!(fleet(None), "");
    }
}
