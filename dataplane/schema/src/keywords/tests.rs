#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::{CompileError, CompileOptions, Dialect, Limits, Reason, Rejection, Validator};
use serde_json::{Value, json};

pub(crate) fn compile(schema: Value, d: Dialect) -> Validator {
    Validator::compile(&schema, d, &CompileOptions::default()).unwrap()
}

/// Validates through both paths and checks they agree.
pub(crate) fn run(v: &Validator, text: &str) -> Result<(), Rejection> {
    let mut body = text.as_bytes().to_vec();
    let by_bytes = v.validate_bytes(&mut body, &Limits::default());
    let by_value = v.validate_value(&serde_json::from_str(text).unwrap());
    assert_eq!(
        by_bytes.is_ok(),
        by_value.is_ok(),
        "paths disagree on {text}"
    );
    by_bytes
}

/// (schema, valid bodies, invalid bodies) for every keyword, in 2020-12.
#[test]
fn each_keyword() {
    let cases: Vec<(Value, &[&str], &[&str])> = vec![
        (
            json!({"type": "integer"}),
            &["1", "1.0", "-5"],
            &["1.5", "\"1\"", "null"],
        ),
        (
            json!({"type": ["string", "null"]}),
            &["\"a\"", "null"],
            &["0", "[]"],
        ),
        (
            json!({"enum": [1, "a", {"b": [null]}]}),
            &["1.0", "\"a\"", "{\"b\":[null]}"],
            &["2", "{}"],
        ),
        (
            json!({"const": {"a": 1}}),
            &["{\"a\":1}"],
            &["{\"a\":2}", "{\"a\":1,\"b\":1}"],
        ),
        (
            json!({"minimum": 2, "maximum": 5}),
            &["2", "5", "3.5", "\"x\""],
            &["1.99", "5.01"],
        ),
        (
            json!({"exclusiveMinimum": 2, "exclusiveMaximum": 5}),
            &["2.5"],
            &["2", "5"],
        ),
        (
            json!({"multipleOf": 0.01}),
            &["19.99", "0", "-3"],
            &["19.991"],
        ),
        (
            json!({"minLength": 2, "maxLength": 3}),
            &["\"ab\"", "\"äöü\"", "1"],
            &["\"a\"", "\"abcd\""],
        ),
        (
            json!({"pattern": "^[a-z]+\\d$"}),
            &["\"ab1\"", "3"],
            &["\"ab\"", "\"AB1\""],
        ),
        (
            json!({"format": "uuid"}),
            &["\"2eb8aa08-aa98-11ea-b4aa-73b441d16380\"", "7"],
            &["\"x\""],
        ),
        (
            json!({"minItems": 1, "maxItems": 2}),
            &["[1]", "[1,2]", "{}"],
            &["[]", "[1,2,3]"],
        ),
        (
            json!({"uniqueItems": true}),
            &["[1,2,\"1\"]", "[]"],
            &["[1,1.0]", "[{\"a\":1},{\"a\":1}]"],
        ),
        (
            json!({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}),
            &["[\"a\",1,2]", "[]"],
            &["[1]", "[\"a\",\"b\"]"],
        ),
        (json!({"items": false}), &["[]"], &["[1]"]),
        (
            json!({"contains": {"const": 1}, "minContains": 2, "maxContains": 3}),
            &["[1,1]", "[1,2,1,1]"],
            &["[1]", "[1,1,1,1]"],
        ),
        (
            json!({"minProperties": 1, "maxProperties": 2}),
            &["{\"a\":1}"],
            &["{}", "{\"a\":1,\"b\":2,\"c\":3}"],
        ),
        (
            json!({"required": ["a", "b"]}),
            &["{\"a\":1,\"b\":2}", "[]"],
            &["{\"a\":1}"],
        ),
        (
            json!({"properties": {"a": {"type": "string"}}}),
            &["{\"a\":\"x\",\"b\":1}"],
            &["{\"a\":1}"],
        ),
        (
            json!({"patternProperties": {"^x-": {"type": "integer"}}}),
            &["{\"x-a\":1,\"y\":\"s\"}"],
            &["{\"x-a\":\"s\"}"],
        ),
        (
            json!({"properties": {"a": true}, "additionalProperties": false}),
            &["{\"a\":1}"],
            &["{\"b\":1}"],
        ),
        (
            json!({"propertyNames": {"maxLength": 2}}),
            &["{\"ab\":1}"],
            &["{\"abc\":1}"],
        ),
        (
            json!({"dependentRequired": {"a": ["b"]}}),
            &["{\"b\":1}", "{\"a\":1,\"b\":1}"],
            &["{\"a\":1}"],
        ),
        (
            json!({"dependentSchemas": {"a": {"required": ["c"]}}}),
            &["{\"a\":1,\"c\":1}"],
            &["{\"a\":1}"],
        ),
        (
            json!({"allOf": [{"minimum": 1}, {"maximum": 2}]}),
            &["1", "2"],
            &["0", "3"],
        ),
        (
            json!({"anyOf": [{"type": "string"}, {"minimum": 5}]}),
            &["\"a\"", "6"],
            &["4"],
        ),
        (
            json!({"oneOf": [{"minimum": 2}, {"maximum": 4}]}),
            &["1", "5"],
            &["3"],
        ),
        (json!({"not": {"type": "null"}}), &["0"], &["null"]),
        (
            json!({"if": {"minimum": 10}, "then": {"multipleOf": 2}, "else": {"maximum": 3}}),
            &["12", "2"],
            &["11", "5"],
        ),
        (
            json!({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}),
            &["3"],
            &["\"3\""],
        ),
        (
            json!({"$defs": {"n": {"$anchor": "num", "type": "number"}}, "items": {"$ref": "#num"}}),
            &["[1.5]"],
            &["[\"x\"]"],
        ),
        (
            json!({"properties": {"next": {"$ref": "#"}}, "required": ["v"]}),
            &["{\"v\":1,\"next\":{\"v\":2}}"],
            &["{\"v\":1,\"next\":{}}"],
        ),
        (json!(false), &[], &["null", "{}"]),
        (
            json!({"title": "t", "description": "d", "default": 1, "examples": [], "$comment": "c", "deprecated": true}),
            &["1"],
            &[],
        ),
    ];
    for (schema, good, bad) in cases {
        let v = compile(schema.clone(), Dialect::Draft2020_12);
        for g in good {
            assert!(run(&v, g).is_ok(), "{schema} should accept {g}");
        }
        for b in bad {
            let r = run(&v, b).expect_err(&format!("{schema} should reject {b}"));
            assert_eq!(r.reason, Reason::SchemaViolation);
        }
    }
}

