//! Real-world descriptions: the `@readme/oas-examples` package (petstore and larger APIs, in
//! OpenAPI 3.0 and 3.1, JSON and YAML). Fetched at test setup by `fetch-test-data.sh`, never
//! committed; without them this test fails and says how to get them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use vigil_policy::{Deny, Method, Policy, PolicyError, PolicyOptions, RequestParts, check};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("VIGIL_OPENAPI_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-data/openapi/oas-examples")
        });
    assert!(
        dir.join("3.0/json/petstore.json").is_file(),
        "OpenAPI example documents not found in {}: run dataplane/policy/fetch-test-data.sh \
         (or set VIGIL_OPENAPI_EXAMPLES to the extracted package)",
        dir.display()
    );
    dir
}

fn load(rel: &str) -> Policy {
    let path = data_dir().join(rel);
    Policy::load(&path, &PolicyOptions::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
}

fn request(
    p: &Policy,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<String, Deny> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let req = RequestParts {
        method,
        path,
        query,
        headers,
    };
    p.check(&req, body.as_bytes()).map(|r| r.id().to_string())
}

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

#[test]
fn petstore_in_every_version_and_format() {
    for rel in [
        "3.0/json/petstore.json",
        "3.0/yaml/petstore.yaml",
        "3.1/json/petstore.json",
        "3.1/yaml/petstore.yaml",
    ] {
        let p = load(rel);
        assert_eq!(p.routes().len(), 20, "{rel}");
        assert_eq!(p.base_paths(), ["/v2"], "{rel}");
        let ok = |m, t: &str, h: &[(&str, &str)], b: &str| {
            request(&p, m, t, h, b).unwrap_or_else(|e| panic!("{rel}: {m} {t} refused: {e:?}"))
        };
        let deny = |m, t: &str, h: &[(&str, &str)], b: &str| {
            request(&p, m, t, h, b).expect_err(&format!("{rel}: {m} {t} allowed"))
        };

        assert_eq!(
            ok(
                "GET",
                "/v2/pet/findByStatus?status=available&status=sold",
                &[],
                ""
            ),
            "GET /pet/findByStatus"
        );
        assert_eq!(ok("GET", "/v2/pet/12", &[], ""), "GET /pet/{petId}");
        assert_eq!(
            ok("DELETE", "/v2/pet/12", &[("api_key", "k")], ""),
            "DELETE /pet/{petId}"
        );
        let pet =
            r#"{"name": "doggie", "photoUrls": ["https://example.com/a.png"], "status": "sold"}"#;
        assert_eq!(ok("POST", "/v2/pet", &JSON, pet), "POST /pet");
        ok(
            "PUT",
            "/v2/pet",
            &[("content-type", "application/xml")],
            "<pet/>",
        );

        let e = deny("GET", "/v2/pets", &[], "");
        assert_eq!((e.status, e.reason), (404, "route_not_found"), "{rel}");
        let e = deny("GET", "/pet/12", &[], "");
        assert_eq!(e.status, 404, "{rel}: the base path is required");
        let e = deny("PATCH", "/v2/pet/12", &[], "");
        assert_eq!((e.status, e.reason), (405, "method_not_allowed"), "{rel}");
        assert_eq!(
            e.allow,
            Some(vec![
                Method::Get,
                Method::Post,
                Method::Delete,
                Method::Head
            ])
        );
        let e = deny("GET", "/v2/pet/abc", &[], "");
        assert_eq!(
            (e.status, e.reason, e.location.as_str()),
            (400, "param_invalid", "path.petId")
        );
        let e = deny("GET", "/v2/pet/findByStatus?status=lost", &[], "");
        assert_eq!(
            (e.status, e.reason, e.keyword.as_deref()),
            (400, "param_invalid", Some("enum"))
        );
        // form style, exploded (the query default): a comma is part of one value.
        let e = deny("GET", "/v2/pet/findByStatus?status=available,sold", &[], "");
        assert_eq!(e.keyword.as_deref(), Some("enum"), "{rel}");
        let e = deny("GET", "/v2/pet/findByStatus", &[], "");
        assert_eq!((e.status, e.reason), (400, "param_missing"), "{rel}");
        let e = deny("GET", "/v2/store/order/11", &[], "");
        assert_eq!(e.keyword.as_deref(), Some("maximum"), "{rel}");
        let e = deny("POST", "/v2/pet", &[("content-type", "text/csv")], "a,b");
        assert_eq!(
            (e.status, e.reason),
            (415, "unsupported_media_type"),
            "{rel}"
        );
        let e = deny("POST", "/v2/pet", &JSON, r#"{"photoUrls": []}"#);
        assert_eq!(
            (e.status, e.reason, e.keyword.as_deref()),
            (400, "body_invalid", Some("required"))
        );
        let e = deny(
            "POST",
            "/v2/pet",
            &JSON,
            r#"{"name": "d", "photoUrls": [], "status": "x"}"#,
        );
        assert_eq!(
            (e.reason, e.location.as_str()),
            ("body_invalid", "/status"),
            "{rel}"
        );
        let e = deny(
            "POST",
            "/v2/pet",
            &JSON,
            r#"{"name": "d", "name": "e", "photoUrls": []}"#,
        );
        assert_eq!(e.reason, "duplicate_key", "{rel}");
        let e = deny("POST", "/v2/pet", &JSON, "");
        assert_eq!((e.status, e.reason), (400, "body_missing"), "{rel}");
        let e = deny("POST", "/v2/user", &JSON, "{\"username\": ");
        assert_eq!(e.reason, "malformed_json", "{rel}");
    }
}

#[test]
fn json_and_yaml_compile_to_the_same_routes() {
    for (json, yaml) in [
        ("3.0/json/petstore.json", "3.0/yaml/petstore.yaml"),
        ("3.0/json/star-trek.json", "3.0/yaml/star-trek.yaml"),
        ("3.0/json/readme-legacy.json", "3.0/yaml/readme-legacy.yaml"),
    ] {
        let ids = |p: Policy| {
            p.routes()
                .iter()
                .map(|r| r.id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(load(json)), ids(load(yaml)), "{json}");
    }
}

#[test]
fn larger_descriptions_route_and_check() {
    let star = load("3.0/json/star-trek.json");
    assert_eq!(star.routes().len(), 120);
    assert_eq!(star.base_paths(), ["/api/v1/rest"]);
    assert!(request(&star, "GET", "/api/v1/rest/animal?uid=ANMA0000001", &[], "").is_ok());
    let e = request(&star, "GET", "/api/v1/rest/animal", &[], "").unwrap_err();
    assert_eq!(
        (e.reason, e.location.as_str()),
        ("param_missing", "query.uid")
    );
    let e = request(
        &star,
        "GET",
        "/api/v1/rest/animal/search?pageSize=ten",
        &[],
        "",
    )
    .unwrap_err();
    assert_eq!(
        (e.reason, e.location.as_str()),
        ("param_invalid", "query.pageSize")
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let search = "/api/v1/rest/animal/search";
    assert!(request(&star, "POST", search, &form, "name=cat&earthAnimal=true").is_ok());
    let e = request(&star, "POST", search, &form, "name=cat&earthAnimal=maybe").unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (400, "body_invalid", "/earthAnimal")
    );
    let e = request(&star, "POST", search, &JSON, "{}").unwrap_err();
    assert_eq!(e.status, 415);

    let styles = load("3.1/json/parameters-style.json");
    assert_eq!(styles.routes().len(), 25);
    let ok = |m, t| request(&styles, m, t, &[], "").map_err(|e| format!("{m} {t}: {e:?}"));
    ok(
        "GET",
        "/anything/query/deepObject?object[name]=n&object[description]=d",
    )
    .unwrap();
    ok(
        "GET",
        "/anything/query/pipeDelimited?array=a|b&object=name|n|description|d",
    )
    .unwrap();
    ok(
        "GET",
        "/anything/path/matrix/;primitive=p/;array=a,b/;object=name,n,description,d",
    )
    .unwrap();
    ok("POST", "/anything/path/label/.p/.a.b/.name=n.description=d").unwrap();
    ok("GET", "/anything/path/simple/p/a,b/name,n,description,d").unwrap();
    let e = request(&styles, "GET", "/anything/path/matrix/p/a/b", &[], "").unwrap_err();
    assert_eq!(
        (e.reason, e.keyword.as_deref()),
        ("param_invalid", Some("style"))
    );

    for (rel, routes) in [
        ("3.0/json/readme-legacy.json", 36),
        ("3.0/yaml/uspto.yaml", 3),
        ("3.0/json/petstore-expanded.json", 4),
        ("3.1/json/webhooks.json", 0),
        ("3.0/json/circular.json", 0),
    ] {
        let p = load(rel);
        if routes > 0 {
            assert_eq!(p.routes().len(), routes, "{rel}");
        }
    }
    let vars = load("3.0/json/server-variables.json");
    assert_eq!(vars.base_paths(), ["/v1", "/v2"]);
}

#[test]
fn every_description_in_the_package_is_checked_with_a_verdict() {
    let dir = data_dir();
    let mut loaded = 0;
    let mut refused = Vec::new();
    for version in ["3.0/json", "3.0/yaml", "3.1/json", "3.1/yaml"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(version))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let report = check(&f, &PolicyOptions::default());
            let loads = Policy::load(&f, &PolicyOptions::default());
            assert!(
                !matches!(loads, Err(PolicyError::TooDeep { .. })),
                "{}: real descriptions are far from the nesting limit",
                f.display()
            );
            assert_eq!(
                report.ok,
                loads.is_ok(),
                "{}: check and load disagree",
                f.display()
            );
            if report.ok {
                loaded += 1;
            } else {
                // A refusal always says where: a JSON pointer for each error and keyword.
                assert!(
                    report
                        .errors
                        .iter()
                        .all(|e| !e.pointer.is_empty() || !e.reason.is_empty())
                        && report
                            .unsupported
                            .iter()
                            .all(|u| u.location.starts_with('/')),
                    "{}: {:?}",
                    f.display(),
                    report.errors
                );
                refused.push(f.strip_prefix(&dir).unwrap().display().to_string());
            }
        }
    }
    assert!(
        loaded >= 80,
        "only {loaded} descriptions load; refused: {refused:?}"
    );
    // This one uses what the validator cannot enforce (`nullable` in 3.1, unknown formats):
    // refused, never half-enforced.
    assert!(
        refused.contains(&"3.0/json/schema-types.json".to_string()),
        "schema-types.json should be refused: {refused:?}"
    );
    // train-travel closes BookingPayment.source with `unevaluatedProperties: false`, OpenAPI
    // 3.1's way: it loads, and the keyword is enforced.
    assert!(
        !refused.contains(&"3.1/json/train-travel.json".to_string()),
        "train-travel.json should load: {refused:?}"
    );
    let report = check(
        &dir.join("3.1/json/train-travel.json"),
        &PolicyOptions::default(),
    );
    assert!(report.ok, "{:?} {:?}", report.errors, report.unsupported);
    assert_eq!((report.operations, report.paths), (7, 5));
}
