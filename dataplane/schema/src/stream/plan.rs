//! The fused pass's plan: what it needs of each schema object it can reach, worked out once
//! when the validator is built, or `None` when a reachable schema uses a keyword it does not
//! implement. That includes, for each property, the [`Quick`] check that accepts its usual
//! values straight from the body's bytes.

use super::Flat;
use crate::node::Kind;
use crate::number::{self, Divisor, Num};
use crate::pattern_shape::Shape;
use crate::tree::{Kw, KwKind, Schema, SchemaObj, Sid, Tree, ty};
use crate::walk::{char_count, holds, type_ok};

/// What the fused pass needs of one schema object, worked out once when the validator is
/// built.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Positional element schemas, then (from this index on, this schema) for the rest.
    pub(super) prefix: Vec<Sid>,
    pub(super) rest: Option<(usize, Sid)>,
    pub(super) unique: bool,
    /// Leaf keywords of `arr` before the element keywords are `arr[..arr_before]`, those after
    /// `arr[arr_after..]`; the same for `obj` around the `Object` keyword.
    pub(super) arr_before: usize,
    pub(super) arr_after: usize,
    pub(super) obj_before: usize,
    pub(super) obj_after: usize,
    /// Index of the `Object` keyword in `obj`.
    pub(super) object: Option<usize>,
    /// The property names that can be compared as raw bytes (see [`RawKey`]).
    pub(super) keys: Vec<RawKey>,
    /// Whether `properties` names anything (every name, not only those in `keys`).
    pub(super) named: bool,
    /// The slots `required` names, as bits (every slot is below 64, see [`object_plan`]).
    pub(super) required: u64,
    /// The scalar keywords unpacked, when they are all common ones (see [`Leaf`]).
    pub(super) leaf: Option<Leaf>,
    /// The quick check of `additionalProperties`' schema.
    pub(super) extra: Option<Quick>,
    /// The quick check of the schema of the elements after the positional ones (`items`).
    pub(super) items_quick: Option<Quick>,
}

/// The keywords a scalar meets, unpacked from a schema whose scalar keywords are only `type`,
/// bounds, `multipleOf`, lengths and `pattern` (no `enum`, `const`, `format` or `readOnly`): a
/// few compares instead of a walk over the keyword lists. [`Leaf::holds`] is true exactly when
/// every keyword holds, with the walk's own checks; a scalar it refuses is reported by the walk's
/// code.
#[derive(Debug)]
pub(super) struct Leaf {
    /// `type`, or every type.
    types: u8,
    min: Option<(Num, bool)>,
    max: Option<(Num, bool)>,
    multiple: Option<Divisor>,
    min_len: usize,
    max_len: usize,
    /// Where `pattern` is in the schema's string keywords.
    pattern: Option<usize>,
}

impl Leaf {
    fn new(o: &SchemaObj) -> Option<Leaf> {
        if !o.any.is_empty() || o.read_only.is_some() {
            return None;
        }
        let mut leaf = Leaf {
            types: o.ty.as_ref().map_or(u8::MAX, |(mask, _)| *mask),
            min: None,
            max: None,
            multiple: None,
            min_len: 0,
            max_len: usize::MAX,
            pattern: None,
        };
        // One of each: a second bound (draft 4's `exclusiveMinimum` beside `minimum` in newer
        // drafts) leaves the schema to the keyword lists.
        let once = |v: bool| v.then_some(());
        for kw in &o.num {
            match &kw.kind {
                KwKind::Minimum { limit, exclusive } => {
                    once(leaf.min.is_none())?;
                    leaf.min = Some((*limit, *exclusive));
                }
                KwKind::Maximum { limit, exclusive } => {
                    once(leaf.max.is_none())?;
                    leaf.max = Some((*limit, *exclusive));
                }
                KwKind::MultipleOf(d) => {
                    once(leaf.multiple.is_none())?;
                    leaf.multiple = Some(*d);
                }
                _ => return None,
            }
        }
        let (mut min_len, mut max_len) = (None, None);
        for (i, kw) in o.str.iter().enumerate() {
            match &kw.kind {
                KwKind::MinLength(m) if min_len.is_none() => min_len = Some(*m),
                KwKind::MaxLength(m) if max_len.is_none() => max_len = Some(*m),
                KwKind::Pattern(_) if leaf.pattern.is_none() => leaf.pattern = Some(i),
                _ => return None,
            }
        }
        leaf.min_len = min_len.unwrap_or(0);
        leaf.max_len = max_len.unwrap_or(usize::MAX);
        Some(leaf)
    }

