//! The layout of parameter values and form fields, read from their schemas' `type` (through
//! `$ref`s): it decides how strings from the wire are split and converted before validation.

use serde_json::Value;

use crate::compile::{Ctx, esc};
use crate::convert::{Shape, Types};

/// How a parameter's value is laid out, from its schema's `type`.
pub(crate) fn shape_of(ctx: &mut Ctx<'_>, schema_at: &str) -> Shape {
    let doc = ctx.doc;
    let Some((schema, _)) = doc
        .pointer(schema_at)
        .and_then(|s| ctx.resolve(s, schema_at))
    else {
        return Shape::Scalar(Types::ANY);
    };
    let has_type = |t: &str| match schema.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(a)) => a.iter().any(|x| x == t),
        _ => false,
    };
    if has_type("array") {
        let items = schema
            .get("items")
            .and_then(|i| ctx.resolve(i, schema_at))
            .map(|(i, _)| Types::of(i));
        return Shape::Array(items.unwrap_or(Types::ANY));
    }
    if has_type("object") || schema.get("properties").is_some() {
        let mut props = Vec::new();
        if let Some(map) = schema.get("properties").and_then(Value::as_object) {
            for (name, s) in map {
                let t = ctx
                    .resolve(s, schema_at)
                    .map_or(Types::ANY, |(s, _)| Types::of(s));
                props.push((name.clone(), t));
            }
        }
        return Shape::Object(props);
    }
    Shape::Scalar(Types::of(schema))
}

/// The shapes of a form schema's own properties (fields it does not list read as strings).
pub(crate) fn form_fields(ctx: &mut Ctx<'_>, schema_at: &str) -> Vec<(String, Shape)> {
    let doc = ctx.doc;
    let Some((schema, at)) = doc
        .pointer(schema_at)
        .and_then(|s| ctx.resolve(s, schema_at))
    else {
        return Vec::new();
    };
    let names: Vec<&String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                shape_of(ctx, &format!("{at}/properties/{}", esc(n))),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyOptions;
    use serde_json::json;
    use vigil_schema::Dialect;

    #[test]
    fn shapes_follow_types_through_refs() {
        let doc = json!({"components": {"schemas": {
            "Ids": {"type": "array", "items": {"$ref": "#/components/schemas/Id"}},
            "Id": {"type": "integer"},
            "Form": {"type": "object", "properties": {
                "ids": {"$ref": "#/components/schemas/Ids"}, "n": {"type": ["number", "null"]}}},
            "Ref": {"$ref": "#/components/schemas/Form"}}}});
        let opts = PolicyOptions::default();
        let mut ctx = Ctx::new(&doc, Dialect::OpenApi31, &opts);
        assert_eq!(
            shape_of(&mut ctx, "/components/schemas/Ids"),
            Shape::Array(Types::INTEGER)
        );
        assert_eq!(
            shape_of(&mut ctx, "/components/schemas/Id"),
            Shape::Scalar(Types::INTEGER)
        );
        assert_eq!(shape_of(&mut ctx, "/nowhere"), Shape::Scalar(Types::ANY));
        let fields = form_fields(&mut ctx, "/components/schemas/Ref");
        assert_eq!(fields[0], ("ids".to_string(), Shape::Array(Types::INTEGER)));
        assert_eq!(fields[1].0, "n");
        assert!(
            matches!(shape_of(&mut ctx, "/components/schemas/Form"), Shape::Object(p) if p.len() == 2)
        );
    }
}
