//! Fused parse and validation: one pass over a body's bytes checks the JSON syntax, the
//! hostile-input limits, duplicate keys and the compiled schema together, without building a
//! tape first.
//!
//! It takes schemas whose keywords each apply to one instance at a time (see [`plan()`]):
//! type, bounds, lengths, patterns, formats, `enum`/`const` of scalars, `properties`,
//! `additionalProperties`, `required`, `dependentRequired`, `items`/`prefixItems`, counts and
//! `uniqueItems` of scalars. Anything it cannot decide exactly as the tape walk would (a parse
//! or limit error, an escaped key, a number beyond 19 digits, a surrogate escape, a nesting
//! near the depth limit, a large map) makes it answer [`Outcome::Fallback`], and the tape walk
//! decides the whole body again. Both paths agree on every body: violations are recorded in the
//! walk's order with the same locations, which the tests check over the conformance suite and
//! over random bodies.
//!
//! A property's value, and an array's element under `items` (outside `uniqueItems`), is first
//! offered to its [`Quick`] check, when its schema has one (a bounded integer, a price with
//! `multipleOf: 0.01`, a string with a length or a pattern of ASCII classes, a boolean): the
//! value is accepted from its bytes with a few compares, with no number conversion, no keyword
//! list and no report to prepare. A value the quick check does not accept is read and checked
//! the usual way, which reports it.

use crate::error::{Reason, Rejection, Violation};
use crate::node::{JsonNode, Kind};
use crate::options::Limits;
use crate::tree::{Kw, KwKind, ObjectKw, Schema, SchemaObj, Sid, Tree, prefix, ty};
use crate::walk::{Seg, holds, pointer, type_ok};

/// What the fused pass decided.
pub(crate) enum Outcome {
    Done(Result<(), Rejection>),
    /// Not decided here: parse the body into a tape and walk it.
    Fallback,
}

/// The fused pass gave up; the tape walk decides.
struct Bail;

type R<T = ()> = Result<T, Bail>;

mod plan;
mod read;

use plan::{Node, Quick, RawKey, passes, split};
pub(crate) use plan::{Plan, plan};
use read::RawStr;

/// Objects with more members than this that no schema names fall back to the tape walk, whose
/// duplicate-key check uses a hash set.
const MAX_UNNAMED_KEYS: usize = 64;

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

/// What an object's members are checked with, worked out from its schema once: per object, or
/// once for all the objects of an array under `items`.
#[derive(Clone, Copy)]
struct ObjCtx<'t> {
    sid: Option<Sid>,
    o: Option<(&'t SchemaObj, &'t Node)>,
    /// `properties` and its kin.
    props: Option<&'t ObjectKw>,
    /// Whether `properties` names anything (a map under `additionalProperties` alone does not:
    /// its keys skip the name table).
    named: bool,
    /// The names compared as raw bytes, none when a string limit below their length would refuse
    /// some (a name is at most 15 bytes).
    raw_keys: &'t [RawKey],
    /// Whether something is reported at every object's start (`false`, `readOnly`, a `type`
    /// without `object`).
    opens_with_report: bool,
}

/// Whether a container of type `bit` (`ty::OBJ`, `ty::ARR`) has something reported at its
/// start under `o`: `readOnly`, or a `type` without it. The usual container has neither, and
/// skips [`Stream::head`]. (A container's `type` is one bit, tested here without `type_ok`.)
fn opens_with_report(o: &SchemaObj, bit: u8) -> bool {
    o.read_only.is_some() || o.ty.as_ref().is_some_and(|(m, _)| m & bit == 0)
}

