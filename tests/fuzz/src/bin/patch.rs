//! Virtual patches (`vigil-patch`): a request file (`vigilctl patch test` reads one from an
//! operator; the gateway's view of a live request has the same shape) evaluated against a fixed
//! set of patches that uses every field and every test, and the patch format itself. Inputs
//! starting with `[` or `i` are read as a patch (TOML), checked, compiled and evaluated on a
//! fixed request; anything else is a request file. Nothing may panic, and a set must give the
//! same answer twice (hits counted, verdict unchanged).

use vigil_patch::{Patch, PatchSet, http_file::FileRequest};

const PATCHES: &str = include_str!("../../fixtures/patches.toml");
const REQUEST: &[u8] = b"POST /api/v1/orders?q=1 HTTP/1.1\nContent-Type: application/json\nCookie: s=1\n\n{\"a\": [1, \"x\"]}";

#[derive(serde::Deserialize)]
struct Fixture {
    patch: Vec<Patch>,
}

fn main() {
    let fixture: Fixture =
        toml::from_str(PATCHES).unwrap_or_else(|e| panic!("fixtures/patches.toml: {e}"));
    let checked = fixture
        .patch
        .iter()
        .map(|p| p.check(None).unwrap_or_else(|e| panic!("fixture patch: {e}")))
        .collect();
    let set = PatchSet::compile(checked, None).unwrap_or_else(|e| panic!("fixture set: {e}"));
    let fixed = FileRequest::parse(REQUEST).unwrap_or_else(|e| panic!("fixed request: {e}"));
    afl::fuzz!(|data: &[u8]| {
        if matches!(data.first(), Some(b'[' | b'i')) {
            let Some(text) = vigil_fuzz::text(data) else { return };
            let Ok(p) = toml::from_str::<Patch>(text) else { return };
            let Ok(c) = p.check(None) else { return };
            if let Ok(one) = PatchSet::compile(vec![c], None) {
                let a = one.evaluate(&fixed, true);
                assert_eq!(a, one.evaluate(&fixed, false), "a verdict changed between runs");
            }
        } else if let Ok(req) = FileRequest::parse(data) {
            let a = set.evaluate(&req, false);
            assert_eq!(a, set.evaluate(&req, true), "a verdict changed between runs");
        }
    });
}
