//! Decisions of a compiled policy on one small description that exercises every check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::query_value;
use crate::testutil::TempDir;

const DOC: &str = r##"
openapi: 3.0.3
info: {title: t, version: "1"}
servers:
  - url: https://api.example.com/v1
x-vigil: {on_degrade: degrade}
paths:
  /users/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
    get:
      operationId: getUser
      parameters:
        - {name: fields, in: query, schema: {type: array, items: {type: string, enum: [a, b]}}, explode: false}
        - {name: X-Trace, in: header, schema: {type: string, format: uuid}}
        - {name: session, in: cookie, required: true, schema: {type: string, minLength: 3}}
    delete:
      x-vigil: {mode: log-only, on_degrade: shed}
  /users/me:
    get: {}
  /users:
    post:
      parameters:
        - {name: dry, in: query, schema: {type: boolean}}
        - {name: filter, in: query, style: deepObject, schema: {type: object, properties: {age: {type: integer}}}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/User'}
          text/plain: {}
components:
  schemas:
    User:
      type: object
      required: [name]
      properties:
        id: {type: integer, readOnly: true}
        name: {type: string, maxLength: 8}
"##;

fn policy(options: &PolicyOptions) -> Policy {
    Policy::from_text(DOC, options).expect("test document compiles")
}

const COOKIE: [(&str, &str); 1] = [("Cookie", "session=abcd")];

#[test]
fn routes_have_ids_and_settings() {
    let p = policy(&PolicyOptions::default());
    let ids: Vec<&str> = p.routes().iter().map(Route::id).collect();
    assert_eq!(
        ids,
        vec![
            "POST /users",
            "GET /users/me",
            "GET /users/{id}",
            "DELETE /users/{id}"
        ]
    );
    assert_eq!(p.base_paths(), ["/v1"]);
    let get = p.route("GET /users/{id}").unwrap();
    assert_eq!(
        (get.log_only(), get.on_degrade()),
        (false, OnDegrade::Degrade)
    );
    assert_eq!(get.operation_id(), Some("getUser"));
    let del = p.route("DELETE /users/{id}").unwrap();
    assert_eq!((del.log_only(), del.on_degrade()), (true, OnDegrade::Shed));
    assert_eq!(p.settings().on_degrade, OnDegrade::Degrade);
}

#[test]
fn websocket_upgrades_are_allowed_per_operation() {
    let doc = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /live:
    x-vigil: {websocket: true}
    get: {}
    post: {x-vigil: {websocket: false}}
  /poll:
    get: {}
"#;
    let p = Policy::from_text(doc, &PolicyOptions::default()).unwrap();
    let ws = |m: &str, path: &str| p.match_route(m, path).unwrap().websocket();
    assert!(ws("GET", "/live"));
    assert!(!ws("POST", "/live"));
    assert!(!ws("GET", "/poll"), "off by default");
    assert!(p.route("GET /live").unwrap().websocket());
    assert!(!p.settings().websocket);
    let parsed: Value = serde_yaml_ng::from_str(doc).unwrap();
    let report = crate::check_value(&parsed, &PolicyOptions::default());
    let on: Vec<&str> = report
        .routes
        .iter()
        .filter(|r| r.websocket)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(on, ["GET /live"]);
    let bad = doc.replace("websocket: true", "websocket: maybe");
    let e = Policy::from_text(&bad, &PolicyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("/paths/~1live/x-vigil"), "{e}");
}

#[test]
fn routing_decisions() {
    let p = policy(&PolicyOptions::default());
    let m = p.match_route("GET", "/v1/users/me").unwrap();
    assert_eq!(m.route_id(), "GET /users/me");
    let m = p.match_route("GET", "/v1/users/42").unwrap();
    assert_eq!(
        (m.route_id(), m.path_param("id")),
        ("GET /users/{id}", Some("42"))
    );
    assert_eq!(
        p.match_route("HEAD", "/v1/users/42").unwrap().route_id(),
        "GET /users/{id}"
    );
    let e = p.match_route("GET", "/v1/admin").unwrap_err();
    assert_eq!((e.status, e.reason), (404, "route_not_found"));
    let e = p.match_route("GET", "/users/42").unwrap_err();
    assert_eq!(e.status, 404, "no base path");
    let e = p.match_route("PUT", "/v1/users/42").unwrap_err();
    assert_eq!((e.status, e.reason), (405, "method_not_allowed"));
    assert_eq!(e.allow_header().as_deref(), Some("GET, DELETE, HEAD"));
    assert_eq!(e.location, "/users/{id}");
    let e = p.match_route("CONNECT", "/v1/users").unwrap_err();
    assert_eq!(e.allow, Some(vec![Method::Post]));
    let e = p.match_route("GET", "/v1/users/%2e%2e").unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.keyword.as_deref()),
        (400, "path_invalid", Some("dot_segment"))
    );
}

