//! The validator walk: applies a compiled [`Tree`] to any [`JsonNode`]. It recurses only where
//! the schema descends into the instance, so its depth is bounded by the instance depth (which
//! the parser limits) and by the in-place applicator chains (which are acyclic, see compile).

use crate::error::{MAX_LOCATION_BYTES, Reason, Rejection, Violation, cap_location};
use crate::evaluated::Evaluated;
use crate::node::{JsonNode, Kind};
use crate::number::{self, Num};
use crate::tree::{Kw, KwKind, Schema, SchemaObj, Sid, Tree, ty};
use crate::unique;

/// One step of the instance location.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) struct Walker<'t, 'a> {
    pub(crate) tree: &'t Tree,
    pub(crate) path: Vec<Seg<'a>>,
    pub(crate) errors: Vec<Violation>,
    pub(crate) max_errors: usize,
    pub(crate) max_depth: usize,
    pub(crate) truncated: bool,
    pub(crate) too_deep: bool,
    /// Resources entered so far, outermost first (kept only for trees with `$dynamicRef`).
    scope: Vec<u32>,
}

impl<'t, 'a> Walker<'t, 'a> {
    pub(crate) fn new(tree: &'t Tree, max_errors: usize, max_depth: usize) -> Self {
        Self {
            tree,
            path: Vec::new(),
            errors: Vec::new(),
            max_errors: max_errors.max(1),
            max_depth,
            truncated: false,
            too_deep: false,
            scope: Vec::new(),
        }
    }

