//! The gateway and host blocks of `status`.

use vigil_control::reply::{GatewayDetails, GatewayStatus, HostFacts, KeyMode};

/// Listener addresses and upstreams; nothing when the reply has no `gateway` key (offline).
pub fn gateway(g: Option<&Option<GatewayStatus>>) -> String {
    let g = match g {
        None => return String::new(),
        Some(None) => return "gateway:       not running (no [listener] section)\n".to_owned(),
        Some(Some(g)) => g,
    };
    let mut out = format!(
        "gateway:       https {}, http {}, metrics {}\n",
        g.https,
        g.http.as_deref().unwrap_or("off"),
        g.metrics
    );
    out.push_str(&format!(
        "upstreams:     {}\n",
        if g.upstreams.is_empty() {
            "none".to_owned()
        } else {
            g.upstreams.join(", ")
        }
    ));
    out.push_str(&details(&g.details));
    if let Some(p) = g.details.patches.filter(|p| p.total > 0) {
        out.push_str(&format!(
            "patches:       {} virtual patch{}{}\n",
            p.total,
            if p.total == 1 { "" } else { "es" },
            if p.expired > 0 {
                format!(
                    ", {} EXPIRED (vigilctl patch list; remove or renew them)",
                    p.expired
                )
            } else {
                String::new()
            }
        ));
    }
    // One line per token key set: an operator sees a stale or failing identity provider here.
    for j in &g.jwks {
        let fetched = match j.seconds_since_fetch {
            Some(s) => format!("fetched {s}s ago"),
            None => "never fetched".to_owned(),
        };
        out.push_str(&format!(
            "jwks:          {} ({} keys, {fetched}, {} fetches, {} failed)\n",
            j.location, j.keys, j.fetches, j.failed_fetches,
        ));
        if let Some(e) = &j.last_error {
            out.push_str(&format!("               LAST ERROR: {e}\n"));
        }
    }
    out
}

