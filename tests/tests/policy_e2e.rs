//! vigild enforcing the API's OpenAPI description: shadow paths 404, undescribed methods 405
//! with Allow, bad parameters 400, wrong content type 415, invalid bodies 400, valid requests
//! forwarded; a bad description refuses the reload and the old one keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

use vigil_e2e::upstream::Upstream;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

const API: &str = r#"openapi: 3.0.3
info: {title: demo, version: "1"}
servers: [{url: /api}]
paths:
  /users/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
        - {name: fields, in: query, schema: {type: string, enum: [name, all]}}
      responses: {"200": {description: ok}}
  /users:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string, maxLength: 20}
                id: {type: integer, readOnly: true}
      responses: {"201": {description: created}}
"#;

/// (status, headers + body) of one HTTPS request.
fn req(port: u16, cacert: &Path, args: &[&str], path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "3", "-i", "--cacert"])
        .arg(cacert)
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        text.split_whitespace().nth(1).unwrap_or("000").to_owned(),
        text,
    )
}

#[test]
fn the_openapi_description_is_enforced() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("policy").unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, up.url())
        .unwrap()
        .policy(&d.path("openapi.yaml"))
        .set(
            "policy.shadow_file",
            d.path("shadow.json").display().to_string(),
        );
    d.configure(cfg.clone()).unwrap();
    std::fs::write(d.path("openapi.yaml"), API).unwrap();
    d.start().unwrap();
    let ca = d.ca();
    let json = ["-H", "content-type: application/json"];

    assert_eq!(req(port, &ca, &[], "/api/users/7?fields=name").0, "200");
    let (s, t) = req(port, &ca, &[], "/api/admin/export");
    assert_eq!(s, "404", "{t}");
    assert!(t.contains("route_not_found"), "{t}");
    let (s, t) = req(port, &ca, &["-X", "DELETE"], "/api/users/7");
    assert_eq!(s, "405", "{t}");
    assert!(t.to_lowercase().contains("allow: get"), "{t}");
    assert_eq!(req(port, &ca, &[], "/api/users/abc").0, "400");
    assert_eq!(req(port, &ca, &[], "/api/users/0").0, "400");
    let (s, t) = req(port, &ca, &[], "/api/users/7?fields=password");
    assert_eq!(s, "400", "{t}");
    assert!(
        t.contains("\"location\":\"query.fields\"") && t.contains("\"keyword\":\"enum\""),
        "{t}"
    );
    assert!(
        !t.contains("password"),
        "the submitted value was echoed: {t}"
    );
    let post = |data: &str, extra: &[&str]| {
        let mut a = vec!["-X", "POST", "--data-binary", data];
        a.extend_from_slice(extra);
        req(port, &ca, &a, "/api/users")
    };
    assert_eq!(post(r#"{"name":"ada"}"#, &json).0, "200");
    let (s, t) = post(r#"{"name":"ada"}"#, &["-H", "content-type: text/plain"]);
    assert_eq!(s, "415", "{t}");
    let (s, t) = post(r#"{"name":"ada","id":1}"#, &json);
    assert_eq!(
        s, "400",
        "mass assignment of a readOnly property passed: {t}"
    );
    let (s, t) = post(r#"{"name":"a","name":"b"}"#, &json);
    assert_eq!(s, "400", "{t}");
    assert!(t.contains("duplicate_key"), "{t}");
    let (s, t) = post(
        r#"{"name":"this name is much too long for the schema"}"#,
        &json,
    );
    assert_eq!(s, "400", "{t}");
    assert!(
        !t.contains("much too long"),
        "the submitted value was echoed: {t}"
    );

    // Shadow APIs are inventoried by method and normalised path, and survive a restart.
    req(port, &ca, &[], "/api/admin/export");
    let shadow = d.ctl_json(&["shadow", "list"]).unwrap();
    let entries = shadow["entries"].as_array().unwrap();
    let find = |m: &str, p: &str| {
        entries
            .iter()
            .find(|e| e["method"] == m && e["path"] == p)
            .cloned()
    };
    let export = find("GET", "/api/admin/export").unwrap_or_else(|| panic!("{shadow}"));
    assert_eq!(export["count"], 2);
    assert_eq!(export["statuses"], serde_json::json!([404]));
    assert_eq!(export["clients"], serde_json::json!(["127.0.0.1"]));
    assert!(find("DELETE", "/api/users/{id}").is_some(), "{shadow}");
    assert!(d.term().unwrap().success());
    d.start().unwrap();
    let again = d.ctl_json(&["shadow", "list"]).unwrap();
    assert_eq!(
        again["entries"], shadow["entries"],
        "inventory lost across a restart"
    );
    assert!(
        d.ctl(&["shadow", "list"])
            .unwrap()
            .contains("/api/admin/export")
    );

    // Log-only rollout: violations are forwarded and counted, not refused.
    d.configure(cfg.clone().set("policy.mode", "log-only"))
        .unwrap();
    d.ctl(&["reload"]).unwrap();
    assert_eq!(req(port, &ca, &[], "/api/users/abc").0, "200");
    assert_eq!(req(port, &ca, &[], "/api/users/7?fields=password").0, "200");
    let metrics_addr = d.ctl_json(&["status"]).unwrap()["gateway"]["metrics"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "3",
            &format!("http://{metrics_addr}/metrics"),
        ])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("vigil_gateway_policy_log_only_total{reason=\"param_invalid\"} 2"),
        "{m}"
    );
    d.configure(cfg).unwrap();
    d.ctl(&["reload"]).unwrap();
    assert_eq!(req(port, &ca, &[], "/api/users/abc").0, "400");

    // A description that does not compile is refused on reload; the old one keeps serving.
    std::fs::write(
        d.path("openapi.yaml"),
        "openapi: 3.0.3\npaths: {/x: {get: 7}}\n",
    )
    .unwrap();
    assert!(d.ctl(&["reload"]).is_err());
    assert_eq!(req(port, &ca, &[], "/api/users/7").0, "200");
    assert_eq!(req(port, &ca, &[], "/api/admin/export").0, "404");
}
