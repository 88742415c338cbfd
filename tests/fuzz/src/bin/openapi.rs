//! An OpenAPI description through `vigil_policy::Policy::from_text` (YAML or JSON, every
//! structure, schemas compiled by vigil-schema). When it compiles, a few requests are routed
//! and checked so that the compiled router and validators run too.

use vigil_policy::{Policy, PolicyOptions, RequestParts};

const PROBES: [(&str, &str, Option<&str>); 5] = [
    ("GET", "/", None),
    ("GET", "/users/1", Some("limit=10&tag=a&tag=b")),
    ("POST", "/orders", None),
    ("DELETE", "/v1/items/%2e%2e/x", Some("a[b]=1")),
    ("HEAD", "/pets/cat.json", Some("")),
];

fn main() {
    let options = PolicyOptions::default();
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = vigil_fuzz::text(data) else {
            return;
        };
        let Ok(policy) = Policy::from_text(text, &options) else {
            return;
        };
        let headers: &[(&str, &str)] = &[
            ("content-type", "application/json"),
            ("cookie", "session=abc; theme=dark"),
            ("x-request-id", "42"),
        ];
        for (method, path, query) in PROBES {
            let req = RequestParts {
                method,
                path,
                query,
                headers,
            };
            let _ = policy.check(&req, br#"{"id": 1, "name": "x", "tags": ["a"]}"#);
        }
    });
}
