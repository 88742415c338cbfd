//! Fused parse and validation: one pass over a body's bytes checks the JSON syntax, the
//! hostile-input limits, duplicate keys and the compiled schema together, without building a
//! tape first.
//!
//! It takes schemas whose keywords each apply to one instance at a time (see [`plan`]):
//! type, bounds, lengths, patterns, formats, `enum`/`const` of scalars, `properties`,
//! `additionalProperties`, `required`, `dependentRequired`, `items`/`prefixItems`, counts and
//! `uniqueItems` of scalars. Anything it cannot decide exactly as the tape walk would (a parse
//! or limit error, an escaped key, a number beyond 19 digits, a surrogate escape, a nesting
//! near the depth limit, a large map) makes it answer [`Outcome::Fallback`], and the tape walk
//! decides the whole body again. Both paths agree on every body: violations are recorded in the
//! walk's order with the same locations, which the tests check over the conformance suite and
//! over random bodies.

use crate::error::{Reason, Rejection, Violation};
use crate::node::{JsonNode, Kind};
use crate::number::{self, Divisor, Num};
use crate::options::Limits;
use crate::tree::{Kw, KwKind, ObjectKw, Schema, SchemaObj, Sid, Tree, prefix};
use crate::walk::{Seg, char_len, holds, pointer, type_ok};

/// What the fused pass decided.
pub(crate) enum Outcome {
    Done(Result<(), Rejection>),
    /// Not decided here: parse the body into a tape and walk it.
    Fallback,
}

/// The fused pass gave up; the tape walk decides.
struct Bail;

type R<T = ()> = Result<T, Bail>;

/// Objects with more members than this that no schema names fall back to the tape walk, whose
/// duplicate-key check uses a hash set.
const MAX_UNNAMED_KEYS: usize = 64;

/// What the fused pass needs of one schema object, worked out once when the validator is
/// built.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Positional element schemas, then (from this index on, this schema) for the rest.
    prefix: Vec<Sid>,
    rest: Option<(usize, Sid)>,
    unique: bool,
    /// Leaf keywords of `arr` before the element keywords are `arr[..arr_before]`, those after
    /// `arr[arr_after..]`; the same for `obj` around the `Object` keyword.
    arr_before: usize,
    arr_after: usize,
    obj_before: usize,
    obj_after: usize,
    /// Index of the `Object` keyword in `obj`.
    object: Option<usize>,
    /// The property names that can be compared as raw bytes (see [`RawKey`]).
    keys: Vec<RawKey>,
    /// The slots `required` names, as bits (every slot is below 64, see [`object_plan`]).
    required: u64,
    /// The scalar keywords unpacked, when they are all common ones (see [`Leaf`]).
    leaf: Option<Leaf>,
}

/// The keywords a scalar meets, unpacked from a schema whose scalar keywords are only `type`,
/// bounds, `multipleOf`, lengths and `pattern` (no `enum`, `const`, `format` or `readOnly`): a
/// few compares instead of a walk over the keyword lists. [`Leaf::holds`] is true exactly when
/// every keyword holds, with the walk's own checks; a scalar it refuses is reported by the walk's
/// code.
#[derive(Debug)]
struct Leaf {
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
    fn holds(&self, o: &SchemaObj, kind: &Kind<'_>) -> bool {
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
                (self.min_len == 0 || (s.len() >= self.min_len && char_len(s) >= self.min_len))
                    && (s.len() <= self.max_len || char_len(s) <= self.max_len)
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

/// A property name of at most 15 bytes with no byte JSON would escape: the name followed by the
/// closing quote, as two little-endian words and the masks that keep only those bytes.
#[derive(Debug)]
struct RawKey {
    want: [u64; 2],
    mask: [u64; 2],
    len: u8,
    slot: u32,
}

impl RawKey {
    fn new(name: &str, slot: u32) -> Option<RawKey> {
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
        })
    }
}

