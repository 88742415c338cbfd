//! Injection detection through vigild: `[detection] mode = "block"` refuses payloads in the
//! values an OpenAPI description lets through (403 `injection_detected`, the place and kind named,
//! never the value), a route's `x-vigil: {detection: log}` forwards and audits them, `off`
//! leaves the route alone, findings are counted by kind in /metrics, and a reload turning the
//! section off lets the same request through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use vigil_e2e::{audit_line, audit_path, curl, scrape, upstream::Upstream};
use vigil_testkit::{ports::free_port, vigild::Vigild};

const API: &str = r#"openapi: 3.0.3
info: {title: shop, version: "1"}
paths:
  /search:
    get:
      parameters:
        - {name: q, in: query, schema: {type: string, maxLength: 200}}
      responses: {"200": {description: ok}}
  /notes:
    post:
      x-vigil: {detection: log}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                text: {type: string}
      responses: {"200": {description: ok}}
  /raw:
    get:
      x-vigil: {detection: "off"}
      parameters:
        - {name: q, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

/// (status, body) of one HTTPS request with curl.
fn req(port: u16, ca: &Path, args: &[&str], path: &str) -> (u16, String) {
    let mut a: Vec<std::ffi::OsString> = vec!["--cacert".into(), ca.into()];
    a.extend(args.iter().map(Into::into));
    a.push(format!("https://127.0.0.1:{port}{path}").into());
    curl(None, &a)
}

/// The last audit line for a path starting with `path` with `reason`.
fn audit_of(d: &Vigild, path: &str, reason: &str) -> serde_json::Value {
    audit_line(&d.path("audit.log"), |l| {
        audit_path(l, path) && l["reason"] == reason
    })
}

#[test]
fn injection_payloads_are_refused_logged_or_ignored_as_configured() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let metrics = free_port().unwrap();
    let mut d = Vigild::new("detection").unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, up.url())
        .unwrap()
        .policy(&d.path("openapi.yaml"))
        .audit_file(&d.path("audit.log"))
        .set("metrics.listen", format!("127.0.0.1:{metrics}"))
        .set("detection.mode", "block")
        .set("bots.file", d.path("bots.txt").display().to_string());
    std::fs::write(d.path("openapi.yaml"), API).unwrap();
    // The shipped seed list, as an operator starts from it.
    let seed =
        std::fs::read_to_string(vigil_e2e::workspace_root().join("config/bots.txt")).unwrap();
    std::fs::write(d.path("bots.txt"), &seed).unwrap();
    d.configure(cfg.clone()).unwrap();
    d.start().unwrap();
    let ca = d.ca();
    let sqli = "/search?q=1%27%20OR%20%271%27%3D%271";

    assert_eq!(req(port, &ca, &[], "/search?q=O%27Brien%20shoes").0, 200);
    let (code, body) = req(port, &ca, &[], sqli);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("injection_detected")
            && body.contains("\"location\":\"query.q\"")
            && body.contains("\"keyword\":\"sqli\""),
        "{body}"
    );
    assert!(!body.contains("OR"), "the value leaked: {body}");
    let line = audit_of(&d, "/search", "injection_detected");
    let found = line["detections"][0].as_str().unwrap_or_default();
    assert!(
        found.starts_with("sqli:") && found.ends_with("@query.q"),
        "{line}"
    );
    // In a header the gateway inspects, and double URL-encoded.
    let (code, body) = req(
        port,
        &ca,
        &["-H", "user-agent: ..%252F..%252F..%252Fetc%252Fpasswd"],
        "/search?q=boots",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("header.user-agent"), "{body}");

    // A log route: forwarded, audited with the finding's place in the body.
    let json = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        r#"{"text":"<script>alert(document.cookie)</script>"}"#,
    ];
    let (code, body) = req(port, &ca, &json, "/notes");
    assert_eq!(code, 200, "{body}");
    let line = audit_of(&d, "/notes", "ok");
    let found = line["detections"][0].as_str().unwrap_or_default();
    assert!(
        found.starts_with("xss") && found.ends_with("@/text"),
        "{line}"
    );
    // An off route: not inspected at all.
    assert_eq!(
        req(port, &ca, &[], "/raw?q=1%27%20OR%20%271%27%3D%271").0,
        200
    );
    assert!(audit_of(&d, "/raw", "ok").get("detections").is_none());

    let text = scrape(metrics);
    for (kind, n) in [("sqli", 1), ("xss", 1), ("path_traversal", 1)] {
        let line = format!("vigil_gateway_injection_detected_total{{kind=\"{kind}\"}} {n}");
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }

    // A scanner by its User-Agent: refused before anything else looks at the request.
    let (code, body) = req(
        port,
        &ca,
        &["-A", "sqlmap/1.7.2#stable (https://sqlmap.org)"],
        "/search?q=boots",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("bot_blocked"), "{body}");
    let line = audit_of(&d, "/search", "bot_blocked");
    assert_eq!(line["bot"], "sqlmap", "{line}");
    assert_eq!(
        req(port, &ca, &["-A", "acme-client/2.1"], "/search?q=x").0,
        200
    );
    // The operator adds a rule to the file; a reload applies it.
    std::fs::write(d.path("bots.txt"), format!("{seed}\n/^acme-client/\n")).unwrap();
    d.ctl(&["reload"]).unwrap();
    assert_eq!(
        req(port, &ca, &["-A", "acme-client/2.1"], "/search?q=x").0,
        403
    );
    // A rule that does not compile: the reload is refused, naming the line; the old rules stay.
    std::fs::write(d.path("bots.txt"), "sqlmap\n/(unclosed/\n").unwrap();
    let out = d.ctl_output(&["reload"]).unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("bots.txt:2"),
        "{said}"
    );
    assert_eq!(
        req(port, &ca, &["-A", "acme-client/2.1"], "/search?q=x").0,
        403
    );
    std::fs::write(d.path("bots.txt"), &seed).unwrap();

    // The section off (the routes without their own setting follow it): the same request passes.
    d.configure(cfg.set("detection.mode", "off")).unwrap();
    d.ctl(&["reload"]).unwrap();
    assert_eq!(req(port, &ca, &[], sqli).0, 200);
}