    /// Whether scalar `kind` meets every keyword of `o` (the schema this was made from).
    #[inline]
    pub(super) fn holds(&self, o: &SchemaObj, kind: &Kind<'_>) -> bool {
        if !type_ok(self.types, *kind) {
            return false;
        }
        match kind {
            Kind::Num(n) => {
                self.min.is_none_or(|(limit, exclusive)| {
                    let c = number::cmp(*n, limit);
                    c.is_gt() || (c.is_eq() && !exclusive)
                }) && self.max.is_none_or(|(limit, exclusive)| {
                    let c = number::cmp(*n, limit);
                    c.is_lt() || (c.is_eq() && !exclusive)
                }) && self.multiple.is_none_or(|d| d.divides(*n))
            }
            Kind::Str(s) => {
                lengths_fit(s.as_bytes(), self.min_len, self.max_len)
                    && self
                        .pattern
                        .is_none_or(|i| match o.str.get(i).map(|k| &k.kind) {
                            Some(KwKind::Pattern(re)) => re.is_match(s),
                            _ => false,
                        })
            }
            _ => true,
        }
    }
}

/// Whether the UTF-8 text `s` has `min..=max` characters, counting them only when its bytes do
/// not decide (the walk's `minLength`/`maxLength` checks; `min` 0 and `max` `usize::MAX` for
/// none). Bytes, not `str`: the fused pass takes a string's text from the body, whose UTF-8 was
/// checked whole, and between quotes, so it needs no check of its own.
///
/// A character takes 1 to 4 bytes, so `len` bytes hold at least `ceil(len / 4)` characters and
/// at most `len`: the count is needed only for a string within 4x of `minLength`, or over
/// `maxLength` in bytes.
#[inline(always)]
pub(super) fn lengths_fit(s: &[u8], min: usize, max: usize) -> bool {
    let n = s.len();
    (min == 0 || n.div_ceil(4) >= min || (n >= min && char_count(s) >= min))
        && (n <= max || char_count(s) <= max)
}

/// A property value that a few compares on its bytes accept, before any parsing or keyword
/// check, worked out from a [`Leaf`]. A value it does not accept (another type, another form,
/// a violation) is read and checked the usual way, so it only has to be right when it accepts.
#[derive(Debug, Clone)]
pub(super) enum Quick {
    /// `true` or `false`.
    Bool,
    /// A string without escapes of `min..=max` characters, matching `shape` if there is one.
    Str {
        min: usize,
        max: usize,
        shape: Option<Shape>,
    },
    /// A string of exactly `len` bytes matching `shape`, whose classes hold no byte JSON escapes:
    /// its closing quote is at a known place, and its bytes need no scan.
    Fixed { len: usize, shape: Shape },
    /// A number written `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most `scale` fraction digits
    /// (none unless `frac`), whose value times 10^`scale` (an integer below 10^15) lies in
    /// `min..=max` and is a multiple of `step`.
    ///
    /// Why that decides exactly as the walk does, which compares the nearest doubles: two
    /// distinct decimals of at most 15 significant digits have distinct nearest doubles, and
    /// rounding keeps order, so each bound compares the same way; and `multipleOf`'s check
    /// (scale, round, divide back) gives back the instance's own decimal when it has at most
    /// 15 digits.
    Num {
        scale: u32,
        frac: bool,
        min: i64,
        max: i64,
        step: u64,
    },
}

/// Most fraction digits [`Quick::Num`] takes: the scale of a `multipleOf` like `0.01`, or for a
/// number without one, this many.
const QUICK_SCALE: u32 = 3;

/// Most fraction digits of a `multipleOf` that [`Quick::Num`] takes (`0.000001`).
const MAX_QUICK_STEP_SCALE: u32 = 6;

