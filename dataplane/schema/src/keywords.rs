//! Compiles the keywords of one schema object. Every key is either a keyword of the dialect, a
//! known annotation, an OpenAPI extension, or an error naming it: nothing is skipped silently.

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::error::CompileError;
use crate::format::{self, Known};
use crate::index::esc;
use crate::number::{Divisor, Num};
use crate::options::Dialect;
use crate::tree::{Kw, KwKind, ObjectKw, Schema, SchemaObj, Sid, ty};

/// Compiled regexes are capped so a hostile policy cannot make a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

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

fn invalid(keyword: &str, location: &str, expected: &'static str) -> CompileError {
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

fn regex(p: &Value, key: &str, loc: &str) -> Result<Regex, CompileError> {
    let Value::String(p) = p else {
        return Err(invalid(key, loc, "a regular expression string"));
    };
    RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| CompileError::InvalidPattern {
            location: loc.to_string(),
            detail: e.to_string(),
        })
}

fn names(v: &Value, key: &str, loc: &str) -> Result<Vec<String>, CompileError> {
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

    fn map_of(
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
            return Ok(Schema::Obj(SchemaObj { kws, read_only }));
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
                "pattern" => push(KwKind::Pattern(regex(v, key, &l)?), "pattern", l),
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
                "properties" => {
                    for (name, sid) in self.map_of(v, key, &l)? {
                        let slot = obj.slot(&name) as usize;
                        obj.props[slot] = Some(sid);
                    }
                    obj.props_loc = l.into_boxed_str();
                }
                "patternProperties" if !matches!(d, Dialect::OpenApi30) => {
                    let Value::Object(m) = v else {
                        return Err(invalid(key, &l, "an object"));
                    };
                    for name in m.keys() {
                        let pl = format!("{l}/{}", esc(name));
                        let re = regex(&Value::String(name.clone()), key, &pl)?;
                        obj.patterns.push((re, self.compile_ptr(&pl)?));
                    }
                    obj.patterns_loc = l.into_boxed_str();
                }
                "additionalProperties" => obj.additional = Some((self.compile_ptr(&l)?, l.into())),
                "propertyNames" if !d4 => {
                    obj.property_names = Some((self.compile_ptr(&l)?, l.into()))
                }
                "required" => {
                    obj.required = names(v, key, &l)?.iter().map(|n| obj.slot(n)).collect();
                    obj.required_loc = l.into_boxed_str();
                }
                "dependentRequired" if d.is_2020() => {
                    let Value::Object(m) = v else {
                        return Err(invalid(key, &l, "an object"));
                    };
                    for (name, deps) in m {
                        let deps = names(deps, key, &l)?;
                        let s = obj.slot(name);
                        let ds = deps.iter().map(|n| obj.slot(n)).collect();
                        obj.dep_required.push((s, ds));
                    }
                    obj.dep_required_kw = ("dependentRequired", l.into_boxed_str());
                }
                "dependentSchemas" if d.is_2020() => {
                    for (name, sid) in self.map_of(v, key, &l)? {
                        let s = obj.slot(&name);
                        obj.dep_schemas.push((s, sid));
                    }
                    obj.dep_schemas_kw = ("dependentSchemas", l.into_boxed_str());
                }
                "dependencies" if !d.is_2020() && d != Dialect::OpenApi30 => {
                    let Value::Object(m) = v else {
                        return Err(invalid(key, &l, "an object"));
                    };
                    for (name, dep) in m {
                        let s = obj.slot(name);
                        if dep.is_array() {
                            let ds = names(dep, key, &l)?.iter().map(|n| obj.slot(n)).collect();
                            obj.dep_required.push((s, ds));
                        } else {
                            let sid = self.compile_ptr(&format!("{l}/{}", esc(name)))?;
                            obj.dep_schemas.push((s, sid));
                        }
                    }
                    obj.dep_required_kw = ("dependencies", l.clone().into_boxed_str());
                    obj.dep_schemas_kw = ("dependencies", l.into_boxed_str());
                }
                k if not_implemented(k) => self.unsupported(k, l, "not implemented"),
                k => self.unsupported(k, l, "not a keyword of this dialect"),
            }
        }

        let declares = map.contains_key("properties")
            || map.contains_key("patternProperties")
            || map.get("type").is_some_and(|t| {
                t == "object"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "object"))
            });
        if self.opts.strict_objects && declares && obj.additional.is_none() {
            let f = self.false_schema();
            obj.additional = Some((f, loc("additionalProperties").into()));
        }
        if !obj.is_empty()
            || !obj.required.is_empty()
            || !obj.dep_required.is_empty()
            || !obj.dep_schemas.is_empty()
        {
            kws.push(Kw {
                kind: KwKind::Object(Box::new(obj)),
                name: "properties",
                loc: ptr.into(),
            });
        }
        Ok(Schema::Obj(SchemaObj { kws, read_only }))
    }
}
