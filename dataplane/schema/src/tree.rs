//! The compiled validator tree: an arena of schemas addressed by index, so `$ref` cycles are
//! plain indices and sharing a validator across threads needs no reference counting.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::format::Format;
use crate::node::Kind;
use crate::number::{Divisor, Num};
use crate::pattern::Pattern;

/// Index of a schema in [`Tree::schemas`].
pub(crate) type Sid = usize;

#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) schemas: Vec<Schema>,
    /// JSON pointer of each schema in the document (`""` for synthesized ones).
    pub(crate) locs: Vec<Box<str>>,
    pub(crate) root: Sid,
    /// Schema resource (`$id` or document) each schema belongs to: the dynamic scope of
    /// `$dynamicRef` is the list of resources entered on the way to it.
    pub(crate) res_of: Vec<u32>,
    /// `$dynamicAnchor`s of each resource, as (name, schema).
    pub(crate) dyn_anchors: Vec<Vec<(Box<str>, Sid)>>,
    /// Whether any `$dynamicRef` can resolve dynamically; when not, the walk keeps no scope.
    pub(crate) dynamic: bool,
}

#[derive(Debug)]
pub(crate) enum Schema {
    Bool(bool),
    Obj(SchemaObj),
}

/// A schema object's keywords, grouped by the instance type they constrain so that a value
/// only visits the keywords that can apply to it (most keywords ignore other types).
#[derive(Debug, Default)]
pub(crate) struct SchemaObj {
    /// `type` as a bit mask, with its location.
    pub(crate) ty: Option<(u8, Box<str>)>,
    pub(crate) num: Vec<Kw>,
    pub(crate) str: Vec<Kw>,
    pub(crate) arr: Vec<Kw>,
    pub(crate) obj: Vec<Kw>,
    /// Keywords for every type (`enum`, `const`, `$ref`, combinators, `if`).
    pub(crate) any: Vec<Kw>,
    /// `readOnly: true` with read-only rejection on: any instance reaching here is refused.
    pub(crate) read_only: Option<Box<str>>,
    pub(crate) unevaluated: Option<Box<Unevaluated>>,
    /// `any` holds only `enum` / `const`: a string, number, boolean or null needs no subschema
    /// here, and takes the walk's short path.
    pub(crate) leaf_any: bool,
    /// Every keyword decides on the instance alone (no subschema, no annotation, no
    /// `readOnly` refusal): a pass needs no walk state, see `Walker::child`.
    pub(crate) pure_leaf: bool,
}

/// `unevaluatedProperties` / `unevaluatedItems` (schema, location): applied after every other
/// keyword, to the members or elements none of them evaluated.
#[derive(Debug, Default)]
pub(crate) struct Unevaluated {
    pub(crate) props: Option<(Sid, Box<str>)>,
    pub(crate) items: Option<(Sid, Box<str>)>,
}

impl SchemaObj {
    pub(crate) fn new(kws: Vec<Kw>, read_only: Option<Box<str>>) -> Self {
        let mut o = SchemaObj {
            read_only,
            ..SchemaObj::default()
        };
        for kw in kws {
            let list = match &kw.kind {
                KwKind::Type(mask) => {
                    o.ty = Some((*mask, kw.loc));
                    continue;
                }
                KwKind::UnevaluatedProperties(s) => {
                    o.unevaluated.get_or_insert_default().props = Some((*s, kw.loc));
                    continue;
                }
                KwKind::UnevaluatedItems(s) => {
                    o.unevaluated.get_or_insert_default().items = Some((*s, kw.loc));
                    continue;
                }
                KwKind::Minimum { .. } | KwKind::Maximum { .. } | KwKind::MultipleOf(_) => {
                    &mut o.num
                }
                KwKind::Format(f) if f.numeric() => &mut o.num,
                KwKind::MinLength(_)
                | KwKind::MaxLength(_)
                | KwKind::Pattern(_)
                | KwKind::Format(_) => &mut o.str,
                KwKind::MinItems(_)
                | KwKind::MaxItems(_)
                | KwKind::UniqueItems
                | KwKind::PrefixItems(_)
                | KwKind::Items { .. }
                | KwKind::Contains { .. } => &mut o.arr,
                KwKind::MinProperties(_) | KwKind::MaxProperties(_) | KwKind::Object(_) => {
                    &mut o.obj
                }
                _ => &mut o.any,
            };
            list.push(kw);
        }
        o.leaf_any = o
            .any
            .iter()
            .all(|k| matches!(k.kind, KwKind::Enum(_) | KwKind::Const(_)));
        o.pure_leaf =
            o.read_only.is_none() && o.unevaluated.is_none() && o.all().all(|k| k.kind.is_leaf());
        o
    }