    /// Validates the root and turns the collected violations into a result.
    pub(crate) fn run<J: JsonNode<'a>>(mut self, inst: J) -> Result<(), Rejection> {
        let ok = self.validate(self.tree.root, inst, true, None);
        if self.too_deep {
            return Err(Rejection::single(
                Reason::TooDeep,
                self.pointer(),
                "nesting",
            ));
        }
        match self.errors.first() {
            None if ok => Ok(()),
            None => Err(Rejection::single(
                Reason::SchemaViolation,
                String::new(),
                "schema",
            )),
            Some(first) => Err(Rejection {
                reason: first.reason,
                truncated: self.truncated,
                violations: self.errors,
            }),
        }
    }

    fn pointer(&self) -> String {
        pointer(&self.path)
    }

    #[cold]
    pub(crate) fn record(
        &mut self,
        collect: bool,
        reason: Reason,
        keyword: &'static str,
        loc: &str,
    ) {
        if !collect {
            return;
        }
        if self.errors.len() >= self.max_errors {
            self.truncated = true;
            return;
        }
        let instance_location = self.pointer();
        self.errors.push(Violation {
            reason,
            instance_location,
            keyword_location: loc.to_string(),
            keyword,
        });
        // Validation stops here, so there may be more: say the list is cut.
        if self.errors.len() >= self.max_errors {
            self.truncated = true;
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.errors.len() >= self.max_errors
    }

    /// Validates a child of the current instance (array element or object member). A child
    /// that passes a pure-leaf schema (a scalar under `type`, bounds, `pattern`...: most of a
    /// body) is decided without the walk's bookkeeping; only a failure takes the full path,
    /// which then records what failed and where.
    pub(crate) fn descend<J: JsonNode<'a>>(
        &mut self,
        seg: Seg<'a>,
        sid: Sid,
        inst: J,
        collect: bool,
    ) -> bool {
        if self.path.len() >= self.max_depth {
            self.too_deep = true;
            return false;
        }
        if self.passes_leaf(sid, inst) {
            return true;
        }
        self.path.push(seg);
        let ok = self.validate(sid, inst, collect, None);
        self.path.pop();
        ok
    }

    #[inline]
    fn passes_leaf<J: JsonNode<'a>>(&self, sid: Sid, inst: J) -> bool {
        match self.tree.schemas.get(sid) {
            Some(Schema::Bool(b)) => *b,
            Some(Schema::Obj(o)) if o.pure_leaf => {
                let kind = inst.kind();
                o.ty.as_ref().is_none_or(|(mask, _)| type_ok(*mask, kind))
                    && o.for_kind(kind)
                        .iter()
                        .chain(&o.any)
                        .all(|kw| holds(kw, inst, kind))
            }
            _ => false,
        }
    }

    /// Validates `inst` against schema `sid`; `ev` collects what it evaluates in place.
    pub(crate) fn validate<J: JsonNode<'a>>(
        &mut self,
        sid: Sid,
        inst: J,
        collect: bool,
        ev: Option<&mut Evaluated>,
    ) -> bool {
        let tree = self.tree;
        // Entering another resource extends the dynamic scope of `$dynamicRef`.
        let enter = tree.dynamic && {
            let res = tree.res_of.get(sid).copied().unwrap_or(0);
            let new = self.scope.last() != Some(&res);
            if new {
                self.scope.push(res);
            }
            new
        };
        let ok = match tree.schemas.get(sid) {
            Some(Schema::Bool(true)) => true,
            Some(Schema::Obj(o)) => self.validate_obj(o, inst, collect, ev),
            _ => {
                let loc = tree.locs.get(sid).map_or("", |l| l);
                self.record(collect, Reason::SchemaViolation, "false", loc);
                false
            }
        };
        if enter {
            self.scope.pop();
        }
        ok
    }

    /// The schema a `$dynamicRef` lands on: the outermost resource in scope that declares the
    /// anchor, else the static target.
    fn dynamic_target(&self, target: Sid, anchor: Option<&str>) -> Sid {
        let Some(name) = anchor else { return target };
        let tree = self.tree;
        self.scope
            .iter()
            .filter_map(|r| tree.dyn_anchors.get(*r as usize))
            .find_map(|list| list.iter().find(|(n, _)| **n == *name))
            .map_or(target, |(_, s)| *s)
    }

    fn validate_obj<J: JsonNode<'a>>(
        &mut self,
        o: &'t SchemaObj,
        inst: J,
        collect: bool,
        ev: Option<&mut Evaluated>,
    ) -> bool {
        let mut valid = true;
        if let Some(loc) = &o.read_only {
            self.record(collect, Reason::ReadOnlyProperty, "readOnly", loc);
            if !collect {
                return false;
            }
            valid = false;
        }
        let kind = inst.kind();
        if let Some((mask, loc)) = &o.ty
            && !type_ok(*mask, kind)
        {
            self.record(collect, Reason::SchemaViolation, "type", loc);
            if !collect {
                return false;
            }
            valid = false;
        }
        let specific = o.for_kind(kind);
        let unevaluated = match kind {
            Kind::Array(_) => o.unevaluated.as_ref().and_then(|u| u.items.as_ref()),
            Kind::Object(_) => o.unevaluated.as_ref().and_then(|u| u.props.as_ref()),
            _ => None,
        };
        let Some(unevaluated) = unevaluated else {
            if o.leaf_any && !matches!(kind, Kind::Array(_) | Kind::Object(_)) {
                return self.keywords::<J, true>(o, specific, inst, kind, collect, None) && valid;
            }
            return self.keywords::<J, false>(o, specific, inst, kind, collect, ev) && valid;
        };
        // This schema needs the annotations of its own keywords, whatever its caller wants.
        let mut seen = Evaluated::default();
        valid &= self.keywords::<J, false>(o, specific, inst, kind, collect, Some(&mut seen));
        if !valid && (!collect || self.too_deep || self.full()) {
            return false;
        }
        valid &= self.unevaluated(unevaluated, inst, kind, &mut seen, collect);
        if let Some(outer) = ev {
            outer.merge(&seen);
        }
        valid
    }

    /// The keywords of `o` for this instance type, then those for every type. With `LEAF`, the
    /// caller knows they are all leaves (a scalar under `leaf_any`): the loop then has no
    /// subschemas, annotations or recursion to handle.
    fn keywords<J: JsonNode<'a>, const LEAF: bool>(
        &mut self,
        o: &'t SchemaObj,
        specific: &'t [Kw],
        inst: J,
        kind: Kind<'a>,
        collect: bool,
        mut ev: Option<&mut Evaluated>,
    ) -> bool {
        let mut valid = true;
        for kw in specific.iter().chain(&o.any) {
            if collect && self.full() {
                self.truncated = true;
                return false;
            }
            let ok = if LEAF {
                self.leaf(kw, inst, kind, collect)
            } else {
                self.keyword(kw, inst, kind, collect, ev.as_deref_mut())
            };
            if !ok {
                valid = false;
                if !collect || self.too_deep {
                    return false;
                }
            }
        }
        valid
    }

    #[cold]
    pub(crate) fn fail(&mut self, collect: bool, kw: &Kw) -> bool {
        self.record(collect, Reason::SchemaViolation, kw.name, &kw.loc);
        false
    }

    pub(crate) fn check(&mut self, ok: bool, collect: bool, kw: &Kw) -> bool {
        ok || self.fail(collect, kw)
    }

    fn keyword<J: JsonNode<'a>>(
        &mut self,
        kw: &'t Kw,
        inst: J,
        kind: Kind<'a>,
        collect: bool,
        ev: Option<&mut Evaluated>,
    ) -> bool {
        match (&kw.kind, kind) {
            (KwKind::Ref(s), _) => self.validate(*s, inst, collect, ev),
            (KwKind::DynamicRef { target, anchor }, _) => {
                let s = self.dynamic_target(*target, anchor.as_deref());
                self.validate(s, inst, collect, ev)
            }
            (KwKind::PrefixItems(_) | KwKind::Items { .. } | KwKind::Contains { .. }, _) => {
                self.array(kw, inst, kind, collect, ev)
            }
            (KwKind::Object(o), Kind::Object(n)) => self.object(o, inst, n, collect, ev),
            (
                KwKind::AllOf(_)
                | KwKind::AnyOf(_)
                | KwKind::OneOf(_)
                | KwKind::Not(_)
                | KwKind::If { .. },
                _,
            ) => self.combinator(kw, inst, collect, ev),
            _ => self.leaf(kw, inst, kind, collect),
        }
    }

    /// Keywords that decide on the instance alone, without applying a subschema.
    fn leaf<J: JsonNode<'a>>(
        &mut self,
        kw: &'t Kw,
        inst: J,
        kind: Kind<'a>,
        collect: bool,
    ) -> bool {
        holds(kw, inst, kind) || self.fail(collect, kw)
    }
}