impl Quick {
    fn new(o: &SchemaObj) -> Option<Quick> {
        let leaf = Leaf::new(o)?;
        let numbers = leaf.types & (ty::INT | ty::NUM);
        // One kind of scalar per quick check: a schema allowing several is left to the keyword
        // checks for the ones it does not read.
        if numbers != 0 {
            let frac = leaf.types & ty::NUM != 0;
            let (scale, step) = match &leaf.multiple {
                Some(d) => d.scaled(MAX_QUICK_STEP_SCALE)?,
                None if frac => (QUICK_SCALE, 1),
                None => (0, 1),
            };
            let bound = |b: Option<(Num, bool)>, edge: i64, inward: i64| match b {
                None => Some(edge),
                Some((n, exclusive)) => {
                    let v = number::scaled(n, scale)?;
                    Some(if exclusive { v + inward } else { v })
                }
            };
            return Some(Quick::Num {
                scale,
                frac,
                min: bound(leaf.min, i64::MIN, 1)?,
                max: bound(leaf.max, i64::MAX, -1)?,
                step: step.max(1),
            });
        }
        if leaf.types & ty::STR != 0 {
            let shape = match leaf.pattern.map(|i| o.str.get(i).map(|k| &k.kind)) {
                None => None,
                Some(Some(KwKind::Pattern(re))) => Some(re.shape()?.clone()),
                Some(_) => return None,
            };
            if let Some(s) = &shape
                && let Some(len) = s.fixed_plain_len()
                && (leaf.min_len..=leaf.max_len).contains(&len)
            {
                return Some(Quick::Fixed {
                    len,
                    shape: s.clone(),
                });
            }
            return Some(Quick::Str {
                min: leaf.min_len,
                max: leaf.max_len,
                shape,
            });
        }
        (leaf.types & ty::BOOL != 0).then_some(Quick::Bool)
    }

    /// The quick check of schema `sid`, if it has one.
    fn of(tree: &Tree, sid: Sid) -> Option<Quick> {
        match tree.schemas.get(sid) {
            Some(Schema::Obj(o)) => Quick::new(o),
            _ => None,
        }
    }
}

/// A property name of at most 15 bytes with no byte JSON would escape: the name followed by the
/// closing quote, as two little-endian words and the masks that keep only those bytes.
#[derive(Debug)]
pub(super) struct RawKey {
    pub(super) want: [u64; 2],
    pub(super) mask: [u64; 2],
    pub(super) len: u8,
    pub(super) slot: u32,
    /// `slot` as a bit of the object's set of names seen.
    pub(super) bit: u64,
    /// What the property's value may be accepted by without the keyword checks.
    pub(super) quick: Option<Quick>,
}

impl RawKey {
    fn new(name: &str, slot: u32, quick: Option<Quick>) -> Option<RawKey> {
        let b = name.as_bytes();
        if b.len() > 15 || b.iter().any(|c| *c < 0x20 || *c == b'"' || *c == b'\\') {
            return None;
        }
        let mut want = [0u8; 16];
        let mut mask = [0u8; 16];
        for (i, c) in b.iter().chain(std::iter::once(&b'"')).enumerate() {
            *want.get_mut(i)? = *c;
            *mask.get_mut(i)? = 0xFF;
        }
        let word = |a: &[u8; 16], half: usize| {
            a.get(half * 8..half * 8 + 8)
                .and_then(|h| h.first_chunk::<8>())
                .map_or(0, |h| u64::from_le_bytes(*h))
        };
        Some(RawKey {
            want: [word(&want, 0), word(&want, 1)],
            mask: [word(&mask, 0), word(&mask, 1)],
            len: u8::try_from(b.len()).ok()?,
            slot,
            bit: 1u64.checked_shl(slot)?,
            quick,
        })
    }
}

/// The fused pass's view of a tree: a [`Node`] per schema object it can reach.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(super) nodes: Vec<Option<Node>>,
}

/// The plan for `tree`, or `None` when some schema the fused pass can reach from the root uses a
/// keyword it does not implement (the rest of the tree is never visited by it).
pub(crate) fn plan(tree: &Tree) -> Option<Plan> {
    if tree.dynamic {
        return None;
    }
    let mut nodes: Vec<Option<Node>> = Vec::new();
    nodes.resize_with(tree.schemas.len(), || None);
    let mut seen = vec![false; tree.schemas.len()];
    let mut stack = vec![tree.root];
    while let Some(s) = stack.pop() {
        match seen.get_mut(s) {
            Some(v) if !*v => *v = true,
            Some(_) => continue,
            None => return None,
        }
        let Some(Schema::Obj(o)) = tree.schemas.get(s) else {
            continue;
        };
        let node = object_plan(tree, o, &mut stack)?;
        if let Some(slot) = nodes.get_mut(s) {
            *slot = Some(node);
        }
    }
    Some(Plan { nodes })
}

fn scalar_value(v: &serde_json::Value) -> bool {
    !matches!(
        v,
        serde_json::Value::Array(_) | serde_json::Value::Object(_)
    )
}

