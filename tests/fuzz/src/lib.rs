//! Shared pieces of Vigil's fuzz targets (`src/bin/*.rs`, one per parser that sees attacker
//! bytes). Each target is a thin `main` around `afl::fuzz!`; fixed inputs the targets need
//! (schema, key set, policy) live in `fixtures/` and are compiled in with `include_str!`.
//!
//! Build and run them with `scripts/fuzz.sh`; replay one input without AFL with
//! `target/release/<target> < input` (the `afl` crate reads stdin when no fuzzer is attached).

/// The input as text, or `None` when it is not UTF-8 (the parsers behind a `&str` never see
/// such bytes: HTTP header values and config files are checked for UTF-8 before them).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Seconds since the epoch the `jwt` target verifies at: fixed, so a token's verdict never
/// depends on when the fuzzer runs (2027-01-15T08:00:00Z).
pub const JWT_NOW: u64 = 1_800_000_000;

/// A request for the `policy_request` target, cut out of the fuzzer's bytes: line 1 is the
/// method, line 2 the request target (path and optional `?query`), then `name: value` header
/// lines up to an empty line, then the body.
#[derive(Debug)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> RawRequest<'a> {
    pub fn parse(data: &'a [u8]) -> Option<RawRequest<'a>> {
        let split = data
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or((data, &[][..]), |i| (&data[..i], &data[i + 2..]));
        let head = text(split.0)?;
        let mut lines = head.split('\n');
        let method = lines.next()?;
        let target = lines.next().unwrap_or("/");
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        Some(RawRequest {
            method,
            path,
            query,
            headers,
            body: split.1,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The fixtures and seeds do what their names say, so the fuzzer starts from real
    //! footholds: `cargo test --lib` here (an ordinary build; the targets need AFL to link).
    use super::*;
    use std::fs;
    use std::path::Path;

    #[test]
    fn raw_request_splits_head_and_body() {
        let r = RawRequest::parse(b"POST\n/orders?dry=true\ncontent-type: application/json\n\n{}")
            .unwrap_or_else(|| panic!("no request"));
        assert_eq!(
            (r.method, r.path, r.query),
            ("POST", "/orders", Some("dry=true"))
        );
        assert_eq!(r.headers, vec![("content-type", "application/json")]);
        assert_eq!(r.body, b"{}");
    }

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut out: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| {
                let data = fs::read(e.path()).unwrap_or_else(|err| panic!("{err}"));
                (e.file_name().to_string_lossy().into_owned(), data)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn valid_tokens_verify_and_the_others_do_not() {
        let keys = vigil_identity::KeySet::from_jwks(include_bytes!("../fixtures/jwks.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.len(), 4);
        let validation = vigil_identity::Validation {
            issuers: vec!["https://idp.example".into()],
            audiences: vec!["api".into()],
            ..vigil_identity::Validation::default()
        };
        for (name, data) in seeds("jwt") {
            let token = String::from_utf8(data).unwrap_or_default();
            let r = vigil_identity::verify(&token, &keys, &validation, JWT_NOW);
            assert_eq!(r.is_ok(), name.starts_with("valid-"), "{name}: {r:?}");
        }
    }

    #[test]
    fn order_seeds_meet_the_schema_as_named() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/order-schema.json"))
                .unwrap_or_else(|e| panic!("{e}"));
        let v = vigil_schema::Validator::compile(
            &schema,
            vigil_schema::Dialect::Draft2020_12,
            &vigil_schema::CompileOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (name, mut data) in seeds("json_schema") {
            let r = v.validate_bytes(&mut data, &vigil_schema::Limits::default());
            assert_eq!(r.is_ok(), name.starts_with("valid-"), "{name}: {r:?}");
        }
    }

    #[test]
    fn policy_seeds_reach_their_routes() {
        let policy = vigil_policy::Policy::from_text(
            include_str!("../fixtures/orders-api.yaml"),
            &vigil_policy::PolicyOptions {
                strict_query: true,
                ..vigil_policy::PolicyOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut passed = 0;
        for (name, data) in seeds("policy_request") {
            let req =
                RawRequest::parse(&data).unwrap_or_else(|| panic!("{name}: not a request"));
            let parts = vigil_policy::RequestParts {
                method: req.method,
                path: req.path,
                query: req.query,
                headers: req.headers.as_slice(),
            };
            match policy.check(&parts, req.body) {
                Ok(_) => passed += 1,
                // Refused seeds must at least be routed: a 404 would mean the seed misses the API.
                Err(d) => assert_ne!(d.status, 404, "{name}: {d:?}"),
            }
        }
        assert!(passed >= 4, "only {passed} policy seeds pass");
    }

    #[test]
    fn the_example_config_parses() {
        for (name, data) in seeds("config") {
            let text = String::from_utf8(data).unwrap_or_default();
            let r = vigil_dataplane::Config::parse(&text, Path::new("vigild.toml"));
            let bad = name.starts_with("typo") || name.starts_with("bad-");
            assert_eq!(r.is_err(), bad, "{name}: {r:?}");
        }
    }
}
