#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::{CompileOptions, Dialect, Limits, Validator};
use serde_json::json;

/// A fixed-seed generator, so a failure names a body that can be reproduced.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'x>(&mut self, xs: &[&'x str]) -> &'x str {
        xs[self.below(xs.len())]
    }
}

/// A schema that uses every keyword the fused pass takes, with counts on both sides of the
/// child keywords, so reports interleave.
fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["id", "items"],
        "additionalProperties": false,
        "minProperties": 2,
        "maxProperties": 9,
        "dependentRequired": {"note": ["tags"]},
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "n": {"type": ["integer", "null"], "minimum": -5, "exclusiveMaximum": 1e3,
                  "multipleOf": 0.5},
            "note": {"type": "string", "maxLength": 8, "minLength": 1},
            "flag": {"const": true},
            "ro": {"readOnly": true},
            "never": false,
            "status": {"enum": ["new", "paid", 3, null, 2.5]},
            "tags": {"type": "array", "uniqueItems": true, "maxItems": 3,
                     "items": {"type": ["string", "number", "boolean"],
                               "pattern": "^[a-z]+$"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"},
                     {"type": "string"}], "minItems": 2},
            "items": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["sku", "qty"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 9},
                    "price": {"type": "number", "multipleOf": 0.01},
                    "opts": {"type": "object", "maxProperties": 2,
                             "additionalProperties": {"type": "string", "maxLength": 3}}
                }}},
            "any": {}
        }
    })
}

const KEYS: &[&str] = &[
    "id", "n", "note", "flag", "ro", "never", "status", "tags", "pair", "items", "any", "x", "sku",
    "qty", "price", "opts", "a/b~c", "é",
];
const STRINGS: &[&str] = &[
    "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
    "new",
    "paid",
    "abc",
    "ABC-12",
    "ABC-1x",
    "",
    "toolongvalue",
    "a\\nb",
    "\\u00e9t\\u00e9",
    "x\\\"y",
    "é",
    "\\u0000",
    "zz",
];
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "3",
    "9",
    "10",
    "-5",
    "-6",
    "2.5",
    "0.5",
    "1.25",
    "999.5",
    "1000",
    "1e3",
    "1E2",
    "12.34",
    "12.345",
    "-0.0",
    "18446744073709551615",
    "-9223372036854775808",
    "0.1",
    "5e-1",
    "0.00000000000000000000000000001",
];
/// Numbers the tape parser refuses or cannot hold, and a surrogate pair: rarer, since the
/// fused pass leaves every body holding one to the tape walk.
const ODD: &[&str] = &[
    "1e-400",
    "1e400",
    // 10^64 wraps a u64 to exactly zero.
    "10000000000000000000000000000000000000000000000000000000000000000",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901",
    "01",
    "1.",
    ".5",
    "-",
    "2e",
    "\"\\ud83d\\ude00\"",
    "1.0e+",
];

fn value(r: &mut Lcg, depth: usize, out: &mut String) {
    let choice = if depth > 4 {
        3 + r.below(5)
    } else {
        r.below(9)
    };
    match choice {
        0 | 1 => {
            out.push('{');
            for i in 0..r.below(5) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("\"{}\":", r.pick(KEYS)));
                value(r, depth + 1, out);
            }
            out.push('}');
        }
        2 => {
            out.push('[');
            for i in 0..r.below(5) {
                if i > 0 {
                    out.push_str(if r.below(2) == 0 { "," } else { " , " });
                }
                value(r, depth + 1, out);
            }
            out.push(']');
        }
        3 | 4 => out.push_str(&format!("\"{}\"", r.pick(STRINGS))),
        5 | 6 if r.below(20) == 0 => out.push_str(r.pick(ODD)),
        5 | 6 => out.push_str(r.pick(NUMBERS)),
        _ => out.push_str(r.pick(&["true", "false", "null"])),
    }
}