#[test]
fn dialect_differences() {
    // Array-form items is a tuple before 2020-12 and a compile error in it.
    let d7 = compile(
        json!({"items": [{"type": "string"}], "additionalItems": false}),
        Dialect::Draft7,
    );
    assert!(run(&d7, "[\"a\"]").is_ok());
    assert!(run(&d7, "[\"a\", 1]").is_err());
    assert!(
        Validator::compile(
            &json!({"items": [{}]}),
            Dialect::Draft2020_12,
            &CompileOptions::default()
        )
        .is_err()
    );
    // Boolean exclusiveMaximum in draft 4 and OpenAPI 3.0, numeric later.
    for d in [Dialect::Draft4, Dialect::OpenApi30] {
        let v = compile(json!({"maximum": 5, "exclusiveMaximum": true}), d);
        assert!(run(&v, "5").is_err());
        assert!(run(&v, "4.9").is_ok());
    }
    assert!(
        run(
            &compile(json!({"exclusiveMaximum": 5}), Dialect::OpenApi31),
            "5"
        )
        .is_err()
    );
    // `$ref` hides its siblings in draft 7 and OpenAPI 3.0, not in 2020-12.
    let s = json!({"$defs": {"a": {}}, "definitions": {"a": {}}, "$ref": "#/definitions/a", "maximum": 1});
    assert!(run(&compile(s.clone(), Dialect::Draft7), "5").is_ok());
    assert!(run(&compile(s, Dialect::Draft2020_12), "5").is_err());
    // nullable is OpenAPI 3.0 only, and only widens `type`.
    let v = compile(
        json!({"type": "string", "nullable": true}),
        Dialect::OpenApi30,
    );
    assert!(run(&v, "null").is_ok());
    assert!(
        run(
            &compile(
                json!({"type": "string", "nullable": true, "enum": ["a"]}),
                Dialect::OpenApi30
            ),
            "null"
        )
        .is_err()
    );
    assert!(
        Validator::compile(
            &json!({"nullable": true}),
            Dialect::Draft2020_12,
            &CompileOptions::default()
        )
        .is_err()
    );
    // Boolean schemas exist from draft 6 on.
    assert!(
        Validator::compile(
            &json!({"not": true}),
            Dialect::Draft4,
            &CompileOptions::default()
        )
        .is_err()
    );
    // Draft 4 `dependencies` with both forms.
    let v = compile(
        json!({"dependencies": {"a": ["b"], "c": {"required": ["d"]}}}),
        Dialect::Draft4,
    );
    assert!(run(&v, r#"{"a":1}"#).is_err());
    assert!(run(&v, r#"{"c":1}"#).is_err());
    assert!(run(&v, r#"{"a":1,"b":2,"c":3,"d":4}"#).is_ok());
}

#[test]
fn openapi_extensions_and_annotations() {
    let s = json!({"type": "object", "x-internal": {"anything": 1}, "example": {},
        "discriminator": {"propertyName": "k"}, "xml": {}, "externalDocs": {"url": "u"},
        "properties": {"n": {"type": "integer", "format": "int32"}}});
    let v = compile(s.clone(), Dialect::OpenApi30);
    assert!(run(&v, r#"{"n": 2147483647}"#).is_ok());
    assert!(run(&v, r#"{"n": 2147483648}"#).is_err());
    let mut plain = s.clone();
    plain["properties"]["n"]["format"] = json!("date");
    let e =
        Validator::compile(&plain, Dialect::Draft2020_12, &CompileOptions::default()).unwrap_err();
    let kws: Vec<&str> = e
        .unsupported_keywords()
        .iter()
        .map(|u| u.keyword.as_str())
        .collect();
    assert_eq!(
        kws,
        [
            "discriminator",
            "example",
            "externalDocs",
            "x-internal",
            "xml"
        ]
    );
}

#[test]
fn unsupported_keywords_are_named_with_locations() {
    // Draft 2019-09's recursion keywords are not 2020-12's and are refused, not ignored.
    let s = json!({"properties": {"a": {"$recursiveAnchor": true}},
        "items": {"$recursiveRef": "#"}, "$ref": "https://example.com/remote.json"});
    let e = Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap_err();
    let found: Vec<(String, String)> = e
        .unsupported_keywords()
        .iter()
        .map(|u| (u.keyword.clone(), u.location.clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("$ref".to_string(), "/$ref".to_string()),
            (
                "$recursiveRef".to_string(),
                "/items/$recursiveRef".to_string()
            ),
            (
                "$recursiveAnchor".to_string(),
                "/properties/a/$recursiveAnchor".to_string()
            ),
        ]
    );
    assert!(e.to_string().contains("$ref"), "{e}");
    assert_eq!(
        crate::unsupported_keywords(&s, Dialect::Draft2020_12, &CompileOptions::default()).len(),
        3
    );
}

#[test]
fn bad_keyword_values_and_patterns() {
    let opts = CompileOptions::default();
    let e = Validator::compile(&json!({"minLength": "3"}), Dialect::Draft7, &opts).unwrap_err();
    assert!(
        matches!(e, CompileError::InvalidKeyword { ref location, .. } if location == "/minLength")
    );
    // Look-around is ECMA-262 but not linear-time: refused with the pattern's location.
    let e = Validator::compile(
        &json!({"properties": {"p": {"pattern": "(?=a)b"}}}),
        Dialect::Draft7,
        &opts,
    )
    .unwrap_err();
    assert!(
        matches!(e, CompileError::InvalidPattern { ref location, .. } if location == "/properties/p/pattern")
    );
    let e = Validator::compile(&json!({"format": "duration"}), Dialect::Draft7, &opts).unwrap_err();
    assert!(matches!(e, CompileError::UnknownFormat { .. }));
    let lax = CompileOptions {
        assert_formats: false,
        ..opts.clone()
    };
    assert!(Validator::compile(&json!({"format": "duration"}), Dialect::Draft7, &lax).is_ok());
    let e = Validator::compile(&json!({"$ref": "#/nowhere"}), Dialect::Draft7, &opts).unwrap_err();
    assert!(matches!(e, CompileError::UnresolvedRef { .. }));
    let e =
        Validator::compile(&json!({"anyOf": [{"$ref": "#"}]}), Dialect::Draft7, &opts).unwrap_err();
    assert!(matches!(e, CompileError::InfiniteRecursion { .. }), "{e}");
}

#[test]
fn compile_at_resolves_against_the_document() {
    let doc = json!({"components": {"schemas": {
        "Pet": {"type": "object", "required": ["tag"], "properties": {"tag": {"$ref": "#/components/schemas/Tag"}}},
        "Tag": {"type": "string", "maxLength": 3}}}});
    let v = Validator::compile_at(
        &doc,
        "/components/schemas/Pet",
        Dialect::OpenApi30,
        &CompileOptions::default(),
    )
    .unwrap();
    assert!(run(&v, r#"{"tag": "abc"}"#).is_ok());
    let r = run(&v, r#"{"tag": "abcd"}"#).unwrap_err();
    assert_eq!(
        r.violations[0].keyword_location,
        "/components/schemas/Tag/maxLength"
    );
    assert!(matches!(
        Validator::compile_at(
            &doc,
            "/nope",
            Dialect::OpenApi30,
            &CompileOptions::default()
        ),
        Err(CompileError::NoSuchPointer { .. })
    ));
}