/// Whether a leaf keyword holds for the instance (other keywords, and keywords that do not
/// apply to this instance type, pass). The cheap checks every scalar meets are here; those that
/// walk values or text are in [`holds_by_value`], so this stays a small function with a small
/// stack frame.
#[inline]
pub(crate) fn holds<'a, J: JsonNode<'a>>(kw: &Kw, inst: J, kind: Kind<'a>) -> bool {
    match (&kw.kind, kind) {
        (KwKind::Type(mask), k) => type_ok(*mask, k),
        (KwKind::Minimum { limit, exclusive }, Kind::Num(n)) => {
            let o = number::cmp(n, *limit);
            o.is_gt() || (o.is_eq() && !exclusive)
        }
        (KwKind::Maximum { limit, exclusive }, Kind::Num(n)) => {
            let o = number::cmp(n, *limit);
            o.is_lt() || (o.is_eq() && !exclusive)
        }
        (KwKind::MultipleOf(d), Kind::Num(n)) => d.divides(n),
        (KwKind::MinLength(m), Kind::Str(s)) => s.len() >= *m && char_len(s) >= *m,
        (KwKind::MaxLength(m), Kind::Str(s)) => s.len() <= *m || char_len(s) <= *m,
        (KwKind::Pattern(re), Kind::Str(s)) => re.is_match(s),
        (KwKind::MinItems(m), Kind::Array(n)) => n >= *m,
        (KwKind::MaxItems(m), Kind::Array(n)) => n <= *m,
        (KwKind::MinProperties(m), Kind::Object(n)) => n >= *m,
        (KwKind::MaxProperties(m), Kind::Object(n)) => n <= *m,
        (KwKind::Enum(_) | KwKind::Const(_) | KwKind::UniqueItems | KwKind::Format(_), _) => {
            holds_by_value(kw, inst, kind)
        }
        _ => true,
    }
}

/// [`holds`] for the keywords that compare or scan values: `enum`, `const`, `uniqueItems`,
/// `format`.
#[inline(never)]
fn holds_by_value<'a, J: JsonNode<'a>>(kw: &Kw, inst: J, kind: Kind<'a>) -> bool {
    match (&kw.kind, kind) {
        (KwKind::Enum(vals), _) => vals.iter().any(|v| unique::equal(inst, v)),
        (KwKind::Const(v), _) => unique::equal(inst, v),
        (KwKind::UniqueItems, Kind::Array(_)) => unique::all_unique(inst),
        (KwKind::Format(f), Kind::Str(s)) => f.check_str(s),
        (KwKind::Format(f), Kind::Num(n)) => f.check_num(n),
        _ => true,
    }
}

#[inline]
pub(crate) fn type_ok(mask: u8, k: Kind<'_>) -> bool {
    let bit = match k {
        Kind::Null => ty::NULL,
        Kind::Bool(_) => ty::BOOL,
        Kind::Num(n) => {
            return mask & ty::NUM != 0 || (mask & ty::INT != 0 && Num::is_integer(n));
        }
        Kind::Str(_) => ty::STR,
        Kind::Array(_) => ty::ARR,
        Kind::Object(_) => ty::OBJ,
    };
    mask & bit != 0
}

/// The JSON pointer of an instance location, cut to [`MAX_LOCATION_BYTES`].
pub(crate) fn pointer(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        s.push('/');
        match seg {
            Seg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => s.push_str("~0"),
                        '/' => s.push_str("~1"),
                        c => s.push(c),
                    }
                }
            }
            Seg::Index(i) => s.push_str(&i.to_string()),
        }
        if s.len() > MAX_LOCATION_BYTES {
            break;
        }
    }
    cap_location(s)
}