#[test]
fn parameter_decisions() {
    let p = policy(&PolicyOptions::default());
    let check = |path: &str, query: Option<&str>, headers: &[(&str, &str)]| {
        p.match_route("GET", path)
            .unwrap()
            .check_params(query, headers)
    };
    assert!(check("/v1/users/42", Some("fields=a,b&other=1"), &COOKIE).is_ok());
    let e = check("/v1/users/0", None, &COOKIE).unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (400, "param_invalid", "path.id")
    );
    assert_eq!(e.keyword.as_deref(), Some("minimum"));
    let e = check("/v1/users/abc", None, &COOKIE).unwrap_err();
    assert_eq!(e.keyword.as_deref(), Some("type"));
    let e = check("/v1/users/1", Some("fields=a,c"), &COOKIE).unwrap_err();
    assert_eq!(
        (e.location.as_str(), e.keyword.as_deref()),
        ("query.fields", Some("enum"))
    );
    let e = check("/v1/users/1", None, &[]).unwrap_err();
    assert_eq!(
        (e.reason, e.location.as_str()),
        ("param_missing", "cookie.session")
    );
    let e = check("/v1/users/1", None, &[("cookie", "session=ab")]).unwrap_err();
    assert_eq!(e.keyword.as_deref(), Some("minLength"));
    let trace = [("cookie", "session=abcd"), ("x-trace", "not-a-uuid")];
    let e = check("/v1/users/1", None, &trace).unwrap_err();
    assert_eq!(
        (e.location.as_str(), e.keyword.as_deref()),
        ("header.x-trace", Some("format"))
    );
    let trace = [
        ("cookie", "session=abcd"),
        ("X-Trace", "123e4567-e89b-12d3-a456-426614174000"),
    ];
    assert!(check("/v1/users/1", None, &trace).is_ok());
    let post = p.match_route("POST", "/v1/users").unwrap();
    assert!(
        post.check_params(Some("dry=true&filter[age]=3"), &[][..])
            .is_ok()
    );
    let e = post.check_params(Some("dry=maybe"), &[][..]).unwrap_err();
    assert_eq!(e.location, "query.dry");
    assert!(post.check_params(Some("filter[age]=old"), &[][..]).is_err());
}

#[test]
fn strict_query_refuses_undescribed_parameters() {
    let p = policy(&PolicyOptions {
        strict_query: true,
        ..PolicyOptions::default()
    });
    let m = p.match_route("POST", "/v1/users").unwrap();
    assert!(
        m.check_params(Some("dry=true&filter[age]=1"), &[][..])
            .is_ok()
    );
    let e = m
        .check_params(Some("dry=true&debug=1"), &[][..])
        .unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (400, "param_unknown", "query")
    );
}

