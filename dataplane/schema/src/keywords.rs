//! Compiles the keywords of one schema object. Every key is either a keyword of the dialect, a
//! known annotation, an OpenAPI extension, or an error naming it: nothing is skipped silently.

use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::error::CompileError;
use crate::format::{self, Known};
use crate::index::esc;
use crate::keyword_values::{count, invalid, number, regex};
use crate::metaschemas;
use crate::number::Divisor;
use crate::object_keywords::is_object_keyword;
use crate::options::Dialect;
use crate::tree::{Kw, KwKind, ObjectKw, Schema, SchemaObj, Sid, ty};
use crate::uri;

/// Keywords of draft 2019-09 that are recognised but not implemented (2020-12 replaced them
/// with `$dynamicRef` / `$dynamicAnchor`).
fn not_implemented(key: &str) -> bool {
    matches!(key, "$recursiveRef" | "$recursiveAnchor")
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

impl Compiler<'_> {
    /// Checks `$schema`: the compiled dialect's own metaschema, or a supplied custom metaschema
    /// of that dialect whose `$vocabulary` may turn keyword families off for this resource.
    fn metaschema(&mut self, v: &Value, ptr: &str, l: String) {
        let d = self.dialect;
        let Some(u) = v.as_str() else {
            self.unsupported("$schema", l, "metaschema other than the compiled dialect's");
            return;
        };
        if own_metaschema(u, d) {
            return;
        }
        let custom = self
            .lookup(&format!("{}#", uri::split_fragment(u).0))
            .filter(|m| d.is_2020() && m["$schema"].as_str().is_some_and(|s| own_metaschema(s, d)));
        let Some(meta) = custom else {
            self.unsupported("$schema", l, "metaschema other than the compiled dialect's");
            return;
        };
        match metaschemas::vocabularies_off(meta) {
            Ok(0) => {}
            Ok(off) => {
                let base = self.index.base_for(ptr);
                self.vocab_off.insert(base, off);
            }
            Err(_) => self.unsupported("$schema", l, "metaschema requires an unknown vocabulary"),
        }
    }

    /// The anchor name a `$dynamicRef` resolves dynamically by: its fragment, when that is a
    /// plain name and the statically resolved target declares the same `$dynamicAnchor`.
    fn dynamic_anchor_of(&self, reference: &str, target: Sid) -> Option<Box<str>> {
        let (_, frag) = uri::split_fragment(reference);
        if frag.is_empty() || frag.starts_with('/') {
            return None;
        }
        let at = self.locs.get(target)?;
        let declared = self.lookup(at)?.get("$dynamicAnchor")?.as_str()?;
        (declared == frag).then(|| frag.into())
    }

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
        if let Some(v) = map.get("$schema") {
            self.metaschema(v, ptr, loc("$schema"));
        }
        let vocab_off = if self.vocab_off.is_empty() {
            0
        } else {
            let base = self.index.base_for(ptr);
            self.vocab_off.get(&base).copied().unwrap_or(0)
        };

        for (key, v) in map {
            if vocab_off & metaschemas::family_of(key) != 0 {
                // Its vocabulary is off: an unknown keyword, which is an annotation.
                continue;
            }
            let l = loc(key);
            match key.as_str() {
                k if is_annotation(k, d) => {}
                "$schema" => {}
                "id" if d == Dialect::Draft4 => {}
                "$id" if !d4 => {}
                "$anchor" if d.is_2020() => {}
                "$dynamicAnchor" if d.is_2020() => {
                    if !v.is_string() {
                        return Err(invalid(key, &l, "a plain-name fragment"));
                    }
                }
                "$dynamicRef" if d.is_2020() => {
                    let Value::String(r) = v else {
                        return Err(invalid(key, &l, "a URI reference"));
                    };
                    if let Some(target) = self.resolve_ref(r, ptr, &l)? {
                        let anchor = self.dynamic_anchor_of(r, target);
                        self.has_dynamic |= anchor.is_some();
                        push(KwKind::DynamicRef { target, anchor }, "$dynamicRef", l);
                    }
                }
                "unevaluatedProperties" if d.is_2020() => {
                    let s = self.compile_ptr(&l)?;
                    push(KwKind::UnevaluatedProperties(s), "unevaluatedProperties", l);
                }
                "unevaluatedItems" if d.is_2020() => {
                    let s = self.compile_ptr(&l)?;
                    push(KwKind::UnevaluatedItems(s), "unevaluatedItems", l);
                }
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
                        _ if self.in_metaschema(ptr) => {}
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
pub(crate) mod tests;