fn object_plan(tree: &Tree, o: &SchemaObj, next: &mut Vec<Sid>) -> Option<Node> {
    if o.unevaluated.is_some() {
        return None;
    }
    let any_ok = o.any.iter().all(|k| match &k.kind {
        KwKind::Enum(vals) => vals.iter().all(scalar_value),
        KwKind::Const(v) => scalar_value(v),
        _ => false,
    });
    if !any_ok || !o.num.iter().chain(&o.str).all(|k| k.kind.is_leaf()) {
        return None;
    }
    let mut node = Node {
        leaf: Leaf::new(o),
        ..Node::default()
    };
    // Array keywords: leaves, then the element schemas (prefix before the rest, disjoint), then
    // leaves; a leaf between two element keywords would need its report between theirs.
    let mut prefixed = false;
    for k in &o.arr {
        match &k.kind {
            KwKind::PrefixItems(v) if !prefixed && node.rest.is_none() => {
                prefixed = true;
                node.prefix.clone_from(v);
                next.extend(v);
            }
            KwKind::Items { skip, schema } if node.rest.is_none() => {
                node.rest = Some((*skip, *schema));
                node.items_quick = Quick::of(tree, *schema);
                next.push(*schema);
            }
            KwKind::UniqueItems => node.unique = true,
            KwKind::MinItems(_) | KwKind::MaxItems(_) => {}
            _ => return None,
        }
    }
    if node.rest.is_some_and(|(skip, _)| node.prefix.len() > skip) {
        return None;
    }
    (node.arr_before, node.arr_after) = children_span(&o.arr)?;
    for (i, k) in o.obj.iter().enumerate() {
        match &k.kind {
            KwKind::MinProperties(_) | KwKind::MaxProperties(_) => {}
            KwKind::Object(ok)
                if node.object.is_none()
                    && ok.patterns.is_empty()
                    && ok.property_names.is_none()
                    && ok.dep_schemas.is_empty()
                    && ok.props.len() <= 64 =>
            {
                node.object = Some(i);
                for r in &ok.required {
                    node.required |= 1u64.checked_shl(*r)?;
                }
                node.keys = ok
                    .names
                    .entries()
                    .filter_map(|(name, slot)| {
                        let quick = match ok.props.get(slot as usize) {
                            Some(Some(c)) => Quick::of(tree, *c),
                            _ => None,
                        };
                        RawKey::new(name, slot, quick)
                    })
                    .collect();
                // A member's name is compared with the names in turn: those every instance has
                // (`required`, in its order, usually the order members are written in) first.
                node.keys.sort_by_key(|k| {
                    ok.required
                        .iter()
                        .position(|r| *r == k.slot)
                        .unwrap_or(usize::MAX)
                });
                node.named = ok.names.entries().next().is_some();
                node.extra = ok
                    .additional
                    .as_ref()
                    .and_then(|(a, _)| Quick::of(tree, *a));
                next.extend(ok.props.iter().flatten());
                if let Some((a, _)) = &ok.additional {
                    next.push(*a);
                }
            }
            _ => return None,
        }
    }
    (node.obj_before, node.obj_after) = children_span(&o.obj)?;
    Some(node)
}

/// The leaf keywords before the child keywords are `list[..b]`, those after `list[a..]`; with
/// no child keyword every keyword counts as before. `None` when a leaf keyword lies between two
/// child keywords.
fn children_span(list: &[Kw]) -> Option<(usize, usize)> {
    let is_child = |k: &Kw| {
        matches!(
            k.kind,
            KwKind::PrefixItems(_) | KwKind::Items { .. } | KwKind::Object(_)
        )
    };
    match (
        list.iter().position(is_child),
        list.iter().rposition(is_child),
    ) {
        (Some(f), Some(l)) => list
            .get(f..=l)
            .is_some_and(|s| s.iter().all(is_child))
            .then_some((f, l + 1)),
        _ => Some((list.len(), list.len())),
    }
}

/// Whether a scalar meets every keyword of a schema whose keywords are all leaves.
#[inline]
pub(super) fn passes(o: &SchemaObj, kind: Kind<'_>) -> bool {
    if let Some((mask, _)) = &o.ty
        && !type_ok(*mask, kind)
    {
        return false;
    }
    let node = Flat::Leaf(kind);
    for kw in o.for_kind(kind) {
        if !holds(kw, node, kind) {
            return false;
        }
    }
    for kw in &o.any {
        if !holds(kw, node, kind) {
            return false;
        }
    }
    true
}

/// `(list[..before], list[after..])`.
pub(super) fn split(list: &[Kw], before: usize, after: usize) -> (&[Kw], &[Kw]) {
    (
        list.get(..before).unwrap_or(&[]),
        list.get(after..).unwrap_or(&[]),
    )
}