/// The fused pass's view of a tree: a [`Node`] per schema object it can reach.
#[derive(Debug)]
pub(crate) struct Plan {
    nodes: Vec<Option<Node>>,
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
        let node = object_plan(o, &mut stack)?;
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

fn object_plan(o: &SchemaObj, next: &mut Vec<Sid>) -> Option<Node> {
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
                    .filter_map(|(name, slot)| RawKey::new(name, slot))
                    .collect();
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
fn passes(o: &SchemaObj, kind: Kind<'_>) -> bool {
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
fn split(list: &[Kw], before: usize, after: usize) -> (&[Kw], &[Kw]) {
    (
        list.get(..before).unwrap_or(&[]),
        list.get(after..).unwrap_or(&[]),
    )
}

/// A scalar, or an array of scalars collected for `uniqueItems`, as a node the walk's keyword
/// checks take.
#[derive(Debug, Clone, Copy)]
enum Flat<'x> {
    Leaf(Kind<'x>),
    Items(&'x [Kind<'x>]),
}

struct FlatItems<'x>(std::slice::Iter<'x, Kind<'x>>);

impl<'x> Iterator for FlatItems<'x> {
    type Item = Flat<'x>;
    fn next(&mut self) -> Option<Flat<'x>> {
        self.0.next().map(|k| Flat::Leaf(*k))
    }
}

impl<'x> JsonNode<'x> for Flat<'x> {
    type Items = FlatItems<'x>;
    type Members = std::iter::Empty<(&'x str, Self)>;
    fn kind(self) -> Kind<'x> {
        match self {
            Flat::Leaf(k) => k,
            Flat::Items(a) => Kind::Array(a.len()),
        }
    }
    fn items(self) -> FlatItems<'x> {
        match self {
            Flat::Items(a) => FlatItems(a.iter()),
            Flat::Leaf(_) => FlatItems([].iter()),
        }
    }
    fn members(self) -> Self::Members {
        std::iter::empty()
    }
}

/// Runs the fused pass over `body` (already within the body-size limit).
pub(crate) fn validate(tree: &Tree, plan: &Plan, body: &[u8], limits: &Limits) -> Outcome {
    let Ok(src) = std::str::from_utf8(body) else {
        return Outcome::Fallback;
    };
    let max_errors = limits.max_errors.max(1);
    let mut s = Stream {
        tree,
        plan,
        src,
        b: body,
        pos: 0,
        // The tape walk's limit counts differently (parser nesting and walk path); stopping
        // two levels short leaves every refusal to it.
        max_depth: limits.depth().saturating_sub(2),
        depth: 0,
        max_string: limits.max_string_bytes,
        max_array: limits.max_array_len,
        max_members: limits.max_object_members,
        path: Vec::new(),
        errors: Vec::new(),
        max_errors,
        keys: Vec::new(),
        uniq: Vec::new(),
        scratch: String::new(),
    };
    let run = s.value(Some(tree.root), None).and_then(|_| {
        s.ws();
        if s.pos == s.b.len() {
            Ok(())
        } else {
            Err(Bail)
        }
    });
    match run {
        Err(Bail) => Outcome::Fallback,
        Ok(()) => Outcome::Done(match s.errors.first() {
            None => Ok(()),
            Some(first) => Err(Rejection {
                reason: first.reason,
                truncated: s.errors.len() >= max_errors,
                violations: s.errors,
            }),
        }),
    }
}