/// A body shaped like the schema's instances: valid members, each now and then replaced by
/// a random value, an unknown member now and then.
fn order(r: &mut Lcg) -> String {
    const GOOD: &[(&str, &[&str])] = &[
        ("n", &["3", "-5", "null", "1e2"]),
        ("tags", &["[\"ab\", \"cd\"]", "[]", "[1, true]"]),
        ("note", &["\"abc\"", "\"a\\nb\"", "\"\\u00e9t\\u00e9\""]),
        ("status", &["\"new\"", "3", "null", "2.50"]),
        ("pair", &["[1, \"x\"]", "[1, \"x\", 3]"]),
        ("flag", &["true"]),
        ("any", &["{\"q\": [1, {\"z\": null}]}", "\"s\""]),
    ];
    let mut members: Vec<String> = Vec::new();
    for (k, goods) in GOOD {
        if *k != "tags" && r.below(3) == 0 {
            continue;
        }
        let mut v = String::new();
        if r.below(24) == 0 {
            value(r, 1, &mut v);
        } else {
            v.push_str(r.pick(goods));
        }
        members.push(format!("\"{k}\": {v}"));
    }
    let mut items = Vec::new();
    for _ in 0..1 + r.below(4) {
        if r.below(24) == 0 {
            let mut v = String::new();
            value(r, 2, &mut v);
            items.push(v);
            continue;
        }
        let bad = r.below(20) == 0;
        let sku = if bad {
            r.pick(&["ABC-1x", "abc"])
        } else {
            "ABC-12"
        };
        let qty = if r.below(20) == 0 {
            r.pick(&["0", "10", "2.0", "\"3\""])
        } else {
            "2"
        };
        let price = if r.below(20) == 0 {
            r.pick(&["1.255", "-1e0"])
        } else {
            "1.25"
        };
        let mut it = format!("{{\"sku\": \"{sku}\", \"qty\": {qty}, \"price\": {price}");
        if r.below(3) == 0 {
            it.push_str(", \"opts\": ");
            if r.below(8) == 0 {
                value(r, 3, &mut it);
            } else {
                it.push_str("{\"wrap\": \"red\"}");
            }
        }
        it.push('}');
        items.push(it);
    }
    members.push(format!("\"items\": [{}]", items.join(", ")));
    members.insert(
        r.below(members.len()),
        "\"id\": \"2eb8aa08-aa98-11ea-b4aa-73b441d16380\"".into(),
    );
    if r.below(8) == 0 {
        let at = r.below(members.len());
        let mut v = String::new();
        value(r, 1, &mut v);
        members.insert(at, format!("\"{}\": {v}", r.pick(KEYS)));
    }
    format!("{{{}}}", members.join(","))
}