    /// The keywords for instances of this kind (those for every type are in `any`).
    #[inline]
    pub(crate) fn for_kind(&self, kind: Kind<'_>) -> &[Kw] {
        match kind {
            Kind::Num(_) => &self.num,
            Kind::Str(_) => &self.str,
            Kind::Array(_) => &self.arr,
            Kind::Object(_) => &self.obj,
            Kind::Null | Kind::Bool(_) => &[],
        }
    }

    /// Every keyword except `type` and `unevaluated*`.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Kw> {
        self.num
            .iter()
            .chain(&self.str)
            .chain(&self.arr)
            .chain(&self.obj)
            .chain(&self.any)
    }
}

/// One compiled keyword with where it came from, for error reports.
#[derive(Debug)]
pub(crate) struct Kw {
    pub(crate) kind: KwKind,
    pub(crate) name: &'static str,
    pub(crate) loc: Box<str>,
}

/// Type bits for `type` (integer is its own bit; `number` accepts integers too).
pub(crate) mod ty {
    pub(crate) const NULL: u8 = 1;
    pub(crate) const BOOL: u8 = 2;
    pub(crate) const INT: u8 = 4;
    pub(crate) const NUM: u8 = 8;
    pub(crate) const STR: u8 = 16;
    pub(crate) const ARR: u8 = 32;
    pub(crate) const OBJ: u8 = 64;

