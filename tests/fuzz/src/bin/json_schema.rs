//! A request body through vigil-schema against a fixed, realistic schema: an order-intake
//! `POST /orders` body (2020-12; `$ref`, `format`, `pattern`, `uniqueItems`, `multipleOf`,
//! `enum`, `additionalProperties`), the one `perf/schema` measures. Both paths run on every
//! input: the fused pass (parse and validate in one pass) and the tape walk (simd-json tape,
//! then the compiled schema); wherever the fused pass decides, its result, violations
//! included, must be the tape walk's, with the default limits and with room for two
//! violations only.
//!
//! With `VIGIL_FUZZ_DIFF=1` it also compares the verdict with `validate_value` on the same
//! document parsed by serde_json: the two walkers must agree on every body both parsers read
//! the same way (no duplicate keys, within the limits).

use vigil_schema::{CompileOptions, Dialect, Limits, Reason, Validator};

fn main() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/order-schema.json"))
            .unwrap_or_else(|e| panic!("fixture schema: {e}"));
    let validator = Validator::compile(&schema, Dialect::Draft2020_12, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("fixture schema does not compile: {e}"));
    let limits = Limits::default();
    let two = Limits {
        max_errors: 2,
        ..Limits::default()
    };
    let diff = std::env::var_os("VIGIL_FUZZ_DIFF").is_some_and(|v| v == "1");
    afl::fuzz!(|data: &[u8]| {
        let fused = validator.validate_fused(data, &limits);
        let tape = validator.validate_bytes_by_tape(&mut data.to_vec(), &limits);
        if let Some(f) = &fused {
            assert_eq!(f, &tape, "the fused pass and the tape walk disagree");
        }
        if let Some(f) = validator.validate_fused(data, &two) {
            let t = validator.validate_bytes_by_tape(&mut data.to_vec(), &two);
            assert_eq!(f, t, "the fused pass and the tape walk disagree (max_errors 2)");
        }
        if !diff {
            return;
        }
        let comparable = match &tape {
            Ok(()) => true,
            Err(r) => matches!(r.reason, Reason::SchemaViolation),
        };
        if !comparable {
            return;
        }
        let value: serde_json::Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => panic!("simd-json accepted a body serde_json refuses ({e}): {tape:?}"),
        };
        let tree = validator.validate_value(&value);
        assert_eq!(
            tape.is_ok(),
            tree.is_ok(),
            "tape and value walkers disagree: tape {tape:?}, value {tree:?}"
        );
    });
}
