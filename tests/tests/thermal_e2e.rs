//! The thermal governor drives the gateway: a fake sysfs tree is heated and cooled, and HTTPS
//! requests get what the inspection policy asks for at each level (shed by default, degrade
//! when configured), with operator overrides on top.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil_e2e::upstream::Upstream;
use vigil_testkit::config::Config;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

/// vigild (not started) with the gateway on a free port in front of a fresh upstream, sensors
/// read from a fake sysfs tree every 100 ms; the HTTPS port and the config so far.
fn hot_gateway(tag: &str, up: &Upstream) -> (Vigild, Config, u16) {
    let port = free_port().unwrap();
    let d = Vigild::new(tag).unwrap();
    d.set_temp(45_000).unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, up.url())
        .unwrap()
        .sysfs(&d.sysfs_root(), 100);
    (d, cfg, port)
}

/// (status, body, retry-after header) of one HTTPS GET.
fn get(port: u16, cacert: &Path) -> (String, String, Option<String>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "3", "-D", "-", "--cacert"])
        .arg(cacert)
        .arg(format!("https://127.0.0.1:{port}/things/1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).unwrap_or("000").to_owned();
    let retry = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
        .map(|l| l[12..].trim().to_owned());
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body, retry)
}

fn until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn requests_follow_the_inspection_level() {
    let up = Upstream::start().unwrap();
    let (mut d, cfg, port) = hot_gateway("thermal", &up);
    let cfg = cfg.audit_file(&d.path("audit.log"));
    d.configure(cfg.clone()).unwrap();
    d.start().unwrap();
    let cacert = d.ca();
    assert_eq!(get(port, &cacert).0, "200", "{}", d.log());

    // Hot: the default policy sheds rather than forward less-inspected requests.
    d.set_temp(85_000).unwrap();
    assert!(
        until(|| get(port, &cacert).0 == "503"),
        "never shed at 85 °C: {}",
        d.log()
    );
    let (_, body, retry) = get(port, &cacert);
    assert!(body.contains("\"reason\":\"thermal_shed\""), "{body}");
    assert_eq!(retry.as_deref(), Some("30"));
    // Cool again: served.
    d.set_temp(45_000).unwrap();
    assert!(until(|| get(port, &cacert).0 == "200"), "never recovered");

    // The operator chooses degrade: served while reduced, still shed at the shed level.
    d.configure(cfg.set("inspection.on_degrade", "degrade"))
        .unwrap();
    d.ctl(&["reload"]).unwrap();
    d.set_temp(85_000).unwrap();
    assert!(until(
        || d.ctl_json(&["thermal"]).unwrap()["status"]["level"] == "reduced"
    ));
    assert_eq!(get(port, &cacert).0, "200");
    d.set_temp(97_000).unwrap();
    assert!(
        until(|| get(port, &cacert).0 == "503"),
        "never shed at 97 °C"
    );

    // An operator override pins a level whatever the temperature says, and clears.
    d.set_temp(45_000).unwrap();
    assert!(until(|| get(port, &cacert).0 == "200"));
    d.ctl(&["thermal", "override", "shed", "--for", "1m"])
        .unwrap();
    assert_eq!(get(port, &cacert).0, "503");
    d.ctl(&["thermal", "clear"]).unwrap();
    assert_eq!(get(port, &cacert).0, "200");
    let audit = std::fs::read_to_string(d.path("audit.log")).unwrap();
    assert!(
        audit.contains("thermal_shed"),
        "shed requests missing from the audit log"
    );
    // Every level change is an audit event too, next to the decisions it affected (the audit
    // writer drains in the background: allow it a moment).
    let audited = until(|| {
        let audit = std::fs::read_to_string(d.path("audit.log")).unwrap_or_default();
        let t: Vec<&str> = audit
            .lines()
            .filter(|l| l.contains("\"event\":\"thermal_transition\""))
            .collect();
        t.iter()
            .any(|l| l.contains("\"from\":\"full\"") && l.contains("\"to\":\"reduced\""))
            && t.iter().any(|l| l.contains("\"reason\":\"override-set\""))
    });
    assert!(audited, "thermal transitions missing from the audit log");
}

#[test]
fn each_route_sheds_or_degrades_as_its_policy_says() {
    let up = Upstream::start().unwrap();
    let (mut d, cfg, port) = hot_gateway("thermal-routes", &up);
    d.configure(cfg.policy(&d.path("openapi.yaml"))).unwrap();
    std::fs::write(
        d.path("openapi.yaml"),
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /things/{id}:\n    get:\n      \
         x-vigil: {on_degrade: degrade}\n      parameters:\n        - {name: id, in: path, \
         required: true, schema: {type: integer}}\n      responses: {'200': {description: ok}}\n  \
         /orders/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: \
         true, schema: {type: integer}}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    d.start().unwrap();
    let ca = d.ca();
    let at = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
                "--cacert",
            ])
            .arg(&ca)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        (at("/things/1").as_str(), at("/orders/1").as_str()),
        ("200", "200")
    );
    d.set_temp(85_000).unwrap();
    assert!(
        until(|| at("/orders/1") == "503"),
        "the default route never shed"
    );
    // The degrade route keeps serving at reduced depth (parameters still checked).
    assert_eq!(at("/things/1"), "200");
    assert_eq!(at("/things/abc"), "400");
    // At reduced depth the route match still runs: shadow paths stay 404.
    assert_eq!(at("/nope"), "404");
    d.set_temp(97_000).unwrap();
    assert!(
        until(|| at("/things/1") == "503"),
        "nothing sheds at the shed level"
    );
    d.set_temp(40_000).unwrap();
    assert!(until(|| at("/orders/1") == "200"));
}