/// Byte-level damage: a truncation, a stray byte, a doubled member.
fn damage(r: &mut Lcg, body: &mut String) {
    let cut = |r: &mut Lcg, s: &String| {
        let mut at = r.below(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match r.below(4) {
        0 => {
            let at = cut(r, body);
            body.truncate(at);
        }
        1 => {
            let at = cut(r, body);
            body.insert_str(at, r.pick(&[",", "}", "\"", "\\", "\u{1}", " ", "1", "é"]));
        }
        2 => {
            if let Some(at) = body.find(",\"") {
                let dup = body[at..].split(',').nth(1).unwrap_or("").to_string();
                body.insert_str(at, &format!(",{dup}"));
            }
        }
        _ => body.push_str(r.pick(&[" ", "x", "{}", "\n"])),
    }
}

#[test]
fn fused_pass_and_tape_walk_agree_on_random_bodies() {
    let opts = CompileOptions {
        assert_formats: true,
        reject_read_only: true,
        ..CompileOptions::default()
    };
    let v = Validator::compile(&schema(), Dialect::Draft2020_12, &opts).unwrap();
    assert!(
        v.fused.is_some(),
        "the test schema must be one the fused pass takes"
    );
    let mut r = Lcg(7);
    let (mut decided, mut rejected, mut total) = (0, 0, 0);
    for round in 0..6000 {
        let mut body = if round % 3 == 0 {
            let mut s = String::new();
            value(&mut r, 0, &mut s);
            s
        } else {
            order(&mut r)
        };
        if round % 5 == 0 {
            damage(&mut r, &mut body);
        }
        for max_errors in [1, 2, 3, 16] {
            // Tight limits a quarter of the time: both must refuse alike (the fused pass
            // by leaving it to the tape walk).
            let limits = if r.below(4) == 0 {
                Limits {
                    max_errors,
                    max_depth: 3 + r.below(8),
                    max_string_bytes: 4 + r.below(40),
                    max_array_len: 1 + r.below(5),
                    max_object_members: 2 + r.below(12),
                    ..Limits::default()
                }
            } else {
                Limits {
                    max_errors,
                    ..Limits::default()
                }
            };
            total += 1;
            let tape = v.validate_bytes_by_tape(&mut body.clone().into_bytes(), &limits);
            if let Some(fused) = v.validate_fused(body.as_bytes(), &limits) {
                decided += 1;
                rejected += usize::from(fused.is_err());
                assert_eq!(fused, tape, "body {body:?}, limits {limits:?}");
            }
            // And the public entry points give the tape walk's answer.
            let mut owned = body.clone().into_bytes();
            assert_eq!(v.validate_vec(&mut owned, &limits), tape, "{body:?}");
        }
    }
    // The comparison means something only if the fused pass decided many bodies, valid
    // and not.
    println!("fused pass decided {decided} of {total} runs, {rejected} of them rejections");
    assert!(decided > total / 2, "decided {decided} of {total}");
    assert!(
        rejected > decided / 5 && rejected < decided * 9 / 10,
        "{rejected} of {decided}"
    );
}

#[test]
fn numbers_the_tape_parser_cannot_hold_go_to_the_tape_walk() {
    let v = Validator::compile(
        &json!({"items": {"type": "integer"}}),
        Dialect::Draft2020_12,
        &CompileOptions::default(),
    )
    .unwrap();
    let l = Limits::default();
    for n in [
        format!("1{}", "0".repeat(64)),
        "18446744073709551616".to_string(),
        "-9223372036854775809".to_string(),
        "1e400".to_string(),
        "1e-400".to_string(),
    ] {
        let body = format!("[{n}]");
        assert_eq!(v.validate_fused(body.as_bytes(), &l), None, "{n}");
    }
    for (n, ok) in [
        ("9999999999999999999", true),
        ("-9223372036854775808", true),
        ("2.5", false),
    ] {
        let r = v.validate_fused(format!("[{n}]").as_bytes(), &l).unwrap();
        assert_eq!(r.is_ok(), ok, "{n}");
    }
}

#[test]
fn schemas_with_in_place_applicators_use_the_tape_walk() {
    for s in [
        json!({"allOf": [{"type": "object"}]}),
        json!({"properties": {"a": {"$ref": "#/$defs/x", "minimum": 1}},
               "$defs": {"x": {"type": "integer"}}}),
        json!({"unevaluatedProperties": false}),
        json!({"patternProperties": {"^a": {}}}),
        json!({"contains": {"type": "string"}}),
        json!({"enum": [[1], 2]}),
    ] {
        let v = Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        assert!(v.fused.is_none(), "{s}");
        assert!(v.validate_fused(b"{}", &Limits::default()).is_none());
    }
    let plain = json!({"properties": {"a": {"$ref": "#/$defs/x"}},
                       "$defs": {"x": {"type": "integer"}}});
    let v = Validator::compile(&plain, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
    assert!(v.fused.is_some());
    assert_eq!(
        v.validate_fused(br#"{"a": "s"}"#, &Limits::default())
            .unwrap()
            .unwrap_err()
            .violations[0]
            .keyword_location,
        "/$defs/x/type"
    );
}

/// Property schemas of every form a quick check takes (see `plan::Quick`), and some it must
/// not take.
fn quick_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 3},
        "properties": {
            "int": {"type": "integer", "minimum": -3, "maximum": 250},
            "xint": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100,
                     "multipleOf": 5},
            "num": {"type": "number"},
            "price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
            "quarter": {"type": "number", "multipleOf": 0.25, "maximum": 2.5},
            "half": {"type": ["integer", "null"], "multipleOf": 0.5, "minimum": -1.5},
            "big": {"type": "number", "maximum": 1e14},
            "untyped": {"minimum": 1.5},
            "b": {"type": "boolean"},
            "s": {"type": "string", "minLength": 2, "maxLength": 4},
            "sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
            "slug": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,5}$", "maxLength": 4},
            "quoted": {"type": "string", "pattern": "^[\"a]{2}$"},
            "sixes": {"type": "string", "pattern": "^[a-z]{6}$", "maxLength": 5},
            "zip": {"type": "string", "pattern": "^[0-9]{5}$", "minLength": 5},
            "ids": {"type": "array", "maxItems": 3,
                    "items": {"type": "integer", "minimum": 0, "maximum": 99}},
            "uniq": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
            "e": {"enum": [1, 2]}
        }
    })
}