struct Stream<'t, 'a> {
    tree: &'t Tree,
    plan: &'t Plan,
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
    depth: usize,
    max_string: usize,
    max_array: usize,
    max_members: usize,
    path: Vec<Seg<'a>>,
    errors: Vec<Violation>,
    max_errors: usize,
    /// Keys of the objects being read that no schema slot took, innermost last, with a
    /// fingerprint, for the duplicate check.
    keys: Vec<(u64, &'a str)>,
    /// Scalars of the arrays under `uniqueItems` being read, innermost last.
    uniq: Vec<Kind<'a>>,
    /// Unescaped text of the string being checked.
    scratch: String,
}

/// A string as read: its raw bytes between the quotes, and whether they hold escapes.
#[derive(Clone, Copy)]
struct RawStr {
    start: usize,
    end: usize,
    escaped: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit set in the lowest byte of `w` that is `"`, `\` or below 0x20 (and
/// possibly in bytes above it, which the caller never looks at).
#[inline]
fn special_bytes(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Powers of ten exact in an f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl<'t, 'a> Stream<'t, 'a> {
    #[inline]
    fn ws(&mut self) {
        // Compact JSON has none: one compare decides.
        if self.b.get(self.pos).is_some_and(|c| *c > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, moving past the whitespace.
    #[inline(always)]
    fn peek_ws(&mut self) -> Option<u8> {
        match self.b.get(self.pos) {
            // Compact JSON has none: one compare decides.
            Some(c) if *c > b' ' => Some(*c),
            _ => {
                self.ws();
                self.peek()
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn schema(&self, sid: Option<Sid>) -> Option<&'t Schema> {
        sid.and_then(|s| self.tree.schemas.get(s))
    }

    /// Reads one value against schema `sid` (`None`: nothing constrains it). Returns the
    /// value's kind when it is a scalar whose text lives in the body (for `uniqueItems`).
    /// `seg` is the value's step from its parent (none for the root): pushed onto the path
    /// for a container, and for a scalar only when it has something to report.
    #[inline(always)]
    fn value(&mut self, sid: Option<Sid>, seg: Option<Seg<'a>>) -> R<Option<Kind<'a>>> {
        let kind = match self.peek_ws() {
            Some(open @ (b'{' | b'[')) => {
                if let Some(seg) = seg {
                    self.path.push(seg);
                }
                if open == b'{' {
                    self.object(sid)?;
                } else {
                    self.array(sid)?;
                }
                if seg.is_some() {
                    self.path.pop();
                }
                return Ok(None);
            }
            Some(b'"') => {
                let raw = self.string()?;
                if raw.escaped {
                    self.escaped_scalar(sid, raw, seg)?;
                    return Ok(None);
                }
                Kind::Str(self.src.get(raw.start..raw.end).ok_or(Bail)?)
            }
            Some(b't') => {
                self.literal(b"true")?;
                Kind::Bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Kind::Bool(false)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Kind::Null
            }
            Some(b'-' | b'0'..=b'9') => Kind::Num(self.number()?),
            _ => return Err(Bail),
        };
        self.scalar(sid, kind, seg);
        Ok(Some(kind))
    }

    /// After an element or member: `true` past a comma (another follows), `false` past the
    /// container's `close`.
    #[inline]
    fn more(&mut self, close: u8) -> R<bool> {
        match self.peek_ws() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Bail),
        }
    }

    fn literal(&mut self, word: &[u8]) -> R {
        let end = self.pos + word.len();
        if self.b.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Reads a string from its opening quote; escapes are checked, not decoded.
    #[inline]
    fn string(&mut self) -> R<RawStr> {
        let start = self.pos + 1;
        let b = self.b;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(i..i + 8).and_then(|c| c.first_chunk::<8>()) {
                let m = special_bytes(u64::from_le_bytes(*chunk));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') => {
                            let cp = b
                                .get(i + 2..i + 6)
                                .ok_or(Bail)?
                                .iter()
                                .try_fold(0u32, |acc, d| hex(*d).map(|h| acc << 4 | h))
                                .ok_or(Bail)?;
                            // Surrogate pairs are left to the tape parser.
                            if (0xD800..0xE000).contains(&cp) {
                                return Err(Bail);
                            }
                            6
                        }
                        _ => return Err(Bail),
                    };
                }
                Some(c) if *c < 0x20 => return Err(Bail),
                Some(_) => i += 1,
                None => return Err(Bail),
            }
        }
        if i - start > self.max_string {
            return Err(Bail);
        }
        self.pos = i + 1;
        Ok(RawStr {
            start,
            end: i,
            escaped,
        })
    }

    /// Decodes an escaped string into `scratch` (its escapes were checked by [`Self::string`]).
    fn unescape(&mut self, raw: RawStr) -> R {
        self.scratch.clear();
        let text = self.src.get(raw.start..raw.end).ok_or(Bail)?;
        let mut rest = text;
        while let Some(at) = rest.find('\\') {
            self.scratch.push_str(rest.get(..at).ok_or(Bail)?);
            let esc = rest.as_bytes().get(at + 1).copied().ok_or(Bail)?;
            let (c, used) = match esc {
                b'"' => ('"', 2),
                b'\\' => ('\\', 2),
                b'/' => ('/', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'n' => ('\n', 2),
                b'r' => ('\r', 2),
                b't' => ('\t', 2),
                b'u' => {
                    let digits = rest.get(at + 2..at + 6).ok_or(Bail)?;
                    let cp = u32::from_str_radix(digits, 16).map_err(|_| Bail)?;
                    (char::from_u32(cp).ok_or(Bail)?, 6)
                }
                _ => return Err(Bail),
            };
            self.scratch.push(c);
            rest = rest.get(at + used..).ok_or(Bail)?;
        }
        self.scratch.push_str(rest);
        Ok(())
    }

    /// A string with escapes: decoded only when a schema looks at it.
    fn escaped_scalar(&mut self, sid: Option<Sid>, raw: RawStr, seg: Option<Seg<'a>>) -> R {
        match self.schema(sid) {
            None | Some(Schema::Bool(true)) => Ok(()),
            Some(_) => {
                self.unescape(raw)?;
                let text = std::mem::take(&mut self.scratch);
                self.scalar(sid, Kind::Str(&text), seg);
                self.scratch = text;
                Ok(())
            }
        }
    }

    /// Reads a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as the tape parser
    /// represents it (non-negative integers `U`, negative `I`, the rest the nearest double).
    #[inline]
    fn number(&mut self) -> R<Num> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let mut mantissa: u64 = 0;
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
                    mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
                    i += 1;
                }
            }
            _ => return Err(Bail),
        }
        // Significant digits so far (a lone leading zero is none; the count, not the mantissa,
        // decides, since a long run of digits can wrap the mantissa to anything).
        let mut digits = if b.get(int_start) == Some(&b'0') {
            0
        } else {
            i - int_start
        };
        if !matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            // An integer, the common case.
            self.pos = i;
            if digits > 19 {
                return Err(Bail);
            }
            return Ok(if neg {
                Num::I(0i64.checked_sub_unsigned(mantissa).ok_or(Bail)?)
            } else {
                Num::U(mantissa)
            });
        }
        let mut exp10: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let first = i;
            while let Some(d @ b'0'..=b'9') = b.get(i).copied() {
                if mantissa != 0 || d != b'0' {
                    digits += 1;
                }
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                exp10 -= 1;
                i += 1;
            }
            if i == first {
                return Err(Bail);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let eneg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let first = i;
            let mut e: i64 = 0;
            while let Some(d @ b'0'..=b'9') = b.get(i).copied() {
                e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
                i += 1;
            }
            if i == first {
                return Err(Bail);
            }
            exp10 += if eneg { -e } else { e };
        }
        self.pos = i;
        // 19 significant digits always fit a u64; longer numbers are left to the tape parser.
        if digits > 19 {
            return Err(Bail);
        }
        let f = if mantissa < (1 << 53) && (-22..=22).contains(&exp10) {
            // Exact mantissa and power of ten: one correctly rounded operation.
            let m = mantissa as f64;
            let p = POW10
                .get(exp10.unsigned_abs() as usize)
                .copied()
                .ok_or(Bail)?;
            if exp10 < 0 { m / p } else { m * p }
        } else {
            let text = self.src.get(start..i).ok_or(Bail)?;
            let f: f64 = text.parse().map_err(|_| Bail)?;
            // Overflow and underflow are left to the tape parser.
            if !f.is_finite() || (f == 0.0 && mantissa != 0) {
                return Err(Bail);
            }
            f.abs()
        };
        Ok(Num::F(if neg { -f } else { f }))
    }

    fn enter(&mut self) -> R {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Bail);
        }
        self.pos += 1;
        Ok(())
    }

    /// Records a violation at the current location unless the report is full.
    #[cold]
    fn record(&mut self, reason: Reason, keyword: &'static str, loc: &str) {
        if self.errors.len() < self.max_errors {
            self.push(reason, keyword, loc);
        }
    }

    fn push(&mut self, reason: Reason, keyword: &'static str, loc: &str) {
        self.errors.push(Violation {
            reason,
            instance_location: pointer(&self.path),
            keyword_location: loc.to_string(),
            keyword,
        });
    }

    #[cold]
    fn record_false(&mut self, sid: Option<Sid>) {
        let tree = self.tree;
        let loc = sid.and_then(|s| tree.locs.get(s)).map_or("", |l| l);
        self.record(Reason::SchemaViolation, "false", loc);
    }

    /// A scalar against its schema: `readOnly`, `type`, the keywords of its type, then those
    /// for every type, as the walk orders them.
    #[inline]
    fn scalar(&mut self, sid: Option<Sid>, kind: Kind<'_>, seg: Option<Seg<'a>>) {
        let Some(s) = sid else {
            return;
        };
        match self.tree.schemas.get(s) {
            None | Some(Schema::Bool(true)) => {}
            Some(Schema::Obj(o)) => {
                let leaf = self
                    .plan
                    .nodes
                    .get(s)
                    .and_then(|n| n.as_ref()?.leaf.as_ref());
                let ok = match leaf {
                    Some(leaf) => leaf.holds(o, &kind),
                    None => o.pure_leaf && passes(o, kind),
                };
                if !ok {
                    self.scalar_slow(sid, kind, seg);
                }
            }
            Some(Schema::Bool(false)) => self.scalar_slow(sid, kind, seg),
        }
    }

    #[inline(never)]
    fn scalar_slow(&mut self, sid: Option<Sid>, kind: Kind<'_>, seg: Option<Seg<'a>>) {
        if let Some(seg) = seg {
            self.path.push(seg);
        }
        match self.schema(sid) {
            Some(Schema::Obj(o)) => self.scalar_report(o, kind),
            Some(Schema::Bool(false)) => self.record_false(sid),
            _ => {}
        }
        if seg.is_some() {
            self.path.pop();
        }
    }

    fn scalar_report(&mut self, o: &'t SchemaObj, kind: Kind<'_>) {
        self.head(o, kind);
        let node = Flat::Leaf(kind);
        for kw in o.for_kind(kind).iter().chain(&o.any) {
            if !holds(kw, node, kind) {
                self.record(Reason::SchemaViolation, kw.name, &kw.loc);
            }
        }
    }

    /// `readOnly` and `type`, which come before every other keyword.
    fn head(&mut self, o: &'t SchemaObj, kind: Kind<'_>) {
        if let Some(loc) = &o.read_only {
            self.record(Reason::ReadOnlyProperty, "readOnly", loc);
        }
        if let Some((mask, loc)) = &o.ty
            && !type_ok(*mask, kind)
        {
            self.record(Reason::SchemaViolation, "type", loc);
        }
    }

    /// The schema object a container is checked against, after recording what is decided at
    /// its start (`false`, `readOnly`, `type`).
    fn open(&mut self, sid: Option<Sid>, kind: Kind<'_>) -> Option<(&'t SchemaObj, &'t Node)> {
        match self.schema(sid) {
            Some(Schema::Obj(o)) => {
                self.head(o, kind);
                let plan = self.plan;
                sid.and_then(|s| plan.nodes.get(s)?.as_ref())
                    .map(|n| (o, n))
            }
            Some(Schema::Bool(false)) => {
                self.record_false(sid);
                None
            }
            _ => None,
        }
    }

    /// After a container's children: the leaf keywords of its type listed before the child
    /// keywords (`before`) go where the children's reports began (`at`), those after (`after`)
    /// and those for every type at the end.
    fn close(
        &mut self,
        o: &'t SchemaObj,
        (before, after): (&'t [Kw], &'t [Kw]),
        kind: Kind<'_>,
        node: Flat<'_>,
        at: usize,
    ) {
        for kw in after.iter().chain(&o.any) {
            if !holds(kw, node, kind) {
                self.record(Reason::SchemaViolation, kw.name, &kw.loc);
            }
        }
        let end = self.errors.len();
        for kw in before {
            if !holds(kw, node, kind) {
                self.push(Reason::SchemaViolation, kw.name, &kw.loc);
            }
        }
        let added = self.errors.len() - end;
        if added > 0 {
            if let Some(moved) = self.errors.get_mut(at..) {
                moved.rotate_right(added);
            }
            self.errors.truncate(self.max_errors);
        }
    }

    #[inline(never)]
    fn array(&mut self, sid: Option<Sid>) -> R {
        self.enter()?;
        let o = self.open(sid, Kind::Array(0));
        let at = self.errors.len();
        let (prefix, rest, unique) = match o {
            Some((_, node)) => (node.prefix.as_slice(), node.rest, node.unique),
            None => (&[][..], None, false),
        };
        let base = self.uniq.len();
        let mut n = 0usize;
        if self.peek_ws() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                if n >= self.max_array {
                    return Err(Bail);
                }
                let child = prefix
                    .get(n)
                    .copied()
                    .or_else(|| rest.filter(|(skip, _)| n >= *skip).map(|(_, s)| s));
                let kind = self.value(child, Some(Seg::Index(n)))?;
                if unique {
                    self.uniq.push(kind.ok_or(Bail)?);
                }
                n += 1;
                if !self.more(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        if let Some((o, plan)) = o {
            let items = std::mem::take(&mut self.uniq);
            let node = Flat::Items(items.get(base..).unwrap_or(&[]));
            let lists = split(&o.arr, plan.arr_before, plan.arr_after);
            self.close(o, lists, Kind::Array(n), node, at);
            self.uniq = items;
            self.uniq.truncate(base);
        }
        Ok(())
    }

    #[inline(never)]
    fn object(&mut self, sid: Option<Sid>) -> R {
        self.enter()?;
        let o = self.open(sid, Kind::Object(0));
        let at = self.errors.len();
        let props: Option<&'t ObjectKw> =
            o.and_then(|(o, plan)| match &o.obj.get(plan.object?)?.kind {
                KwKind::Object(p) => Some(&**p),
                _ => None,
            });
        let base = self.keys.len();
        let mut seen = 0u64;
        let mut n = 0usize;
        if self.peek_ws() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if n >= self.max_members {
                    return Err(Bail);
                }
                if self.peek_ws() != Some(b'"') {
                    return Err(Bail);
                }
                let (key, slot) = match o.and_then(|(_, plan)| self.known_key(plan)) {
                    Some(found) => found,
                    None => {
                        let raw = self.string()?;
                        if raw.escaped {
                            return Err(Bail);
                        }
                        let key = self.src.get(raw.start..raw.end).ok_or(Bail)?;
                        (key, props.and_then(|p| p.names.get(key)))
                    }
                };
                if self.peek_ws() != Some(b':') {
                    return Err(Bail);
                }
                self.pos += 1;
                match slot {
                    Some(s) => {
                        let bit = 1u64.checked_shl(s).ok_or(Bail)?;
                        if seen & bit != 0 {
                            return Err(Bail);
                        }
                        seen |= bit;
                    }
                    None => self.unnamed_key(base, key)?,
                }
                let mut child = None;
                if let Some(p) = props {
                    if let Some(Some(c)) = slot.and_then(|s| p.props.get(s as usize)) {
                        child = Some(*c);
                    } else if let Some((a, loc)) = &p.additional {
                        if let Some(Schema::Bool(false)) = self.tree.schemas.get(*a) {
                            self.path.push(Seg::Key(key));
                            self.record(Reason::SchemaViolation, "additionalProperties", loc);
                            self.path.pop();
                        } else {
                            child = Some(*a);
                        }
                    }
                }
                self.value(child, Some(Seg::Key(key)))?;
                n += 1;
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        self.keys.truncate(base);
        self.depth -= 1;
        if let Some((o, plan)) = o {
            if let Some(p) = props {
                let has = |s: &u32| seen & 1u64.checked_shl(*s).unwrap_or(0) != 0;
                if seen & plan.required != plan.required {
                    self.record(Reason::SchemaViolation, "required", &p.required_loc);
                }
                for (s, deps) in &p.dep_required {
                    if has(s) && !deps.iter().all(has) {
                        self.record(
                            Reason::SchemaViolation,
                            p.dep_required_kw.0,
                            &p.dep_required_kw.1,
                        );
                    }
                }
            }
            // Most objects have no keyword but `properties` and its kin (the one `Object`
            // keyword, which the loop above applied): nothing left to check.
            if o.obj.len() > usize::from(plan.object.is_some()) || !o.any.is_empty() {
                let lists = split(&o.obj, plan.obj_before, plan.obj_after);
                self.close(o, lists, Kind::Object(n), Flat::Leaf(Kind::Object(n)), at);
            }
        }
        Ok(())
    }

    /// A key at the cursor that is one of the object's property names, compared as raw bytes
    /// (the name, then the closing quote) against the plan's table: no scan for the quote, no
    /// lookup. Moves past the key.
    #[inline]
    fn known_key(&mut self, plan: &Node) -> Option<(&'a str, Option<u32>)> {
        let start = self.pos + 1;
        let raw = self.b.get(start..start + 16)?;
        let w0 = u64::from_le_bytes(*raw.first_chunk::<8>()?);
        let w1 = u64::from_le_bytes(*raw.last_chunk::<8>()?);
        let k = plan
            .keys
            .iter()
            .find(|k| w0 & k.mask[0] == k.want[0] && w1 & k.mask[1] == k.want[1])?;
        let len = usize::from(k.len);
        if len > self.max_string {
            return None;
        }
        let key = self.src.get(start..start + len)?;
        self.pos = start + len + 1;
        Some((key, Some(k.slot)))
    }

    /// Refuses (to the tape walk) a key no schema slot took that this object already had.
    fn unnamed_key(&mut self, base: usize, key: &'a str) -> R {
        let f = prefix(key) ^ ((key.len() as u64) << 56);
        let mine = self.keys.get(base..).unwrap_or(&[]);
        if mine.len() >= MAX_UNNAMED_KEYS || mine.iter().any(|(g, k)| *g == f && *k == key) {
            return Err(Bail);
        }
        self.keys.push((f, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        "id", "n", "note", "flag", "ro", "never", "status", "tags", "pair", "items", "any", "x",
        "sku", "qty", "price", "opts", "a/b~c", "é",
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
            let v =
                Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
            assert!(v.fused.is_none(), "{s}");
            assert!(v.validate_fused(b"{}", &Limits::default()).is_none());
        }
        let plain = json!({"properties": {"a": {"$ref": "#/$defs/x"}},
                           "$defs": {"x": {"type": "integer"}}});
        let v =
            Validator::compile(&plain, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
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
}
