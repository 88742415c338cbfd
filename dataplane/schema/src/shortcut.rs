//! After compilation, a schema that is nothing but a `$ref` to a schema object (the usual
//! OpenAPI property `{"$ref": "#/components/schemas/Address"}`) is replaced by its target
//! wherever it is used, so the walk does not pass through it. Violations were always reported at
//! the target's keywords, so reports do not change. Skipped when `$dynamicRef` is in play:
//! entering the referring schema's resource is part of the dynamic scope.

use crate::tree::{KwKind, Schema, Sid, Tree};

pub(crate) fn skip_pure_refs(tree: &mut Tree) {
    if tree.dynamic {
        return;
    }
    let direct: Vec<Option<Sid>> = tree.schemas.iter().map(pure_ref).collect();
    let is_obj = |s: Sid| matches!(tree.schemas.get(s), Some(Schema::Obj(_)));
    let n = direct.len();
    let map: Vec<Sid> = (0..n)
        .map(|mut s| {
            // Chains of pure references end: loops of them were refused as infinite recursion.
            // The bound only keeps this loop finite whatever the tree holds.
            for _ in 0..n {
                match direct.get(s).copied().flatten() {
                    Some(t) if is_obj(t) => s = t,
                    _ => break,
                }
            }
            s
        })
        .collect();
    let to = |s: &mut Sid| {
        if let Some(t) = map.get(*s) {
            *s = *t;
        }
    };
    for schema in &mut tree.schemas {
        let Schema::Obj(o) = schema else { continue };
        let lists = [&mut o.num, &mut o.str, &mut o.arr, &mut o.obj, &mut o.any];
        for kw in lists.into_iter().flatten() {
            remap(&mut kw.kind, &to);
        }
        if let Some(u) = &mut o.unevaluated {
            for (s, _) in u.props.iter_mut().chain(u.items.iter_mut()) {
                to(s);
            }
        }
    }
    to(&mut tree.root);
}

/// The target of a schema whose only keyword is `$ref`.
fn pure_ref(s: &Schema) -> Option<Sid> {
    let Schema::Obj(o) = s else { return None };
    let bare = o.ty.is_none()
        && o.read_only.is_none()
        && o.unevaluated.is_none()
        && o.num.is_empty()
        && o.str.is_empty()
        && o.arr.is_empty()
        && o.obj.is_empty();
    match o.any.as_slice() {
        [kw] if bare => match kw.kind {
            KwKind::Ref(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// Rewrites every schema index a keyword holds.
fn remap(kind: &mut KwKind, to: &impl Fn(&mut Sid)) {
    match kind {
        KwKind::Ref(s) | KwKind::Not(s) => to(s),
        KwKind::UnevaluatedProperties(s) | KwKind::UnevaluatedItems(s) => to(s),
        KwKind::DynamicRef { target, .. } => to(target),
        KwKind::Items { schema, .. } | KwKind::Contains { schema, .. } => to(schema),
        KwKind::PrefixItems(v) | KwKind::AllOf(v) | KwKind::AnyOf(v) | KwKind::OneOf(v) => {
            v.iter_mut().for_each(to);
        }
        KwKind::If { cond, then, els } => {
            to(cond);
            then.iter_mut().chain(els.iter_mut()).for_each(to);
        }
        KwKind::Object(o) => {
            o.props.iter_mut().flatten().for_each(to);
            o.patterns.iter_mut().for_each(|(_, s)| to(s));
            for (s, _) in o.additional.iter_mut().chain(o.property_names.iter_mut()) {
                to(s);
            }
            o.dep_schemas.iter_mut().for_each(|(_, s)| to(s));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{CompileOptions, Dialect, Limits, Validator};
    use serde_json::json;

    #[test]
    fn references_are_followed_at_compile_time_with_the_same_reports() {
        let s = json!({"$defs": {"n": {"type": "integer"}, "alias": {"$ref": "#/$defs/n"}},
            "properties": {"a": {"$ref": "#/$defs/alias"}, "b": {"$ref": "#/$defs/n",
            "minimum": 5}}, "items": {"$ref": "#/$defs/alias"}});
        let v = Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        let mut body = br#"{"a": "x", "b": 1}"#.to_vec();
        let r = v.validate_bytes(&mut body, &Limits::default()).unwrap_err();
        let got: Vec<(&str, &str)> = r
            .violations
            .iter()
            .map(|x| (x.instance_location.as_str(), x.keyword_location.as_str()))
            .collect();
        assert_eq!(
            got,
            [("/a", "/$defs/n/type"), ("/b", "/properties/b/minimum")]
        );
        let r = v.validate_value(&json!([1, 2.5])).unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/1");
        assert_eq!(r.violations[0].keyword_location, "/$defs/n/type");
    }
}