#[test]
fn body_decisions() {
    let p = policy(&PolicyOptions::default());
    let m = p.match_route("POST", "/v1/users").unwrap();
    let body = |ct: Option<&str>, b: &str| m.check_body(ct, b.as_bytes());
    assert!(
        body(
            Some("application/json; charset=utf-8"),
            r#"{"name": "ann"}"#
        )
        .is_ok()
    );
    assert!(body(Some("text/plain"), "hello").is_ok());
    let e = body(Some("application/xml"), "<a/>").unwrap_err();
    assert_eq!((e.status, e.reason), (415, "unsupported_media_type"));
    let e = body(Some("application/json"), "").unwrap_err();
    assert_eq!((e.status, e.reason), (400, "body_missing"));
    let e = body(Some("application/json"), r#"{"name": "much too long"}"#).unwrap_err();
    assert_eq!(
        (e.reason, e.location.as_str(), e.keyword.as_deref()),
        ("body_invalid", "/name", Some("maxLength"))
    );
    let e = body(Some("application/json"), r#"{"name": "a", "id": 7}"#).unwrap_err();
    assert_eq!(e.reason, "read_only_property");
    assert!(body(Some("application/json"), r#"{"name": "a", "extra": 1}"#).is_ok());
    let strict = policy(&PolicyOptions {
        strict_objects: true,
        ..PolicyOptions::default()
    });
    let m = strict.match_route("POST", "/v1/users").unwrap();
    let e = m.check_body(Some("application/json"), br#"{"name": "a", "extra": 1}"#);
    assert_eq!(
        e.unwrap_err().keyword.as_deref(),
        Some("additionalProperties")
    );
    let get = p.match_route("GET", "/v1/users/me").unwrap();
    assert_eq!(
        get.check_body(Some("application/json"), b"{}")
            .unwrap_err()
            .status,
        415
    );
    assert!(get.check_body(None, &[]).is_ok());
}

#[test]
fn content_type_decisions_need_no_body() {
    let p = policy(&PolicyOptions::default());
    let post = p.match_route("POST", "/v1/users").unwrap();
    // A JSON-only operation (here JSON and text/plain) refuses a body without Content-Type.
    let e = post.check_body(None, br#"{"name": "ann"}"#).unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (415, "unsupported_media_type", "header.content-type")
    );
    let req = RequestParts {
        method: "POST",
        path: "/v1/users",
        query: None,
        headers: &[][..],
    };
    assert_eq!(p.check(&req, b"{}").unwrap_err().status, 415);
    // The same answers before any body byte is read.
    assert_eq!(post.check_content_type(None, true).unwrap_err().status, 415);
    let e = post.check_content_type(Some("application/xml"), true);
    assert_eq!(e.unwrap_err().reason, "unsupported_media_type");
    assert!(
        post.check_content_type(Some("application/json"), true)
            .is_ok()
    );
    let e = post.check_content_type(Some("application/json"), false);
    assert_eq!(e.unwrap_err().reason, "body_missing");
    let get = p.match_route("GET", "/v1/users/me").unwrap();
    assert!(get.check_content_type(None, false).is_ok());
    let e = get.check_content_type(Some("application/json"), true);
    assert_eq!(e.unwrap_err().keyword.as_deref(), Some("requestBody"));
    // Only a body the validator reads needs buffering.
    assert!(post.needs_body(Some("application/json")));
    assert!(!post.needs_body(Some("text/plain")));
    assert!(!post.needs_body(Some("application/xml")));
    assert!(!post.needs_body(None));
    assert!(!get.needs_body(Some("application/json")));
    // A description that takes any bytes takes them without a Content-Type too.
    let any = DOC.replace("text/plain: {}", "'*/*': {}");
    let p = Policy::from_text(&any, &PolicyOptions::default()).unwrap();
    let post = p.match_route("POST", "/v1/users").unwrap();
    assert!(post.check_content_type(None, true).is_ok());
    assert!(post.check_body(None, b"\x00\x01").is_ok());
}

#[test]
fn one_call_checks_everything() {
    let p = policy(&PolicyOptions::default());
    let headers = [("content-type", "application/json")];
    let req = RequestParts {
        method: "POST",
        path: "/v1/users",
        query: Some("dry=false"),
        headers: &headers[..],
    };
    let route = p.check(&req, br#"{"name": "ann"}"#).unwrap();
    assert_eq!(route.id(), "POST /users");
    let e = p.check(&req, br#"{"name": 123456789}"#).unwrap_err();
    assert_eq!((e.status, e.reason), (400, "body_invalid"));
    let json = serde_json::to_string(&e).unwrap();
    assert!(
        !json.contains("123456789"),
        "a denial never echoes the request: {json}"
    );
}

#[test]
fn load_errors_name_the_place() {
    let bad = DOC.replace("style: deepObject", "style: matrix");
    let e = Policy::from_text(&bad, &PolicyOptions::default()).unwrap_err();
    assert!(
        matches!(&e, PolicyError::Invalid { pointer, .. } if pointer == "/paths/~1users/post/parameters/1/style"),
        "{e}"
    );
    let bad = DOC.replace("maxLength: 8", "maxLength: 8, unevaluatedProperties: false");
    let e = Policy::from_text(&bad, &PolicyOptions::default()).unwrap_err();
    let PolicyError::Unsupported { first, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        first.location,
        "/components/schemas/User/properties/name/unevaluatedProperties"
    );
    let bad = DOC.replace(
        "'#/components/schemas/User'",
        "'#/components/schemas/Nobody'",
    );
    let e = Policy::from_text(&bad, &PolicyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("Nobody"), "{e}");
    let bad = DOC.replace("mode: log-only", "mode: audit");
    let e = Policy::from_text(&bad, &PolicyOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("/paths/~1users~1{id}/delete/x-vigil"),
        "{e}"
    );
}

#[test]
fn loads_from_files_with_sibling_refs() {
    let t = TempDir::new("policy");
    t.write(
        "api.yaml",
        &DOC.replace("'#/components/schemas/User'", "'schemas.yaml#/User'"),
    );
    t.write(
        "schemas.yaml",
        "User: {type: object, required: [name], properties: {name: {type: string}}}\n",
    );
    let p = Policy::load(&t.path("api.yaml"), &PolicyOptions::default()).unwrap();
    let m = p.match_route("POST", "/v1/users").unwrap();
    assert!(
        m.check_body(Some("application/json"), br#"{"name": "x"}"#)
            .is_ok()
    );
    assert!(m.check_body(Some("application/json"), br#"{}"#).is_err());
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

/// Parameters whose style reads one value, each described once (HTTP parameter pollution).
const POLLUTION: &str = r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
        - {name: ids, in: query, schema: {type: array, items: {type: integer, maximum: 100}}}
        - {name: tags, in: query, explode: false, schema: {type: array, items: {type: string}}}
        - {name: q, in: query, content: {application/json: {schema: {type: object}}}}
        - {name: filter, in: query, style: deepObject, schema: {type: object, properties: {age: {type: integer}}}}
        - {name: X-Limit, in: header, schema: {type: integer, maximum: 100}}
        - {name: x-ids, in: header, schema: {type: array, items: {type: integer, maximum: 100}}}
        - {name: session, in: cookie, schema: {type: string, maxLength: 8}}
    post:
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                limit: {type: integer, maximum: 100}
                tags: {type: array, items: {type: string}}
"##;

fn check_items(query: Option<&str>, headers: &[(&str, &str)]) -> Result<(), Deny> {
    let p = Policy::from_text(POLLUTION, &PolicyOptions::default()).expect("compiles");
    p.match_route("GET", "/items")
        .unwrap()
        .check_params(query, headers)
}

fn at(r: Result<(), Deny>) -> (u16, &'static str, String) {
    let e = r.expect_err("refused");
    (e.status, e.reason, e.location)
}

#[test]
fn repeated_query_parameters_are_refused_unless_their_style_repeats() {
    let repeated = |name: &str| (400, "param_repeated", format!("query.{name}"));
    assert!(check_items(Some("limit=100"), &[]).is_ok());
    assert_eq!(
        at(check_items(Some("limit=1&limit=1000"), &[])),
        repeated("limit")
    );
    assert_eq!(
        at(check_items(Some("limit=1000&limit=1"), &[])),
        repeated("limit")
    );
    assert_eq!(
        at(check_items(Some("limit=1&limit"), &[])),
        repeated("limit")
    );
    // Exploded form arrays read every occurrence, so every one is checked.
    assert!(check_items(Some("ids=1&ids=2"), &[]).is_ok());
    let e = check_items(Some("ids=1&ids=1000"), &[]).unwrap_err();
    assert_eq!(
        (e.reason, e.keyword.as_deref()),
        ("param_invalid", Some("maximum"))
    );
    assert!(check_items(Some("tags=a,b"), &[]).is_ok());
    assert_eq!(
        at(check_items(Some("tags=a,b&tags=c"), &[])),
        repeated("tags")
    );
    assert_eq!(at(check_items(Some("q={}&q={}"), &[])), repeated("q"));
    assert!(check_items(Some("filter[age]=1"), &[]).is_ok());
    assert_eq!(
        at(check_items(Some("filter[age]=1&filter[age]=1000"), &[])),
        repeated("filter")
    );
    // Undescribed parameters are not read, so they may repeat (unless `strict_query`).
    assert!(check_items(Some("other=1&other=2"), &[]).is_ok());
}

#[test]
fn query_value_refuses_what_validation_refuses() {
    assert_eq!(
        query_value("limit=5&x=1", "limit"),
        Ok(Some("5".to_string()))
    );
    assert_eq!(query_value("x=1", "limit"), Ok(None));
    let e = query_value("limit=1&x=2&limit=1000", "limit").unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (400, "param_repeated", "query.limit")
    );
    assert_eq!(
        query_value("limit=%zz", "limit").unwrap_err().reason,
        "param_invalid"
    );
}

#[test]
fn repeated_headers_and_cookies_are_refused_unless_arrays() {
    assert!(check_items(None, &[("x-limit", "100")]).is_ok());
    assert_eq!(
        at(check_items(None, &[("X-Limit", "1"), ("x-limit", "1000")])),
        (400, "param_repeated", "header.x-limit".to_string())
    );
    // Header lines of an array parameter are one list, every item checked.
    assert!(check_items(None, &[("x-ids", "1, 2"), ("x-ids", "3")]).is_ok());
    let e = check_items(None, &[("x-ids", "1"), ("x-ids", "1000")]).unwrap_err();
    assert_eq!(
        (e.reason, e.location.as_str(), e.keyword.as_deref()),
        ("param_invalid", "header.x-ids", Some("maximum"))
    );
    let session = (400, "param_repeated", "cookie.session".to_string());
    assert!(check_items(None, &[("cookie", "a=1; session=abc")]).is_ok());
    assert_eq!(
        at(check_items(None, &[("cookie", "session=a; session=b")])),
        session
    );
    // HTTP/2 may split cookies over several lines: all of them count.
    assert_eq!(
        at(check_items(
            None,
            &[("cookie", "session=a"), ("cookie", "session=b")]
        )),
        session
    );
    assert!(check_items(None, &[("cookie", "a=1"), ("cookie", "session=abc")]).is_ok());
    let e = check_items(
        None,
        &[("cookie", "a=1"), ("cookie", "session=much-too-long")],
    );
    assert_eq!(e.unwrap_err().keyword.as_deref(), Some("maxLength"));
}

/// A `Headers` that only says how many lines there are: what it does not show is refused.
struct CountOnly<'a>(&'a [(&'a str, &'a str)]);

impl Headers for CountOnly<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(name)
    }

    fn header_count(&self, name: &str) -> usize {
        self.0.header_count(name)
    }
}

#[test]
fn lines_the_policy_cannot_see_are_not_trusted() {
    let p = Policy::from_text(POLLUTION, &PolicyOptions::default()).unwrap();
    let m = p.match_route("GET", "/items").unwrap();
    let check = |h: &[(&str, &str)]| m.check_params(None, &CountOnly(h));
    assert!(check(&[("x-ids", "1,2"), ("cookie", "session=abc")]).is_ok());
    assert_eq!(
        at(check(&[("x-ids", "1"), ("x-ids", "1000")])),
        (400, "param_repeated", "header.x-ids".to_string())
    );
    assert_eq!(
        at(check(&[("cookie", "a=1"), ("cookie", "session=abc")])),
        (400, "param_repeated", "cookie.session".to_string())
    );
}

#[test]
fn repeated_form_fields_are_refused_unless_arrays() {
    let p = Policy::from_text(POLLUTION, &PolicyOptions::default()).unwrap();
    let m = p.match_route("POST", "/items").unwrap();
    let form = Some("application/x-www-form-urlencoded");
    let body = |b: &str| m.check_body(form, b.as_bytes());
    assert!(body("limit=5&tags=a&tags=b").is_ok());
    let e = body("limit=1&limit=1000").unwrap_err();
    assert_eq!(
        (e.status, e.reason, e.location.as_str()),
        (400, "duplicate_key", "/limit")
    );
    assert_eq!(body("other=1&other=2").unwrap_err().reason, "duplicate_key");
}

/// Hostile input never panics and is always answered with a known code.
#[test]
fn random_requests_get_known_answers() {
    const KNOWN: [&str; 15] = [
        "route_not_found",
        "param_repeated",
        "method_not_allowed",
        "path_invalid",
        "param_invalid",
        "param_missing",
        "unsupported_media_type",
        "body_missing",
        "body_invalid",
        "malformed_json",
        "duplicate_key",
        "invalid_utf8",
        "read_only_property",
        "too_deep",
        "number_out_of_range",
    ];
    let p = policy(&PolicyOptions::default());
    let pieces: [&str; 24] = [
        "/", "/v1", "users", "me", "42", "%2F", "%2e", "..", ".", "%00", "%", "%zz", "{id}", "?",
        "&", "=", "fields=a", "[", "]", ",", "é", "%C3%A9", "%ff", ";",
    ];
    let bodies: [&[u8]; 6] = [
        b"",
        b"{",
        b"{\"name\":\"a\"}",
        b"[[[[",
        b"\xff\xfe",
        b"{\"a\":1,\"a\":2}",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut allowed, mut seen) = (0, std::collections::BTreeSet::new());
    for _ in 0..5000 {
        let mut target = String::from("/v1/users");
        for _ in 0..(next() % 6) {
            target.push_str(pieces[(next() % pieces.len() as u64) as usize]);
        }
        let (path, query) = match target.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (target.as_str(), None),
        };
        let method = ["GET", "POST", "DELETE", "HEAD", "PROPFIND", "get"][(next() % 6) as usize];
        let ct = [
            "application/json",
            "text/plain; x=1",
            "application/",
            "",
            "*/*",
        ][(next() % 5) as usize];
        let headers = [("content-type", ct), ("cookie", "session=abcd; x=%zz")];
        let req = RequestParts {
            method,
            path,
            query,
            headers: &headers[..],
        };
        let body = bodies[(next() % bodies.len() as u64) as usize];
        match p.check(&req, body) {
            Ok(_) => allowed += 1,
            Err(e) => {
                assert!(KNOWN.contains(&e.reason), "{target}: {e:?}");
                assert!((400..=415).contains(&e.status), "{target}: {e:?}");
                seen.insert(e.reason);
            }
        }
    }
    assert!(
        allowed > 0 && seen.len() >= 6,
        "allowed {allowed}, reasons {seen:?}"
    );
}

#[test]
fn a_kept_match_names_only_parameters_of_its_template() {
    assert!(names_param("/users/{user}/items", "user"));
    assert!(names_param("/a/{x}/b/{user}", "user"));
    assert!(!names_param("/users/{user}/items", "use"));
    assert!(!names_param("/users/{userx}/items", "user"));
    assert!(!names_param("/users/user/items", "user"));
    assert!(!names_param("/users/{user", "user"));
}