/// Policy, key, audit and what keeps the gateway from being ready.
fn details(d: &GatewayDetails) -> String {
    let mut out = String::new();
    match &d.policy {
        None => out.push_str("policy:        none (requests that pass hardening are forwarded)\n"),
        Some(p) => out.push_str(&format!(
            "policy:        {} ({}, sha256 {})\n",
            p.file.display(),
            p.mode,
            p.sha256.as_deref().unwrap_or("unreadable now")
        )),
    }
    if let Some(k) = &d.key {
        let mut line = format!(
            "key:           {} from {}",
            k.mode.map_or("unreadable", key_mode),
            k.source.display()
        );
        if let Some(f) = &k.spki_sha256 {
            line.push_str(&format!(", spki sha256 {f}"));
        }
        if let Some(s) = &k.subject {
            line.push_str(&format!(", subject {s}"));
        }
        if let Some(t) = k.cert_not_after_unix {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let days = (t - now).div_euclid(86_400);
            if days < 0 {
                line.push_str(", certificate EXPIRED");
            } else if days < 14 {
                line.push_str(&format!(", certificate EXPIRES in {days} days"));
            } else {
                line.push_str(&format!(", certificate valid {days} more days"));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(a) = &d.audit {
        let mut line = format!("audit:         {}", a.sink);
        if let Some(to) = &a.destination {
            line.push_str(&format!(" {to}"));
        }
        if !a.headers.is_empty() {
            line.push_str(&format!(", headers {}", a.headers.join(", ")));
        }
        if !a.redact.is_empty() {
            line.push_str(&format!(", also redacted {}", a.redact.join(", ")));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !d.unhealthy_upstreams.is_empty() {
        out.push_str(&format!(
            "UNHEALTHY:     upstream {} (failing its health check)\n",
            d.unhealthy_upstreams.join(", ")
        ));
    }
    for n in &d.not_ready {
        out.push_str(&format!("NOT READY:     {n}\n"));
    }
    out
}

fn key_mode(m: KeyMode) -> &'static str {
    match m {
        KeyMode::File => "file",
        KeyMode::TpmSealed => "tpm-sealed",
        KeyMode::TpmResident => "tpm-resident",
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// CPU features, warnings and NICs; nothing when the reply has no `host` key.
pub fn host(h: Option<&HostFacts>) -> String {
    let Some(h) = h else {
        return String::new();
    };
    let mut out = String::new();
    let mut facts = vec![format!("{} CPUs", h.logical_cpus)];
    if let Some(k) = &h.kernel {
        facts.push(format!("kernel {k}"));
    }
    if let Some(m) = h.memory_total_bytes {
        facts.push(format!(
            "{:.1} GiB memory",
            m as f64 / f64::from(1u32 << 30)
        ));
    }
    out.push_str(&format!("host:          {}\n", facts.join(", ")));
    if let Some(fw) = &h.firmware {
        out.push_str(&format!(
            "firmware:      Vigil {}, slot {} (vigilctl image status)\n",
            fw.version,
            fw.slot.as_deref().unwrap_or("?")
        ));
    }
    let c = h.cpu;
    out.push_str(&format!(
        "cpu:           AES-NI {}, AVX2 {}, AVX-512 {}, SHA {} (PCLMULQDQ {})\n",
        yes(c.aes_ni),
        yes(c.avx2),
        yes(c.avx512f),
        yes(c.sha),
        yes(c.pclmulqdq)
    ));
    for w in &h.cpu_warnings {
        out.push_str(&format!("warning:       {w}\n"));
    }
    if h.nics.is_empty() {
        out.push_str("nics:          none found\n");
        return out;
    }
    out.push_str(&format!(
        "\n{:<16} {:<14} {:>9} {:>6} {:<8} XDP\n",
        "NIC", "DRIVER", "QUEUES", "MTU", "STATE"
    ));
    for n in &h.nics {
        let driver = n.driver.as_deref().unwrap_or("-");
        let queues = format!("{}/{}", n.rx_queues, n.tx_queues);
        let xdp = if n.native_xdp {
            "native"
        } else {
            "generic only"
        };
        out.push_str(&format!(
            "{:<16} {:<14} {:>9} {:>6} {:<8} {xdp}\n",
            n.name,
            driver,
            queues,
            n.mtu.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            n.operstate.as_deref().unwrap_or("-"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn gw(v: &Value) -> String {
        let g: Option<Option<GatewayStatus>> = v
            .get("gateway")
            .map(|g| serde_json::from_value(g.clone()).unwrap());
        gateway(g.as_ref())
    }

    fn hst(v: &Value) -> String {
        let h: Option<HostFacts> = v
            .get("host")
            .map(|h| serde_json::from_value(h.clone()).unwrap());
        host(h.as_ref())
    }

    #[test]
    fn gateway_block_lists_addresses_and_upstreams() {
        let v = json!({ "gateway": {
            "https": "0.0.0.0:8443", "http": null, "metrics": "127.0.0.1:9100",
            "upstreams": ["api", "auth"]
        }});
        let out = gw(&v);
        assert!(
            out.contains("https 0.0.0.0:8443, http off, metrics 127.0.0.1:9100"),
            "{out}"
        );
        assert!(out.contains("upstreams:     api, auth"), "{out}");
        assert!(!out.contains("jwks"), "{out}");
        let v = json!({ "gateway": {
            "https": "0.0.0.0:8443", "http": null, "metrics": "127.0.0.1:9100", "upstreams": [],
            "jwks": [{"location": "https://id.test/jwks", "keys": 2, "seconds_since_fetch": 40,
                      "fetches": 3, "failed_fetches": 1, "last_error": "timed out",
                      "generation": 1}]
        }});
        let out = gw(&v);
        assert!(
            out.contains(
                "jwks:          https://id.test/jwks (2 keys, fetched 40s ago, 3 fetches, 1 failed)"
            ),
            "{out}"
        );
        assert!(out.contains("LAST ERROR: timed out"), "{out}");
        assert!(gw(&json!({ "gateway": null })).contains("not running"));
        assert_eq!(gateway(None), "");
    }

    #[test]
    fn gateway_block_shows_policy_key_audit_and_readiness() {
        let v = json!({ "gateway": {
            "https": "0.0.0.0:8443", "http": null, "metrics": "127.0.0.1:9100",
            "upstreams": ["api"],
            "policy": { "file": "/etc/vigil/openapi.yaml", "mode": "log-only",
                        "sha256": "ab12" },
            "key": { "mode": "tpm-sealed", "source": "/var/lib/vigil/keys",
                     "spki_sha256": "cd34", "subject": "api.example.com" },
            "audit": { "sink": "syslog", "destination": "tcp://192.0.2.9:514",
                       "headers": ["x-request-id"], "redact": ["x-api-key"] },
            "not_ready": ["no healthy upstream (api)"],
            "unhealthy_upstreams": ["api"]
        }});
        let out = gw(&v);
        assert!(
            out.contains("UNHEALTHY:     upstream api (failing its health check)\n"),
            "{out}"
        );
        let mut soon = v.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        soon["gateway"]["key"]["cert_not_after_unix"] = json!(now + 3 * 86_400 + 60);
        assert!(
            gw(&soon).contains("certificate EXPIRES in 3 days"),
            "{}",
            gw(&soon)
        );
        soon["gateway"]["key"]["cert_not_after_unix"] = json!(now + 90 * 86_400 + 60);
        assert!(
            gw(&soon).contains("certificate valid 90 more days"),
            "{}",
            gw(&soon)
        );
        assert!(
            out.contains("policy:        /etc/vigil/openapi.yaml (log-only, sha256 ab12)\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "key:           tpm-sealed from /var/lib/vigil/keys, spki sha256 cd34, subject \
                 api.example.com\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "audit:         syslog tcp://192.0.2.9:514, headers x-request-id, also redacted \
                 x-api-key\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("NOT READY:     no healthy upstream (api)\n"),
            "{out}"
        );
        // A daemon that sends none of it: no policy, nothing else claimed.
        let v = json!({ "gateway": {
            "https": "0.0.0.0:8443", "http": null, "metrics": "127.0.0.1:9100", "upstreams": []
        }});
        let out = gw(&v);
        assert!(out.contains("policy:        none"), "{out}");
        assert!(!out.contains("key:") && !out.contains("NOT READY"), "{out}");
    }

    #[test]
    fn host_block_shows_cpu_warnings_and_nics() {
        let v = json!({ "host": {
            "cpu": { "aes_ni": false, "pclmulqdq": false, "avx2": true, "avx512f": false,
                     "sha": true },
            "cpu_warnings": ["CPU lacks AES-NI: slow"],
            "logical_cpus": 2, "kernel": "6.8.0", "memory_total_bytes": 2_147_483_648u64,
            "nics": [{ "name": "eth0", "driver": "virtio_net", "is_virtual": false,
                       "rx_queues": 2, "tx_queues": 2, "mtu": 1500, "operstate": "up",
                       "native_xdp": true },
                     { "name": "lo", "driver": "loopback", "is_virtual": true,
                       "rx_queues": 1, "tx_queues": 1, "mtu": 65536, "operstate": "unknown",
                       "native_xdp": false }],
            "temperatures": { "readings": [], "errors": [] }
        }});
        let out = hst(&v);
        assert!(
            out.contains("AES-NI no, AVX2 yes, AVX-512 no, SHA yes"),
            "{out}"
        );
        assert!(
            out.contains("warning:       CPU lacks AES-NI: slow"),
            "{out}"
        );
        assert!(
            out.contains("2 CPUs, kernel 6.8.0, 2.0 GiB memory"),
            "{out}"
        );
        assert!(out.contains("virtio_net"), "{out}");
        assert!(out.contains("native"), "{out}");
        assert!(out.contains("generic only"), "{out}");
        assert_eq!(host(None), "");
    }
}
