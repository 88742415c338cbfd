//! Annotation sets for `unevaluatedProperties` and `unevaluatedItems`: which members of an
//! object (by position) or elements of an array (by index) the keywords applied in place to one
//! instance have evaluated. A set is only built when a schema with an `unevaluated*` keyword
//! asks for one; everywhere else the walk passes `None` and pays nothing.
//!
//! Annotations of a failed subschema must not count. `anyOf`, `oneOf` and `if` give each branch
//! its own set and merge the valid ones; elsewhere a failure fails the schema that asked, whose
//! set is then dropped, so keywords may mark freely.

use crate::error::Reason;
use crate::node::{JsonNode, Kind};
use crate::tree::{Schema, Sid};
use crate::walk::{Seg, Walker};

#[derive(Debug, Clone)]
pub(crate) struct Evaluated {
    /// Bit `i` set: member or element `i` was evaluated.
    bits: Vec<u64>,
    /// Every index from here on was evaluated (`items`, `additionalProperties`...).
    from: usize,
}

impl Default for Evaluated {
    fn default() -> Self {
        Self {
            bits: Vec::new(),
            from: usize::MAX,
        }
    }
}

impl Evaluated {
    pub(crate) fn mark(&mut self, i: usize) {
        if i >= self.from {
            return;
        }
        let w = i / 64;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        if let Some(word) = self.bits.get_mut(w) {
            *word |= 1u64 << (i % 64);
        }
    }

    /// Marks every index `>= i`.
    pub(crate) fn mark_from(&mut self, i: usize) {
        self.from = self.from.min(i);
    }

    pub(crate) fn has(&self, i: usize) -> bool {
        i >= self.from
            || self
                .bits
                .get(i / 64)
                .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    pub(crate) fn merge(&mut self, other: &Evaluated) {
        self.from = self.from.min(other.from);
        if self.bits.len() < other.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }
}

/// Marks `i` in an optional set.
pub(crate) fn note(ev: &mut Option<&mut Evaluated>, i: usize) {
    if let Some(e) = ev {
        e.mark(i);
    }
}

impl<'t, 'a> Walker<'t, 'a> {
    /// Applies an `unevaluated*` schema to the members or elements `seen` does not cover, then
    /// marks them all (they are evaluated now).
    pub(crate) fn unevaluated<J: JsonNode<'a>>(
        &mut self,
        (sid, loc): &'t (Sid, Box<str>),
        inst: J,
        kind: Kind<'a>,
        seen: &mut Evaluated,
        collect: bool,
    ) -> bool {
        let keyword = match kind {
            Kind::Object(_) => "unevaluatedProperties",
            _ => "unevaluatedItems",
        };
        let never = matches!(self.tree.schemas.get(*sid), Some(Schema::Bool(false)));
        let mut ok = true;
        let check = |w: &mut Self, i: usize, seg: Seg<'a>, val: J| {
            if seen.has(i) {
                return true;
            }
            if never {
                w.path.push(seg);
                w.record(collect, Reason::SchemaViolation, keyword, loc);
                w.path.pop();
                return false;
            }
            w.descend(seg, *sid, val, collect)
        };
        match kind {
            Kind::Object(n) => {
                for (i, (key, val)) in inst.members().take(n).enumerate() {
                    ok &= check(self, i, Seg::Key(key), val);
                    if !ok && (!collect || self.full() || self.too_deep) {
                        break;
                    }
                }
            }
            Kind::Array(_) => {
                for (i, item) in inst.items().enumerate() {
                    ok &= check(self, i, Seg::Index(i), item);
                    if !ok && (!collect || self.full() || self.too_deep) {
                        break;
                    }
                }
            }
            _ => {}
        }
        seen.mark_from(0);
        ok
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{CompileOptions, Dialect, Limits, Validator};
    use serde_json::json;

    #[test]
    fn sets_mark_merge_and_cover_tails() {
        let mut a = Evaluated::default();
        a.mark(3);
        a.mark(130);
        assert!(a.has(3) && a.has(130) && !a.has(4) && !a.has(1000));
        let mut b = Evaluated::default();
        b.mark_from(200);
        a.merge(&b);
        assert!(a.has(130) && a.has(200) && a.has(5000) && !a.has(199));
    }

    #[test]
    fn all_of_closed_with_unevaluated_properties() {
        // The OpenAPI 3.1 way to close a composed object.
        let s = json!({
            "allOf": [{"properties": {"id": {"type": "integer"}}}],
            "anyOf": [{"properties": {"cat": {"type": "string"}}, "required": ["cat"]},
                      {"properties": {"dog": {"type": "string"}}, "required": ["dog"]}],
            "properties": {"name": {"type": "string"}},
            "unevaluatedProperties": false
        });
        let v = Validator::compile(&s, Dialect::OpenApi31, &CompileOptions::default()).unwrap();
        let check = |text: &str| {
            let by_value = v.validate_value(&serde_json::from_str(text).unwrap());
            let by_bytes = v.validate_bytes(&mut text.as_bytes().to_vec(), &Limits::default());
            assert_eq!(by_value.is_ok(), by_bytes.is_ok(), "{text}");
            by_bytes
        };
        assert!(check(r#"{"id": 1, "name": "n", "cat": "c"}"#).is_ok());
        // `dog` is declared only by the failed anyOf branch: its annotation does not count.
        let r = check(r#"{"id": 1, "cat": "c", "dog": 5}"#).unwrap_err();
        assert_eq!(r.violations[0].keyword, "unevaluatedProperties");
        assert_eq!(r.violations[0].instance_location, "/dog");
        assert_eq!(r.violations[0].keyword_location, "/unevaluatedProperties");
        let r = check(r#"{"cat": "c", "extra": 1}"#).unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/extra");
    }

    #[test]
    fn unevaluated_items_after_prefix_and_contains() {
        let s = json!({"prefixItems": [{"type": "string"}], "contains": {"type": "integer"},
            "unevaluatedItems": {"type": "boolean"}});
        let v = Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        let mut ok = br#"["a", 1, true, 2]"#.to_vec();
        assert!(v.validate_bytes(&mut ok, &Limits::default()).is_ok());
        let mut bad = br#"["a", 1, null]"#.to_vec();
        let r = v.validate_bytes(&mut bad, &Limits::default()).unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/2");
        assert_eq!(r.violations[0].keyword_location, "/unevaluatedItems/type");
    }
}
