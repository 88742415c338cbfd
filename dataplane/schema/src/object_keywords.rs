//! Compiles the keywords that look at an object's members into one [`ObjectKw`], so that the
//! validator can check them all in a single pass over the members.

use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::error::CompileError;
use crate::index::esc;
use crate::keyword_values::{invalid, names, regex};
use crate::options::Dialect;
use crate::tree::{Kw, KwKind, ObjectKw};

/// Whether `key` is an object keyword of dialect `d`.
pub(crate) fn is_object_keyword(key: &str, d: Dialect) -> bool {
    let d4 = matches!(d, Dialect::Draft4 | Dialect::OpenApi30);
    match key {
        "properties" | "additionalProperties" | "required" => true,
        "patternProperties" => d != Dialect::OpenApi30,
        "propertyNames" => !d4,
        "dependentRequired" | "dependentSchemas" => d.is_2020(),
        "dependencies" => !d.is_2020() && d != Dialect::OpenApi30,
        _ => false,
    }
}

impl Compiler<'_> {
    /// Adds one object keyword (accepted by [`is_object_keyword`]) at location `l` to `obj`.
    pub(crate) fn object_keyword(
        &mut self,
        key: &str,
        v: &Value,
        l: String,
        obj: &mut ObjectKw,
    ) -> Result<(), CompileError> {
        match key {
            "properties" => {
                for (name, sid) in self.map_of(v, key, &l)? {
                    let slot = obj.slot(&name) as usize;
                    obj.props[slot] = Some(sid);
                }
                obj.props_loc = l.into_boxed_str();
            }
            "patternProperties" => {
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
            "propertyNames" => obj.property_names = Some((self.compile_ptr(&l)?, l.into())),
            "required" => {
                obj.required = names(v, key, &l)?.iter().map(|n| obj.slot(n)).collect();
                obj.required_loc = l.into_boxed_str();
            }
            "dependentRequired" => {
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
            "dependentSchemas" => {
                for (name, sid) in self.map_of(v, key, &l)? {
                    let s = obj.slot(&name);
                    obj.dep_schemas.push((s, sid));
                }
                obj.dep_schemas_kw = ("dependentSchemas", l.into_boxed_str());
            }
            "dependencies" => {
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
            _ => {}
        }
        Ok(())
    }

    /// Applies `strict_objects` and wraps the object keywords of a schema, if it has any.
    pub(crate) fn finish_object(
        &mut self,
        map: &Map<String, Value>,
        ptr: &str,
        mut obj: ObjectKw,
    ) -> Option<Kw> {
        let declares = map.contains_key("properties")
            || map.contains_key("patternProperties")
            || map.get("type").is_some_and(|t| {
                t == "object"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "object"))
            });
        if self.opts.strict_objects && declares && obj.additional.is_none() {
            let f = self.false_schema();
            obj.additional = Some((f, format!("{ptr}/additionalProperties").into()));
        }
        let used = !obj.is_empty()
            || !obj.required.is_empty()
            || !obj.dep_required.is_empty()
            || !obj.dep_schemas.is_empty();
        used.then(|| Kw {
            kind: KwKind::Object(Box::new(obj)),
            name: "properties",
            loc: ptr.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::keywords::tests::{compile, run};
    use crate::{CompileOptions, Dialect, Reason, Validator};
    use serde_json::{Value, json};

    #[test]
    fn read_only_and_strict_objects() {
        let s = json!({"type": "object", "properties": {
            "id": {"type": "integer", "readOnly": true},
            "secret": {"type": "string", "writeOnly": true},
            "tags": {"type": "object", "properties": {"a": {}}},
            "meta": {"type": "object", "additionalProperties": true}}});
        let v = compile(s.clone(), Dialect::OpenApi30);
        let r = run(&v, r#"{"id": 1, "secret": "s"}"#).unwrap_err();
        assert_eq!(r.reason, Reason::ReadOnlyProperty);
        assert_eq!(r.violations[0].instance_location, "/id");
        assert!(run(&v, r#"{"secret": "s", "extra": 1}"#).is_ok());
        let strict = CompileOptions {
            strict_objects: true,
            ..CompileOptions::default()
        };
        let v = Validator::compile(&s, Dialect::OpenApi30, &strict).unwrap();
        let r = run(&v, r#"{"extra": 1, "tags": {"b": 1}, "meta": {"free": 1}}"#).unwrap_err();
        let at: Vec<&str> = r
            .violations
            .iter()
            .map(|x| x.instance_location.as_str())
            .collect();
        assert_eq!(at, ["/extra", "/tags/b"]);
        assert!(
            r.violations
                .iter()
                .all(|x| x.keyword == "additionalProperties")
        );
    }

    #[test]
    fn many_names_use_the_large_table() {
        let props: serde_json::Map<String, Value> = (0..100)
            .map(|i| (format!("p{i}"), json!({"type": "integer"})))
            .collect();
        let req: Vec<String> = (0..100).step_by(7).map(|i| format!("p{i}")).collect();
        let v = compile(
            json!({"properties": props, "required": req}),
            Dialect::Draft7,
        );
        let all: Vec<String> = (0..100).map(|i| format!("\"p{i}\": {i}")).collect();
        assert!(run(&v, &format!("{{{}}}", all.join(","))).is_ok());
        let r = run(&v, r#"{"p1": 1}"#).unwrap_err();
        assert_eq!(r.violations[0].keyword, "required");
        let r = run(&v, &format!("{{{}, \"p99\": \"x\"}}", all[..99].join(","))).unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/p99");
    }
}
