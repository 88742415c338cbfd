//! Turns a schema document into a [`Tree`]: resolves every `$ref` once, compiles each schema
//! position once (memoized by JSON pointer, so recursive schemas become index cycles) and
//! refuses documents whose references loop without consuming input.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{CompileError, UnsupportedKeyword};
use crate::index::{Index, percent_decode};
use crate::metaschemas;
use crate::options::{CompileOptions, Dialect};
use crate::shortcut;
use crate::tree::{KwKind, Schema, Sid, Tree};
use crate::uri;

pub(crate) struct Compiler<'d> {
    pub(crate) doc: &'d Value,
    /// Other documents `$ref` may point into, by absolute URI (no fragment): those supplied,
    /// then the embedded metaschemas as they get referenced.
    resources: Vec<(&'d str, &'d Value)>,
    pub(crate) dialect: Dialect,
    pub(crate) opts: &'d CompileOptions,
    pub(crate) schemas: Vec<Schema>,
    pub(crate) locs: Vec<Box<str>>,
    memo: HashMap<String, Sid>,
    pub(crate) index: Index,
    pub(crate) unsupported: Vec<UnsupportedKeyword>,
    false_sid: Option<Sid>,
    /// Resource ids by base URI, and the resource of each compiled schema.
    res_ids: HashMap<String, u32>,
    res_of: Vec<u32>,
    /// Whether some `$dynamicRef` resolves dynamically.
    pub(crate) has_dynamic: bool,
    /// Keyword families (bits of `metaschemas::vocab`) a resource's metaschema turns off, by
    /// base URI.
    pub(crate) vocab_off: HashMap<String, u8>,
}