/// Runs the fused pass over `body` (already within the body-size limit).
pub(crate) fn validate(tree: &Tree, plan: &Plan, body: &[u8], limits: &Limits) -> Outcome {
    let Ok(src) = simdutf8::basic::from_utf8(body) else {
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

impl<'t, 'a> Stream<'t, 'a> {
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
    #[inline(always)]
    fn open(&mut self, sid: Option<Sid>, kind: Kind<'_>) -> Option<(&'t SchemaObj, &'t Node)> {
        match self.schema(sid) {
            Some(Schema::Obj(o)) => {
                let bit = match kind {
                    Kind::Array(_) => ty::ARR,
                    _ => ty::OBJ,
                };
                if opens_with_report(o, bit) {
                    self.head(o, kind);
                }
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
        // The elements after the positional ones, when their schema has a quick check (not
        // under `uniqueItems`, which collects every element).
        let quick = match o {
            Some((_, node)) if !unique => node.items_quick.as_ref().zip(rest),
            _ => None,
        };
        // The elements after the positional ones that are objects share one context (not
        // under `uniqueItems`, which refuses containers to the tape walk).
        let objects = rest
            .filter(|_| !unique)
            .map(|(skip, s)| (skip, self.object_ctx(Some(s))));
        let max_array = self.max_array;
        let base = self.uniq.len();
        let mut n = 0usize;
        if self.peek_ws() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                if n >= max_array {
                    return Err(Bail);
                }
                let child = prefix
                    .get(n)
                    .copied()
                    .or_else(|| rest.filter(|(skip, _)| n >= *skip).map(|(_, s)| s));
                // The plan puts the positional elements before `skip`.
                let quick = quick.filter(|(_, (skip, _))| n >= *skip);
                let accepted = match quick {
                    Some((q, _)) => {
                        self.ws();
                        self.quick(q)
                    }
                    None => false,
                };
                if !accepted {
                    match objects.as_ref().filter(|(skip, _)| n >= *skip) {
                        Some((_, ctx)) if self.peek_ws() == Some(b'{') => {
                            self.path.push(Seg::Index(n));
                            self.object_with(ctx)?;
                            self.path.pop();
                        }
                        _ => {
                            let kind = self.value(child, Some(Seg::Index(n)))?;
                            if unique {
                                self.uniq.push(kind.ok_or(Bail)?);
                            }
                        }
                    }
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

    /// The [`ObjCtx`] of objects checked against schema `sid`.
    fn object_ctx(&self, sid: Option<Sid>) -> ObjCtx<'t> {
        let (o, opens_with_report) = match self.schema(sid) {
            Some(Schema::Obj(o)) => {
                let plan = self.plan;
                let node = sid.and_then(|s| plan.nodes.get(s)?.as_ref());
                (node.map(|n| (o, n)), opens_with_report(o, ty::OBJ))
            }
            Some(Schema::Bool(false)) => (None, true),
            _ => (None, false),
        };
        let props: Option<&'t ObjectKw> =
            o.and_then(|(o, plan)| match &o.obj.get(plan.object?)?.kind {
                KwKind::Object(p) => Some(&**p),
                _ => None,
            });
        let raw_keys = match o {
            Some((_, plan)) if self.max_string >= 15 => plan.keys.as_slice(),
            _ => &[],
        };
        ObjCtx {
            sid,
            o,
            props,
            named: o.is_some_and(|(_, plan)| plan.named),
            raw_keys,
            opens_with_report,
        }
    }

    #[inline(never)]
    fn object(&mut self, sid: Option<Sid>) -> R {
        let ctx = self.object_ctx(sid);
        self.object_with(&ctx)
    }

    /// Reads an object from its `{` against the schema `ctx` was worked out from.
    #[inline(never)]
    fn object_with(&mut self, ctx: &ObjCtx<'t>) -> R {
        self.enter()?;
        let ObjCtx {
            o,
            props,
            named,
            raw_keys,
            ..
        } = *ctx;
        if ctx.opens_with_report {
            // Records what `open` records; its answer is the context's.
            self.open(ctx.sid, Kind::Object(0));
        }
        let at = self.errors.len();
        let max_members = self.max_members;
        let base = self.keys.len();
        let mut seen = 0u64;
        let mut n = 0usize;
        if self.peek_ws() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if n >= max_members {
                    return Err(Bail);
                }
                if self.peek_ws() != Some(b'"') {
                    return Err(Bail);
                }
                // A name of the plan: its value goes to the name's quick check first, and the
                // key's text is taken only for the usual path.
                let usual = match self.known_key(raw_keys) {
                    Some((start, k)) => {
                        self.colon()?;
                        if seen & k.bit != 0 {
                            return Err(Bail);
                        }
                        seen |= k.bit;
                        self.ws();
                        if k.quick.as_ref().is_some_and(|q| self.quick(q)) {
                            None
                        } else {
                            let key = self.src.get(start..start + usize::from(k.len));
                            Some((key.ok_or(Bail)?, Some(k.slot)))
                        }
                    }
                    None => {
                        let raw = self.string()?;
                        if raw.escaped {
                            return Err(Bail);
                        }
                        let key = self.src.get(raw.start..raw.end).ok_or(Bail)?;
                        let slot = props.filter(|_| named).and_then(|p| p.names.get(key));
                        self.colon()?;
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
                        Some((key, slot))
                    }
                };
                if let Some((key, slot)) = usual {
                    let mut quick = None;
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
                                quick = o.and_then(|(_, plan)| plan.extra.as_ref());
                            }
                        }
                    }
                    self.ws();
                    if !quick.is_some_and(|q| self.quick(q)) {
                        self.value(child, Some(Seg::Key(key)))?;
                    }
                }
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

    /// A key at the cursor that is one of `keys` (the object's property names), compared as raw
    /// bytes (the name, then the closing quote): no scan for the quote, no lookup. Moves past
    /// the key; returns where its text starts, and its entry.
    #[inline]
    fn known_key(&mut self, keys: &'t [RawKey]) -> Option<(usize, &'t RawKey)> {
        if keys.is_empty() {
            return None;
        }
        let start = self.pos + 1;
        let raw = self.b.get(start..)?.first_chunk::<16>()?;
        let (w0, w1) = (
            u64::from_le_bytes(*raw.first_chunk::<8>()?),
            u64::from_le_bytes(*raw.last_chunk::<8>()?),
        );
        let k = keys
            .iter()
            .find(|k| w0 & k.mask[0] == k.want[0] && w1 & k.mask[1] == k.want[1])?;
        self.pos = start + usize::from(k.len) + 1;
        Some((start, k))
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
mod tests;
