//! Upstream responses held against the OpenAPI description through vigild. The upstream always
//! answers 200 with `{"upstream":"e2e","path":...}`; each route describes its responses so that
//! this answer matches, lacks a required property, has an undocumented status or is over the
//! route's size limit. Logged by default (the client gets the response, the audit line and
//! /metrics name the contradiction), refused with 502 where a route says `responses: block`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use vigil_e2e::{assert_metrics, audit_line, audit_path, curl, upstream::Upstream};
use vigil_testkit::{ports::free_port, vigild::Vigild};

const API: &str = r##"openapi: 3.0.3
info: {title: contract, version: "1"}
components:
  schemas:
    Echo:
      type: object
      required: [upstream, path]
      properties:
        upstream: {type: string}
        path: {type: string}
    Order:
      type: object
      required: [id]
      properties:
        id: {type: integer}
paths:
  /ok/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses:
        "200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/Echo"}}}}
  /drift/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses:
        "200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/Order"}}}}
  /strict/{v}:
    get:
      x-vigil: {responses: block}
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses:
        "200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/Order"}}}}
  /created/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses:
        "201": {description: created}
        4XX: {description: client error}
  /small/{v}:
    get:
      x-vigil: {responses: block, max_response_bytes: 16}
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses:
        default: {description: anything}
"##;

fn get(port: u16, ca: &Path, path: &str) -> (u16, String) {
    let a: Vec<std::ffi::OsString> = vec![
        "--cacert".into(),
        ca.into(),
        format!("https://127.0.0.1:{port}{path}").into(),
    ];
    curl(None, &a)
}

/// vigild in front of the echoing upstream with [`API`], an audit log and metrics, `limits` set
/// in its config: the upstream (kept running), vigild, its HTTPS and metrics ports.
fn gateway(name: &str, limits: &[(&str, i64)]) -> (Upstream, Vigild, u16, u16) {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let metrics = free_port().unwrap();
    let mut d = Vigild::new(name).unwrap();
    let mut cfg = d
        .gateway_config("127.0.0.1", port, up.url())
        .unwrap()
        .policy(&d.path("openapi.yaml"))
        .audit_file(&d.path("audit.log"))
        .set("metrics.listen", format!("127.0.0.1:{metrics}"));
    for (key, value) in limits {
        cfg = cfg.set(&format!("limits.{key}"), *value);
    }
    std::fs::write(d.path("openapi.yaml"), API).unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    (up, d, port, metrics)
}

#[test]
fn responses_that_contradict_the_description_are_logged_or_refused() {
    let (_up, d, port, metrics) = gateway("respcheck", &[]);
    let ca = d.ca();
    let log = d.path("audit.log");
    let violation = |path: &str| {
        audit_line(&log, |l| audit_path(l, path))
            .get("response_violation")
            .and_then(|v| v.as_str().map(str::to_owned))
    };

    assert_eq!(get(port, &ca, "/ok/1").0, 200);
    assert_eq!(
        violation("/ok/"),
        None,
        "a matching response is not flagged"
    );

    // Logged (the default): the client gets the response as it was.
    let (code, body) = get(port, &ca, "/drift/1");
    assert_eq!(code, 200);
    assert!(body.contains("\"upstream\":\"e2e\""), "{body}");
    assert_eq!(
        violation("/drift/").as_deref(),
        Some("response_invalid_body")
    );
    assert_eq!(get(port, &ca, "/created/1").0, 200);
    assert_eq!(
        violation("/created/").as_deref(),
        Some("response_undocumented_status")
    );

    // Refused where the route says so: 502 naming the reason, the upstream's body withheld.
    let (code, body) = get(port, &ca, "/strict/1");
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("response_invalid_body") && !body.contains("upstream"),
        "{body}"
    );
    let (code, body) = get(port, &ca, "/small/1");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("response_too_large"), "{body}");

    assert_metrics(
        metrics,
        &[
            r#"vigil_gateway_response_violations_total{route="GET /drift/{v}",reason="response_invalid_body"} 1"#,
            r#"vigil_gateway_response_violations_total{route="GET /created/{v}",reason="response_undocumented_status"} 1"#,
            r#"vigil_gateway_response_violations_total{route="GET /strict/{v}",reason="response_invalid_body"} 1"#,
            r#"vigil_gateway_response_violations_total{route="GET /small/{v}",reason="response_too_large"} 1"#,
        ],
    );
}

/// Copies of responses held for the check count against the body-memory budget the request
/// bodies share: a `block` route whose body does not fit is refused with 503 (never let through
/// unchecked), a logging route lets it stream on unchecked, and nothing stays held afterwards.
#[test]
fn response_checks_hold_their_copies_within_the_body_memory_budget() {
    // The upstream's answer, {"upstream":"e2e","path":"/drift/1"}, is over 32 bytes.
    let (_up, d, port, metrics) = gateway(
        "respcheck-memory",
        &[("max_body_bytes", 16), ("max_body_memory", 32)],
    );
    let ca = d.ca();
    let log = d.path("audit.log");

    let (code, body) = get(port, &ca, "/strict/1");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("body_memory_full") && !body.contains("upstream"),
        "{body}"
    );
    let (code, body) = get(port, &ca, "/drift/1");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"upstream\":\"e2e\""), "{body}");
    let line = audit_line(&log, |l| audit_path(l, "/drift/"));
    assert_eq!(line.get("response_violation"), None, "{line}");

    assert_metrics(
        metrics,
        &[
            "vigil_gateway_body_memory_bytes 0",
            r#"vigil_gateway_shed_requests_total{share="body_memory"} 1"#,
        ],
    );
}