fn quick_validator() -> Validator {
    Validator::compile(
        &quick_schema(),
        Dialect::Draft2020_12,
        &CompileOptions::default(),
    )
    .unwrap()
}

const QUICK_VALUES: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "1",
    "5",
    "-3",
    "-4",
    "250",
    "251",
    "100",
    "95",
    "0.5",
    "1.5",
    "-1.5",
    "-2",
    "2.5",
    "2.50",
    "2.25",
    "2.75",
    "0.01",
    "0.015",
    "0.1",
    "19.99",
    "19.999",
    "-0.01",
    "0.001",
    "0.0001",
    "3.14159",
    "12.340",
    "1.0",
    "7.0",
    "1e2",
    "1E-2",
    "2.5e0",
    "1234567890.12",
    "123456789012345",
    "1234567890123456",
    "99999999999999.9",
    "100000000000000",
    "9999999999999.99",
    "\"\"",
    "\"ab\"",
    "\"abcd\"",
    "\"abcde\"",
    "\"éé\"",
    "\"éééé\"",
    "\"ééééé\"",
    "\"a\\u00e9\"",
    "\"AB-123\"",
    "\"AB-1234\"",
    "\"AB-12\"",
    "\"ab-123\"",
    "\"AB\\u002d123\"",
    "\"a-b\"",
    "\"a\"",
    "\"\\\"a\"",
    "\"aa\"",
    "\"a\\\"\"",
    "\"abcdef\"",
    "\"abcdeg\"",
    "true",
    "false",
    "null",
    "[1]",
    "{}",
    "tru",
    "\"AB-123",
    "\"12345\"",
    "\"1234\"",
    "\"123¹\"",
    "\"¹234\"",
    "\"AB-1²3\"",
    "\"12€\"",
    "[1,2,3]",
    "[ 1 , 2 ]",
    "[1,-1]",
    "[1,\"a\"]",
    "[1,2,3,4]",
    "[100]",
    "[1.0]",
    "[1,1]",
    "[\"a\",true,false]",
    "[\"a\",1]",
    "[true]",
    "[[1]]",
];

#[test]
fn quick_checks_decide_as_the_keyword_checks_do() {
    let v = quick_validator();
    let props = [
        "int", "xint", "num", "price", "quarter", "half", "big", "untyped", "b", "s", "sku",
        "slug", "quoted", "sixes", "zip", "ids", "uniq", "e", "extra",
    ];
    let (mut decided, mut rejected, mut total) = (0, 0, 0);
    for p in props {
        for value in QUICK_VALUES {
            for body in [
                format!("{{\"{p}\":{value}}}"),
                format!("{{ \"{p}\" : {value} , \"b\":true}}"),
                format!("{{\"{p}\":{value},\"int\":1}}"),
            ] {
                total += 1;
                let limits = Limits::default();
                let tape = v.validate_bytes_by_tape(&mut body.clone().into_bytes(), &limits);
                if let Some(fused) = v.validate_fused(body.as_bytes(), &limits) {
                    decided += 1;
                    rejected += usize::from(fused.is_err());
                    assert_eq!(fused, tape, "body {body}");
                }
                // A string limit the quick string checks meet too.
                let tight = Limits {
                    max_string_bytes: 5,
                    ..Limits::default()
                };
                let tape = v.validate_bytes_by_tape(&mut body.clone().into_bytes(), &tight);
                if let Some(fused) = v.validate_fused(body.as_bytes(), &tight) {
                    assert_eq!(fused, tape, "body {body}, strings of at most 5 bytes");
                }
            }
        }
    }
    println!("fused pass decided {decided} of {total}, {rejected} of them rejections");
    assert!(decided > total * 9 / 10, "decided {decided} of {total}");
    assert!(
        rejected > decided / 3 && rejected < decided,
        "{rejected} of {decided}"
    );
}