/// Positions are keyed by JSON pointer in the main document (`/a/b`) and by `uri#pointer` in a
/// resource document, so one string names any schema position.
pub(crate) fn compile_tree(
    doc: &Value,
    pointer: &str,
    dialect: Dialect,
    opts: &CompileOptions,
    resources: &[(&str, &Value)],
) -> Result<Tree, CompileError> {
    if doc.pointer(pointer).is_none() {
        return Err(CompileError::NoSuchPointer {
            pointer: pointer.to_string(),
        });
    }
    let mut c = Compiler {
        doc,
        resources: resources.to_vec(),
        dialect,
        opts,
        schemas: Vec::new(),
        locs: Vec::new(),
        memo: HashMap::new(),
        index: Index::new(),
        unsupported: Vec::new(),
        false_sid: None,
        res_ids: HashMap::new(),
        res_of: Vec::new(),
        has_dynamic: false,
        vocab_off: HashMap::new(),
    };
    if pointer.is_empty() {
        c.index.walk(doc, "", uri::DEFAULT_BASE, dialect);
    }
    for (u, d) in resources {
        let (u, _) = uri::split_fragment(u);
        let key = format!("{u}#");
        c.index.resources.insert(u.to_string(), key.clone());
        c.index.walk(d, &key, u, dialect);
    }
    let root = match c.compile_ptr(pointer).and_then(|r| {
        c.compile_dynamic_anchors()?;
        Ok(r)
    }) {
        Ok(r) => r,
        // A reference that fails next to unsupported keywords (`$dynamicAnchor`) most likely
        // targets what they define: report the keywords, the actionable part.
        Err(CompileError::UnresolvedRef { .. }) if !c.unsupported.is_empty() => {
            let first = c.unsupported[0].clone();
            return Err(CompileError::Unsupported {
                first,
                all: c.unsupported,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(first) = c.unsupported.first() {
        return Err(CompileError::Unsupported {
            first: first.clone(),
            all: c.unsupported,
        });
    }
    let dyn_anchors = c.dynamic_anchor_table();
    let tree = Tree {
        schemas: c.schemas,
        locs: c.locs,
        root,
        res_of: c.res_of,
        dyn_anchors,
        dynamic: c.has_dynamic,
    };
    check_cycles(&tree, &c.memo)?;
    let mut tree = tree;
    shortcut::skip_pure_refs(&mut tree);
    Ok(tree)
}

impl<'d> Compiler<'d> {
    /// The value at a position key (see [`compile_tree`]).
    pub(crate) fn lookup(&self, key: &str) -> Option<&'d Value> {
        if key.is_empty() || key.starts_with('/') {
            return self.doc.pointer(key);
        }
        let (u, ptr) = uri::split_fragment(key);
        let (_, d) = self
            .resources
            .iter()
            .find(|(r, _)| uri::split_fragment(r).0 == u)?;
        d.pointer(ptr)
    }

    /// Compiles the schema at a JSON pointer of the document, once.
    pub(crate) fn compile_ptr(&mut self, ptr: &str) -> Result<Sid, CompileError> {
        if let Some(&sid) = self.memo.get(ptr) {
            return Ok(sid);
        }
        let Some(v) = self.lookup(ptr) else {
            return Err(CompileError::UnresolvedRef {
                reference: format!("#{ptr}"),
                location: ptr.to_string(),
            });
        };
        if !self.index.bases.contains_key(ptr) {
            let base = self.index.base_for(ptr);
            self.index.walk(v, ptr, &base, self.dialect);
        }
        let sid = self.schemas.len();
        // Placeholder so that a reference back to this schema while compiling it resolves.
        self.schemas.push(Schema::Bool(true));
        self.locs.push(ptr.into());
        let res = self.resource_id(&self.index.base_for(ptr));
        self.res_of.push(res);
        self.memo.insert(ptr.to_string(), sid);
        // Draft 4 has no boolean schemas but allows booleans in these two keywords.
        let bool_ok = self.dialect.boolean_schemas()
            || ptr.ends_with("/additionalProperties")
            || ptr.ends_with("/additionalItems");
        let schema = match v {
            Value::Bool(b) if bool_ok => Schema::Bool(*b),
            Value::Object(map) => self.compile_object(map, ptr)?,
            _ => {
                return Err(CompileError::InvalidKeyword {
                    keyword: ptr.rsplit('/').next().unwrap_or_default().to_string(),
                    location: ptr.to_string(),
                    expected: if self.dialect.boolean_schemas() {
                        "a schema (an object or a boolean)"
                    } else {
                        "a schema (an object)"
                    },
                });
            }
        };
        if let Some(slot) = self.schemas.get_mut(sid) {
            *slot = schema;
        }
        Ok(sid)
    }

    /// The shared `false` schema (used by `strict_objects`).
    pub(crate) fn false_schema(&mut self) -> Sid {
        if let Some(s) = self.false_sid {
            return s;
        }
        let s = self.schemas.len();
        self.schemas.push(Schema::Bool(false));
        self.locs.push("".into());
        self.res_of.push(0);
        self.false_sid = Some(s);
        s
    }

    pub(crate) fn unsupported(&mut self, keyword: &str, location: String, why: &'static str) {
        self.unsupported.push(UnsupportedKeyword {
            keyword: keyword.to_string(),
            location,
            why,
        });
    }

    /// Resolves a `$ref` written at `loc` (schema at `ptr`). `None` when the target is outside
    /// the document (recorded as unsupported).
    pub(crate) fn resolve_ref(
        &mut self,
        reference: &str,
        ptr: &str,
        loc: &str,
    ) -> Result<Option<Sid>, CompileError> {
        let base = self.index.base_for(ptr);
        let abs = uri::resolve(&base, reference);
        let (res, frag) = uri::split_fragment(&abs);
        if !self.index.resources.contains_key(res)
            && let Some((u, doc)) = metaschemas::builtin(res, self.dialect)
        {
            self.add_resource(u, doc);
        }
        let Some(root) = self.index.resources.get(res).cloned() else {
            self.unsupported(
                "$ref",
                loc.to_string(),
                "remote reference; only references inside the document are resolved",
            );
            return Ok(None);
        };
        let frag = percent_decode(frag);
        let target = if frag.is_empty() {
            Some(root)
        } else if frag.starts_with('/') {
            Some(format!("{root}{frag}"))
        } else {
            self.index.anchors.get(&format!("{res}#{frag}")).cloned()
        };
        match target {
            Some(t) if self.lookup(&t).is_some() => self.compile_ptr(&t).map(Some),
            _ => Err(CompileError::UnresolvedRef {
                reference: reference.to_string(),
                location: loc.to_string(),
            }),
        }
    }
}

impl<'d> Compiler<'d> {
    /// Indexes another document under its absolute URI (no fragment).
    fn add_resource(&mut self, u: &'d str, doc: &'d Value) {
        let key = format!("{u}#");
        self.index.resources.insert(u.to_string(), key.clone());
        self.index.walk(doc, &key, u, self.dialect);
        self.resources.push((u, doc));
    }

    fn resource_id(&mut self, base: &str) -> u32 {
        let next = u32::try_from(self.res_ids.len()).unwrap_or(u32::MAX);
        *self.res_ids.entry(base.to_string()).or_insert(next)
    }

    /// With dynamic references in the tree, compiles every `$dynamicAnchor` of every resource
    /// the tree touches: any of them may be in the dynamic scope when a reference is followed.
    fn compile_dynamic_anchors(&mut self) -> Result<(), CompileError> {
        if !self.has_dynamic {
            return Ok(());
        }
        loop {
            let pending: Vec<String> = self
                .index
                .dynamic_anchors
                .iter()
                .filter(|(base, _)| self.res_ids.contains_key(*base))
                .flat_map(|(_, list)| list.iter().map(|(_, p)| p.clone()))
                .filter(|p| !self.memo.contains_key(p))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            for p in pending {
                self.compile_ptr(&p)?;
            }
        }
    }

    /// `$dynamicAnchor`s by resource id, for the walk.
    fn dynamic_anchor_table(&self) -> Vec<Vec<(Box<str>, Sid)>> {
        let mut table = vec![Vec::new(); self.res_ids.len()];
        if !self.has_dynamic {
            return table;
        }
        for (base, list) in &self.index.dynamic_anchors {
            let Some(&id) = self.res_ids.get(base) else {
                continue;
            };
            for (name, p) in list {
                if let (Some(&sid), Some(slot)) = (self.memo.get(p), table.get_mut(id as usize)) {
                    slot.push((name.as_str().into(), sid));
                }
            }
        }
        table
    }

    /// Whether a position lies in an embedded metaschema (whose `format`s are annotations).
    pub(crate) fn in_metaschema(&self, ptr: &str) -> bool {
        let (u, _) = uri::split_fragment(ptr);
        !ptr.starts_with('/') && metaschemas::builtin(u, self.dialect).is_some()
    }
}

/// Schemas applied to the same instance location as `kind` (no descent into the instance).
fn in_place(tree: &Tree, kind: &KwKind, out: &mut Vec<Sid>) {
    match kind {
        KwKind::Ref(s) | KwKind::Not(s) => out.push(*s),
        KwKind::DynamicRef { target, anchor } => {
            out.push(*target);
            // Any same-named dynamic anchor may be the one in scope.
            let same = |(n, _): &&(Box<str>, Sid)| Some(n) == anchor.as_ref();
            out.extend(
                tree.dyn_anchors
                    .iter()
                    .flatten()
                    .filter(same)
                    .map(|(_, s)| *s),
            );
        }
        KwKind::AllOf(v) | KwKind::AnyOf(v) | KwKind::OneOf(v) => out.extend(v),
        KwKind::If { cond, then, els } => {
            out.push(*cond);
            out.extend(then.iter().chain(els.iter()));
        }
        KwKind::Object(o) => out.extend(o.dep_schemas.iter().map(|(_, s)| *s)),
        _ => {}
    }
}

/// Rejects cycles of in-place applicators: validating them would never terminate.
fn check_cycles(tree: &Tree, memo: &HashMap<String, Sid>) -> Result<(), CompileError> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let n = tree.schemas.len();
    let mut color = vec![WHITE; n];
    let mut edges: Vec<Vec<Sid>> = Vec::with_capacity(n);
    for s in &tree.schemas {
        let mut out = Vec::new();
        if let Schema::Obj(o) = s {
            for kw in o.all() {
                in_place(tree, &kw.kind, &mut out);
            }
        }
        edges.push(out);
    }
    for start in 0..n {
        if color[start] != WHITE {
            continue;
        }
        // Iterative DFS: (node, next edge index).
        let mut stack = vec![(start, 0usize)];
        color[start] = GREY;
        while let Some((node, i)) = stack.pop() {
            if let Some(&next) = edges[node].get(i) {
                stack.push((node, i + 1));
                match color.get(next) {
                    Some(&GREY) => {
                        let location = memo
                            .iter()
                            .find(|(_, s)| **s == next)
                            .map(|(p, _)| {
                                if p.is_empty() {
                                    "#".to_string()
                                } else {
                                    p.clone()
                                }
                            })
                            .unwrap_or_default();
                        return Err(CompileError::InfiniteRecursion { location });
                    }
                    Some(&WHITE) => {
                        color[next] = GREY;
                        stack.push((next, 0));
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn tree(schema: &Value, d: Dialect) -> Result<Tree, CompileError> {
        compile_tree(schema, "", d, &CompileOptions::default(), &[])
    }

    #[test]
    fn each_position_is_compiled_once() {
        // Three references to one definition share one compiled schema.
        let s = json!({"$defs": {"n": {"type": "integer"}}, "properties": {
            "a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#/$defs/n"}, "c": {"$ref": "#/$defs/n"}}});
        let t = tree(&s, Dialect::Draft2020_12).unwrap();
        let n = t.locs.iter().filter(|l| &***l == "/$defs/n").count();
        assert_eq!(n, 1);
        // root, $defs/n and a, b, c.
        assert_eq!(t.schemas.len(), 5);
    }

    #[test]
    fn recursion_through_descent_is_fine_but_in_place_loops_are_not() {
        let ok = json!({"properties": {"child": {"$ref": "#"}}});
        assert!(tree(&ok, Dialect::Draft7).is_ok());
        for bad in [
            json!({"$ref": "#"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
                   "$ref": "#/$defs/a"}),
            json!({"if": {"$ref": "#"}}),
        ] {
            let e = tree(&bad, Dialect::Draft2020_12).unwrap_err();
            assert!(
                matches!(e, CompileError::InfiniteRecursion { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ids_change_the_base_for_refs() {
        let s = json!({"$id": "http://example.com/root.json", "$defs": {
            "a": {"$id": "dir/a.json", "$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"},
            "b": {"$ref": "dir/a.json#/$defs/n"}}, "properties": {"x": {"$ref": "#/$defs/b"}}});
        let t = tree(&s, Dialect::Draft2020_12).unwrap();
        assert!(t.locs.iter().any(|l| &**l == "/$defs/a/$defs/n"));
        // Relative refs that leave the document are remote: unsupported, not silently dropped.
        let e = tree(&json!({"$ref": "other.json"}), Dialect::Draft7).unwrap_err();
        assert_eq!(e.unsupported_keywords()[0].keyword, "$ref");
    }

    #[test]
    fn refs_into_supplied_documents() {
        let common = json!({"$defs": {"id": {"type": "integer", "minimum": 1}}});
        let s = json!({"$id": "http://api.example/schemas/order.json",
            "properties": {"id": {"$ref": "common.json#/$defs/id"}}});
        let res = [("http://api.example/schemas/common.json", &common)];
        let t = compile_tree(
            &s,
            "",
            Dialect::Draft2020_12,
            &CompileOptions::default(),
            &res,
        )
        .unwrap();
        assert!(
            t.locs
                .iter()
                .any(|l| &**l == "http://api.example/schemas/common.json#/$defs/id")
        );
        let e = tree(&s, Dialect::Draft2020_12).unwrap_err();
        assert_eq!(e.unsupported_keywords()[0].keyword, "$ref");
    }

    #[test]
    fn percent_encoded_pointers_resolve() {
        let s = json!({"$defs": {"a%b": {"type": "string"}, "c/d": {"type": "null"}},
            "properties": {"x": {"$ref": "#/$defs/a%25b"}, "y": {"$ref": "#/$defs/c~1d"}}});
        assert!(tree(&s, Dialect::Draft2020_12).is_ok());
    }
}
