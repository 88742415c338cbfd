//! vigild's health endpoints and metrics over a real XDP attachment (needs root): /readyz
//! answers 200 only while XDP is attached, the key loaded and an upstream healthy, and names
//! what is missing otherwise; /metrics keeps the XDP families (at zero) when XDP is detached
//! and counts rules per list and origin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use vigil_e2e::{netns::Netns, unique, upstream::Upstream};
use vigil_testkit::vigild::Vigild;

/// (HTTP status, body) of a plain GET.
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "3", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn value(metrics: &str, series: &str) -> Option<String> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .map(str::to_owned)
}

#[test]
fn readyz_follows_xdp_and_metrics_keep_xdp_families_when_detached() {
    let tag = unique(15);
    let ns = Netns::new(&tag, 115, 2).unwrap();
    let up = Upstream::start().unwrap();
    let mut d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    let cfg = d.gateway_config(&ns.host_addr, 8443, up.url()).unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let m = d.ctl_json(&["status"]).unwrap()["gateway"]["metrics"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        get(&format!("http://{m}/healthz")),
        (200, "ok\n".to_owned())
    );
    let st = d.ctl_json(&["status"]).unwrap();
    let not_after = st["gateway"]["key"]["cert_not_after_unix"].as_i64();
    assert!(not_after.is_some_and(|t| t > 1_700_000_000), "{st}");
    assert_eq!(
        st["gateway"]["unhealthy_upstreams"],
        serde_json::json!([]),
        "{st}"
    );
    let (code, body) = get(&format!("http://{m}/readyz"));
    assert_eq!(
        (code, body.trim()),
        (200, r#"{"ready":true}"#),
        "{}",
        d.log()
    );

    d.ctl(&["block", "add", &ns.client_addrs[1], "--reason", "health"])
        .unwrap();
    d.ctl(&["allow", "add", &ns.client_addrs[0]]).unwrap();
    let (_, metrics) = get(&format!("http://{m}/metrics"));
    assert_eq!(
        value(&metrics, "vigil_xdp_attached").as_deref(),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(value(&metrics, "vigil_ready").as_deref(), Some("1"));
    assert_eq!(
        value(
            &metrics,
            r#"vigil_xdp_rules{list="block",origin="operator"}"#
        )
        .as_deref(),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            r#"vigil_xdp_rules{list="allow",origin="operator"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&metrics, r#"vigil_xdp_rules{list="block",origin="fleet"}"#).as_deref(),
        Some("0")
    );
    assert!(
        metrics.contains("# TYPE vigil_temperature_celsius gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("process_open_fds "), "{metrics}");

    // Detached: not ready, naming XDP; the families stay, at zero.
    d.ctl(&["xdp", "detach", "--yes"]).unwrap();
    let (code, body) = get(&format!("http://{m}/readyz"));
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(
        v["missing"][0]
            .as_str()
            .unwrap()
            .contains("XDP is not attached"),
        "{body}"
    );
    let (_, metrics) = get(&format!("http://{m}/metrics"));
    assert_eq!(
        value(&metrics, "vigil_xdp_attached").as_deref(),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(value(&metrics, "vigil_ready").as_deref(), Some("0"));
    assert_eq!(
        value(&metrics, r#"vigil_xdp_packets_total{reason="blocked"}"#).as_deref(),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            r#"vigil_xdp_rules{list="block",origin="operator"}"#
        )
        .as_deref(),
        Some("0")
    );
    std::thread::sleep(Duration::from_millis(10));
    assert!(d.alive(), "{}", d.log());
}

#[test]
fn a_start_that_fails_after_attaching_leaves_no_program_or_pins() {
    let tag = unique(21);
    let ns = Netns::new(&tag, 121, 1).unwrap();
    let up = Upstream::start().unwrap();
    // The HTTPS port is taken: the gateway cannot bind, after XDP was attached.
    let taken = std::net::TcpListener::bind(format!("{}:0", ns.host_addr)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    let cfg = d.gateway_config(&ns.host_addr, port, up.url()).unwrap();
    d.configure(cfg).unwrap();
    let err = d.start().unwrap_err().to_string();
    assert!(err.contains("exited"), "{err}");
    assert!(
        !d.pin_dir().exists(),
        "pins left behind at {}:\n{}",
        d.pin_dir().display(),
        d.log()
    );
    let link = Command::new("ip")
        .args(["-d", "link", "show", "dev", &ns.host_if])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("prog/xdp"), "XDP still attached:\n{link}");
    assert!(d.log().contains("was detached again"), "{}", d.log());
    drop(taken);
}