    pub(crate) fn from_name(name: &str) -> Option<u8> {
        Some(match name {
            "null" => NULL,
            "boolean" => BOOL,
            "integer" => INT,
            "number" => NUM,
            "string" => STR,
            "array" => ARR,
            "object" => OBJ,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub(crate) enum KwKind {
    Type(u8),
    Enum(Vec<Value>),
    Const(Value),
    Ref(Sid),
    /// `$dynamicRef`: `target` unless `anchor` names a `$dynamicAnchor` of a resource in the
    /// dynamic scope, outermost first (`anchor` is set only when `target` itself has it).
    DynamicRef {
        target: Sid,
        anchor: Option<Box<str>>,
    },
    UnevaluatedProperties(Sid),
    UnevaluatedItems(Sid),
    Minimum {
        limit: Num,
        exclusive: bool,
    },
    Maximum {
        limit: Num,
        exclusive: bool,
    },
    MultipleOf(Divisor),
    MinLength(usize),
    MaxLength(usize),
    Pattern(Box<Pattern>),
    Format(Format),
    MinItems(usize),
    MaxItems(usize),
    UniqueItems,
    /// Positional schemas for the first elements (`prefixItems`, array-form `items`).
    PrefixItems(Vec<Sid>),
    /// A schema for every element from index `skip` on (`items`, `additionalItems`).
    Items {
        skip: usize,
        schema: Sid,
    },
    Contains {
        schema: Sid,
        min: usize,
        max: Option<usize>,
    },
    MinProperties(usize),
    MaxProperties(usize),
    Object(Box<ObjectKw>),
    AllOf(Vec<Sid>),
    AnyOf(Vec<Sid>),
    OneOf(Vec<Sid>),
    Not(Sid),
    If {
        cond: Sid,
        then: Option<Sid>,
        els: Option<Sid>,
    },
}

impl KwKind {
    /// Keywords that decide on the instance alone, without applying a subschema.
    pub(crate) fn is_leaf(&self) -> bool {
        matches!(
            self,
            KwKind::Type(_)
                | KwKind::Enum(_)
                | KwKind::Const(_)
                | KwKind::Minimum { .. }
                | KwKind::Maximum { .. }
                | KwKind::MultipleOf(_)
                | KwKind::MinLength(_)
                | KwKind::MaxLength(_)
                | KwKind::Pattern(_)
                | KwKind::Format(_)
                | KwKind::MinItems(_)
                | KwKind::MaxItems(_)
                | KwKind::UniqueItems
                | KwKind::MinProperties(_)
                | KwKind::MaxProperties(_)
        )
    }
}

/// The keywords that look at an object's members, evaluated in one pass over the members.
#[derive(Debug, Default)]
pub(crate) struct ObjectKw {
    /// Every property name any keyword mentions, mapped to a slot.
    pub(crate) names: NameTable,
    /// `properties` schema per slot.
    pub(crate) props: Vec<Option<Sid>>,
    pub(crate) props_loc: Box<str>,
    pub(crate) patterns: Vec<(Pattern, Sid)>,
    pub(crate) patterns_loc: Box<str>,
    pub(crate) additional: Option<(Sid, Box<str>)>,
    pub(crate) property_names: Option<(Sid, Box<str>)>,
    pub(crate) required: Vec<u32>,
    pub(crate) required_loc: Box<str>,
    /// (`dependentRequired` or `dependencies`, location, [(if present, then these)]).
    pub(crate) dep_required: Vec<(u32, Vec<u32>)>,
    pub(crate) dep_required_kw: (&'static str, Box<str>),
    pub(crate) dep_schemas: Vec<(u32, Sid)>,
    pub(crate) dep_schemas_kw: (&'static str, Box<str>),
}

impl ObjectKw {
    pub(crate) fn slot(&mut self, name: &str) -> u32 {
        if let Some(s) = self.names.get(name) {
            return s;
        }
        let s = u32::try_from(self.props.len()).unwrap_or(u32::MAX);
        self.names.insert(name, s);
        self.props.push(None);
        s
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.props.is_empty()
            && self.patterns.is_empty()
            && self.additional.is_none()
            && self.property_names.is_none()
    }
}

/// Property-name lookup. The keys come from the schema, so a fast non-keyed hash is fine: a
/// client can only look names up, never insert them.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    /// (first 8 bytes as an integer, length, name, slot): most property names differ in those,
    /// so a lookup is a few integer compares instead of `memcmp` calls.
    small: Vec<(u64, usize, Box<str>, u32)>,
    map: HashMap<Box<str>, u32, BuildHasherDefault<FxHasher>>,
}

const SMALL_TABLE: usize = 8;

impl NameTable {
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        if self.map.is_empty() {
            // A map of names no keyword mentions (`additionalProperties` alone): nothing to
            // hash.
            if self.small.is_empty() {
                return None;
            }
            let (p, len) = (prefix(name), name.len());
            self.small
                .iter()
                .find(|(kp, kl, k, _)| *kp == p && *kl == len && (len <= 8 || **k == *name))
                .map(|(.., s)| *s)
        } else {
            self.map.get(name).copied()
        }
    }

    /// Every (name, slot).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        self.small
            .iter()
            .map(|(_, _, k, s)| (&**k, *s))
            .chain(self.map.iter().map(|(k, s)| (&**k, *s)))
    }

    fn insert(&mut self, name: &str, slot: u32) {
        if self.map.is_empty() && self.small.len() < SMALL_TABLE {
            self.small
                .push((prefix(name), name.len(), name.into(), slot));
            return;
        }
        self.map
            .extend(self.small.drain(..).map(|(_, _, k, s)| (k, s)));
        self.map.insert(name.into(), slot);
    }
}

/// The first eight bytes of a string as an integer, zero-padded.
pub(crate) fn prefix(s: &str) -> u64 {
    let b = s.as_bytes();
    if let Some(head) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*head);
    }
    // Shorter than 8 bytes: two overlapping loads cover it (a variable-length copy would call
    // memcpy, a byte loop costs a branch per byte). The overlap holds the same bytes twice, so
    // OR-ing them in place is exact.
    let n = b.len();
    if let (Some(head), Some(tail)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        return u64::from(u32::from_le_bytes(*head))
            | (u64::from(u32::from_le_bytes(*tail)) << (8 * (n - 4)));
    }
    match b {
        [] => 0,
        [a] => u64::from(*a),
        [a, b] => u64::from(*a) | (u64::from(*b) << 8),
        [a, b, c, ..] => u64::from(*a) | (u64::from(*b) << 8) | (u64::from(*c) << 16),
    }
}

/// The multiply-rotate hash used by rustc (FxHash): a few cycles per word.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn name_table_grows_past_small() {
        let mut o = ObjectKw::default();
        let slots: Vec<u32> = (0..20).map(|i| o.slot(&format!("k{i}"))).collect();
        assert_eq!(slots, (0..20).collect::<Vec<u32>>());
        for i in 0..20u32 {
            assert_eq!(o.names.get(&format!("k{i}")), Some(i));
        }
        assert_eq!(o.slot("k3"), 3);
        assert_eq!(o.names.get("nope"), None);
    }

    #[test]
    fn prefixes_distinguish_short_names() {
        assert_eq!(prefix("ab"), u64::from(b'a') | (u64::from(b'b') << 8));
        assert_eq!(prefix("abcdefghXYZ"), prefix("abcdefgh"));
        assert_eq!(prefix(""), 0);
        // Every length below 8 gives the zero-padded little-endian integer of its bytes.
        let text = b"abcdefgh";
        for n in 0..8 {
            let want = text[..n]
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, c)| w | (u64::from(*c) << (8 * i)));
            let s = std::str::from_utf8(&text[..n]).unwrap();
            assert_eq!(prefix(s), want, "{n}");
        }
    }

    #[test]
    fn type_names() {
        assert_eq!(ty::from_name("integer"), Some(ty::INT));
        assert_eq!(ty::from_name("int"), None);
    }
}
