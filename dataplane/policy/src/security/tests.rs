#![allow(clippy::unwrap_used)]

use crate::{
    OwnerIn, Policy, PolicyError, PolicyOptions, SchemeKind, check_value, security::MtlsSubject,
};
use serde_json::{Value, json};

fn doc(extra_components: Value, security: Option<Value>, op: Value) -> Value {
    let mut d = json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": extra_components},
        "paths": {"/users/{user_id}": {"get": op}},
    });
    if let Some(s) = security {
        d["security"] = s;
    }
    d
}

fn jwt() -> Value {
    json!({
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "x-vigil-jwt": {"issuer": "https://id.test", "audience": ["api"], "jwks_file": "jwks.json"}
    })
}

fn compile(d: &Value) -> Result<Policy, PolicyError> {
    Policy::from_value(d, &PolicyOptions::default())
}

fn invalid_at(d: &Value) -> String {
    match compile(d) {
        Err(PolicyError::Invalid {
            pointer, reason, ..
        }) => format!("{pointer}: {reason}"),
        other => panic!("expected an invalid policy, got {other:?}"),
    }
}

#[test]
fn schemes_requirements_and_ownership_compile() {
    let d = doc(
        json!({"bearer": jwt(), "mtls": {"type": "mutualTLS",
            "x-vigil-mtls": {"subject": "san:uri", "allow": ["spiffe://t/a"],
                             "scopes": {"spiffe://t/a": ["admin"]}}},
               "key": {"type": "apiKey", "in": "header", "name": "x-key"}}),
        Some(json!([{"bearer": ["users:read"]}])),
        json!({
            "x-vigil-ownership": {"exempt_scopes": ["admin"],
                "rules": [{"in": "path", "name": "user_id", "claim": "sub"},
                          {"in": "body", "name": "/org", "claim": "orgs", "required": true}]},
            "responses": {"200": {"description": "ok"}}
        }),
    );
    let p = compile(&d).unwrap();
    let names: Vec<&str> = p.schemes().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bearer", "key", "mtls"]);
    let SchemeKind::Jwt(j) = &p.schemes()[0].kind else {
        panic!("bearer is not a JWT scheme")
    };
    assert_eq!(
        (j.issuer.as_slice(), j.leeway_secs),
        (&["https://id.test".to_owned()][..], 30)
    );
    let SchemeKind::Mtls(m) = &p.schemes()[2].kind else {
        panic!("mtls is not an mTLS scheme")
    };
    assert_eq!(m.subject, MtlsSubject::SanUri);
    assert_eq!(p.schemes()[1].kind, SchemeKind::External("apiKey".into()));
    // The operation inherits the document's requirement.
    let r = p.route("GET /users/{user_id}").unwrap();
    let sec = r.security().unwrap();
    assert_eq!(sec.len(), 1);
    assert_eq!(sec[0].schemes, vec![(0, vec!["users:read".to_owned()])]);
    let o = r.ownership().unwrap();
    assert_eq!(o.rules[1].at, OwnerIn::Body);
    assert!(o.reads_body() && o.rules[1].required && !o.rules[0].required);
    // The unverified apiKey scheme is reported.
    let report = check_value(&d, &PolicyOptions::default());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("`apiKey` scheme is not verified")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn an_operation_overrides_the_document_and_may_open_itself() {
    let d = doc(
        json!({"bearer": jwt()}),
        Some(json!([{"bearer": []}])),
        json!({"security": [], "responses": {"200": {"description": "ok"}}}),
    );
    let p = compile(&d).unwrap();
    assert_eq!(
        p.route("GET /users/{user_id}").unwrap().security(),
        Some(&[][..])
    );
    assert_eq!(p.default_security().map(<[_]>::len), Some(1));
}

#[test]
fn mistakes_are_named_with_their_place() {
    let ok_op = json!({"responses": {"200": {"description": "ok"}}});
    let mut no_keys = jwt();
    no_keys["x-vigil-jwt"] = json!({"issuer": "i", "audience": "a"});
    let e = invalid_at(&doc(json!({"bearer": no_keys}), None, ok_op.clone()));
    assert!(
        e.contains("/components/securitySchemes/bearer/x-vigil-jwt") && e.contains("jwks_file"),
        "{e}"
    );
    let mut hs = jwt();
    hs["x-vigil-jwt"]["algorithms"] = json!(["HS256"]);
    let e = invalid_at(&doc(json!({"bearer": hs}), None, ok_op.clone()));
    assert!(e.contains("\"HS256\" is not accepted"), "{e}");
    let mut plain = jwt();
    plain["x-vigil-jwt"]["jwks_file"] = Value::Null;
    plain["x-vigil-jwt"]["jwks_url"] = json!("http://id.test/jwks");
    let e = invalid_at(&doc(json!({"bearer": plain}), None, ok_op.clone()));
    assert!(e.contains("https://"), "{e}");
    let e = invalid_at(&doc(
        json!({"bearer": jwt()}),
        Some(json!([{"nope": []}])),
        ok_op,
    ));
    assert!(
        e.starts_with("/security/0/nope") && e.contains("not in components"),
        "{e}"
    );
    let bad_rule = json!({
        "x-vigil-ownership": {"rules": [{"in": "path", "name": "id", "claim": "sub"}]},
        "responses": {"200": {"description": "ok"}}
    });
    let e = invalid_at(&doc(
        json!({"bearer": jwt()}),
        Some(json!([{"bearer": []}])),
        bad_rule,
    ));
    assert!(
        e.contains("x-vigil-ownership/rules/0") && e.contains("`id` is not in the path"),
        "{e}"
    );
    let typo = json!({
        "x-vigil-ownership": {"rules": [{"in": "path", "name": "user_id", "claims": "sub"}]},
        "responses": {"200": {"description": "ok"}}
    });
    let e = invalid_at(&doc(
        json!({"bearer": jwt()}),
        Some(json!([{"bearer": []}])),
        typo,
    ));
    assert!(e.contains("claims"), "{e}");
}

#[test]
fn a_match_survives_between_stages() {
    let d = doc(
        json!({}),
        None,
        json!({"responses": {"200": {"description": "ok"}}}),
    );
    let p = compile(&d).unwrap();
    let kept = p.match_route("GET", "/users/u%2D1").unwrap().to_matched();
    assert_eq!(kept.path_param("user_id"), Some("u-1"));
    let again = p.resume(&kept).unwrap();
    assert_eq!(again.route_id(), "GET /users/{user_id}");
    assert_eq!(again.path_param("user_id"), Some("u-1"));
}
