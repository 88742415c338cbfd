//! Compiles the keywords of one schema object. Every key is either a keyword of the dialect, a
//! known annotation, an OpenAPI extension, or an error naming it: nothing is skipped silently.

use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::error::CompileError;
use crate::format::{self, Known};
use crate::index::esc;
use crate::number::{Divisor, Num};
use crate::object_keywords::is_object_keyword;
use crate::options::Dialect;
use crate::pattern::Pattern;
use crate::tree::{Kw, KwKind, ObjectKw, Schema, SchemaObj, Sid, ty};

/// Keywords from newer drafts that are recognised but not implemented.
fn not_implemented(key: &str) -> bool {
    matches!(
        key,
        "unevaluatedProperties"
            | "unevaluatedItems"
            | "$dynamicRef"
            | "$dynamicAnchor"
            | "$recursiveRef"
            | "$recursiveAnchor"
    )
}

fn is_annotation(key: &str, d: Dialect) -> bool {
    match key {
        "title" | "description" | "default" | "examples" | "$comment" | "deprecated"
        | "contentMediaType" | "contentEncoding" | "contentSchema" => true,
        "$vocabulary" => d.is_2020(),
        "example" | "discriminator" | "xml" | "externalDocs" => d.is_openapi(),
        k => d.is_openapi() && k.starts_with("x-"),
    }
}

/// Metaschema URIs that declare the dialect being compiled (with or without the empty fragment).
fn own_metaschema(uri: &str, d: Dialect) -> bool {
    let uri = uri.strip_suffix('#').unwrap_or(uri);
    match d {
        Dialect::Draft4 => uri == "http://json-schema.org/draft-04/schema",
        Dialect::Draft7 => uri == "http://json-schema.org/draft-07/schema",
        Dialect::Draft2020_12 => uri == "https://json-schema.org/draft/2020-12/schema",
        Dialect::OpenApi30 => false,
        Dialect::OpenApi31 => matches!(
            uri,
            "https://spec.openapis.org/oas/3.1/dialect/base"
                | "https://json-schema.org/draft/2020-12/schema"
        ),
    }
}

pub(crate) fn invalid(keyword: &str, location: &str, expected: &'static str) -> CompileError {
    CompileError::InvalidKeyword {
        keyword: keyword.to_string(),
        location: location.to_string(),
        expected,
    }
}

fn count(v: &Value, key: &str, loc: &str) -> Result<usize, CompileError> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(key, loc, "a non-negative integer"))
}

fn number(v: &Value, key: &str, loc: &str) -> Result<Num, CompileError> {
    match v {
        Value::Number(n) => Num::from_json(n),
        _ => None,
    }
    .ok_or_else(|| invalid(key, loc, "a number"))
}

pub(crate) fn regex(p: &Value, key: &str, loc: &str) -> Result<Pattern, CompileError> {
    let Value::String(p) = p else {
        return Err(invalid(key, loc, "a regular expression string"));
    };
    Pattern::new(p).map_err(|e| CompileError::InvalidPattern {
        location: loc.to_string(),
        detail: e.to_string(),
    })
}

pub(crate) fn names(v: &Value, key: &str, loc: &str) -> Result<Vec<String>, CompileError> {
    let Value::Array(a) = v else {
        return Err(invalid(key, loc, "an array of strings"));
    };
    a.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(key, loc, "an array of strings"))
        })
        .collect()
}