#[test]
fn the_plan_gives_quick_checks_to_common_property_schemas() {
    use super::plan::Quick;
    let v = quick_validator();
    let plan = v.fused.as_ref().unwrap();
    let root = plan.nodes[v.tree.root].as_ref().unwrap();
    let names = |k: &super::plan::RawKey| {
        let p = match &v.tree.schemas[v.tree.root] {
            crate::tree::Schema::Obj(o) => o,
            _ => unreachable!(),
        };
        let Some(crate::tree::KwKind::Object(ok)) = p.obj.iter().map(|k| &k.kind).next() else {
            unreachable!()
        };
        ok.names
            .entries()
            .find(|(_, s)| *s == k.slot)
            .unwrap()
            .0
            .to_string()
    };
    let quick: std::collections::BTreeMap<String, String> = root
        .keys
        .iter()
        .map(|k| {
            let q = match &k.quick {
                None => "none".to_string(),
                Some(Quick::Bool) => "bool".into(),
                Some(Quick::Fixed { len, .. }) => format!("fixed {len}"),
                Some(Quick::Str { min, max, shape }) => {
                    format!("str {min}..{max} shape {}", shape.is_some())
                }
                Some(Quick::Num {
                    scale,
                    frac,
                    min,
                    max,
                    step,
                }) => format!("num scale {scale} frac {frac} {min}..{max} step {step}"),
            };
            (names(k), q)
        })
        .collect();
    let want = [
        ("int", "num scale 0 frac false -3..250 step 1".to_string()),
        ("xint", "num scale 0 frac false 1..99 step 5".to_string()),
        (
            "num",
            format!("num scale 3 frac true {}..{} step 1", i64::MIN, i64::MAX),
        ),
        (
            "price",
            format!("num scale 2 frac true 0..{} step 1", i64::MAX),
        ),
        (
            "quarter",
            format!("num scale 2 frac true {}..250 step 25", i64::MIN),
        ),
        (
            "half",
            format!("num scale 1 frac false -15..{} step 5", i64::MAX),
        ),
        // 10^14 at scale 3 has 18 digits: no quick check.
        ("big", "none".to_string()),
        (
            "untyped",
            format!("num scale 3 frac true 1500..{} step 1", i64::MAX),
        ),
        ("b", "bool".to_string()),
        ("s", "str 2..4 shape false".to_string()),
        ("sku", "fixed 6".to_string()),
        ("slug", "str 0..4 shape true".to_string()),
        // A class holding `"` leaves the closing quote to the scan.
        (
            "quoted",
            "str 0..18446744073709551615 shape true".to_string(),
        ),
        // No string of six letters is at most five long: the keyword checks report it.
        ("sixes", "str 0..5 shape true".to_string()),
        ("zip", "fixed 5".to_string()),
        ("e", "none".to_string()),
    ];
    for (name, q) in want {
        assert_eq!(quick.get(name), Some(&q), "{name}");
    }
    // Elements after the positional ones get their schema's quick check.
    let items_quick = |name: &str| {
        let p = match &v.tree.schemas[v.tree.root] {
            crate::tree::Schema::Obj(o) => o,
            _ => unreachable!(),
        };
        let Some(crate::tree::KwKind::Object(ok)) = p.obj.iter().map(|k| &k.kind).next() else {
            unreachable!()
        };
        let slot = ok.names.get(name).unwrap() as usize;
        let sid = ok.props[slot].unwrap();
        plan.nodes[sid].as_ref().unwrap().items_quick.clone()
    };
    assert!(matches!(
        items_quick("ids"),
        Some(Quick::Num {
            min: 0,
            max: 99,
            ..
        })
    ));
    assert!(matches!(
        root.extra,
        Some(Quick::Str {
            min: 0,
            max: 3,
            shape: None
        })
    ));
}

#[test]
fn lengths_fit_counts_characters_as_the_walk_does() {
    use super::plan::lengths_fit;
    let texts = [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "abcde",
        "é",
        "éé",
        "ééé",
        "€",
        "€€",
        "😀",
        "😀😀",
        "a😀",
        "😀a😀",
        "abc😀",
        "ééééé",
        "a€b€c€",
        "😀😀😀😀😀",
    ];
    for t in texts {
        let chars = t.chars().count();
        for min in 0..=8 {
            for max in (0..=24).chain([usize::MAX]) {
                assert_eq!(
                    lengths_fit(t.as_bytes(), min, max),
                    (min..=max).contains(&chars),
                    "{t:?} in {min}..={max}"
                );
            }
        }
    }
}
