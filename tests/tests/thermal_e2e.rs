//! The thermal governor drives the gateway: a fake sysfs tree is heated and cooled, and HTTPS
//! requests get what the inspection policy asks for at each level (shed by default, degrade
//! when configured), with operator overrides on top.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil_e2e::{daemon::Vigild, unique, upstream::Upstream};

fn set_temp(dir: &Path, millideg: u32) {
    let zone = dir.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "x86_pkg_temp\n").unwrap();
    std::fs::write(zone.join("temp"), format!("{millideg}\n")).unwrap();
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
    let tag = unique(13);
    let up = Upstream::start().unwrap();
    let port = vigil_e2e::free_port();
    let base = format!(
        "[hw]\nsysfs_root = \"@DIR@/sys\"\n[thermal]\npoll_interval_ms = 100\n\
         [listener]\nhttps = \"127.0.0.1:{port}\"\n[tls]\ncert = \"@DIR@/cert.pem\"\n\
         key = \"@DIR@/key.pem\"\n[[upstream]]\nname = \"api\"\nurl = \"http://{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[audit]\nsink = \"file\"\npath = \"@DIR@/audit.log\"\n",
        up.addr
    );
    let mut d = Vigild::without_xdp(&tag, &base).unwrap();
    vigil_e2e::self_signed_cert(&d.dir, "127.0.0.1");
    set_temp(&d.dir, 45_000);
    d.start().unwrap();
    let cacert = d.dir.join("cert.pem");
    assert_eq!(get(port, &cacert).0, "200", "{}", d.log());

    // Hot: the default policy sheds rather than forward less-inspected requests.
    set_temp(&d.dir, 85_000);
    assert!(
        until(|| get(port, &cacert).0 == "503"),
        "never shed at 85 °C: {}",
        d.log()
    );
    let (_, body, retry) = get(port, &cacert);
    assert!(body.contains("\"reason\":\"thermal_shed\""), "{body}");
    assert_eq!(retry.as_deref(), Some("30"));
    // Cool again: served.
    set_temp(&d.dir, 45_000);
    assert!(until(|| get(port, &cacert).0 == "200"), "never recovered");

    // The operator chooses degrade: served while reduced, still shed at the shed level.
    let cfg = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("{cfg}\n[inspection]\non_degrade = \"degrade\"\n"),
    )
    .unwrap();
    d.ctl(&["reload"]).unwrap();
    set_temp(&d.dir, 85_000);
    assert!(until(
        || d.ctl_json(&["thermal"]).unwrap()["status"]["level"] == "reduced"
    ));
    assert_eq!(get(port, &cacert).0, "200");
    set_temp(&d.dir, 97_000);
    assert!(
        until(|| get(port, &cacert).0 == "503"),
        "never shed at 97 °C"
    );

    // An operator override pins a level whatever the temperature says, and clears.
    set_temp(&d.dir, 45_000);
    assert!(until(|| get(port, &cacert).0 == "200"));
    d.ctl(&["thermal", "override", "shed", "--for", "1m"])
        .unwrap();
    assert_eq!(get(port, &cacert).0, "503");
    d.ctl(&["thermal", "clear"]).unwrap();
    assert_eq!(get(port, &cacert).0, "200");
    let audit = std::fs::read_to_string(d.dir.join("audit.log")).unwrap();
    assert!(
        audit.contains("thermal_shed"),
        "shed requests missing from the audit log"
    );
    // Every level change is an audit event too, next to the decisions it affected (the audit
    // writer drains in the background: allow it a moment).
    let audited = until(|| {
        let audit = std::fs::read_to_string(d.dir.join("audit.log")).unwrap_or_default();
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
    let tag = unique(15);
    let up = Upstream::start().unwrap();
    let port = vigil_e2e::free_port();
    let body = format!(
        "[hw]\nsysfs_root = \"@DIR@/sys\"\n[thermal]\npoll_interval_ms = 100\n\
         [listener]\nhttps = \"127.0.0.1:{port}\"\n[tls]\ncert = \"@DIR@/cert.pem\"\n\
         key = \"@DIR@/key.pem\"\n[[upstream]]\nname = \"api\"\nurl = \"http://{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[policy]\nfile = \"@DIR@/openapi.yaml\"\n",
        up.addr
    );
    let mut d = Vigild::without_xdp(&tag, &body).unwrap();
    std::fs::write(
        d.dir.join("openapi.yaml"),
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /things/{id}:\n    get:\n      \
         x-vigil: {on_degrade: degrade}\n      parameters:\n        - {name: id, in: path, \
         required: true, schema: {type: integer}}\n      responses: {'200': {description: ok}}\n  \
         /orders/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: \
         true, schema: {type: integer}}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    vigil_e2e::self_signed_cert(&d.dir, "127.0.0.1");
    set_temp(&d.dir, 45_000);
    d.start().unwrap();
    let ca = d.dir.join("cert.pem");
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
    set_temp(&d.dir, 85_000);
    assert!(
        until(|| at("/orders/1") == "503"),
        "the default route never shed"
    );
    // The degrade route keeps serving at reduced depth (parameters still checked).
    assert_eq!(at("/things/1"), "200");
    assert_eq!(at("/things/abc"), "400");
    // At reduced depth the route match still runs: shadow paths stay 404.
    assert_eq!(at("/nope"), "404");
    set_temp(&d.dir, 97_000);
    assert!(
        until(|| at("/things/1") == "503"),
        "nothing sheds at the shed level"
    );
    set_temp(&d.dir, 40_000);
    assert!(until(|| at("/orders/1") == "200"));
}
