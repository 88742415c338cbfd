//! A request through a fixed, compiled OpenAPI policy (`fixtures/orders-api.yaml`): routing
//! (percent-decoding, templates), query, header and cookie parameters, and the JSON or form
//! body. Input layout: see `vigil_fuzz::RawRequest`.

use vigil_fuzz::RawRequest;
use vigil_policy::{Policy, PolicyOptions, RequestParts};

fn main() {
    let options = PolicyOptions {
        strict_query: true,
        ..PolicyOptions::default()
    };
    let policy = Policy::from_text(include_str!("../../fixtures/orders-api.yaml"), &options)
        .unwrap_or_else(|e| panic!("fixture policy does not compile: {e}"));
    afl::fuzz!(|data: &[u8]| {
        let Some(req) = RawRequest::parse(data) else {
            return;
        };
        let parts = RequestParts {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers.as_slice(),
        };
        let _ = policy.check(&parts, req.body);
    });
}