/// Length in Unicode code points (JSON Schema counts code points, not bytes or UTF-16 units).
pub(crate) fn char_len(s: &str) -> usize {
    char_count(s.as_bytes())
}

/// The characters of the UTF-8 text `s`: its bytes but the continuation bytes.
pub(crate) fn char_count(s: &[u8]) -> usize {
    s.len() - s.iter().filter(|b| (*b & 0xC0) == 0x80).count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{CompileOptions, Dialect, Limits, Reason, Validator};
    use serde_json::json;

    fn schema() -> Validator {
        let s = json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "qty": {"type": "integer", "minimum": 1},
                "a/b~c": {"type": "string"}}}},
            "name": {"type": "string", "maxLength": 4}}});
        Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap()
    }

    #[test]
    fn locations_point_at_instance_and_keyword() {
        let mut body =
            br#"{"items": [{"qty": 2}, {"qty": 0, "a/b~c": 5}], "name": "toolong"}"#.to_vec();
        let r = schema()
            .validate_bytes(&mut body, &Limits::default())
            .unwrap_err();
        let got: Vec<(&str, &str, &str)> = r
            .violations
            .iter()
            .map(|v| {
                (
                    v.instance_location.as_str(),
                    v.keyword_location.as_str(),
                    v.keyword,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/items/1/qty",
                    "/properties/items/items/properties/qty/minimum",
                    "minimum"
                ),
                (
                    "/items/1/a~1b~0c",
                    "/properties/items/items/properties/a~1b~0c/type",
                    "type"
                ),
                ("/name", "/properties/name/maxLength", "maxLength"),
            ]
        );
        assert_eq!(r.reason, Reason::SchemaViolation);
        assert!(!r.truncated);
    }

    #[test]
    fn violations_never_echo_the_value() {
        let mut body = br#"{"items": [], "name": "SECRET-TOKEN"}"#.to_vec();
        let r = schema()
            .validate_bytes(&mut body, &Limits::default())
            .unwrap_err();
        let text = format!("{r} {:?} {}", r, serde_json::to_string(&r).unwrap());
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn errors_are_bounded() {
        let v = Validator::compile(
            &json!({"items": {"type": "string"}}),
            Dialect::Draft7,
            &CompileOptions::default(),
        )
        .unwrap();
        let mut body = format!("[{}]", vec!["1"; 1000].join(",")).into_bytes();
        let limits = Limits {
            max_errors: 16,
            ..Limits::default()
        };
        let r = v.validate_bytes(&mut body, &limits).unwrap_err();
        assert_eq!(r.violations.len(), 16);
        assert!(r.truncated);
        assert_eq!(r.violations[15].instance_location, "/15");
    }

    #[test]
    fn missing_required_reports_the_object() {
        let mut body = b"{}".to_vec();
        let r = schema()
            .validate_bytes(&mut body, &Limits::default())
            .unwrap_err();
        assert_eq!(r.violations[0].keyword, "required");
        assert_eq!(r.violations[0].instance_location, "");
        assert_eq!(r.violations[0].keyword_location, "/required");
    }

    #[test]
    fn deep_values_are_bounded_too() {
        // A serde_json value built in code can be deeper than any parser would allow.
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!([v]);
        }
        let s = json!({"$defs": {"n": {"items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"});
        let val =
            Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        assert_eq!(val.validate_value(&v).unwrap_err().reason, Reason::TooDeep);
    }

    #[test]
    fn dynamic_refs_resolve_to_the_outermost_anchor_in_scope() {
        // A generic list whose element type the including schema chooses.
        let list = json!({"$id": "https://example.com/list", "$defs": {
            "item": {"$dynamicAnchor": "item"}},
            "type": "array", "items": {"$dynamicRef": "#item"}});
        let s = json!({"$id": "https://example.com/ints", "$ref": "list",
            "$defs": {"int": {"$dynamicAnchor": "item", "type": "integer"}}});
        let v = Validator::compile_with_resources(
            &s,
            Dialect::Draft2020_12,
            &CompileOptions::default(),
            &[("https://example.com/list", &list)],
        )
        .unwrap();
        assert!(v.validate_value(&json!([1, 2])).is_ok());
        let r = v.validate_value(&json!([1, "two"])).unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/1");
        assert_eq!(r.violations[0].keyword_location, "/$defs/int/type");
        // On its own the list accepts anything.
        let alone =
            Validator::compile(&list, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        assert!(alone.validate_value(&json!([1, "two"])).is_ok());
    }
}