impl Compiler<'_> {
    fn list(&mut self, v: &Value, key: &str, loc: &str) -> Result<Vec<Sid>, CompileError> {
        match v {
            Value::Array(a) if !a.is_empty() => (0..a.len())
                .map(|i| self.compile_ptr(&format!("{loc}/{i}")))
                .collect(),
            _ => Err(invalid(key, loc, "a non-empty array of schemas")),
        }
    }

    pub(crate) fn map_of(
        &mut self,
        v: &Value,
        key: &str,
        loc: &str,
    ) -> Result<Vec<(String, Sid)>, CompileError> {
        let Value::Object(m) = v else {
            return Err(invalid(key, loc, "an object of schemas"));
        };
        m.keys()
            .map(|k| Ok((k.clone(), self.compile_ptr(&format!("{loc}/{}", esc(k)))?)))
            .collect()
    }

    pub(crate) fn compile_object(
        &mut self,
        map: &Map<String, Value>,
        ptr: &str,
    ) -> Result<Schema, CompileError> {
        let d = self.dialect;
        let mut kws: Vec<Kw> = Vec::new();
        let mut obj = ObjectKw::default();
        let mut read_only = None;
        let loc = |k: &str| format!("{ptr}/{}", esc(k));
        let mut push = |kind, name: &'static str, loc: String| {
            kws.push(Kw {
                kind,
                name,
                loc: loc.into_boxed_str(),
            });
        };

        if d.ref_overrides_siblings()
            && let Some(r) = map.get("$ref")
        {
            let l = loc("$ref");
            let Value::String(r) = r else {
                return Err(invalid("$ref", &l, "a URI reference"));
            };
            if let Some(target) = self.resolve_ref(r, ptr, &l)? {
                push(KwKind::Ref(target), "$ref", l);
            }
            return Ok(Schema::Obj(SchemaObj::new(kws, read_only)));
        }
        let d4 = matches!(d, Dialect::Draft4 | Dialect::OpenApi30);
        let flag = |k: &str| map.get(k) == Some(&Value::Bool(true));

        for (key, v) in map {
            let l = loc(key);
            match key.as_str() {
                k if is_annotation(k, d) => {}
                "$schema" => {
                    // Another metaschema may switch vocabularies on or off; refuse rather than
                    // guess what it means.
                    if !v.as_str().is_some_and(|u| own_metaschema(u, d)) {
                        self.unsupported(key, l, "metaschema other than the compiled dialect's");
                    }
                }
                "id" if d == Dialect::Draft4 => {}
                "$id" if !d4 => {}
                "$anchor" if d.is_2020() => {}
                "definitions" | "$defs" => {
                    self.map_of(v, key, &l)?;
                }
                "type" => {
                    let mut mask = 0u8;
                    let bad = || invalid("type", &l, "a type name or an array of type names");
                    match v {
                        Value::String(s) => mask = ty::from_name(s).ok_or_else(bad)?,
                        Value::Array(a) => {
                            for t in a {
                                mask |= t.as_str().and_then(ty::from_name).ok_or_else(bad)?;
                            }
                        }
                        _ => return Err(bad()),
                    }
                    if d == Dialect::OpenApi30 && flag("nullable") {
                        mask |= ty::NULL;
                    }
                    push(KwKind::Type(mask), "type", l);
                }
                "nullable" if d == Dialect::OpenApi30 => {
                    if !v.is_boolean() {
                        return Err(invalid(key, &l, "a boolean"));
                    }
                }
                "readOnly" | "writeOnly" if d != Dialect::Draft4 => {
                    if !v.is_boolean() {
                        return Err(invalid(key, &l, "a boolean"));
                    }
                    if key == "readOnly" && flag(key) && self.opts.reject_read_only {
                        read_only = Some(l.into_boxed_str());
                    }
                }
                "enum" => match v {
                    Value::Array(a) => push(KwKind::Enum(a.clone()), "enum", l),
                    _ => return Err(invalid(key, &l, "an array")),
                },
                "const" if !d4 => push(KwKind::Const(v.clone()), "const", l),
                "multipleOf" => {
                    let div = Divisor::new(number(v, key, &l)?)
                        .ok_or_else(|| invalid(key, &l, "a number greater than 0"))?;
                    push(KwKind::MultipleOf(div), "multipleOf", l);
                }
                "minimum" | "maximum" => {
                    let limit = number(v, key, &l)?;
                    let ex = if key == "minimum" {
                        "exclusiveMinimum"
                    } else {
                        "exclusiveMaximum"
                    };
                    let exclusive = d.boolean_exclusive() && flag(ex);
                    let (kind, name) = if key == "minimum" {
                        (KwKind::Minimum { limit, exclusive }, "minimum")
                    } else {
                        (KwKind::Maximum { limit, exclusive }, "maximum")
                    };
                    push(kind, name, l);
                }
                "exclusiveMinimum" | "exclusiveMaximum" if d.boolean_exclusive() => {
                    if !v.is_boolean() {
                        return Err(invalid(key, &l, "a boolean"));
                    }
                }
                "exclusiveMinimum" => {
                    let limit = number(v, key, &l)?;
                    push(
                        KwKind::Minimum {
                            limit,
                            exclusive: true,
                        },
                        "exclusiveMinimum",
                        l,
                    );
                }
                "exclusiveMaximum" => {
                    let limit = number(v, key, &l)?;
                    push(
                        KwKind::Maximum {
                            limit,
                            exclusive: true,
                        },
                        "exclusiveMaximum",
                        l,
                    );
                }
                "minLength" => push(KwKind::MinLength(count(v, key, &l)?), "minLength", l),
                "maxLength" => push(KwKind::MaxLength(count(v, key, &l)?), "maxLength", l),
                "minItems" => push(KwKind::MinItems(count(v, key, &l)?), "minItems", l),
                "maxItems" => push(KwKind::MaxItems(count(v, key, &l)?), "maxItems", l),
                "minProperties" => {
                    push(
                        KwKind::MinProperties(count(v, key, &l)?),
                        "minProperties",
                        l,
                    );
                }
                "maxProperties" => {
                    push(
                        KwKind::MaxProperties(count(v, key, &l)?),
                        "maxProperties",
                        l,
                    );
                }
                "uniqueItems" => match v {
                    Value::Bool(true) => push(KwKind::UniqueItems, "uniqueItems", l),
                    Value::Bool(false) => {}
                    _ => return Err(invalid(key, &l, "a boolean")),
                },
                "pattern" => push(KwKind::Pattern(Box::new(regex(v, key, &l)?)), "pattern", l),
                "format" => {
                    let Value::String(f) = v else {
                        return Err(invalid(key, &l, "a string"));
                    };
                    match format::lookup(f, d.is_openapi()) {
                        Some(Known::Assert(fm)) if self.opts.assert_formats => {
                            push(KwKind::Format(fm), "format", l);
                        }
                        None if self.opts.assert_formats => {
                            return Err(CompileError::UnknownFormat {
                                format: f.clone(),
                                location: l,
                            });
                        }
                        _ => {}
                    }
                }
                "items" if d.is_2020() => {
                    let skip = map
                        .get("prefixItems")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let schema = self.compile_ptr(&l)?;
                    push(KwKind::Items { skip, schema }, "items", l);
                }
                "items" => {
                    if let Value::Array(_) = v {
                        if d == Dialect::OpenApi30 {
                            return Err(invalid(key, &l, "a schema (OpenAPI 3.0 has no tuples)"));
                        }
                        let list = self.list(v, key, &l).or_else(|e| {
                            if v.as_array().is_some_and(Vec::is_empty) {
                                Ok(Vec::new())
                            } else {
                                Err(e)
                            }
                        })?;
                        push(KwKind::PrefixItems(list), "items", l);
                    } else {
                        let schema = self.compile_ptr(&l)?;
                        push(KwKind::Items { skip: 0, schema }, "items", l);
                    }
                }
                "additionalItems" if !d.is_2020() && d != Dialect::OpenApi30 => {
                    if let Some(Value::Array(a)) = map.get("items") {
                        let schema = self.compile_ptr(&l)?;
                        push(
                            KwKind::Items {
                                skip: a.len(),
                                schema,
                            },
                            "additionalItems",
                            l,
                        );
                    }
                }
                "prefixItems" if d.is_2020() => {
                    let list = self.list(v, key, &l)?;
                    push(KwKind::PrefixItems(list), "prefixItems", l);
                }
                "contains" if !d4 => {
                    let schema = self.compile_ptr(&l)?;
                    let (mut min, mut max) = (1, None);
                    if d.is_2020() {
                        if let Some(m) = map.get("minContains") {
                            min = count(m, "minContains", &loc("minContains"))?;
                        }
                        if let Some(m) = map.get("maxContains") {
                            max = Some(count(m, "maxContains", &loc("maxContains"))?);
                        }
                    }
                    push(KwKind::Contains { schema, min, max }, "contains", l);
                }
                "minContains" | "maxContains" if d.is_2020() => {
                    count(v, key, &l)?;
                }
                "allOf" => push(KwKind::AllOf(self.list(v, key, &l)?), "allOf", l),
                "anyOf" => push(KwKind::AnyOf(self.list(v, key, &l)?), "anyOf", l),
                "oneOf" => push(KwKind::OneOf(self.list(v, key, &l)?), "oneOf", l),
                "not" => push(KwKind::Not(self.compile_ptr(&l)?), "not", l),
                "if" if !d4 => {
                    let cond = self.compile_ptr(&l)?;
                    let then = map
                        .contains_key("then")
                        .then(|| self.compile_ptr(&loc("then")));
                    let els = map
                        .contains_key("else")
                        .then(|| self.compile_ptr(&loc("else")));
                    push(
                        KwKind::If {
                            cond,
                            then: then.transpose()?,
                            els: els.transpose()?,
                        },
                        "if",
                        l,
                    );
                }
                "then" | "else" if !d4 => {
                    // Without `if` they do nothing, but their contents must still be supported.
                    self.compile_ptr(&l)?;
                }
                "$ref" => {
                    let Value::String(r) = v else {
                        return Err(invalid(key, &l, "a URI reference"));
                    };
                    if let Some(target) = self.resolve_ref(r, ptr, &l)? {
                        push(KwKind::Ref(target), "$ref", l);
                    }
                }
                k if is_object_keyword(k, d) => self.object_keyword(k, v, l, &mut obj)?,
                k if not_implemented(k) => self.unsupported(k, l, "not implemented"),
                k => self.unsupported(k, l, "not a keyword of this dialect"),
            }
        }

        if let Some(kw) = self.finish_object(map, ptr, obj) {
            kws.push(kw);
        }
        Ok(Schema::Obj(SchemaObj::new(kws, read_only)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{CompileError, CompileOptions, Dialect, Limits, Reason, Rejection, Validator};
    use serde_json::{Value, json};

    fn compile(schema: Value, d: Dialect) -> Validator {
        Validator::compile(&schema, d, &CompileOptions::default()).unwrap()
    }

    /// Validates through both paths and checks they agree.
    fn run(v: &Validator, text: &str) -> Result<(), Rejection> {
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
        let e = Validator::compile(&plain, Dialect::Draft2020_12, &CompileOptions::default())
            .unwrap_err();
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
        let s = json!({"properties": {"a": {"unevaluatedProperties": false}},
            "items": {"$dynamicRef": "#x"}, "$ref": "https://example.com/remote.json"});
        let e =
            Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap_err();
        let found: Vec<(String, String)> = e
            .unsupported_keywords()
            .iter()
            .map(|u| (u.keyword.clone(), u.location.clone()))
            .collect();
        assert_eq!(
            found,
            [
                ("$ref".to_string(), "/$ref".to_string()),
                ("$dynamicRef".to_string(), "/items/$dynamicRef".to_string()),
                (
                    "unevaluatedProperties".to_string(),
                    "/properties/a/unevaluatedProperties".to_string()
                ),
            ]
        );
        assert!(e.to_string().contains("$ref"), "{e}");
        assert_eq!(
            crate::unsupported_keywords(&s, Dialect::Draft2020_12, &CompileOptions::default())
                .len(),
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
        let e =
            Validator::compile(&json!({"format": "duration"}), Dialect::Draft7, &opts).unwrap_err();
        assert!(matches!(e, CompileError::UnknownFormat { .. }));
        let lax = CompileOptions {
            assert_formats: false,
            ..opts.clone()
        };
        assert!(Validator::compile(&json!({"format": "duration"}), Dialect::Draft7, &lax).is_ok());
        let e =
            Validator::compile(&json!({"$ref": "#/nowhere"}), Dialect::Draft7, &opts).unwrap_err();
        assert!(matches!(e, CompileError::UnresolvedRef { .. }));
        let e = Validator::compile(&json!({"anyOf": [{"$ref": "#"}]}), Dialect::Draft7, &opts)
            .unwrap_err();
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
}
