//! Sensitive data in responses through vigild: the upstream echoes the request path into its
//! JSON body, so a card number, an IBAN or a JWT in the path comes back in the response. A
//! `mask` route returns the body masked (still valid JSON, same length), a `block` route answers
//! 502 `response_blocked`, the `log` default forwards and audits; the upstream is asked for an
//! unencoded body whatever the client accepts; findings are counted by route and kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use vigil_e2e::{assert_metrics, audit_line, audit_path, curl, upstream::Upstream};
use vigil_testkit::{ports::free_port, vigild::Vigild};

const API: &str = r#"openapi: 3.0.3
info: {title: bank, version: "1"}
paths:
  /echo/{v}:
    get:
      x-vigil: {response_data: mask}
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /vault/{v}:
    get:
      x-vigil: {response_data: block}
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /plain/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"#;

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLWhlcmU";

fn get(port: u16, ca: &Path, path: &str, extra: &[&str]) -> (u16, String) {
    let mut a: Vec<std::ffi::OsString> = vec!["--cacert".into(), ca.into()];
    a.extend(extra.iter().map(Into::into));
    a.push(format!("https://127.0.0.1:{port}{path}").into());
    curl(None, &a)
}

fn audit_of(d: &Vigild, path: &str) -> serde_json::Value {
    audit_line(&d.path("audit.log"), |l| audit_path(l, path))
}

/// vigild in front of the echoing upstream with [`API`] (`response_data.mode = "log"`), an audit
/// log and metrics, `limits` set in its config: the upstream, vigild, its HTTPS and metrics ports.
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
        .set("metrics.listen", format!("127.0.0.1:{metrics}"))
        .set("response_data.mode", "log");
    for (key, value) in limits {
        cfg = cfg.set(&format!("limits.{key}"), *value);
    }
    std::fs::write(d.path("openapi.yaml"), API).unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    (up, d, port, metrics)
}

/// What `block` reads whole counts against the body-memory budget the request bodies share: a
/// body that does not fit is refused with 503, never let through unread; `mask` streams.
#[test]
fn blocking_routes_read_responses_within_the_body_memory_budget() {
    // The upstream's answer, {"upstream":"e2e","path":"/vault/..."}, is over 32 bytes.
    let (_up, d, port, metrics) = gateway(
        "respdata-memory",
        &[("max_body_bytes", 16), ("max_body_memory", 32)],
    );
    let ca = d.ca();
    let (code, body) = get(port, &ca, "/vault/4111-1111-1111-1111", &[]);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("body_memory_full") && !body.contains("4111"),
        "{body}"
    );
    let (code, body) = get(port, &ca, "/echo/4111-1111-1111-1111", &[]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("****-****-****-1111"), "{body}");
    assert_metrics(
        metrics,
        &[
            "vigil_gateway_body_memory_bytes 0",
            r#"vigil_gateway_shed_requests_total{share="body_memory"} 1"#,
        ],
    );
}

#[test]
fn sensitive_data_in_responses_is_masked_blocked_or_logged_per_route() {
    let (up, d, port, metrics) = gateway("respdata", &[]);
    let ca = d.ca();

    // Masked, even when the client asks for gzip: the upstream is asked for identity.
    let (code, body) = get(port, &ca, "/echo/4111-1111-1111-1111", &["--compressed"]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("still JSON");
    assert_eq!(v["path"], "/echo/****-****-****-1111", "{body}");
    let head = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .rfind(|h| h.contains("/echo/"))
        .cloned()
        .unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("accept-encoding"),
        "{head}"
    );
    assert_eq!(
        audit_of(&d, "/echo/")["response_data"],
        serde_json::json!(["card"])
    );
    let (_, body) = get(port, &ca, "/echo/DE89370400440532013000", &[]);
    assert!(body.contains("/echo/**********************"), "{body}");

    // Blocked: 502, and the body never reaches the client.
    let (code, body) = get(port, &ca, &format!("/vault/{JWT}"), &[]);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("response_blocked") && !body.contains("eyJ"),
        "{body}"
    );
    let line = audit_of(&d, "/vault/");
    assert_eq!(line["reason"], "response_blocked", "{line}");
    assert_eq!(line["response_data"], serde_json::json!(["jwt"]));
    assert_eq!(get(port, &ca, "/vault/nothing-here", &[]).0, 200);

    // The default, log: forwarded as it is, audited.
    let (code, body) = get(port, &ca, "/plain/4111111111111111", &[]);
    assert_eq!(code, 200);
    assert!(body.contains("4111111111111111"), "{body}");
    assert_eq!(
        audit_of(&d, "/plain/")["response_data"],
        serde_json::json!(["card"])
    );

    assert_metrics(
        metrics,
        &[
            r#"vigil_gateway_response_data_total{route="GET /echo/{v}",kind="card"} 1"#,
            r#"vigil_gateway_response_data_total{route="GET /echo/{v}",kind="iban"} 1"#,
            r#"vigil_gateway_response_data_total{route="GET /vault/{v}",kind="jwt"} 1"#,
            r#"vigil_gateway_response_data_total{route="GET /plain/{v}",kind="card"} 1"#,
        ],
    );
}
