//! Finds the identifiers of a document before compiling it: which JSON pointer each `$id`
//! (resource) and `$anchor` names, and the base URI in force at every schema position, so that
//! `$ref` can be resolved without fetching anything.

use std::collections::HashMap;

use serde_json::Value;

use crate::options::Dialect;
use crate::uri;

/// How a keyword holds subschemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    One,
    List,
    Map,
    /// `items` before 2020-12: a schema or a list of schemas.
    OneOrList,
    /// `dependencies`: a map whose values are schemas or lists of names.
    Deps,
}

pub(crate) fn shape(key: &str, d: Dialect) -> Option<Shape> {
    Some(match key {
        "additionalProperties" | "propertyNames" | "not" | "if" | "then" | "else" | "contains" => {
            Shape::One
        }
        "additionalItems" if !d.is_2020() => Shape::One,
        "unevaluatedProperties" | "unevaluatedItems" if d.is_2020() => Shape::One,
        "items" if d.is_2020() => Shape::One,
        "items" => Shape::OneOrList,
        "prefixItems" if d.is_2020() => Shape::List,
        "allOf" | "anyOf" | "oneOf" => Shape::List,
        "properties" | "patternProperties" | "definitions" | "$defs" => Shape::Map,
        "dependentSchemas" if d.is_2020() => Shape::Map,
        "dependencies" if !d.is_2020() => Shape::Deps,
        _ => return None,
    })
}

/// Escapes one JSON-pointer reference token.
pub(crate) fn esc(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Absolute URI (no fragment) of each resource -> JSON pointer of its root.
    pub(crate) resources: HashMap<String, String>,
    /// Absolute URI with a plain-name fragment -> JSON pointer.
    pub(crate) anchors: HashMap<String, String>,
    /// JSON pointer of each schema seen -> base URI in force there.
    pub(crate) bases: HashMap<String, String>,
    /// Base URI of each resource -> its `$dynamicAnchor`s as (name, JSON pointer).
    pub(crate) dynamic_anchors: HashMap<String, Vec<(String, String)>>,
}

impl Index {
    pub(crate) fn new() -> Self {
        let mut i = Self::default();
        i.resources
            .insert(uri::DEFAULT_BASE.to_string(), String::new());
        i
    }

    /// Base URI for a pointer not seen yet: that of its nearest indexed ancestor.
    pub(crate) fn base_for(&self, ptr: &str) -> String {
        let mut p = ptr;
        loop {
            if let Some(b) = self.bases.get(p) {
                return b.clone();
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return uri::DEFAULT_BASE.to_string(),
            }
        }
    }

    pub(crate) fn walk(&mut self, v: &Value, ptr: &str, base: &str, d: Dialect) {
        if self.bases.contains_key(ptr) {
            return;
        }
        let Value::Object(map) = v else {
            self.bases.insert(ptr.to_string(), base.to_string());
            return;
        };
        let mut base = base.to_string();
        let ref_hides_id = d.ref_overrides_siblings() && map.contains_key("$ref");
        if let Some(Value::String(id)) = d.id_keyword().and_then(|k| map.get(k))
            && !ref_hides_id
        {
            let abs = uri::resolve(&base, id);
            let (res, frag) = uri::split_fragment(&abs);
            if !id.starts_with('#') {
                base = res.to_string();
                self.resources
                    .entry(base.clone())
                    .or_insert_with(|| ptr.to_string());
            }
            if !frag.is_empty() && !frag.starts_with('/') {
                self.anchors.insert(abs.clone(), ptr.to_string());
            }
        }
        if d.is_2020()
            && let Some(Value::String(anchor)) = map.get("$anchor")
        {
            self.anchors
                .insert(format!("{base}#{anchor}"), ptr.to_string());
        }
        // A dynamic anchor is also a plain one: `$ref: "#name"` and the first resolution of
        // `$dynamicRef` find it like any other anchor.
        if d.is_2020()
            && let Some(Value::String(anchor)) = map.get("$dynamicAnchor")
        {
            self.anchors
                .insert(format!("{base}#{anchor}"), ptr.to_string());
            self.dynamic_anchors
                .entry(base.clone())
                .or_default()
                .push((anchor.clone(), ptr.to_string()));
        }
        self.bases.insert(ptr.to_string(), base.clone());
        for (k, sub) in map {
            let Some(shape) = shape(k, d) else { continue };
            let kp = format!("{ptr}/{}", esc(k));
            match (shape, sub) {
                (Shape::One, _) | (Shape::OneOrList, Value::Object(_) | Value::Bool(_)) => {
                    self.walk(sub, &kp, &base, d);
                }
                (Shape::List | Shape::OneOrList, Value::Array(list)) => {
                    for (i, s) in list.iter().enumerate() {
                        self.walk(s, &format!("{kp}/{i}"), &base, d);
                    }
                }
                (Shape::Map | Shape::Deps, Value::Object(m)) => {
                    for (name, s) in m {
                        if !s.is_array() {
                            self.walk(s, &format!("{kp}/{}", esc(name)), &base, d);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Decodes `%XX` escapes in a URI fragment (JSON pointers in `$ref` are URI-encoded).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2)))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: Option<&u8>) -> Option<u8> {
    let c = *c?;
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_anchors_are_indexed() {
        let doc = json!({
            "$id": "http://example.com/root.json",
            "$defs": {
                "a": {"$id": "nested/a.json", "$defs": {"b": {"$anchor": "bee"}}},
                "c": {"$anchor": "sea"}
            }
        });
        let mut ix = Index::new();
        ix.walk(&doc, "", uri::DEFAULT_BASE, Dialect::Draft2020_12);
        assert_eq!(
            ix.resources
                .get("http://example.com/root.json")
                .map(String::as_str),
            Some("")
        );
        assert_eq!(
            ix.resources
                .get("http://example.com/nested/a.json")
                .map(String::as_str),
            Some("/$defs/a")
        );
        assert_eq!(
            ix.anchors
                .get("http://example.com/nested/a.json#bee")
                .map(String::as_str),
            Some("/$defs/a/$defs/b")
        );
        assert_eq!(
            ix.anchors
                .get("http://example.com/root.json#sea")
                .map(String::as_str),
            Some("/$defs/c")
        );
    }

    #[test]
    fn draft7_ref_hides_sibling_id() {
        let doc = json!({"definitions": {"x": {"$id": "http://other/", "$ref": "#"}}});
        let mut ix = Index::new();
        ix.walk(&doc, "", uri::DEFAULT_BASE, Dialect::Draft7);
        assert!(!ix.resources.contains_key("http://other/"));
    }

    #[test]
    fn pointer_escapes() {
        assert_eq!(esc("a/b~c"), "a~1b~0c");
        assert_eq!(percent_decode("/a%25b%22"), "/a%b\"");
    }
}
